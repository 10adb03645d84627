"""A Debian root filesystem from packages alone: the offline base image's contents.

mmdebstrap writes a slim, reproducible rootfs tarball from the host's own apt mirrors (the only
registry an air-gapped host reaches); `core/base_image.py` imports it into Docker. `apt_install`
gets mmdebstrap itself onto a fresh Debian host.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from ..errors import BuildError

DEFAULT_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "python-is-python3")
# Tried in this order; `root` only when running as root, `unshare` needs user namespaces,
# `fakechroot` needs the fakechroot and fakeroot tools.
MODES = ("root", "unshare", "fakechroot")



@dataclass(frozen=True)
class Rootfs:
    """A rootfs tarball mmdebstrap wrote, with the Python and glibc versions installed in it."""

    tarball: Path
    python_version: str
    glibc_version: str


def build_rootfs(
    out: Path,
    *,
    suite: str = DEFAULT_SUITE,
    mirrors: Optional[Sequence[str]] = None,
    modes: Optional[Sequence[str]] = None,
    packages: Sequence[str] = BASE_PACKAGES,
    epoch: int,
    fallback: str,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Rootfs:
    """Write a Debian `suite` rootfs with `packages` to the tarball `out` (mmdebstrap).

    Reproducible for the same mirror content: SOURCE_DATE_EPOCH is `epoch`, and apt lists, caches,
    logs and host files are removed. Tries the mmdebstrap modes that can work here in turn and
    raises `BuildError` with each mode's error when none does; `fallback` names the other way to
    get a base (e.g. a `docker pull`).
    """
    if not shutil.which("mmdebstrap"):
        raise BuildError(f"base image: mmdebstrap is not installed; `apt-get install mmdebstrap`, or {fallback} "
                         "where a registry is reachable")
    mirrors = list(mirrors) if mirrors else host_mirrors(suite)
    candidates = list(modes) if modes else usable_modes()
    if not candidates:
        raise BuildError(
            "base image: no mmdebstrap mode can work here (not root, no user namespaces, no fakechroot); "
            "run `mldeploy base-image` as root, or `apt-get install fakechroot fakeroot`"
        )
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    failures = []
    for mode in candidates:
        progress(f"mmdebstrap --mode={mode} {suite} from {', '.join(m.split()[1] for m in mirrors[:1])}")
        started = time.monotonic()
        proc = subprocess.run(mmdebstrap_command(mode, suite, out, mirrors, packages), env=env,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            progress(f"rootfs ready in {time.monotonic() - started:.1f}s")
            break
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        failures.append(f"--mode={mode}: exit {proc.returncode}\n{tail}")
        out.unlink(missing_ok=True)
    else:
        raise BuildError(f"base image: mmdebstrap failed in every mode tried; fix the first error or {fallback}:\n"
                         + "\n\n".join(failures))
    versions = dpkg_versions(out, ("python3", "libc6"))
    python_version = ".".join(re.match(r"(\d+)\.(\d+)", versions.get("python3", "")).groups())
    glibc = re.match(r"(\d+\.\d+)", versions.get("libc6", "")).group(1)
    return Rootfs(out, python_version, glibc)


def host_mirrors(
    suite: str = DEFAULT_SUITE,
    sources: Iterable[Path] = (),
) -> list[str]:
    """The host's apt sources for `suite` (and its -updates/-security) as one-line `deb` entries.

    Reads deb822 `*.sources` and classic `*.list` files from /etc/apt (or `sources`), so the base
    is built from the same mirror the host uses; falls back to deb.debian.org.
    """
    files = list(sources) or sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*.list")
    ) + [Path("/etc/apt/sources.list")]
    entries: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            stanzas = [_deb822(block) for block in re.split(r"\n\s*\n", text)]
            for st in stanzas:
                if "deb" not in st.get("types", "").split() or st.get("enabled", "yes").lower() == "no":
                    continue
                for uri in st.get("uris", "").split():
                    for s in st.get("suites", "").split():
                        if s == suite or s.startswith(suite + "-"):
                            entries.append(f"deb {uri} {s} {st.get('components', 'main')}")
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 4 and parts[0] == "deb" and (parts[2] == suite or parts[2].startswith(suite + "-")):
                    entries.append(" ".join(parts))
    unique = list(dict.fromkeys(entries))
    return unique or [f"deb http://deb.debian.org/debian {suite} main"]


def _deb822(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def usable_modes() -> list[str]:
    """The mmdebstrap modes worth trying on this machine, in order of preference."""
    modes = []
    root = os.geteuid() == 0
    if root:
        modes.append("root")
    userns = Path("/proc/sys/kernel/unprivileged_userns_clone")
    userns_allowed = not userns.exists() or userns.read_text().strip() != "0"
    if root or (userns_allowed and shutil.which("newuidmap")):
        modes.append("unshare")
    if shutil.which("fakechroot") and shutil.which("fakeroot"):
        modes.append("fakechroot")
    return modes


def mmdebstrap_command(mode: str, suite: str, out: Path, mirrors: Sequence[str], packages: Sequence[str]) -> list[str]:
    """The mmdebstrap call for a slim, reproducible Python rootfs tarball."""
    cmd = [
        "mmdebstrap", "--variant=apt", f"--mode={mode}", "--format=tar",
        "--include=" + ",".join(packages),
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=Acquire::Languages "none"',
    ]
    for pattern in ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"):
        cmd.append(f"--dpkgopt=path-exclude={pattern}")
    cmd.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    # Host-specific files and leftovers that would make two builds differ.
    cmd.append('--customize-hook=rm -f "$1"/etc/resolv.conf "$1"/etc/hostname')
    cmd.append('--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old '
               '"$1"/var/log/apt/* "$1"/var/cache/ldconfig/aux-cache')
    cmd.append('--customize-hook=: > "$1"/etc/machine-id')
    return cmd + [suite, str(out), *mirrors]


def dpkg_versions(rootfs_tar: Path, packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of `packages`, read from the tarball's dpkg status file."""
    with tarfile.open(rootfs_tar) as tar:
        for member in tar:
            if member.name.lstrip("./") == "var/lib/dpkg/status":
                status = tar.extractfile(member).read().decode()
                break
        else:
            raise BuildError(f"{rootfs_tar}: no var/lib/dpkg/status; mmdebstrap produced no Debian rootfs")
    versions = {}
    for stanza in status.split("\n\n"):
        fields = _deb822(stanza)
        if fields.get("package") in packages:
            versions[fields["package"]] = fields.get("version", "")
    return versions


def apt_install(package: str, command: str, purpose: str, *, progress: Optional[Callable[[str], None]] = None) -> str:
    """The path of `command`, installing Debian `package` with apt-get first when it is missing.

    Only as root on a host with apt-get, and with a notice (`mldeploy base-image` does this for
    mmdebstrap on a fresh machine); elsewhere `BuildError` names the command to run.
    """
    found = shutil.which(command)
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        why = "not root" if apt else "no apt-get on this host"
        raise BuildError(
            f"{command} ({purpose}) is not installed and cannot be installed from here ({why}); "
            f"install the Debian package: `sudo apt-get install {package}`"
        )
    say = progress or (lambda _msg: None)
    say(f"{command} ({purpose}) is not installed: installing the Debian package {package} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [apt, "install", "-y", "-qq", package]
    proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # a fresh host may have no package lists yet
        say("apt-get update (the package lists are missing or stale)")
        subprocess.run([apt, "update", "-qq"], env=env, capture_output=True, text=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
    found = shutil.which(command)
    if proc.returncode != 0 or found is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BuildError(
            f"{command}: `apt-get install {package}` failed (exit {proc.returncode}); fix apt's error below "
            f"or install {package} by hand:\n{tail}"
        )
    say(f"installed {package}: {found}")
    return found
