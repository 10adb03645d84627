"""Read the text files a project names (mldeploy.yaml, pip requirements, Azure's JSON, conda YAML).

Every problem is a `ConfigError` naming the file and, where there is one, the line (and column):
a user sees what to fix, never a traceback.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import yaml

from pytest_mldeploy.errors import ConfigError


def shown_path(path: Path) -> str:
    """A file as the user thinks of it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def decode_utf8(raw: bytes, shown: str) -> str:
    """`raw` as UTF-8 text, or a `ConfigError` naming the line and column of the first byte that is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{shown}: line {line}, column {column}: not valid UTF-8 (byte 0x{bad}); save the file as UTF-8"
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate and key != "<<":
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml_strictly(path: Path, shown: str) -> Any:
    """Parse a YAML file that must be UTF-8 and may not give a key twice (mldeploy.yaml)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read: {exc.strerror}") from None
    text = decode_utf8(raw, shown)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{shown}: {where}YAML syntax error: {problem}") from None


def read_json(path: Path, shown: str) -> Any:
    """Parse a JSON file, turning read and syntax errors into `ConfigError` naming the file and line."""
    try:
        return json.loads(decode_utf8(path.read_bytes(), shown))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{shown}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read: {exc.strerror}") from None


def read_conda_file(path: Path, shown: str) -> Dict[str, Any]:
    """Load a conda environment YAML file as a mapping, naming the file and line on errors."""
    try:
        data = yaml.safe_load(decode_utf8(path.read_bytes(), shown))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{shown}: {where}not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a conda environment mapping with a 'dependencies' list")
    return data


def read_requirements(path: Path, _seen: Optional[Set[Path]] = None) -> List[str]:
    """Requirement lines of a pip requirements file: comments dropped, `-r` inlined, `-c` paths made absolute."""
    seen = _seen if _seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    try:
        text = decode_utf8(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    lines: List[str] = []
    for lineno, line in _logical_lines(text):
        include = re.fullmatch(r"(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(\S+)", line)
        if include is None:
            lines.append(line)
            continue
        option, target = include.groups()
        full = (path.parent / target).resolve()
        if not full.is_file():
            raise ConfigError(f"{path}:{lineno}: {option} {target}: {full} does not exist")
        if option in ("-r", "--requirement"):
            lines.extend(read_requirements(full, seen))
        else:
            lines.append(f"-c {full}")
    return lines


def _logical_lines(text: str) -> List[Tuple[int, str]]:
    """(first line number, line) with `\\` continuations joined, comments and blank lines removed."""
    out: List[Tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = re.sub(r"(^|\s)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            out.append((start, line))
    return out
