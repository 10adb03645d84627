"""Requirements hashing and merging, the offline wheelhouse, cached venvs, requirements_satisfied.

pip runs for real, against a local folder of tiny wheels (PIP_NO_INDEX + PIP_FIND_LINKS), so
these tests need no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pytest_mldeploy.core import environment as env
from pytest_mldeploy.core import server_copy
from pytest_mldeploy.errors import BuildError

REPO = Path(__file__).resolve().parents[2]
# A fake wheel for every server requirement (pyproject's `server` extra), new enough for any `>=`.
SERVER_WHEELS = [(Requirement(line).name, "99.0") for line in env.server_requirements()]


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel with one module named like the project."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A find-links folder with fake server packages and one app package; pip may use nothing else."""
    links = tmp_path / "links"
    links.mkdir()
    for name, version in SERVER_WHEELS:
        make_wheel(links, name, version)
    make_wheel(links, "tinyapp", "1.0", requires=("tinydep>=2",))
    make_wheel(links, "tinydep", "2.1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    return links


def test_server_requirements_match_pyproject_server_extra():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["server"]

    def normal(lines):
        return sorted(str(Requirement(line)) for line in lines)

    assert normal(env.server_requirements()) == normal(declared)
    assert normal(env.SERVER_REQUIREMENTS_FALLBACK) == normal(declared)


def test_merge_adds_server_requirements_and_keeps_user_pins():
    merged = env.merge_requirements(["scikit-learn==1.9.1", "joblib  # comment", "", "# only a comment", "Uvicorn==0.30.1"])
    assert merged[:3] == ["scikit-learn==1.9.1", "joblib", "Uvicorn==0.30.1"]
    assert [line for line in merged if line.lower().startswith("uvicorn")] == ["Uvicorn==0.30.1"]
    assert any(line.startswith("httptools") for line in merged)


def test_merge_drops_duplicate_lines():
    assert env.merge_requirements(["a==1", "a==1"], extra=["b"]) == ["a==1", "b"]


def test_requirements_hash_is_stable_and_order_free():
    first = env.requirements_hash(["a==1", "b>=2"], "3.11", "manylinux2014_x86_64")
    assert first == env.requirements_hash(["b>=2", "a==1", "# comment"], "3.11", "manylinux2014_x86_64")
    assert len(first) == 64


@pytest.mark.parametrize(
    "other",
    [
        (["a==1", "b>=3"], "3.11", "manylinux2014_x86_64"),
        (["a==1"], "3.11", "manylinux2014_x86_64"),
        (["a==1", "b>=2"], "3.12", "manylinux2014_x86_64"),
        (["a==1", "b>=2"], "3.11", "manylinux_2_28_x86_64"),
        (["a==1", "b>=2"], "3.11", ["manylinux2014_x86_64", "linux_x86_64"]),
    ],
)
def test_requirements_hash_changes_with_each_input(other):
    assert env.requirements_hash(["a==1", "b>=2"], "3.11", "manylinux2014_x86_64") != env.requirements_hash(*other)


def test_default_platforms_reach_the_manylinux_tags_modern_wheels_use():
    # scikit-learn 1.9 publishes manylinux_2_27/2_28 wheels only; manylinux2014 alone would miss them.
    assert "manylinux_2_28_x86_64" in env.DEFAULT_PLATFORMS
    assert "manylinux2014_x86_64" in env.DEFAULT_PLATFORMS


def test_manylinux_platforms_cover_the_glibc_range():
    tags = env.manylinux_platforms("2.36")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux_2_16_x86_64" not in tags
    assert tags[-4:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    with pytest.raises(BuildError, match="glibc 2.12"):
        env.manylinux_platforms("2.12")


def test_environment_does_not_import_the_base_image_module():
    # base_image needs the wheelhouse's platform tags; the wheelhouse must not need Docker's side back.
    code = ("import sys, pytest_mldeploy.core.environment; "
            "print('pytest_mldeploy.core.base_image' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_server_files_are_the_package_stub_its_version_and_the_server_only():
    files = server_copy.server_files()
    rels = [rel for rel, _ in files]
    assert rels[0] == "pytest_mldeploy/__init__.py"
    assert "pytest_mldeploy/server/__init__.py" in rels
    assert rels[1] == "pytest_mldeploy/_version.py"
    assert all(rel.startswith("pytest_mldeploy/server/") for rel in rels[2:])
    assert not any("__pycache__" in rel or rel.endswith(".pyc") for rel in rels)


def test_wheelhouse_resolves_dependencies_and_adds_the_server(local_index, tmp_path):
    house = env.ensure_wheelhouse(["tinyapp==1.0"], python_version="3.11")
    assert house.parent == tmp_path / "cache" / "wheelhouses"
    wheels = sorted(p.name for p in house.glob("*.whl"))
    expected = sorted([*SERVER_WHEELS, ("tinyapp", "1.0"), ("tinydep", "2.1")])
    assert wheels == [f"{name}-{version}-py3-none-any.whl" for name, version in expected]
    assert (house / "requirements.txt").read_text().split() == [f"{name}=={version}" for name, version in expected]
    manifest = json.loads((house / "manifest.json").read_text())
    assert manifest["hash"] == house.name
    assert set(manifest["wheels"]) == set(wheels)
    assert not [p for p in house.parent.iterdir() if p.name.startswith(".tmp-")]


def test_wheelhouse_is_reused_from_the_cache_without_pip(local_index):
    first = env.ensure_wheelhouse(["tinyapp==1.0"])
    digest = env.wheelhouse_digest(first)
    for wheel in local_index.iterdir():  # pip could not resolve anything now
        wheel.unlink()
    again = env.ensure_wheelhouse(["tinyapp==1.0"])
    assert again == first
    assert env.wheelhouse_digest(again) == digest


def _fake_uv_wheel(links: Path, version: str) -> None:
    """A `uv` wheel whose executable is a shell script, as uv ships it: `uv-X.data/scripts/uv`."""
    wheel = make_wheel(links, "uv", version)
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr(f"uv-{version}.data/scripts/uv", "#!/bin/sh\necho fake uv\n")


def test_wheelhouse_carries_uv_for_the_image_outside_the_pins(local_index, monkeypatch):
    _fake_uv_wheel(local_index, "99.0")
    monkeypatch.setattr(env, "host_uv_version", lambda: "99.0")
    house = env.ensure_wheelhouse(["tinyapp==1.0"])
    tool = house / env.UV_TOOL
    assert tool.read_text() == "#!/bin/sh\necho fake uv\n" and os.access(tool, os.X_OK)
    # uv installs the venv; it is not one of its packages
    assert "uv==99.0" not in (house / "requirements.txt").read_text().split()
    assert not list(house.glob("uv-*.whl")) and not (house / ".uv-wheel").exists()
    manifest = json.loads((house / "manifest.json").read_text())
    assert list(manifest["tools"]) == [env.UV_TOOL]
    monkeypatch.setenv(env.INSTALLER_VARIABLE, "pip")
    with_pip = env.ensure_wheelhouse(["tinyapp==1.0"])
    assert with_pip != house and not (with_pip / env.UV_TOOL).exists()
    assert env.wheelhouse_digest(with_pip) != env.wheelhouse_digest(house)


def test_wheelhouse_without_a_fetchable_uv_still_resolves(local_index, monkeypatch):
    monkeypatch.setattr(env, "host_uv_version", lambda: "98.0")  # no such wheel in the index
    house = env.ensure_wheelhouse(["tinyapp==1.0"])
    assert (house / "requirements.txt").is_file() and not (house / env.UV_TOOL).exists()
    assert json.loads((house / "manifest.json").read_text())["tools"] == {}


def test_unknown_installer_names_the_variable_and_the_choices(local_index, monkeypatch):
    monkeypatch.setenv(env.INSTALLER_VARIABLE, "conda")
    with pytest.raises(BuildError, match=r"MLDEPLOY_INSTALLER='conda': unknown installer; set it to one of uv, pip"):
        env.ensure_wheelhouse(["tinyapp==1.0"])


def test_wheelhouse_failure_names_the_requirement(local_index, tmp_path):
    with pytest.raises(BuildError) as caught:
        env.ensure_wheelhouse(["tinyapp==1.0", "no-such-package-xyz==3.1"])
    message = str(caught.value)
    assert message.startswith("requirements: no-such-package-xyz==3.1 cannot be resolved")
    assert "pip said:" in message
    assert not list((tmp_path / "cache" / "wheelhouses").glob("*/manifest.json"))


def test_wheelhouse_digest_sees_wheel_content(tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    make_wheel(house, "tinyapp", "1.0")
    before = env.wheelhouse_digest(house)
    (house / "tinyapp-1.0-py3-none-any.whl").write_bytes(b"changed")
    assert env.wheelhouse_digest(house) != before


def test_requirements_satisfied_by_the_current_interpreter():
    assert env.requirements_satisfied(["pytest", "packaging>=20"])
    assert env.requirements_satisfied(["inference-schema[numpy-support]"])
    assert env.requirements_satisfied(['definitely-not-installed-pkg; python_version < "3"'])


@pytest.mark.parametrize(
    "line",
    ["definitely-not-installed-pkg", "pytest<1", "--index-url https://example.invalid/simple", "pkg @ https://example.invalid/p.whl"],
)
def test_requirements_not_satisfied(line):
    assert not env.requirements_satisfied([line])


def test_ensure_venv_builds_once_and_holds_the_server(local_index, tmp_path):
    python = env.ensure_venv(["tinyapp==1.0"])
    assert python.is_file() and python.parent.parent.parent == tmp_path / "cache" / "venvs"
    assert (python.parent.parent / ".mldeploy-complete").is_file()
    out = subprocess.run(
        [str(python), "-c", "import tinyapp, tinydep, uvicorn, httptools, pytest_mldeploy, pytest_mldeploy.server.settings as s; "
                            "print(tinydep.__version__, pytest_mldeploy.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,  # not this checkout's folder
    ).stdout.split()
    assert out[0] == "2.1"
    assert Path(out[1]).is_relative_to(python.parent.parent)  # the venv's copy, not this checkout
    # The core is not copied: the server must run without it.
    assert subprocess.run([str(python), "-c", "import pytest_mldeploy.core"], capture_output=True, cwd=tmp_path).returncode != 0
    assert env.ensure_venv(["tinyapp==1.0"]) == python


def test_ensure_venv_failure_leaves_nothing(local_index, tmp_path):
    with pytest.raises(BuildError, match="no-such-package-xyz"):
        env.ensure_venv(["no-such-package-xyz"])
    venvs = tmp_path / "cache" / "venvs"
    assert not [p for p in venvs.iterdir() if p.is_dir()]



def _sdist(folder: Path, name: str, version: str) -> None:
    """A pure-Python sdist pip can build in a second (setuptools, no network: build isolation off)."""
    import tarfile
    import io

    base = f"{name}-{version}"
    files = {
        f"{base}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, py_modules=[{name!r}])\n",
        f"{base}/{name}.py": "",
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    with tarfile.open(folder / f"{base}.tar.gz", "w:gz") as archive:
        for path, text in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))


def test_binary_only_packages_are_never_built_from_an_sdist(local_index, tmp_path):
    import sys

    _sdist(local_index, "sdistonly", "1.0")
    host = "%d.%d" % sys.version_info[:2]
    # Without binary_only pip goes on to build the sdist (whether that works depends on the host's setuptools).
    try:
        env.ensure_wheelhouse(["sdistonly==1.0"], python_version=host, cache_dir=tmp_path / "a")
    except env.UnresolvableRequirement as exc:
        assert "sdistonly-1.0.tar.gz" in exc.pip_log
    with pytest.raises(env.UnresolvableRequirement) as caught:
        env.ensure_wheelhouse(["sdistonly==1.0"], python_version=host, cache_dir=tmp_path / "b", binary_only=["sdistonly==1.0"])
    assert caught.value.requirement == "sdistonly==1.0"
    assert "sdistonly-1.0.tar.gz" not in caught.value.pip_log and "metadata" not in caught.value.pip_log
    assert isinstance(caught.value, BuildError)
    assert not list((tmp_path / "b").glob("*/manifest.json"))
