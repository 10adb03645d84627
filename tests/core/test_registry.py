"""The file-backed model registry: versions, filters, dedup, download, delete + GC, refused names, concurrency."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import List

import pytest

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.errors import RegistryError


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "store")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"weights-1")
    return path


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "bert"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(folder / "run.sh", 0o755)
    return folder


def objects(registry: Registry) -> List[str]:
    return sorted(os.listdir(registry.root / "objects"))


def test_versions_increment_and_get(registry: Registry, model_file: Path) -> None:
    first = registry.register("m", model_file, tags={"area": "x"}, framework="ScikitLearn", framework_version="1.9.1")
    model_file.write_bytes(b"weights-2")
    second = registry.register("m", model_file)
    assert (first.version, second.version) == (1, 2)
    assert registry.get("m") == second
    assert registry.get("m", 1) == first
    assert first.filename == "model.pkl" and not first.is_dir and first.size == len(b"weights-1")
    assert first.path.read_bytes() == b"weights-1"
    assert first.framework == "ScikitLearn" and first.id == "m:1"
    assert first.created_at.endswith("Z")
    with pytest.raises(RegistryError, match=r"model 'm' has no version 7 .* \(versions: 1, 2\)"):
        registry.get("m", 7)
    with pytest.raises(RegistryError, match=r"model 'other' is not registered .*\(registered: m\)"):
        registry.get("other")


def test_explicit_versions(registry: Registry, model_file: Path, tmp_path: Path) -> None:
    assert registry.register("m", model_file, version=5).version == 5
    assert registry.register("m", model_file).version == 6
    again = registry.register("m", model_file, version=5, tags={"ignored": "yes"})
    assert again.version == 5 and again.tags == {}
    other = tmp_path / "other.pkl"
    other.write_bytes(b"different")
    with pytest.raises(RegistryError) as info:
        registry.register("m", other, version=5)
    assert "model 'm' version 5 already exists with other content" in str(info.value)
    assert "'model.pkl'" in str(info.value) and str(other) in str(info.value)
    with pytest.raises(RegistryError, match="version must be a whole number >= 1"):
        registry.register("m", model_file, version=0)


def test_same_content_is_stored_once(registry: Registry, model_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.pkl"
    copy.write_bytes(model_file.read_bytes())
    a = registry.register("m", model_file)
    b = registry.register("m", model_file)
    c = registry.register("n", copy)
    assert a.sha256 == b.sha256 == c.sha256 and a.path == c.path
    assert c.filename == "copy.pkl"
    assert objects(registry) == [a.sha256]


def test_folder_model_hash_depends_on_names_bits_and_content(registry: Registry, model_folder: Path) -> None:
    first = registry.register("bert", model_folder)
    assert first.is_dir and first.filename == "bert"
    assert (first.path / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert os.stat(first.path / "run.sh").st_mode & stat.S_IXUSR
    assert registry.register("bert", model_folder).sha256 == first.sha256
    os.chmod(model_folder / "run.sh", 0o644)
    assert registry.register("bert", model_folder).sha256 != first.sha256
    (model_folder / "tokenizer" / "vocab.txt").rename(model_folder / "tokenizer" / "words.txt")
    renamed = registry.register("bert", model_folder)
    assert renamed.version == 4 and len({first.sha256, renamed.sha256}) == 2


def test_store_content_is_read_only(registry: Registry, model_file: Path) -> None:
    model = registry.register("m", model_file)
    assert not os.stat(model.path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_list_filters(registry: Registry, model_file: Path) -> None:
    registry.register("a", model_file, tags={"area": "diabetes", "type": "regression"}, properties={"auc": "0.9"})
    registry.register("a", model_file, tags={"area": "diabetes"})
    registry.register("b", model_file, tags={"area": "churn"}, properties={"auc": "0.7"})
    ids = lambda models: [m.id for m in models]  # noqa: E731
    assert ids(registry.list()) == ["a:1", "a:2", "b:1"]
    assert ids(registry.list(name="a")) == ["a:1", "a:2"]
    assert ids(registry.list(latest_only=True)) == ["a:2", "b:1"]
    assert ids(registry.list(tags=["type"])) == ["a:1"]
    assert ids(registry.list(tags=["area=diabetes"])) == ["a:1", "a:2"]
    assert ids(registry.list(tags=[["area", "churn"]])) == ["b:1"]
    assert ids(registry.list(tags={"area": "diabetes", "type": "regression"})) == ["a:1"]
    assert ids(registry.list(properties=["auc=0.7"])) == ["b:1"]
    assert ids(registry.list(properties=["auc"], tags=["area=diabetes"])) == ["a:1"]
    assert registry.list(name="nothing") == []


def test_download_file_and_folder(registry: Registry, model_file: Path, model_folder: Path, tmp_path: Path) -> None:
    registry.register("m", model_file)
    registry.register("bert", model_folder)
    out = tmp_path / "out"
    path = registry.download("m", 1, out)
    assert path == out / "model.pkl" and path.read_bytes() == b"weights-1"
    path.write_bytes(b"edited")  # a download is the user's own writable copy
    assert registry.get("m").path.read_bytes() == b"weights-1"
    with pytest.raises(RegistryError, match="already exists; pass exist_ok=True"):
        registry.download("m", 1, out)
    assert registry.download("m", None, out, exist_ok=True).read_bytes() == b"weights-1"
    folder = registry.download("bert", None, out)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "config.json", "run.sh", "tokenizer", "tokenizer/vocab.txt"]
    assert os.stat(folder / "run.sh").st_mode & stat.S_IXUSR


def test_delete_and_garbage_collect(registry: Registry, model_file: Path, tmp_path: Path) -> None:
    shared = registry.register("m", model_file)
    other = tmp_path / "other.pkl"
    other.write_bytes(b"other")
    only_v2 = registry.register("m", other)
    registry.register("n", model_file)
    registry.delete("m", 2)
    assert objects(registry) == [shared.sha256]
    assert [m.id for m in registry.list()] == ["m:1", "n:1"]
    registry.delete("m")
    assert objects(registry) == [shared.sha256]  # still used by n:1
    registry.delete("n")
    assert objects(registry) == [] and registry.list() == []
    assert not only_v2.path.exists()
    with pytest.raises(RegistryError, match="'m' is not registered"):
        registry.delete("m")


@pytest.mark.parametrize("name", ["../x", "/abs", "", "a/b", "a\\b", ".hidden", "..", "x\n"])
def test_names_that_could_escape_are_refused(registry: Registry, model_file: Path, name: str) -> None:
    with pytest.raises(RegistryError, match="is refused"):
        registry.register(name, model_file)
    with pytest.raises(RegistryError, match="is refused"):
        registry.get(name)
    assert not (registry.root / "objects").exists() or objects(registry) == []


def test_stray_temp_files_are_ignored_and_cleaned(registry: Registry, model_file: Path) -> None:
    registry.register("m", model_file)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    stray_tmp = registry.root / "tmp" / f"{dead_pid}-abc"
    stray_tmp.mkdir(parents=True)
    (stray_tmp / "content").write_bytes(b"half")
    stray_index = registry.root / f"index.json.tmp-{dead_pid}-abc"
    stray_index.write_text('{"format": 1, "mod')
    assert [m.id for m in registry.list()] == ["m:1"]
    registry.register("m", model_file)
    assert not stray_tmp.exists() and not stray_index.exists()


def test_corrupt_index_is_reported(registry: Registry, model_file: Path) -> None:
    registry.register("m", model_file)
    (registry.root / "index.json").write_text("{not json")
    with pytest.raises(RegistryError, match=r"index.json: the registry index is not valid JSON"):
        registry.list()


def test_register_deployment_models_reuses_unchanged(tmp_path: Path) -> None:
    project_dir = tmp_path / "p"
    (project_dir / "models").mkdir(parents=True)
    (project_dir / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (project_dir / "models" / "a.pkl").write_bytes(b"A")
    (project_dir / "models" / "b.pkl").write_bytes(b"B")
    config = project_dir / "mldeploy.yaml"
    config.write_text(
        "deployments:\n  d:\n    entry_script: score.py\n    models:\n"
        "      - {path: models/a.pkl, tags: {k: v}}\n      - {name: bee, path: models/b.pkl, version: 3}\n"
    )
    registry = Registry(load_project(config).registry_dir)
    first = registry.register_deployment_models(load_project(config).deployments["d"])
    again = registry.register_deployment_models(load_project(config).deployments["d"])
    assert [m.id for m in first] == [m.id for m in again] == ["a:1", "bee:3"]
    config.write_text(config.read_text().replace("{k: v}", "{k: w}"))
    changed = registry.register_deployment_models(load_project(config).deployments["d"])
    assert [m.id for m in changed] == ["a:2", "bee:3"]
    assert registry.root == project_dir / ".mldeploy"


def _register_once(root: str, source: str, barrier: "multiprocessing.synchronize.Barrier", index: int) -> int:
    barrier.wait()
    return Registry(root).register("shared", source, tags={"worker": str(index)}).version


def test_concurrent_registrations_lose_no_version(tmp_path: Path, model_file: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    root = tmp_path / "store"
    with ctx.Manager() as manager:
        barrier = manager.Barrier(8)
        with ctx.Pool(8) as pool:
            versions = pool.starmap(_register_once, [(str(root), str(model_file), barrier, i) for i in range(8)])
    assert sorted(versions) == list(range(1, 9))
    index = json.loads((root / "index.json").read_text())
    assert sorted(int(v) for v in index["models"]["shared"]) == list(range(1, 9))
    assert sorted(r["tags"]["worker"] for r in index["models"]["shared"].values()) == [str(i) for i in range(8)]
    assert len(os.listdir(root / "objects")) == 1
    assert os.listdir(root / "tmp") == []


# ---- orphans left by a writer killed between storing content and writing the index (issue #9, hole 7) ----


def _orphan(registry: Registry, content: bytes) -> str:
    """Leave `content` in objects/ with no index entry, as a writer killed after its rename leaves it."""
    import hashlib

    sha = hashlib.sha256(content).hexdigest()
    (registry.root / "objects").mkdir(parents=True, exist_ok=True)
    (registry.root / "objects" / sha).write_bytes(content)
    return sha


def test_gc_removes_content_no_index_entry_names(registry: Registry, model_file: Path) -> None:
    kept = registry.register("m", model_file)
    orphan = _orphan(registry, b"half-registered weights")
    foreign = registry.root / "objects" / "README"
    foreign.write_text("not ours")
    result = registry.gc()
    assert result.removed_objects == [orphan]
    assert result.freed_bytes == len(b"half-registered weights")
    assert objects(registry) == sorted([kept.sha256, "README"])  # a name that is no sha256 is left alone
    assert registry.get("m").path.read_bytes() == b"weights-1"
    assert registry.gc().removed_objects == []


def test_every_write_collects_orphans(registry: Registry, model_file: Path, tmp_path: Path) -> None:
    registry.register("m", model_file)
    orphan = _orphan(registry, b"orphan-1")
    other = tmp_path / "other.pkl"
    other.write_bytes(b"other")
    registry.register("n", other)
    assert orphan not in objects(registry)
    orphan = _orphan(registry, b"orphan-2")
    registry.delete("n")
    assert objects(registry) == [registry.get("m").sha256]


def test_an_orphan_of_the_same_content_is_adopted(registry: Registry, tmp_path: Path) -> None:
    source = tmp_path / "adopted.pkl"
    source.write_bytes(b"the same bytes")
    sha = _orphan(registry, b"the same bytes")
    model = registry.register("adopted", source)
    assert model.sha256 == sha and objects(registry) == [sha]
    assert registry.get("adopted").path.read_bytes() == b"the same bytes"


def test_list_refuses_a_name_that_could_escape(registry: Registry, model_file: Path) -> None:
    registry.register("m", model_file)
    with pytest.raises(RegistryError, match="model name '../x' is refused"):
        registry.list(name="../x")
