"""Python environments for a deployment: requirements, an offline wheelhouse, cached venvs.

A service image installs its packages from a wheelhouse resolved on the host (where PyPI is
reachable) for the image's Python and platform, so `docker build` needs no network. The
process target runs in a cached virtual environment instead, or in the current interpreter
when that already satisfies every requirement. Both are keyed by `requirements_hash` and
written atomically, so concurrent runs and interrupted builds never see half an environment.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import BuildError
from .cache import cache_root, file_lock
from .hashing import file_sha256
from .server_copy import copy_server, server_files_hash

PACKAGE_DIST = "pytest-mldeploy"
# Fallback when the package metadata is unavailable; must equal pyproject's `server` extra
# (a unit test keeps them in step).
SERVER_REQUIREMENTS_FALLBACK = ("uvicorn>=0.30", "httptools>=0.6", 'uvloop>=0.19; sys_platform != "win32"')


def manylinux_platforms(glibc_version: str, arch: str = "x86_64") -> list[str]:
    """Wheel platform tags a base with `glibc_version` runs: `manylinux_2_N` from its glibc down to 17, then the legacy aliases."""
    major, minor = (int(part) for part in glibc_version.split(".")[:2])
    if major != 2 or minor < 17:
        raise BuildError(f"base image glibc {glibc_version}: manylinux wheels need glibc >= 2.17; use a newer base image")
    tags = [f"manylinux_2_{n}_{arch}" for n in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", "linux_" + arch]


# Debian bookworm (the default bases) has glibc 2.36, so every manylinux wheel up to 2_36 runs.
DEFAULT_PLATFORMS = tuple(manylinux_platforms("2.36"))
_HASH_FORMAT = "mldeploy-env-1"
# The uv executable a wheelhouse carries for the image's install step, beside the wheels (the
# build context copies the wheelhouse's files); not a wheel, so it is neither pinned nor installed.
UV_TOOL = "uv"
INSTALLER_VARIABLE = "MLDEPLOY_INSTALLER"
INSTALLERS = ("uv", "pip")

Platform = Union[str, Sequence[str]]


def server_requirements() -> list[str]:
    """What the scoring server needs (pyproject's `server` extra), e.g. `uvicorn>=0.30`."""
    try:
        declared = importlib.metadata.requires(PACKAGE_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    found = []
    for line in declared:
        # Metadata reads `uvloop>=0.19; sys_platform != "win32" and extra == "server"`: keep the
        # requirement and its other markers, drop the extra clause.
        if not re.search(r'extra\s*==\s*"server"', line):
            continue
        requirement, _, marker = line.partition(";")
        marker = re.sub(r'\s*(and\s+)?extra\s*==\s*"server"', "", marker).strip()
        marker = re.sub(r"^and\s+|\s+and$", "", marker).strip()
        found.append(f"{requirement.strip()}; {marker}" if marker else requirement.strip())
    return found or list(SERVER_REQUIREMENTS_FALLBACK)


def _clean_lines(requirements: Iterable[str]) -> list[str]:
    lines = []
    for raw in requirements:
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.append(line)
    return lines


def _name(line: str) -> Optional[str]:
    """The canonical project name of a requirement line, or None for options and URLs."""
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def merge_requirements(requirements: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The deployment's requirement lines plus `extra` (default: the server's) it does not name.

    A deployment that pins `uvicorn==0.30.1` keeps its pin; duplicates and comments are dropped.
    """
    lines = list(dict.fromkeys(_clean_lines(requirements)))
    named = {_name(line) for line in lines}
    extra = list(extra) or server_requirements()
    return lines + [line for line in extra if _name(line) not in named]


def _platform_list(platform: Platform) -> list[str]:
    return [platform] if isinstance(platform, str) else list(platform)


def requirements_hash(requirements: Iterable[str], python_version: str = "3.11", platform: Platform = DEFAULT_PLATFORMS) -> str:
    """A sha256 of what decides an environment: requirement lines (order-free), Python, platforms."""
    payload = {
        "format": _HASH_FORMAT,
        "requirements": sorted(set(_clean_lines(requirements))),
        "python": python_version,
        "platform": _platform_list(platform),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class UnresolvableRequirement(BuildError):
    """pip found no distribution for `requirement` (as pip named it) for the target Python; `pip_log` is its tail."""

    def __init__(self, message: str, requirement: str, pip_log: str) -> None:
        super().__init__(message)
        self.requirement = requirement
        self.pip_log = pip_log


def _pip(args: list[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=dict(os.environ, PIP_NO_COLOR="1"))


def _tail(proc: subprocess.CompletedProcess, lines: int = 12) -> str:
    text = (proc.stderr or "") + (proc.stdout or "")
    kept = [line for line in text.strip().splitlines() if line.strip() and "Running pip as the 'root'" not in line]
    return "\n".join(kept[-lines:])


def _failing_requirement(log: str, requirements: Sequence[str]) -> str:
    """Which requirement pip choked on, from its message; the whole list when it does not say."""
    for pattern in (r"satisfies the requirement ([^\s(]+)", r"No matching distribution found for ([^\s(]+)",
                    r"Failed to build ([^\s]+)", r"Invalid requirement: '([^']+)'", r"for ([^\s]+) \(from"):
        match = re.search(pattern, log)
        if match:
            return match.group(1)
    return ", ".join(requirements)


def wheel_pins(wheelhouse: Path) -> list[str]:
    """`name==version` for every wheel in `wheelhouse`, sorted: the resolved set as requirements."""
    pins = set()
    for wheel in wheelhouse.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        pins.add(f"{name}=={version}")
    return sorted(pins)


def wheelhouse_digest(wheelhouse: Path) -> str:
    """A sha256 over the wheelhouse's wheel names and contents (from its manifest when present)."""
    manifest = wheelhouse / "manifest.json"
    try:
        recorded = json.loads(manifest.read_text())
        wheels, tools = recorded["wheels"], recorded.get("tools", {})
    except (OSError, ValueError, KeyError):
        wheels = {p.name: file_sha256(p) for p in sorted(wheelhouse.glob("*.whl"))}
        tools = {UV_TOOL: file_sha256(wheelhouse / UV_TOOL)} if (wheelhouse / UV_TOOL).is_file() else {}
    # A wheelhouse without tools hashes as before, so images built before uv keep their tags.
    content = {**wheels, **tools} if tools else wheels
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def installer() -> str:
    """Which tool installs the wheelhouse in the image: `uv` (default) or `pip` (env MLDEPLOY_INSTALLER)."""
    chosen = os.environ.get(INSTALLER_VARIABLE, "uv").strip().lower() or "uv"
    if chosen not in INSTALLERS:
        raise BuildError(f"{INSTALLER_VARIABLE}={chosen!r}: unknown installer; set it to one of {', '.join(INSTALLERS)} or unset it")
    return chosen


def host_uv_version() -> Optional[str]:
    """The version of the `uv` distribution installed beside mldeploy, or None when it is absent."""
    try:
        return importlib.metadata.version("uv")
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_wheelhouse(
    requirements: Iterable[str],
    python_version: str = "3.11",
    platform: Platform = DEFAULT_PLATFORMS,
    cache_dir: Union[str, Path, None] = None,
    binary_only: Iterable[str] = (),
) -> Path:
    """A directory of wheels for `requirements` + the server's, for CPython `python_version`.

    Resolved on the host with `pip download --only-binary=:all:` for the target platform;
    sdist-only packages are built with `pip wheel` when the host Python matches the target,
    except the projects named in `binary_only` (requirements mapped from conda packages, which
    are binary by nature: an old `numpy==1.16` pin must fail fast, not compile for minutes).
    Cached under `cache_dir/HASH` (wheels, `requirements.in` as asked, `requirements.txt` with
    the resolved pins, `manifest.json`); built in a temporary directory and renamed into place.
    Raises `BuildError` naming the requirement pip could not satisfy and pip's message.
    """
    merged = merge_requirements(requirements)
    platforms = _platform_list(platform)
    binary = sorted({name for name in map(_name, binary_only) if name})
    tool = installer()
    uv_version = host_uv_version() if tool == "uv" else None
    # The key says whether the wheelhouse carries uv: `MLDEPLOY_INSTALLER=pip` gets its own.
    keyed = merged + ([f"--only-binary {','.join(binary)}"] if binary else []) + ([f"--installer uv=={uv_version}"] if uv_version else [])
    key = requirements_hash(keyed, python_version, platforms)
    root = Path(cache_dir) if cache_dir else cache_root() / "wheelhouses"
    final = root / key
    if (final / "manifest.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f"{key}.lock"):
        if (final / "manifest.json").is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=root))
        try:
            fetch_uv = _start_uv_download(tmp, uv_version, python_version, platforms) if uv_version else None
            try:
                _resolve_into(tmp, merged, python_version, platforms, binary)
            finally:
                uv_wheel = _finish_uv_download(fetch_uv) if fetch_uv else None
            tools = {}
            if uv_wheel is not None:
                _extract_uv(uv_wheel, tmp / UV_TOOL)
                tools[UV_TOOL] = file_sha256(tmp / UV_TOOL)
                shutil.rmtree(uv_wheel.parent)
            wheels = {p.name: file_sha256(p) for p in sorted(tmp.glob("*.whl"))}
            pins = wheel_pins(tmp)
            # What the image installs: exactly the resolved set, offline.
            (tmp / "requirements.txt").write_text("\n".join(pins) + "\n")
            manifest = {"hash": key, "python_version": python_version, "platforms": platforms,
                        "requirements": merged, "pins": pins, "wheels": wheels, "tools": tools}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            if final.exists():  # a half-written directory from an older version: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _target_args(python_version: str, platforms: Sequence[str]) -> list[str]:
    """`pip download` options that pick wheels for CPython `python_version` on `platforms`, not the host."""
    abi = "cp" + python_version.replace(".", "")
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in platforms:
        args += ["--platform", tag]
    return args


def _start_uv_download(directory: Path, version: str, python_version: str,
                       platforms: Sequence[str]) -> tuple[subprocess.Popen, Path]:
    """Start fetching the `uv==version` wheel for the image, beside the main resolve (both wait on the network)."""
    folder = directory / ".uv-wheel"
    folder.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *_target_args(python_version, platforms),
           "-d", str(folder), f"uv=={version}", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, PIP_NO_COLOR="1"))
    return proc, folder


def _finish_uv_download(started: tuple[subprocess.Popen, Path]) -> Optional[Path]:
    """The downloaded uv wheel, or None when it could not be fetched (the image then installs with pip)."""
    proc, folder = started
    proc.wait()
    found = sorted(folder.glob("uv-*.whl"))
    if proc.returncode == 0 and found:
        return found[0]
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _extract_uv(wheel: Path, target: Path) -> None:
    """Copy the `uv` executable out of its wheel (`uv-X.data/scripts/uv`) to `target`, executable."""
    with zipfile.ZipFile(wheel) as archive:
        member = next((n for n in archive.namelist() if re.fullmatch(r"uv-[^/]+\.data/scripts/uv", n)), None)
        if member is None:
            raise BuildError(f"{wheel.name}: no uv executable in the wheel; set {INSTALLER_VARIABLE}=pip to install with pip")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    target.chmod(0o755)


def _resolve_into(directory: Path, requirements: list[str], python_version: str, platforms: list[str],
                  binary_only: Sequence[str] = ()) -> None:
    (directory / "requirements.in").write_text("\n".join(requirements) + "\n")
    download = _pip(["download", *_target_args(python_version, platforms), "-d", str(directory), "-r", "requirements.in"],
                    cwd=directory)
    if download.returncode == 0:
        return
    host = "%d.%d" % sys.version_info[:2]
    if host == python_version:
        # Some requirement has no wheel for the target: build the wheels on the host instead.
        only = ["--only-binary", ",".join(binary_only)] if binary_only else []
        wheel = _pip(["wheel", "--prefer-binary", *only, "-w", str(directory), "-r", "requirements.in"], cwd=directory)
        if wheel.returncode == 0:
            return
        log = _tail(wheel)
    else:
        log = _tail(download)
    failing = _failing_requirement(log, requirements)
    raise UnresolvableRequirement(
        f"requirements: {failing} cannot be resolved to wheels for CPython {python_version} "
        f"({platforms[0]}); pin a version that publishes wheels or fix the name. pip said:\n{log}",
        failing, log,
    )


def requirements_satisfied(requirements: Iterable[str], *, include_server: bool = True) -> bool:
    """Whether the current interpreter already has every requirement (and the server's).

    Checks installed distributions with importlib.metadata, following extras; a line that is not
    a plain requirement (an option, a URL, a file) counts as unsatisfied.
    """
    lines = merge_requirements(requirements) if include_server else _clean_lines(requirements)
    return all(_satisfied(line, set()) for line in lines)


def _satisfied(line: str, seen: set[str], extra: str = "") -> bool:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return False
    if req.marker is not None and not req.marker.evaluate({**default_environment(), "extra": extra}):
        return True
    if req.url:
        return False
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if not req.specifier.contains(installed, prereleases=True):
        return False
    for wanted in req.extras:
        key = f"{canonicalize_name(req.name)}[{wanted}]"
        if key in seen:
            continue
        seen.add(key)
        for dep in importlib.metadata.requires(req.name) or []:
            dep_req = Requirement(dep)
            # Only the lines that the extra switches on; the base ones were installed with it.
            if dep_req.marker is None or dep_req.marker.evaluate({**default_environment(), "extra": ""}):
                continue
            if not _satisfied(dep, seen, extra=wanted):
                return False
    return True


def ensure_venv(requirements: Iterable[str], cache_dir: Union[str, Path, None] = None) -> Path:
    """The python executable of a cached venv with `requirements` + the server's, for the process target.

    The venv also holds a copy of the scoring server (`python -m pytest_mldeploy.server` works in
    it without the rest of pytest-mldeploy). Keyed by the requirements, the host Python and the
    server files; built under a lock and marked complete last, so a crash leaves nothing usable.
    """
    merged = merge_requirements(requirements)
    host = "%d.%d.%d" % sys.version_info[:3]
    key = requirements_hash(merged, host, [f"interpreter={sys.executable}", f"server={server_files_hash()}"])
    root = Path(cache_dir) if cache_dir else cache_root() / "venvs"
    venv = root / key[:32]
    python = venv / "bin" / "python"
    marker = venv / ".mldeploy-complete"
    if marker.is_file():
        return python
    with file_lock(root / f"{key[:32]}.lock"):
        if marker.is_file():
            return python
        if venv.exists():
            shutil.rmtree(venv)
        try:
            _build_venv(venv, merged)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        marker.write_text(json.dumps({"requirements": merged, "python": sys.executable}, indent=2))
    return python


def _build_venv(venv: Path, requirements: list[str]) -> None:
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        raise BuildError(f"venv {venv}: `{sys.executable} -m venv` failed; install the venv module. {made.stderr.strip()}")
    req_file = venv / "mldeploy-requirements.txt"
    req_file.write_text("\n".join(requirements) + "\n")
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         "--progress-bar", "off", "-r", str(req_file)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        log = _tail(proc)
        raise BuildError(
            f"requirements: {_failing_requirement(log, requirements)} could not be installed into {venv}; "
            f"fix the name or version in the deployment's environment. pip said:\n{log}"
        )
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    copy_server(site)
