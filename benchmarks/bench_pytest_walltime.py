"""Wall time of `pytest --mldeploy` on the example with everything warm, split into deploy, checks and profile.

For each target (process; docker when an engine answers and the base image is there) one warm-up
run fills the caches (virtual environment, image), then measured runs follow: some without the
load profile (`-k "not profile"`) and one full run. Per-item times come from `--junitxml`; the
deploy time comes from a small probe plugin (this module, loaded with `-p`) that reads the
runner's `deploy_seconds`, so checks = item times - deploy. "overhead" is pytest start-up,
collection and teardown (wall - item times).

Image build times (cold build, warm reuse, rebuild after touching only score.py) come from the
image engineer's `bench_image_build.py` through its `results/image_build.json`: the one from the
same `run_all.py` run when there is one, otherwise the script is run here and its JSON read.

    python benchmarks/bench_pytest_walltime.py [--rounds 2] [--docker-rounds 1] [--targets process,docker]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "pytest_walltime"
TITLE = "pytest --mldeploy wall time on sklearn-diabetes, warm caches (deploy / checks / profile)"

BASE_IMAGE = "mldeploy/base:bookworm-py3.11"
PROBE_ENV = "MLDEPLOY_BENCH_PROBE_OUT"

TARGET_WARM_NO_PROFILE_S = 10.0


# ---- the probe plugin (active only inside the measured pytest runs) ----------------------------

_runners: list[Any] = []
_marks: dict[str, float] = {}


def pytest_configure(config: Any) -> None:
    """Remember every CheckRunner the plugin creates, to read its deploy times at the end."""
    if not os.environ.get(PROBE_ENV):
        return
    _marks["configured"] = time.time()
    from pytest_mldeploy import check_run as runner_module

    original = runner_module.CheckRunner.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _runners.append(self)

    runner_module.CheckRunner.__init__ = recording_init


def pytest_collection_finish(session: Any) -> None:
    _marks["collected"] = time.time()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    _marks["tests_done"] = time.time()


def pytest_unconfigure(config: Any) -> None:
    """Write the deploy times and phase marks of this session to the file named by PROBE_ENV.

    This runs after the terminal summary, where the runner deletes its services, so the
    teardown (tests_done -> unconfigured) includes stopping them.
    """
    out = os.environ.get(PROBE_ENV)
    if not out:
        return
    _marks["unconfigured"] = time.time()
    deploys = {name: record.deploy_seconds for r in _runners for name, record in r.records.items()}
    Path(out).write_text(json.dumps({"deploys": deploys, "marks": _marks}))


# ---- driving pytest ----------------------------------------------------------------------------

def docker_ready() -> Optional[str]:
    """None when Docker answers and the base image exists; otherwise why not."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get(os.environ.get("MLDEPLOY_BASE_IMAGE", BASE_IMAGE))
        return None
    except Exception as exc:  # the docker SDK raises many unrelated types; any of them means "not here"
        return f"{type(exc).__name__}: {exc}"


def run_pytest(target: str, *, profile: bool, workdir: Path, timeout: float) -> dict[str, Any]:
    """One `pytest --mldeploy` run in the example folder: wall time and its split."""
    junit = workdir / f"junit-{time.monotonic_ns()}.xml"
    probe = workdir / f"probe-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "pytest", "--mldeploy", "--mldeploy-target", target, "-p", "bench_pytest_walltime",
           f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"]
    if not profile:
        cmd += ["-k", "not profile"]
    env = {**os.environ, PROBE_ENV: str(probe),
           "MLDEPLOY_BASE_IMAGE": os.environ.get("MLDEPLOY_BASE_IMAGE", BASE_IMAGE),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(c.BENCH_DIR), str(c.REPO_ROOT), os.environ.get("PYTHONPATH", "")]))}
    started, started_epoch = time.perf_counter(), time.time()
    done = subprocess.run(cmd, cwd=c.EXAMPLE_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if not junit.exists():
        raise RuntimeError(f"pytest ({target}) wrote no junit report (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-1000:]}")
    items, images = parse_junit(junit)
    probed = json.loads(probe.read_text()) if probe.exists() else {}
    deploys, marks = probed.get("deploys") or {}, probed.get("marks") or {}
    deploy = sum(deploys.values()) if deploys else None
    startup = marks["collected"] - started_epoch if "collected" in marks else None
    teardown = marks["unconfigured"] - marks["tests_done"] if {"unconfigured", "tests_done"} <= marks.keys() else None
    profile_s = sum(t for name, t in items.items() if name.endswith("::profile") or name.endswith(".profile"))
    items_s = sum(items.values())
    checks = items_s - profile_s - (deploy or 0.0)
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"target": target, "profile": profile, "wall": wall, "deploy": deploy, "checks": checks,
            "profile_s": profile_s if profile else None, "startup": startup, "teardown": teardown,
            "overhead": wall - items_s, "items": items,
            "exit_code": done.returncode, "failed": failed, "images": images,
            "summary": (done.stdout.strip().splitlines() or [""])[-1]}


def parse_junit(path: Path) -> tuple[dict[str, float], list[str]]:
    """({classname::name: seconds} for every testcase (setup + call + teardown), the service images the checks ran on)."""
    times: dict[str, float] = {}
    images: set[str] = set()
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        times[key] = times.get(key, 0.0) + float(case.get("time") or 0.0)
        for prop in case.iter("property"):
            if prop.get("name") == "mldeploy":
                try:
                    image = json.loads(prop.get("value") or "{}").get("image")
                except ValueError:
                    continue
                if image:
                    images.add(image)
    return times, sorted(images)


# ---- the image engineer's numbers --------------------------------------------------------------

def measure_image_reuse_and_rebuild(rounds: int = 3) -> dict[str, Any]:
    """Warm reuse and score.py-only rebuild via `core.image.build_image`, on a temporary copy of the example.

    Used when the image engineer's bench script is not there. "Touching" score.py means changing
    its content (a trailing comment): image inputs are content-hashed, so an mtime change alone
    is (rightly) not a rebuild. Only the tags built here from a changed score.py are removed;
    the example's own image stays cached. The cold build is not measured here (it needs the
    wheelhouse and layer caches emptied, which is the image benchmark's business).
    """
    import shutil

    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.core.image import build_image
    import docker

    client = docker.from_env()
    reuse: list[float] = []
    rebuild: list[float] = []
    built_tags: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        copy = Path(tmp) / "sklearn-diabetes"
        shutil.copytree(c.EXAMPLE_DIR, copy, ignore=shutil.ignore_patterns(".mldeploy", ".hypothesis", "__pycache__"))
        project = load_project(copy / "mldeploy.yaml")
        deployment = next(iter(project.deployments.values()))
        first = build_image(deployment, project)  # the example's image, built once if it is not cached yet
        for _ in range(rounds):
            started = time.perf_counter()
            again = build_image(deployment, project)
            reuse.append(time.perf_counter() - started)
            if not again.reused:
                raise RuntimeError(f"build_image rebuilt {again.tag} with nothing changed: reuse is broken")
        score = copy / "score.py"
        original = score.read_text()
        try:
            for n in range(rounds):
                score.write_text(original + f"# benchmark touch {time.time_ns()} {n}\n")
                started = time.perf_counter()
                changed = build_image(deployment, project)
                rebuild.append(time.perf_counter() - started)
                built_tags.append(changed.tag)
                if changed.reused:
                    raise RuntimeError(f"build_image reused {changed.tag} after score.py changed: the change was not seen")
        finally:
            for tag in built_tags:
                if tag != first.tag:
                    try:
                        client.images.remove(tag, noprune=False)
                    except Exception as exc:  # leave a note rather than fail the benchmark on cleanup
                        print(f"note: could not remove {tag}: {exc}", flush=True)
    return {"warm_reuse": c.Spread.of(reuse), "score_only_rebuild": c.Spread.of(rebuild),
            "first_build": {"seconds": first.build_seconds, "reused": first.reused, "tag": first.tag}}


IMAGE_RESULT_NAME = "image_build"
IMAGE_KEYS = ("cold", "warm_reuse", "score_only_rebuild")


def image_seconds(result: Optional[dict[str, Any]]) -> dict[str, float]:
    """{cold, warm_reuse, score_only_rebuild: seconds} from a results/image_build.json payload ({} if none)."""
    data = (result or {}).get("data") or {}
    return {k: float(data[k]) for k in IMAGE_KEYS if isinstance(data.get(k), (int, float))}


def image_numbers(timeout: float) -> tuple[dict[str, float], Optional[str]]:
    """Cold build, warm reuse and score.py-only rebuild seconds from bench_image_build.py's results/image_build.json.

    Taken from this run_all run's results when they are there; otherwise the script is run here
    and the JSON it writes is read. Returns ({}, why) when there are no numbers.
    """
    run_id = os.environ.get(c.RUN_ID_ENV)
    found = c.load_results(IMAGE_RESULT_NAME)
    if found and run_id and found.get("run_id") == run_id and image_seconds(found):
        return image_seconds(found), None
    script = c.BENCH_DIR / "bench_image_build.py"
    if not script.exists():
        return {}, "benchmarks/bench_image_build.py (the image engineer's cold build / warm reuse / score.py-only rebuild) has not landed yet"
    print("image: running benchmarks/bench_image_build.py ...", flush=True)
    path = c.RESULTS_DIR / f"{IMAGE_RESULT_NAME}.json"
    before = path.stat().st_mtime if path.exists() else None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(c.REPO_ROOT), os.environ.get("PYTHONPATH", "")]))}
    done = subprocess.run([sys.executable, str(script)], cwd=c.REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(done.stdout[-3000:], flush=True)
    if not path.exists() or path.stat().st_mtime == before:
        return {}, (f"bench_image_build.py (exit {done.returncode}) wrote no {path.relative_to(c.REPO_ROOT)}; "
                    f"run it alone to see why: python benchmarks/bench_image_build.py ({done.stderr.strip()[-600:]})")
    numbers = image_seconds(c.load_results(IMAGE_RESULT_NAME))
    if numbers:
        return numbers, None if done.returncode == 0 else f"bench_image_build.py exited {done.returncode}"
    return {}, (f"bench_image_build.py (exit {done.returncode}) wrote {path.relative_to(c.REPO_ROOT)} without "
                f"cold/warm_reuse/score_only_rebuild seconds in its data; see its 'missing' entries")


# ---- main --------------------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="measured runs without profiling, process target")
    parser.add_argument("--docker-rounds", type=int, default=1, help="measured runs without profiling, docker target")
    parser.add_argument("--targets", default="process,docker", help="comma-separated: process, docker")
    parser.add_argument("--no-profile-run", action="store_true", help="skip the full run with the load profile")
    parser.add_argument("--no-image", action="store_true", help="skip the image build numbers")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per pytest run")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"process", "docker"}
    if unknown:
        parser.error(f"--targets {','.join(sorted(unknown))}: choose from process, docker (or '' for none)")

    header = ["target", "run", "wall s median (min-max)", "start-up + collect s", "deploy s", "checks s", "profile s",
              "teardown s", "result"]
    rows: list[list[Any]] = []
    missing: list[str] = []
    notes: list[str] = []
    ratios: list[dict[str, Any]] = []
    data: dict[str, Any] = {"args": vars(args), "runs": {}}
    if not (c.REPO_ROOT / "pytest_mldeploy" / "plugin.py").exists():
        missing.append("pytest_mldeploy/plugin.py (pytest --mldeploy) has not landed yet")

    busy = c.wait_until_quiet()
    if busy:
        notes.append(busy)
        print(f"warning: {busy}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-pytest-") as tmp:
        workdir = Path(tmp)
        for target in targets if not missing else []:
            if target == "docker":
                why = docker_ready()
                if why:
                    missing.append(f"docker target skipped: Docker or {BASE_IMAGE} not available ({why})")
                    continue
            print(f"{target}: warm-up run (fills the environment/image caches) ...", flush=True)
            try:
                warm = run_pytest(target, profile=False, workdir=workdir, timeout=args.timeout)
                print(f"  warm-up {warm['wall']:.1f} s: {warm['summary']}", flush=True)
                runs = []
                for r in range(args.docker_rounds if target == "docker" else args.rounds):
                    run = run_pytest(target, profile=False, workdir=workdir, timeout=args.timeout)
                    runs.append(run)
                    print(f"  round {r + 1} without profile: {run['wall']:.1f} s ({run['summary']})", flush=True)
                full = None
                if not args.no_profile_run:
                    full = run_pytest(target, profile=True, workdir=workdir, timeout=args.timeout)
                    print(f"  full run with profile: {full['wall']:.1f} s ({full['summary']})", flush=True)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                missing.append(f"{target}: pytest --mldeploy could not be measured: {exc}"[:1000])
                continue
            data["runs"][target] = {"warm_up": warm, "no_profile": runs, "full": full}

            wall = c.Spread.of([x["wall"] for x in runs])
            rows.append([target, "warm-up (fills caches)", c.fmt(warm["wall"]), c.fmt(warm["startup"]),
                         c.fmt(warm["deploy"]), c.fmt(warm["checks"]), "-", c.fmt(warm["teardown"]), warm["summary"]])
            rows.append([target, f"warm, -k 'not profile' (x{len(runs)})", wall.fmt(1), c.fmt(_median(runs, "startup")),
                         c.fmt(_median(runs, "deploy")), c.fmt(_median(runs, "checks")), "-",
                         c.fmt(_median(runs, "teardown")), runs[-1]["summary"]])
            if full:
                rows.append([target, "warm, with profile", c.fmt(full["wall"]), c.fmt(full["startup"]), c.fmt(full["deploy"]),
                             c.fmt(full["checks"]), c.fmt(full["profile_s"]), c.fmt(full["teardown"]), full["summary"]])
            seen = [tuple(x["images"]) for x in [warm, *runs, *([full] if full else [])]]
            if len(set(seen)) > 1:
                notes.append(f"{target}: the service image changed between runs ({' -> '.join(', '.join(i) or '?' for i in seen)}): "
                             "its inputs changed mid-benchmark (someone edited the server or the example), so a "
                             "'warm' run included a rebuild")
            valid = all(x["exit_code"] in (0, 1) and x["items"] for x in runs)
            ratios.append(c.ratio_entry(f"{target}: warm run without profiling (s)", wall.median,
                                        f"< {TARGET_WARM_NO_PROFILE_S:g} s",
                                        wall.median < TARGET_WARM_NO_PROFILE_S if valid else None, 1))
            if not valid:
                missing.append(f"{target}: pytest --mldeploy did not run the checks (exit {runs[-1]['exit_code']}: "
                               f"{'; '.join(runs[-1]['failed'])[:400] or runs[-1]['summary']}); its times mean nothing")
            elif any(x["failed"] for x in runs):
                notes.append(f"{target}: some checks failed in the measured runs (times still count): "
                             + "; ".join(sorted({f for x in runs for f in x["failed"]}))[:600])

    if not args.no_image:
        numbers, why = image_numbers(args.timeout)
        source = "benchmarks/bench_image_build.py"
        if not numbers and docker_ready() is None:
            missing.append(f"{why}; measured warm reuse and the score.py-only rebuild here with core.image.build_image, "
                           "cold build not measured")
            print("image: warm reuse and score.py-only rebuild via core.image.build_image ...", flush=True)
            try:
                own = measure_image_reuse_and_rebuild()
                data["image_build_here"] = own
                numbers = {"warm_reuse": own["warm_reuse"].median, "score_only_rebuild": own["score_only_rebuild"].median}
                source = f"core.image.build_image, median of {len(own['warm_reuse'].values)}"
            except Exception as exc:  # BuildError, docker errors, our own RuntimeErrors: report, do not crash
                missing.append(f"image reuse/rebuild could not be measured: {type(exc).__name__}: {exc}"[:800])
        elif not numbers:
            missing.append(why or "image build numbers")
        data["image_build"] = numbers
        for key, label, target, limit in (("cold", "image: cold build", "(information)", None),
                                          ("warm_reuse", "image: warm reuse", "< 1 s", 1.0),
                                          ("score_only_rebuild", "image: rebuild after changing only score.py", "< 10 s", 10.0)):
            if key in numbers:
                rows.append(["docker", label, c.fmt(numbers[key], 2), "-", "-", "-", "-", "-", source])
                ratios.append(c.ratio_entry(f"{label} (s)", numbers[key], target,
                                            None if limit is None else numbers[key] < limit, 2))

    notes.append("start-up + collect = process start to end of collection; deploy = the runner's deploy_seconds; "
                 "checks = junit item times - deploy - profile; teardown = end of tests to pytest exit (stops the service); "
                 "all read by a probe plugin (this script, loaded with -p)")
    c.report_and_save(NAME, TITLE, header, rows, ratios, missing, notes, data)
    return 0


def _median(runs: list[dict[str, Any]], key: str) -> Optional[float]:
    values = [x[key] for x in runs if x[key] is not None]
    return c.Spread.of(values).median if values else None


if __name__ == "__main__":
    sys.exit(main())
