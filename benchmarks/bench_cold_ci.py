"""The cold CI gate: `pytest --mldeploy` on the example from a runner with only the base image.

Each run starts as a fresh CI runner would: a fresh copy of the example, an empty
`MLDEPLOY_CACHE_DIR` (no wheelhouse), and no service image or build cache for it (the run builds
on its own throw-away child of the offline base, so Docker's layer cache has nothing to reuse).
The installers alternate inside each round (uv, then pip via `MLDEPLOY_INSTALLER=pip`, then an
optional other checkout given with `--baseline-tree`), so load from other work on the machine
falls on all of them alike; figures are medians over rounds.

Where the time goes comes from a probe plugin (this module, loaded with `-p`) that times the
wheelhouse, the build context, each Docker build step (the venv install step apart), the container
start up to the first check, the checks and the profile. Every image and base made here is
removed afterwards.

    python benchmarks/bench_cold_ci.py [--rounds 3] [--profile-rounds 1] [--installers uv,pip]
                                       [--baseline-tree /path/to/other/checkout]

Run time: about 2 minutes per cold run on the 2-core machine, so 8-12 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "cold_ci"
TITLE = "Cold CI gate on sklearn-diabetes (docker target): no wheel cache, no service image, base image present"
BASE_IMAGE = "mldeploy/base:bookworm-py3.11"
PROBE_ENV = "MLDEPLOY_BENCH_COLD_PROBE"
TARGET_NO_PROFILE_S = 45.0
TARGET_WITH_PROFILE_S = 90.0
PHASES = ("startup", "wheelhouse", "context", "install step", "other build steps", "container start", "checks",
          "profile", "teardown")


# ---- the probe plugin (active only inside the measured pytest runs) ----------------------------

_marks: dict[str, float] = {}
_spans: dict[str, list[tuple[float, float]]] = {}
_steps: list[tuple[float, str]] = []
_items: dict[str, float] = {}
_tags: list[str] = []


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            _spans.setdefault(name, []).append((started, time.time()))
    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


def _with_step_marks(function: Callable[..., Any]) -> Callable[..., Any]:
    """docker_build with its progress callback also stamping each `step N/M: ...` line."""
    def wrapper(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        _tags.append(str(kwargs.get("tag") or (args[2] if len(args) > 2 else "")))

        def stamped(message: str) -> None:
            _steps.append((time.time(), message))
            if progress:
                progress(message)
        return function(*args, progress=stamped, **kwargs)
    return _timed("docker_build", wrapper)


def pytest_configure(config: Any) -> None:
    """Wrap the build functions wherever core defines or imports them, so the split survives refactors."""
    if not os.environ.get(PROBE_ENV):
        return
    _marks["configured"] = time.time()
    import pytest_mldeploy.core.image  # noqa: F401  (loads the build modules)

    wraps = {"ensure_wheelhouse": lambda f: _timed("wheelhouse", f), "_prepare_context": lambda f: _timed("context", f),
             "docker_build": _with_step_marks}
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("pytest_mldeploy.core")]:
        for attr, wrap in wraps.items():
            original = getattr(module, attr, None)
            if callable(original) and not hasattr(original, "__wrapped__"):
                setattr(module, attr, wrap(original))


def pytest_collection_finish(session: Any) -> None:
    _marks["collected"] = time.time()


def pytest_runtest_logreport(report: Any) -> None:
    if os.environ.get(PROBE_ENV):
        _items[report.nodeid] = _items.get(report.nodeid, 0.0) + report.duration
        if report.when == "teardown":
            _marks.setdefault("first_item_done", time.time())


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    _marks["tests_done"] = time.time()


def pytest_unconfigure(config: Any) -> None:
    out = os.environ.get(PROBE_ENV)
    if out:
        _marks["unconfigured"] = time.time()
        Path(out).write_text(json.dumps({"marks": _marks, "spans": _spans, "steps": _steps, "items": _items,
                                         "tags": _tags}))


# ---- one cold run ------------------------------------------------------------------------------

def cold_base(client: Any) -> str:
    """A throw-away child of the offline base (one label), so no build-cache layer hangs below it."""
    import docker

    tag = f"mldeploy-bench-cold/base:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="mldeploy-cold-base-") as folder:
        Path(folder, "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL mldeploy.bench-cold={tag.split(':')[1]}\n")
        try:
            client.images.build(path=folder, tag=tag, rm=True, pull=False)
        except docker.errors.BuildError:  # once seen: an image vanished mid-build (someone else's prune)
            client.images.build(path=folder, tag=tag, rm=True, pull=False)
    return tag


def remove_descendants(client: Any, base_tag: str) -> int:
    """Remove `base_tag` and every image built on it (newest first); returns how many went."""
    import docker

    base_id = client.images.get(base_tag).id
    # The raw listing: other people's images can vanish between a list and an inspect.
    parents = {image["Id"]: image.get("ParentId") or "" for image in client.api.images(all=True)}

    def descends(image_id: str) -> bool:
        seen = set()
        while image_id and image_id not in seen:
            if image_id == base_id:
                return True
            seen.add(image_id)
            image_id = parents.get(image_id, "")
        return False

    doomed = [i for i in parents if i != base_id and descends(i)]
    removed = 0
    for _ in range(len(doomed) + 1):  # children before parents: retry what still has children
        left = []
        for image_id in doomed:
            try:
                client.images.remove(image_id, force=True, noprune=True)
                removed += 1
            except docker.errors.APIError:
                left.append(image_id)
        doomed = left
        if not doomed:
            break
    client.images.remove(base_tag, force=True)
    return removed


def run_cold(installer: str, *, tree: Path, profile: bool, timeout: float) -> dict[str, Any]:
    """One cold `pytest --mldeploy` (docker) in a fresh copy of the example with a fresh cache folder."""
    import docker

    client = docker.from_env(timeout=600)
    base_tag = cold_base(client)
    name = f"coldci-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mldeploy-cold-") as tmp:
        work = Path(tmp)
        project = work / "project"
        shutil.copytree(c.EXAMPLE_DIR, project, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
        config = project / "mldeploy.yaml"
        config.write_text(config.read_text().replace("  diabetes:", f"  {name}:"))
        probe = work / "probe.json"
        cmd = [sys.executable, "-m", "pytest", "--mldeploy", "--mldeploy-target", "docker", "-p", "bench_cold_ci",
               "-q", "-p", "no:cacheprovider"]
        if not profile:
            cmd += ["-k", "not profile"]
        env = {**os.environ, PROBE_ENV: str(probe), "MLDEPLOY_CACHE_DIR": str(work / "cache"),
               "MLDEPLOY_BASE_IMAGE": base_tag, "MLDEPLOY_INSTALLER": installer,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(c.BENCH_DIR), str(tree), os.environ.get("PYTHONPATH", "")]))}
        started = time.time()
        try:
            done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
            wall = time.time() - started
            probed = json.loads(probe.read_text()) if probe.exists() else {}
            packages = installed_packages(client, (probed.get("tags") or [""])[-1])
        finally:
            remove_descendants(client, base_tag)
    result = {"installer": installer, "tree": str(tree), "profile": profile, "wall": wall, "exit_code": done.returncode,
              "summary": (done.stdout.strip().splitlines() or [""])[-1],
              "failed": [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]}
    result.update(split(probed, started))
    result["build_steps"] = step_seconds(probed)
    result["packages"] = packages
    return result


_LIST_PACKAGES = ("import importlib.metadata as m; "
                  "print('\\n'.join(sorted({d.metadata['Name'].lower() + '==' + d.version for d in m.distributions()})))")


def installed_packages(client: Any, tag: str) -> list[str]:
    """`name==version` of every distribution in the image's venv (the installer's own pip/setuptools included)."""
    if not tag:
        return []
    out = client.containers.run(tag, ["/opt/venv/bin/python", "-c", _LIST_PACKAGES], remove=True, entrypoint=[],
                                network_disabled=True)
    return out.decode().split()


def step_seconds(probed: dict[str, Any]) -> list[tuple[str, float]]:
    """(instruction, seconds) for each Docker build step, from the stamps the probe took at each `step N/M`."""
    steps = probed.get("steps") or []
    spans = (probed.get("spans") or {}).get("docker_build") or []
    if not steps or not spans:
        return []
    stamps = [t for t, _ in steps] + [spans[-1][1]]
    return [(message[:90], round(stamps[i + 1] - stamps[i], 2)) for i, (_, message) in enumerate(steps)]


def split(probed: dict[str, Any], started: float) -> dict[str, Optional[float]]:
    """Seconds per phase from the probe's marks, spans and build steps (None when a phase did not happen)."""
    marks, spans, items = (probed.get(k) or {} for k in ("marks", "spans", "items"))
    steps = probed.get("steps") or []

    def total(name: str) -> Optional[float]:
        return sum(end - begin for begin, end in spans[name]) if spans.get(name) else None

    out: dict[str, Optional[float]] = {p: None for p in PHASES}
    out["startup"] = marks["collected"] - started if "collected" in marks else None
    out["wheelhouse"] = total("wheelhouse")
    context, build = total("context"), total("docker_build")
    out["context"] = context - (out["wheelhouse"] or 0.0) if context is not None else None
    if build is not None:
        build_end = spans["docker_build"][-1][1]
        stamps = [t for t, _ in steps] + [build_end]
        install = sum(stamps[i + 1] - stamps[i] for i, (_, message) in enumerate(steps) if "pip install" in message)
        out["install step"] = install
        out["other build steps"] = build - install
        if "first_item_done" in marks:
            out["container start"] = marks["first_item_done"] - build_end
    profile_s = sum(t for node, t in items.items() if node.endswith("::profile"))
    out["profile"] = profile_s or None
    if {"first_item_done", "tests_done"} <= marks.keys():
        out["checks"] = marks["tests_done"] - marks["first_item_done"] - profile_s
    if {"unconfigured", "tests_done"} <= marks.keys():
        out["teardown"] = marks["unconfigured"] - marks["tests_done"]
    return out


# ---- report ------------------------------------------------------------------------------------

def median(values: list[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[dict[str, Any]], label: str) -> list[Any]:
    """One table row: the wall time's median and range, each phase's median, the last run's pytest summary."""
    wall = c.Spread.of([r["wall"] for r in runs]).fmt(1)
    return [label, len(runs), wall, *[c.fmt(median([r.get(p) for r in runs]), 1) for p in PHASES], runs[-1]["summary"]]


def report(runs: dict[tuple[str, bool], list[dict[str, Any]]], variants: list[tuple[str, str, Path]],
           missing: list[str], busy: Optional[str], *, quiet: bool = False) -> None:
    """Table, ratios and notes from the runs so far; written to `results/cold_ci.json` (printed unless `quiet`)."""
    header = ["run", "n", "wall s median (min-max)", *[f"{p} s" for p in PHASES], "result"]
    rows = []
    for profile in (False, True):
        for label, _, _ in variants:
            if (label, profile) in runs:
                rows.append(summarise(runs[(label, profile)], f"{label}, {'with profile' if profile else '-k not profile'}"))
    ratios = []
    first = variants[0][0]
    for profile, target in ((False, TARGET_NO_PROFILE_S), (True, TARGET_WITH_PROFILE_S)):
        ours = median([r["wall"] for r in runs.get((first, profile), [])])
        if ours is not None:
            ratios.append(c.ratio_entry(f"{first}: cold gate {'with' if profile else 'without'} profile (s)", ours,
                                        f"< {target:g} s", ours < target, digits=1))
        for label, _, _ in variants[1:]:
            other = median([r["wall"] for r in runs.get((label, profile), [])])
            if ours is not None and other is not None:
                ratios.append(c.ratio_entry(f"wall {first} / {label} ({'with' if profile else 'without'} profile)",
                                            c.ratio(ours, other), "< 1 (faster)", ours < other))
    install = {label: median([r.get("install step") for r in runs.get((label, False), [])]) for label, _, _ in variants}
    for label, _, _ in variants[1:]:
        if install.get(first) and install.get(label):
            ratios.append(c.ratio_entry(f"image install step {first} / {label}", c.ratio(install[first], install[label]),
                                        "< 1 (faster)", install[first] < install[label]))
    installers_only = {"pip", "setuptools", "wheel"}
    package_sets = {tuple(p for p in r.get("packages", []) if p.split("==")[0] not in installers_only)
                    for rs in runs.values() for r in rs if r.get("packages")}
    if package_sets:
        ratios.append(c.ratio_entry("distinct installed package sets across the runs (pip/setuptools aside)",
                                    len(package_sets), "1 (identical results)", len(package_sets) == 1, digits=0))
    notes = ["each run: fresh copy of the example, empty MLDEPLOY_CACHE_DIR, its own child of the offline base "
             "(so no Docker layer cache), unique deployment name; images removed afterwards",
             "variants alternate within each round; figures are medians over rounds (min-max for the wall time); "
             "the profile runs are made for the installers only, not for a baseline tree",
             "phases: startup = process start to end of collection; wheelhouse = host resolve + download; context = "
             "build-context preparation other than the wheelhouse; install step = the Dockerfile RUN that makes the venv; "
             "container start = end of the build to the end of the first check (health); checks = the rest of the items "
             "but the profile; teardown = end of tests to pytest exit"]
    if busy:
        notes.append(busy)
    data = {"runs": {f"{label}|profile={profile}": value for (label, profile), value in runs.items()}}
    if quiet:
        c.write_results(NAME, title=TITLE, header=header, rows=rows, ratios=ratios, missing=missing, notes=notes, data=data)
    else:
        c.report_and_save(NAME, TITLE, header, rows, ratios, missing, notes, data)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold runs without the profile, per variant")
    parser.add_argument("--profile-rounds", type=int, default=1, help="cold runs with the profile, per installer")
    parser.add_argument("--installers", default="uv,pip", help="comma-separated: uv, pip (default: %(default)s)")
    parser.add_argument("--baseline-tree", type=Path,
                        help="another checkout (e.g. the previous round's commit) to run as one more variant")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    variants = [(name, name, c.REPO_ROOT) for name in args.installers.split(",") if name]
    if args.baseline_tree:
        variants.append((f"baseline {args.baseline_tree.name}", "uv", args.baseline_tree.resolve()))
    busy = c.wait_until_quiet()
    runs: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    missing: list[str] = []
    # Profile rounds between the others, so a run cut short still has some of each.
    plain, profiled = [False] * args.rounds, [True] * args.profile_rounds
    plan = [plain.pop(0)] if plain else []
    while plain or profiled:
        plan += ([profiled.pop(0)] if profiled else []) + ([plain.pop(0)] if plain else [])
    for round_no, profile in enumerate(plan):
        # Each round starts with a different variant, so drift in the machine's load is shared.
        shift = round_no % len(variants)
        for label, installer, tree in variants[shift:] + variants[:shift]:
            if profile and tree != c.REPO_ROOT:
                continue  # the profile does not depend on how the image was built
            try:
                run = run_cold(installer, tree=tree, profile=profile, timeout=args.timeout)
            except Exception as exc:  # Docker, a timeout, a broken checkout: report it, keep the other runs
                missing.append(f"{label} (profile={profile}) round {round_no}: {type(exc).__name__}: {exc}"[:500])
                continue
            runs.setdefault((label, profile), []).append(run)
            print(f"round {round_no} {label:>10} profile={profile!s:5} wall {run['wall']:6.1f}s "
                  + " ".join(f"{p}={c.fmt(run.get(p), 1)}" for p in PHASES) + f"  [{run['summary']}]", flush=True)
            report(runs, variants, missing, busy, quiet=True)  # a run cut short keeps what was measured
    report(runs, variants, missing, busy)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
