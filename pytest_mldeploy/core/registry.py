"""A local, file-backed model registry with Azure ML's semantics (Model.register / get / list / download / delete).

Layout of the store (see docs/registry.md):

    ROOT/index.json          every name and version with its metadata (written atomically)
    ROOT/.lock               flock'ed around every read-modify-write of the index
    ROOT/objects/SHA256      the content, stored once: the file itself, or the folder
    ROOT/tmp/PID-UUID        staging area; leftovers of dead processes are removed

Content is copied into `tmp/` first and renamed into `objects/` under the lock, and the index is
replaced with `os.replace` after an fsync, so a crash at any point leaves either the old state or
the new one; several processes may register at once without losing a version. A crash between the
rename and the index write leaves content no entry names: every register, delete and `gc()`
removes such orphans while holding the lock (see `Registry.gc`).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
import shutil
import stat
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

from pytest_mldeploy.core.model_content import Content, copy_file, describe, fsync_dir, remove, tree_size
from pytest_mldeploy.core.model_spec import ModelSpec
from pytest_mldeploy.core.names import NAME_PATTERN
from pytest_mldeploy.errors import RegistryError

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"
OBJECTS_DIR = "objects"
TMP_DIR = "tmp"
INDEX_FORMAT = 1
_STALE_SECONDS = 24 * 3600
_SHA256 = re.compile(r"[0-9a-f]{64}")

TagFilter = Union[None, Mapping[str, Any], Sequence[Union[str, Sequence[str]]]]


@dataclass(frozen=True)
class RegisteredModel:
    """One registered version of a model. `path` is its content inside the store: do not modify it."""

    name: str
    version: int
    sha256: str
    filename: str
    is_dir: bool
    size: int
    tags: Dict[str, str] = field(hash=False)
    properties: Dict[str, str] = field(hash=False)
    description: Optional[str]
    framework: Optional[str]
    framework_version: Optional[str]
    created_at: str
    path: Path

    @property
    def id(self) -> str:
        """Azure ML's model id, `NAME:VERSION`."""
        return f"{self.name}:{self.version}"

    def _metadata(self) -> Tuple[Any, ...]:
        return (self.filename, self.tags, self.properties, self.description, self.framework, self.framework_version)


@dataclass(frozen=True)
class GcResult:
    """What `Registry.gc()` removed: unindexed content (sha256s), dead staging entries, and the bytes freed."""

    removed_objects: List[str]
    removed_temp: int
    freed_bytes: int


class DeploymentModels(Protocol):
    """What `Registry.register_deployment_models` reads of a deployment (a `config.Deployment`)."""

    @property
    def models(self) -> Sequence[ModelSpec]: ...


class ProjectRegistryDir(Protocol):
    """What `Registry.for_project` reads of a project (a `config.Project`)."""

    @property
    def registry_dir(self) -> Path: ...


class Registry:
    """A versioned model store in a folder; safe to share between processes on one machine."""

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root).expanduser().absolute()

    @classmethod
    def for_project(cls, project: ProjectRegistryDir) -> "Registry":
        """The registry a project's `registry:` key names (default `.mldeploy` beside mldeploy.yaml)."""
        return cls(project.registry_dir)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ---- queries -------------------------------------------------------------------------------

    def get(self, name: str, version: Optional[int] = None) -> RegisteredModel:
        """A model version (the latest when `version` is None); `RegistryError` when it is not registered."""
        _check_name(name)
        versions = self._read_index()["models"].get(name)
        if not versions:
            known = ", ".join(sorted(self._read_index()["models"])) or "none"
            raise RegistryError(f"model {name!r} is not registered in {self.root} (registered: {known}); register it first")
        if version is None:
            version = max(int(v) for v in versions)
        record = versions.get(str(int(version)))
        if record is None:
            have = ", ".join(str(v) for v in sorted(int(v) for v in versions))
            raise RegistryError(f"model {name!r} has no version {version} in {self.root} (versions: {have})")
        return self._model(name, int(version), record)

    def list(
        self,
        name: Optional[str] = None,
        tags: TagFilter = None,
        properties: TagFilter = None,
        latest_only: bool = False,
    ) -> List[RegisteredModel]:
        """Registered versions sorted by (name, version), filtered like Azure ML's `Model.list`.

        `tags` / `properties` are a mapping {key: value} or a list of `"key"` (has the key),
        `"key=value"` or `[key, value]`; every condition must hold.
        """
        if name is not None:
            _check_name(name)
        wanted_tags, wanted_props = _conditions(tags), _conditions(properties)
        out: List[RegisteredModel] = []
        for model_name, versions in sorted(self._read_index()["models"].items()):
            if name is not None and model_name != name:
                continue
            numbers = sorted(int(v) for v in versions)
            if latest_only:
                numbers = numbers[-1:]
            for number in numbers:
                model = self._model(model_name, number, versions[str(number)])
                if _matches(model.tags, wanted_tags) and _matches(model.properties, wanted_props):
                    out.append(model)
        return out

    def download(
        self, name: str, version: Optional[int] = None, target_dir: Union[str, Path] = ".", exist_ok: bool = False
    ) -> Path:
        """Copy a model version to `target_dir/<its original basename>` and return that path."""
        model = self.get(name, version)
        target = Path(target_dir).expanduser().absolute() / model.filename
        if os.path.lexists(target):
            if not exist_ok:
                raise RegistryError(f"{target} already exists; pass exist_ok=True to overwrite it")
            remove(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if model.is_dir:
            shutil.copytree(model.path, target, copy_function=shutil.copy2)
            for path in [target, *target.rglob("*")]:
                os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
        else:
            shutil.copy2(model.path, target)
            os.chmod(target, stat.S_IMODE(target.stat().st_mode) | stat.S_IWUSR)
        return target

    # ---- changes ---------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: Union[str, Path],
        *,
        version: Optional[int] = None,
        tags: Optional[Mapping[str, Any]] = None,
        properties: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        framework: Optional[str] = None,
        framework_version: Optional[str] = None,
    ) -> RegisteredModel:
        """Register a file or folder as a new version of `name` (next number unless `version` is given).

        An explicit version that exists with the same content is returned unchanged; with other
        content it is refused.
        """
        return self._register(
            name, path, version=version, tags=tags, properties=properties, description=description,
            framework=framework, framework_version=framework_version, reuse_latest=False,
        )

    def register_deployment_models(self, deployment: DeploymentModels) -> List[RegisteredModel]:
        """Register every model of a deployment, reusing the latest version when nothing changed.

        A spec without a path names a model already registered (its version, else the latest).

        A model spec with a `version` gets exactly that version; without one, the latest version is
        reused when its content and metadata are identical, so re-running a deployment does not
        pile up versions.
        """
        out: List[RegisteredModel] = []
        for spec in deployment.models:
            if spec.path is None:  # a model registered before (`azureml:NAME:VERSION` in a v2 file)
                out.append(self.get(spec.name, spec.version))
                continue
            out.append(self._register(
                spec.name, spec.path, version=spec.version, tags=spec.tags, properties=spec.properties,
                description=spec.description, framework=spec.framework, framework_version=spec.framework_version,
                reuse_latest=spec.version is None,
            ))
        return out

    def delete(self, name: str, version: Optional[int] = None) -> List[RegisteredModel]:
        """Delete one version, or every version when `version` is None; unreferenced content is removed."""
        _check_name(name)
        with self._locked():
            index = self._read_index()
            versions = index["models"].get(name)
            if not versions:
                raise RegistryError(f"model {name!r} is not registered in {self.root}; nothing to delete")
            numbers = sorted(int(v) for v in versions) if version is None else [int(version)]
            if str(numbers[0]) not in versions:
                have = ", ".join(str(v) for v in sorted(int(v) for v in versions))
                raise RegistryError(f"model {name!r} has no version {version} in {self.root} (versions: {have})")
            removed = [self._model(name, n, versions.pop(str(n))) for n in numbers]
            if not versions:
                del index["models"][name]
            self._write_index(index)
            self._collect_orphans(index)  # the content only these versions used, and any earlier orphans
        return removed

    def gc(self) -> "GcResult":
        """Remove content no index entry names, and staging left by dead processes; safe beside running writers.

        Content enters `objects/` only under the index lock, in the same hold that writes the index
        entry naming it, so an unnamed object seen while holding the lock belongs to a writer that
        died between the two steps (kill -9, power loss): nobody is about to index it.
        """
        with self._locked():
            removed_temp = self._clean_stale()
            removed, freed = self._collect_orphans(self._read_index())
        return GcResult(removed_objects=removed, removed_temp=removed_temp, freed_bytes=freed)

    # ---- internals ---------------------------------------------------------------------------------

    def _collect_orphans(self, index: Dict[str, Any], keep: Optional[str] = None) -> Tuple[List[str], int]:
        """Remove objects the index does not name (call with the lock held); (their sha256s, bytes freed).

        `keep` is the content the caller is about to index in this same lock hold.
        """
        objects = self.root / OBJECTS_DIR
        if not objects.is_dir():
            return [], 0
        named = {r["sha256"] for versions in index["models"].values() for r in versions.values()}
        removed: List[str] = []
        freed = 0
        for entry in sorted(objects.iterdir()):
            sha = entry.name
            if sha in named or sha == keep or not _SHA256.fullmatch(sha):
                continue
            freed += tree_size(entry)
            remove(entry)
            removed.append(sha)
        if removed:
            fsync_dir(objects)
        return removed, freed

    def _register(
        self,
        name: str,
        path: Union[str, Path],
        *,
        version: Optional[int],
        tags: Optional[Mapping[str, Any]],
        properties: Optional[Mapping[str, Any]],
        description: Optional[str],
        framework: Optional[str],
        framework_version: Optional[str],
        reuse_latest: bool,
    ) -> RegisteredModel:
        _check_name(name)
        source = Path(path).expanduser().absolute()
        if not source.exists():
            raise RegistryError(f"cannot register model {name!r}: {path} does not exist")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise RegistryError(f"cannot register model {name!r}: version must be a whole number >= 1, got {version!r}")
        content = describe(source)
        meta = {
            "filename": source.name,
            "tags": _str_map(tags),
            "properties": _str_map(properties),
            "description": description,
            "framework": framework,
            "framework_version": framework_version,
        }
        staged: Optional[Path] = None
        if not self._object(content.sha256).exists():
            staged = self._stage(source, content)
        try:
            with self._locked():
                self._clean_stale()
                index = self._read_index()
                self._collect_orphans(index, keep=content.sha256)
                versions = index["models"].setdefault(name, {})
                existing = self._reusable(name, versions, version, content.sha256, meta, reuse_latest, source)
                if existing is not None:
                    return existing
                number = version if version is not None else max((int(v) for v in versions), default=0) + 1
                target = self._object(content.sha256)
                if not target.exists():
                    if staged is None:  # content was garbage-collected since we looked
                        staged = self._stage(source, content)
                    os.rename(staged, target)
                    fsync_dir(target.parent)
                record = {**meta, "sha256": content.sha256, "is_dir": content.is_dir, "size": content.size,
                          "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
                versions[str(number)] = record
                self._write_index(index)
                return self._model(name, number, record)
        finally:
            if staged is not None:  # its staging folder (empty when the content was moved into the store)
                remove(staged.parent)

    def _reusable(
        self, name: str, versions: Dict[str, Any], version: Optional[int], sha: str, meta: Dict[str, Any],
        reuse_latest: bool, source: Path,
    ) -> Optional[RegisteredModel]:
        """An existing version that makes this registration a no-op, if any (raises on a version clash)."""
        if version is not None and str(version) in versions:
            record = versions[str(version)]
            if record["sha256"] != sha:
                raise RegistryError(
                    f"model {name!r} version {version} already exists with other content "
                    f"(sha256 {record['sha256'][:12]}… from {record['filename']!r}) than {source} (sha256 {sha[:12]}…); "
                    f"register it without a version, or delete version {version} first"
                )
            return self._model(name, version, record)
        if reuse_latest and version is None and versions:
            latest = max(int(v) for v in versions)
            record = versions[str(latest)]
            if record["sha256"] == sha and all(record.get(k) == v for k, v in meta.items()):
                return self._model(name, latest, record)
        return None

    def _stage(self, source: Path, content: Content) -> Path:
        """Copy the content into a fresh folder under tmp/ (read-only, fsynced) and check its hash."""
        tmp = self.root / TMP_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        staged = tmp / "content"
        if content.is_dir:
            staged.mkdir()
            for rel, executable, src in content.files:
                dst = staged / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                copy_file(src, dst, executable)
            copied = describe(staged)
        else:
            copy_file(source, staged, False)
            copied = describe(staged)
        if copied.sha256 != content.sha256:
            remove(tmp)
            raise RegistryError(f"{source} changed while it was being registered; try again")
        return staged

    def _clean_stale(self) -> int:
        """Remove staging folders and index temp files left by processes that died (or are a day old); how many."""
        removed = 0
        for parent, pattern in ((self.root / TMP_DIR, "*"), (self.root, f"{INDEX_FILE}.tmp-*")):
            if not parent.is_dir():
                continue
            for entry in parent.glob(pattern):
                pid_text = entry.name.split("-")[0] if parent.name == TMP_DIR else entry.name.split("-")[1]
                try:
                    age = time.time() - entry.lstat().st_mtime
                except FileNotFoundError:
                    continue
                if not _alive(pid_text) or age > _STALE_SECONDS:
                    remove(entry)
                    removed += 1
        return removed

    def _object(self, sha: str) -> Path:
        return self.root / OBJECTS_DIR / sha

    def _model(self, name: str, version: int, record: Dict[str, Any]) -> RegisteredModel:
        return RegisteredModel(
            name=name, version=version, sha256=record["sha256"], filename=record["filename"], is_dir=record["is_dir"],
            size=record["size"], tags=dict(record.get("tags") or {}), properties=dict(record.get("properties") or {}),
            description=record.get("description"), framework=record.get("framework"),
            framework_version=record.get("framework_version"), created_at=record["created_at"],
            path=self._object(record["sha256"]),
        )

    def _read_index(self) -> Dict[str, Any]:
        path = self.root / INDEX_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": INDEX_FORMAT, "models": {}}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: the registry index is not valid JSON ({exc}); restore it or delete the folder {self.root}") from None
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or not isinstance(data.get("models"), dict):
            raise RegistryError(f"{path}: not a registry index of format {INDEX_FORMAT}; was it written by another tool?")
        return data

    def _write_index(self, index: Dict[str, Any]) -> None:
        path = self.root / INDEX_FILE
        tmp = self.root / f"{INDEX_FILE}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(index, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(self.root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            (self.root / OBJECTS_DIR).mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RegistryError(f"cannot write to the registry {self.root}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or len(name) > 255:
        raise RegistryError(
            f"model name {name!r} is refused: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )


def _str_map(values: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _conditions(spec: TagFilter) -> List[Tuple[str, Optional[str]]]:
    """Normalise a tag/property filter to [(key, value or None for 'has key')]."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [(str(k), None if v is None else str(v)) for k, v in spec.items()]
    if isinstance(spec, str):
        spec = [spec]
    out: List[Tuple[str, Optional[str]]] = []
    for item in spec:
        if isinstance(item, str):
            key, sep, value = item.partition("=")
            out.append((key, value if sep else None))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            out.append((str(item[0]), str(item[1])))
        else:
            raise RegistryError(f"tag filter {item!r} not understood: use 'key', 'key=value' or [key, value]")
    return out


def _matches(values: Mapping[str, str], conditions: List[Tuple[str, Optional[str]]]) -> bool:
    return all(key in values and (want is None or values[key] == want) for key, want in conditions)


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
