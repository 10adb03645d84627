"""A registered model's content: its sha256 (a file's, or a folder's by its sorted listing), fsynced
read-only copies, its size on disk and the removal of read-only trees.

`registry.Registry` decides what is stored where and when under its lock; this module is how
bytes are hashed, copied and removed, the same for every store operation.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from pytest_mldeploy.core.hashing import file_sha256
from pytest_mldeploy.errors import RegistryError

#: A folder's hash starts with this line, so it never equals a file's.
FOLDER_HEADER = b"mldeploy-folder-v1\n"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Content:
    """A file or folder to register: its sha256, size and (for a folder) its files in order."""

    sha256: str
    is_dir: bool
    size: int
    files: Tuple[Tuple[str, bool, Path], ...]  # (relative posix path, executable, source) for folders


def describe(source: Path) -> Content:
    """Hash a file, or a folder by its sorted listing of (relative path, executable bit, content hash)."""
    if source.is_file():
        return Content(file_sha256(source), False, source.stat().st_size, ())
    if not source.is_dir():
        raise RegistryError(f"cannot register {source}: not a regular file or folder")
    files: List[Tuple[str, bool, Path]] = []
    for folder, dirs, names in os.walk(source):
        dirs.sort()
        for d in dirs:
            if os.path.islink(os.path.join(folder, d)):
                raise RegistryError(f"cannot register {source}: {os.path.join(folder, d)} is a symlinked folder; copy it in instead")
        for fname in sorted(names):
            full = Path(folder) / fname
            if not full.is_file():
                raise RegistryError(f"cannot register {source}: {full} is not a regular file")
            files.append((full.relative_to(source).as_posix(), bool(full.stat().st_mode & stat.S_IXUSR), full))
    files.sort(key=lambda f: f[0])
    digest = hashlib.sha256(FOLDER_HEADER)
    size = 0
    for rel, executable, full in files:
        digest.update(json.dumps([rel, int(executable), file_sha256(full)]).encode() + b"\n")
        size += full.stat().st_size
    return Content(digest.hexdigest(), True, size, tuple(files))


def copy_file(src: Path, dst: Path, executable: bool) -> None:
    """Copy `src` to `dst`, fsynced, read-only (and executable when `executable`)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(dst, 0o555 if executable else 0o444)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 when it vanished)."""
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def remove(path: Path) -> None:
    """Remove a file or folder, including read-only content; missing is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
