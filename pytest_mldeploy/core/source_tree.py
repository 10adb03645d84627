"""What of a deployment's source directory goes into its app: the ignore rules, and one walk that applies them.

The app layout copies the entries `walk_source` yields, and loading the config checks the same
entries for symlinks that lead outside the project, so what is checked is exactly what is copied.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

# Never copied from the source directory, whatever the ignore files say.
# Tool caches and reports change on every run; copied in, they would change the image each time.
# `mldeploy.yaml` may hold `auth.keys`: nothing secret goes into an app or an image (the targets
# hand keys to the server at run time), and the service never reads it.
ALWAYS_IGNORED = (
    ".git", "__pycache__", "*.pyc", ".mldeploy*", "mldeploy-report", "mldeploy.yaml",
    ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", ".tox", ".venv", ".ipynb_checkpoints", ".DS_Store",
)
IGNORE_FILES = (".amlignore", ".gitignore")

Rule = Tuple[str, bool, bool, bool]  # (pattern, negated, directories only, anchored to the source root)


class SourceEntry(NamedTuple):
    """One folder or existing file of the source directory that goes into the app."""

    rel: str  # posix path relative to the source directory
    path: Path  # as walked: under the source directory, symlinks not resolved
    is_dir: bool


def walk_source(source: Path, skip_dirs: Iterable[Path] = ()) -> Iterator[SourceEntry]:
    """The entries of `source` that go into the app, each folder's in name order, following symlinks once.

    Left out: what the ignore rules name (`ignore_rules`), the folders `skip_dirs` (by path or with
    symlinks resolved; the registry, the app being laid out) and dangling symlinks.
    """
    rules = ignore_rules(source)
    skip: Set[Path] = set()
    for folder in skip_dirs:
        skip |= {Path(folder).absolute(), Path(os.path.realpath(folder))}
    seen: Set[str] = set()
    for folder, dirs, files in os.walk(source, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        here = Path(folder)
        rel_folder = here.relative_to(source)
        kept = []
        for name in sorted(dirs):
            full = (here / name).absolute()
            if is_ignored((rel_folder / name).as_posix(), True, rules) or full in skip or Path(os.path.realpath(full)) in skip:
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(kept + files):
            rel, is_dir = (rel_folder / name).as_posix(), name in kept
            if not is_dir and (is_ignored(rel, False, rules) or not (here / name).exists()):
                continue
            yield SourceEntry(rel, here / name, is_dir)


def ignore_rules(source: Path) -> List[Rule]:
    """Rules from `.amlignore`, else `.gitignore`, in the source directory (later rules win, `!` re-includes)."""
    rules: List[Rule] = [(pattern, False, False, False) for pattern in ALWAYS_IGNORED]
    for name in IGNORE_FILES:
        path = source / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                rule = _parse_rule(line)
                if rule is not None:
                    rules.append(rule)
            break
    return rules


def _parse_rule(line: str) -> Optional[Rule]:
    text = line.rstrip("\n").strip()
    if not text or text.startswith("#"):
        return None
    negated = text.startswith("!")
    text = text[1:] if negated else text
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    if text.startswith("**/"):
        text = text[3:]
    anchored = "/" in text
    text = text.lstrip("/")
    return (text, negated, dir_only, anchored) if text else None


def is_ignored(rel: str, is_dir: bool, rules: Sequence[Rule]) -> bool:
    """Whether the entry at `rel` (posix, relative to the source directory) is left out by `rules`."""
    verdict = False
    name = rel.rsplit("/", 1)[-1]
    for pattern, negated, dir_only, anchored in rules:
        if dir_only and not is_dir:
            continue
        if fnmatch.fnmatchcase(rel if anchored else name, pattern):
            verdict = not negated
    return verdict
