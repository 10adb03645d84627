"""The process target's Python: the current interpreter when it already has every requirement,
else a cached virtual environment built from PyPI (or the configured index) with the scoring
server copied in. Keyed by `requirements_hash` and marked complete last, so concurrent runs and
interrupted builds never use half a venv.
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Union

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import BuildError
from .cache import cache_root, file_lock
from .environment import clean_lines, failing_requirement, merge_requirements, pip_log_tail, requirements_hash
from .server_copy import copy_server, server_files_hash


def requirements_satisfied(requirements: Iterable[str], *, include_server: bool = True) -> bool:
    """Whether the current interpreter already has every requirement (and the server's).

    Checks installed distributions with importlib.metadata, following extras; a line that is not
    a plain requirement (an option, a URL, a file) counts as unsatisfied.
    """
    lines = merge_requirements(requirements) if include_server else clean_lines(requirements)
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
        log = pip_log_tail(proc)
        raise BuildError(
            f"requirements: {failing_requirement(log, requirements)} could not be installed into {venv}; "
            f"fix the name or version in the deployment's environment. pip said:\n{log}"
        )
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    copy_server(site)
