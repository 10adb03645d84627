"""The copy of the scoring server that goes into a process target's venv and into a service image.

The copy holds `pytest_mldeploy/server/`, `pytest_mldeploy/_version.py` (the version the server
reports in its `x-ms-server-version` header) and a stub `pytest_mldeploy/__init__.py` that only
re-exports that version. The real `__init__.py` stays
behind: it belongs to the whole package and may import what a venv or an image does not have.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .._version import __version__

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = _PACKAGE_ROOT.name
_SKIP_SUFFIXES = (".pyc", ".pyo")


def package_stub() -> bytes:
    """The `pytest_mldeploy/__init__.py` of a copy: a docstring and the version from `_version.py`."""
    return (
        '"""pytest-mldeploy\'s scoring server only: the rest of the package is not installed here."""\n'
        f"from {_PACKAGE}._version import __version__  # {__version__}\n"
    ).encode()


def server_files() -> list[tuple[str, bytes]]:
    """What a copy holds: (path relative to the package's parent, content), the stub first, then the
    server's files sorted, without caches."""
    files = [(f"{_PACKAGE}/__init__.py", package_stub()),
             (f"{_PACKAGE}/_version.py", (_PACKAGE_ROOT / "_version.py").read_bytes())]
    for path in sorted((_PACKAGE_ROOT / "server").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in _SKIP_SUFFIXES:
            files.append((f"{_PACKAGE}/" + path.relative_to(_PACKAGE_ROOT).as_posix(), path.read_bytes()))
    return files


def server_files_hash() -> str:
    """A digest of every path and content in the copy: a venv holding an older copy is not reused."""
    digest = hashlib.sha256()
    for rel, content in server_files():
        digest.update(rel.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def copy_server(destination: Path) -> None:
    """Write the copy under `destination` (a venv's site-packages, an image's server folder)."""
    for rel, content in server_files():
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
