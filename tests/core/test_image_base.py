"""The offline base image's pure parts: apt sources, mmdebstrap call, manylinux tags, modes."""

from __future__ import annotations

import os
import shutil

import pytest

from pytest_mldeploy.core import base_image as bi
from pytest_mldeploy.errors import BuildError


def test_host_mirrors_reads_deb822_and_list_files(tmp_path):
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\n"
        "# a comment\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates trixie\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb-src\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://disabled.example/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "Enabled: no\n"
    )
    listing = tmp_path / "extra.list"
    listing.write_text(
        "deb [signed-by=/k.gpg] http://security.example/debian-security bookworm-security main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://other.example/debian bullseye main\n"
    )
    assert bi.host_mirrors("bookworm", [sources, listing]) == [
        "deb http://mirror.example/debian bookworm main contrib",
        "deb http://mirror.example/debian bookworm-updates main contrib",
        "deb http://security.example/debian-security bookworm-security main",
    ]


def test_host_mirrors_falls_back_to_deb_debian_org(tmp_path):
    assert bi.host_mirrors("bookworm", [tmp_path / "missing.list"]) == ["deb http://deb.debian.org/debian bookworm main"]


def test_mmdebstrap_command_is_slim_and_reproducible(tmp_path):
    cmd = bi.mmdebstrap_command("unshare", "bookworm", tmp_path / "r.tar", ["deb http://m/debian bookworm main"], bi.BASE_PACKAGES)
    assert cmd[:4] == ["mmdebstrap", "--variant=apt", "--mode=unshare", "--format=tar"]
    assert "--include=python3,python3-venv,ca-certificates,python-is-python3" in cmd
    assert '--aptopt=APT::Install-Recommends "false"' in cmd
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in cmd
    hooks = " ".join(part for part in cmd if part.startswith("--customize-hook"))
    assert "/var/lib/apt/lists/*" in hooks and "/var/cache/apt/*" in hooks and "etc/resolv.conf" in hooks
    assert cmd[-3:] == ["bookworm", str(tmp_path / "r.tar"), "deb http://m/debian bookworm main"]


def test_usable_modes_are_known_modes():
    modes = bi.usable_modes()
    assert set(modes) <= set(bi.MODES)
    assert modes == [m for m in bi.MODES if m in modes]


def test_source_date_epoch_follows_the_environment(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert bi.source_date_epoch() == 1234
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert bi.source_date_epoch() == bi.DEFAULT_SOURCE_DATE_EPOCH


def test_bootstrap_fails_clearly_when_no_mode_works(tmp_path, monkeypatch):
    # A stand-in mmdebstrap that rejects the mode, first on PATH: the message must not depend on
    # mmdebstrap being installed (a fresh machine has none until `mldeploy base-image` installs it).
    fake = tmp_path / "bin" / "mmdebstrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'E: invalid mode. Choose from auto, sudo, root, unshare, fakeroot, fakechroot, chrootless' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BuildError) as caught:
        bi.bootstrap_base_image("mldeploy/base:never", modes=["no-such-mode"], mirrors=["deb http://127.0.0.1:9/debian bookworm main"])
    message = str(caught.value)
    assert "mmdebstrap failed in every mode tried" in message
    assert "--mode=no-such-mode" in message
    assert "docker pull python:3.11-slim-bookworm" in message


# -- apt_install: how `mldeploy base-image` gets mmdebstrap on a fresh machine (a fake apt-get on a fake PATH) --

FAKE_APT = """#!/bin/sh
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
echo "$*" >> "$here/apt.log"
case "$1" in
  update) : > "$here/lists"; exit 0 ;;
  install)
    if [ ! -f "$here/lists" ]; then echo "E: Unable to locate package mmdebstrap" >&2; exit 100; fi
    printf '#!/bin/sh\\nexit 0\\n' > "$here/mmdebstrap"; /bin/chmod +x "$here/mmdebstrap"; exit 0 ;;
esac
exit 1
"""


def _fake_path(tmp_path, monkeypatch, apt_script=FAKE_APT):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(apt_script)
    apt.chmod(0o755)
    # dirname, the only tool the fake uses by name, comes from the real system
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_apt_install_installs_a_missing_tool_as_root_updating_lists_when_needed(tmp_path, monkeypatch):
    bin_dir = _fake_path(tmp_path, monkeypatch)
    monkeypatch.setattr(bi.os, "geteuid", lambda: 0)
    notices = []
    path = bi.apt_install("mmdebstrap", "mmdebstrap", "builds the offline base image", progress=notices.append)
    assert path == str(bin_dir / "mmdebstrap")
    assert (bin_dir / "apt.log").read_text().splitlines() == [
        "install -y -qq mmdebstrap", "update -qq", "install -y -qq mmdebstrap"]
    assert "installing the Debian package mmdebstrap with apt-get" in notices[0]
    # Found on PATH now: apt-get is not asked again.
    assert bi.apt_install("mmdebstrap", "mmdebstrap", "x") == path
    assert len((bin_dir / "apt.log").read_text().splitlines()) == 3


def test_apt_install_as_a_user_names_the_command_to_run(tmp_path, monkeypatch):
    bin_dir = _fake_path(tmp_path, monkeypatch)
    monkeypatch.setattr(bi.os, "geteuid", lambda: 1000)
    with pytest.raises(BuildError) as err:
        bi.apt_install("mmdebstrap", "mmdebstrap", "builds the offline base image")
    assert "not root" in str(err.value) and "`sudo apt-get install mmdebstrap`" in str(err.value)
    assert not (bin_dir / "apt.log").exists()


def test_apt_install_reports_apt_errors(tmp_path, monkeypatch):
    _fake_path(tmp_path, monkeypatch, "#!/bin/sh\necho 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2\nexit 100\n")
    monkeypatch.setattr(bi.os, "geteuid", lambda: 0)
    with pytest.raises(BuildError) as err:
        bi.apt_install("mmdebstrap", "mmdebstrap", "builds the offline base image")
    message = str(err.value)
    assert "`apt-get install mmdebstrap` failed (exit 100)" in message and "Could not get lock" in message
