"""The fence around a project's paths: every path a config names must, symlinks resolved, lie inside
the project folder or a folder of `allowed_outside_paths`, so no file outside reaches an app or an image.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from pydantic import ValidationInfo

from pytest_mldeploy.core.source_tree import walk_source

CONFIG_FILENAME = "mldeploy.yaml"
ALLOWED_OUTSIDE_KEY = "allowed_outside_paths"


def resolve_path(
    value: Union[str, Path], info: ValidationInfo, kind: str, base: Optional[Path] = None, walk: bool = False
) -> Path:
    """Absolute path of `value` (relative to `base`, default the project root); it must exist as `kind`
    and, symlinks resolved, lie inside the project or a folder of `allowed_outside_paths`."""
    context = info.context or {}
    root = Path(context.get("root") or os.getcwd())
    full = Path(os.path.normpath((base or root) / Path(value).expanduser()))
    if not full.exists():
        raise ValueError(f"{value} does not exist")
    if kind == "file" and not full.is_file():
        raise ValueError(f"{value} is not a file")
    if kind == "dir" and not full.is_dir():
        raise ValueError(f"{value} is not a folder")
    if "root" in context:
        problem = outside_problem(value, full, root, context.get("allowed_outside") or (), walk=walk)
        if problem:
            raise ValueError(problem)
    return full


def outside_problem(
    value: Union[str, Path], full: Path, root: Path, allowed: Sequence[Path] = (), walk: bool = False
) -> Optional[str]:
    """Why `full` may not be used (it leads outside `root` and the `allowed` folders), or None.

    Paths are compared with symlinks resolved, so `models/m.pkl -> /etc/shadow` is as outside as
    `/etc/shadow`. With `walk`, the symlinks inside a folder are checked too (a model folder: the
    registry copies the files they lead to).
    """
    fences = [Path(os.path.realpath(root)), *(Path(os.path.realpath(a)) for a in allowed)]

    def inside(path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == fence or real.is_relative_to(fence) for fence in fences)

    hint = f"move it into the project folder {root}, or list its folder under {ALLOWED_OUTSIDE_KEY} in {CONFIG_FILENAME}"
    if not inside(full):
        via = "" if os.path.realpath(full) == str(full) else f" (it leads to {os.path.realpath(full)})"
        return f"{value} is outside the project{via}; {hint}"
    if walk and full.is_dir():
        for folder, dirs, files in os.walk(full):
            for name in sorted(dirs + files):
                entry = Path(folder) / name
                if entry.is_symlink() and not inside(entry):
                    rel = entry.relative_to(full).as_posix()
                    return f"{value}: {rel} is a symlink to {os.path.realpath(entry)}, outside the project; {hint}"
    return None


def escaping_symlink_in_source(source: Path, root: Path, allowed: Sequence[Path], registry: Optional[Path]) -> Optional[str]:
    """The first symlink the app layout would copy through that leads outside the project, as a problem.

    The entries are those the layout copies (`source_tree.walk_source`): a `.venv/bin/python ->
    /usr/bin/python3` is ignored, `creds -> ~/.aws/credentials` is not.
    """
    for entry in walk_source(source, [registry] if registry else ()):
        if entry.path.is_symlink():
            problem = outside_problem(entry.rel, entry.path, root, allowed)
            if problem:
                real_target = os.path.realpath(entry.path)
                return f"{entry.rel} in {source} is a symlink to {real_target}, outside the project; " + problem.split("; ", 1)[1]
    return None
