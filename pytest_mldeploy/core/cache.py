"""Where mldeploy keeps what it makes on the host, and the lock that lets runs share it.

Wheelhouses, venvs, build contexts and the base-image probe cache all live under one folder
(`cache_root`), so CI can cache a single directory. Processes that fill the same entry at once
take a `file_lock` on it: the second waits, then finds what the first wrote.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    """Where mldeploy keeps wheelhouses, venvs and build scratch: MLDEPLOY_CACHE_DIR, else ~/.cache/mldeploy."""
    explicit = os.environ.get("MLDEPLOY_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mldeploy"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created with its folder) for the `with` block; other processes wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
