"""Registry writers killed with SIGKILL, and garbage collection beside live writers (issue #9, hole 7).

Writers are real processes (forked, so they start at once) registering fresh content in a loop; the
test kills them with SIGKILL at random moments, or at the one moment that used to leave an orphan
(content renamed into objects/, index not yet written). After every kill the index must be
consistent (valid JSON, every entry's content present and intact), and the next writer or `gc()`
must remove what no entry names. Beside running writers, a `gc()` loop must never remove content a
writer is about to index.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any, List, Optional, Set

import pytest

from pytest_mldeploy.core.hashing import file_sha256
from pytest_mldeploy.core.registry import Registry

pytestmark = pytest.mark.reliability

KILLS = 30
CONTENT_BYTES = 256 * 1024


def named_objects(root: Path) -> Set[str]:
    index = root / "index.json"
    if not index.exists():
        return set()
    data = json.loads(index.read_text())
    return {r["sha256"] for versions in data["models"].values() for r in versions.values()}


def orphans(root: Path) -> Set[str]:
    objects = root / "objects"
    present = {p.name for p in objects.iterdir()} if objects.is_dir() else set()
    return present - named_objects(root)


def inconsistency(root: Path) -> Optional[str]:
    """What is wrong with the store after a crash, or None: the index parses and names only intact content."""
    try:
        models = Registry(root).list()
    except Exception as exc:  # a torn index is exactly what must not happen
        return f"the index cannot be read: {exc}"
    for model in models:
        if not model.path.exists():
            return f"{model.id} names sha256 {model.sha256[:12]}, which is not in objects/"
        if not model.is_dir and file_sha256(model.path) != model.sha256:
            return f"{model.id}: the stored content does not hash to {model.sha256[:12]}"
    return None


def _writer(root: str, work: str, seed: int, die_at_index_write: int, ready: Any) -> None:
    """Register fresh content forever (until killed); with `die_at_index_write`, SIGKILL itself at that write."""
    if die_at_index_write:
        real = Registry._write_index
        calls = [0]

        def dying(self: Registry, index: Any) -> None:
            calls[0] += 1
            if calls[0] == die_at_index_write:
                os.kill(os.getpid(), signal.SIGKILL)  # content is in objects/, the index not yet written
            real(self, index)

        Registry._write_index = dying  # type: ignore[method-assign]
    registry = Registry(root)
    rng = random.Random(seed)
    ready.set()
    for i in range(10_000):
        source = Path(work) / f"w{seed}-{i}.bin"
        source.write_bytes(rng.randbytes(CONTENT_BYTES))
        registry.register(f"m{i % 3}", source)
        source.unlink()


def _start_writer(ctx: Any, root: Path, work: Path, seed: int, die_at: int = 0) -> Any:
    ready = ctx.Event()
    proc = ctx.Process(target=_writer, args=(str(root), str(work), seed, die_at, ready), daemon=True)
    proc.start()
    assert ready.wait(30), "the writer did not start"
    return proc


@pytest.fixture
def ctx() -> Any:
    return multiprocessing.get_context("fork")


def test_kill_at_the_orphan_window_is_collected(tmp_path: Path, ctx: Any, reliability_counter: Any) -> None:
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    for round_ in range(3):
        writer = _start_writer(ctx, root, work, seed=round_, die_at=2)
        writer.join(60)
        assert writer.exitcode == -signal.SIGKILL
        left = orphans(root)
        reliability_counter.add("killed between storing and indexing: an orphan is left", held=len(left) == 1,
                                detail=f"round {round_}: expected exactly one orphan, found {len(left)}")
        problem = inconsistency(root)
        reliability_counter.add("index consistent after kill -9", held=problem is None, detail=problem or "")
        if round_ == 0:  # the next writer sweeps before it adds
            registry = Registry(root)
            source = work / "next.bin"
            source.write_bytes(b"next writer")
            registry.register("next", source)
            collected = not (left & {p.name for p in (root / "objects").iterdir()})
        else:
            result = Registry(root).gc()
            collected = set(result.removed_objects) == left
        reliability_counter.add("orphans collected", held=collected and not orphans(root),
                                detail=f"round {round_}: {sorted(orphans(root))} still there")
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, failures


def test_kill_loop_keeps_the_index_consistent_and_orphans_collected(tmp_path: Path, ctx: Any, reliability_counter: Any) -> None:
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    rng = random.Random(9)
    orphaned_kills = 0
    seen: Set[str] = set()
    for kill in range(KILLS):
        writer = _start_writer(ctx, root, work, seed=100 + kill)
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(30)
        problem = inconsistency(root)
        reliability_counter.add("index consistent after kill -9", held=problem is None, detail=f"kill {kill}: {problem}")
        now = orphans(root)
        orphaned_kills += bool(now - seen)
        seen |= now
    reliability_counter.note("index consistent after kill -9", f"{orphaned_kills} of {KILLS} kills left a new orphan")
    result = Registry(root).gc()
    reliability_counter.add("orphans collected", held=not orphans(root), detail=f"left: {sorted(orphans(root))}")
    reliability_counter.add("no staging left by dead writers", held=not any((root / "tmp").iterdir()),
                            detail=f"left in tmp/: {os.listdir(root / 'tmp')}")
    reliability_counter.note("orphans collected", f"the final gc removed {len(result.removed_objects)} object(s) and "
                                                  f"{result.removed_temp} temp entr(y/ies)")
    assert Registry(root).list(), "no writer got as far as one registration"
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, failures


def _steady_writer(root: str, work: str, seed: int, shared: str, out: Any) -> None:
    registry = Registry(root)
    ids: List[str] = []
    for i in range(15):
        source = Path(work) / f"s{seed}-{i}.bin"
        source.write_bytes(random.Random(seed * 1000 + i).randbytes(64 * 1024))
        ids.append(registry.register(f"w{seed}", source).id)
        ids.append(registry.register(f"shared{seed}", shared).id)  # content an orphan of which gc keeps removing
    out.put((seed, ids))


def _gc_loop(root: str, stop: Any, out: Any) -> None:
    registry = Registry(root)
    runs = removed = 0
    while not stop.is_set():
        removed += len(registry.gc().removed_objects)
        runs += 1
    out.put(("gc", runs, removed))


def test_gc_beside_live_writers_never_loses_content(tmp_path: Path, ctx: Any, reliability_counter: Any) -> None:
    root, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    shared = work / "shared.bin"
    shared.write_bytes(b"shared content " * 1000)
    registry = Registry(root)
    (root / "objects").mkdir(parents=True)
    # An orphan of the very content the writers register: they find it present, gc may remove it
    # before they take the lock, and they must then store it again.
    (root / "objects" / file_sha256(shared)).write_bytes(shared.read_bytes())
    out, stop = ctx.Queue(), ctx.Event()
    collector = ctx.Process(target=_gc_loop, args=(str(root), stop, out))
    collector.start()
    writers = [ctx.Process(target=_steady_writer, args=(str(root), str(work), seed, str(shared), out)) for seed in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    stop.set()
    collector.join(60)
    results = [out.get(timeout=10) for _ in range(4)]
    for w in writers:
        reliability_counter.add("writer finished beside gc", held=w.exitcode == 0, detail=f"writer exit code {w.exitcode}")
    registered = [i for r in results if r[0] != "gc" for i in r[1]]
    gc_runs = next(r for r in results if r[0] == "gc")
    reliability_counter.note("writer finished beside gc", f"gc ran {gc_runs[1]} times beside the writers, removing {gc_runs[2]} object(s)")
    for model_id in registered:
        name, version = model_id.split(":")
        model = registry.get(name, int(version))
        intact = model.path.exists() and file_sha256(model.path) == model.sha256
        reliability_counter.add("registered content survives gc", held=intact, detail=f"{model_id}: content missing or changed")
    problem = inconsistency(root)
    reliability_counter.add("index consistent", held=problem is None, detail=problem or "")
    assert len(registered) == 90
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, failures
