"""The public API: every name in `pytest_mldeploy.__all__` imports from the top, and lazily."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_mldeploy

OWNERS = {
    "load_project": "pytest_mldeploy.core.config",
    "Project": "pytest_mldeploy.core.config",
    "Deployment": "pytest_mldeploy.core.config",
    "Registry": "pytest_mldeploy.core.registry",
    "get_target": "pytest_mldeploy.core.targets",
    "Service": "pytest_mldeploy.core.service",
    "ScoringClient": "pytest_mldeploy.client",
    "CheckResult": "pytest_mldeploy.checks.base",
    "Outcome": "pytest_mldeploy.checks.base",
    "profile_deployment": "pytest_mldeploy.checks.profiling",
    "ProfileResult": "pytest_mldeploy.checks.profiling",
    "MldeployError": "pytest_mldeploy.errors",
    "ConfigError": "pytest_mldeploy.errors",
    "RegistryError": "pytest_mldeploy.errors",
    "BuildError": "pytest_mldeploy.errors",
    "ServiceError": "pytest_mldeploy.errors",
}


def test_all_lists_exactly_the_curated_names():
    assert sorted(pytest_mldeploy.__all__) == sorted(["__version__", *OWNERS])
    assert set(OWNERS) <= set(dir(pytest_mldeploy))


_IMPORT_FROM_THE_TOP = """
import importlib, sys
name, owner = sys.argv[1], sys.argv[2]
namespace = {}
exec(f"from pytest_mldeploy import {name}", namespace)
assert namespace[name] is getattr(importlib.import_module(owner), name), (name, owner)
"""


@pytest.mark.parametrize("name", sorted(OWNERS))
def test_each_name_imports_from_the_top(name):
    # A fresh interpreter: in-process pytester runs earlier in the session unload numpy, which
    # cannot be imported twice in one process.
    done = subprocess.run([sys.executable, "-c", _IMPORT_FROM_THE_TOP, name, OWNERS[name]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'load_projects'"):
        pytest_mldeploy.load_projects  # noqa: B018


def test_the_errors_share_one_base():
    from pytest_mldeploy import BuildError, ConfigError, MldeployError, RegistryError, ServiceError

    assert all(issubclass(error, MldeployError) for error in (BuildError, ConfigError, RegistryError, ServiceError))


def test_importing_the_package_alone_imports_nothing_heavy():
    code = ("import sys; import pytest_mldeploy; "
            "print(sorted(m for m in sys.modules if m.startswith(('pytest_mldeploy.', 'pydantic', 'requests', "
            "'hypothesis', 'docker', 'numpy', 'yaml', 'jsonschema'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['pytest_mldeploy._version']"  # the version's own one-line module, nothing else


def test_the_package_ships_its_type_hints():
    assert (Path(pytest_mldeploy.__file__).parent / "py.typed").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'pytest_mldeploy = ["py.typed"]' in pyproject
