"""How long a full profile takes and how repeatable its recommendation is: this tree against an earlier one.

Runs `--rounds` (5) profiles of the example deployment (`example_projects/sklearn-diabetes`,
its own `profile:` settings) with this tree's profiler and as many with the profiler of
`--old-rev` (by default the commit before the adaptive profile landed), alternating old and new
so that whatever else loads the machine falls on both alike. Each profile runs in its own Python
process with only that tree's `pytest_mldeploy` on its path, on a fresh copy of the example.

Per version it reports the seconds per profile (`ProfileResult.elapsed_s`: the profile itself,
not the deploy; median and range), how long the sweep, the steady phase and the verification
took (medians), the recommendations, their spread, and whether they agree within one rounding
step (0.1 core, 0.1 GB) as issue #13 asks. Writes `results/profile.json` (`profile_docker.json`
for `--target docker`).
Run: `python benchmarks/bench_profile.py [--rounds 5] [--target process|docker] [--old-rev REV | --no-old]`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "profile"
TITLE = "Load profile of sklearn-diabetes ({target} target): time per profile and recommendation spread, adaptive vs the fixed schedule"
#: One rounding step of the recommendation (cores, GB): repeated profiles must agree within it.
STEP = 0.1
MARK = "MLDEPLOY_BENCH_PROFILE "

#: Runs in a fresh interpreter with one tree's pytest_mldeploy on PYTHONPATH; prints one JSON line.
_RUNNER = r'''
import json, shutil, sys, tempfile, time
from pathlib import Path
from pytest_mldeploy.checks.profiling import profile_deployment
from pytest_mldeploy.core.config import load_project

example, target = Path(sys.argv[1]), sys.argv[2]
work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
shutil.copytree(example, work / "p", ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
project = load_project(work / "p" / "mldeploy.yaml")
result = profile_deployment(project, "diabetes", target, work / "out")
phases = {}
for label, start, end in result.phases:
    kind = label.split()[0]
    phases[kind] = phases.get(kind, 0.0) + (end - start)
stability = getattr(result, "stability", None)
print("''' + MARK + r'''" + json.dumps({
    "elapsed_s": result.elapsed_s, "cpu": result.recommendation.cpu, "memory_gb": result.recommendation.memory_gb,
    "verdict": result.verification.verdict, "concurrency": result.concurrency, "phases": phases,
    "sweep_levels": [s.concurrency for s in result.sweep], "settled": getattr(stability, "stable", None),
    "methods": [getattr(a, "method", "") or "new container" for a in result.verification.attempts],
}), flush=True)
shutil.rmtree(work, ignore_errors=True)
'''


def default_old_rev() -> Optional[str]:
    """The commit before the one that added the adaptive profile (`checks/profiling/steady.py`)."""
    done = subprocess.run(
        ["git", "-C", str(c.REPO_ROOT), "log", "--diff-filter=A", "--format=%H", "--", "pytest_mldeploy/checks/profiling/steady.py"],
        capture_output=True, text=True,
    )  # fmt: skip
    added = done.stdout.split()
    return f"{added[-1]}^" if added else None


def export_tree(rev: str, into: Path) -> Path:
    """`pytest_mldeploy/` as it was at `rev`, unpacked under `into` (read-only use: no worktree, no checkout)."""
    archive = into / "tree.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(c.REPO_ROOT), "archive", "--format=tar", rev, "pytest_mldeploy"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into)  # noqa: S202 - our own repository's tree
    return into


def run_profile(code_root: Path, target: str, timeout_s: float) -> dict[str, Any]:
    """One profile in its own interpreter with `code_root` first on the path; its figures, or an error."""
    env = dict(os.environ, PYTHONPATH=str(code_root))
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(c.EXAMPLE_DIR), target], env=env, capture_output=True, text=True, timeout=timeout_s,
        cwd=tempfile.gettempdir(),
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
    return {"error": f"exit {done.returncode}: {tail}"}


def summarize_version(label: str, runs: list[dict[str, Any]]) -> tuple[list[Any], dict[str, Any]]:
    """The table row of one version, and its figures."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return [label, f"0 of {len(runs)}", "-", "-", "-", "-", "-", "-", "-", "-", "-"], {"runs": runs}
    seconds = c.Spread.of([r["elapsed_s"] for r in ok])
    cpu, memory = [r["cpu"] for r in ok], [r["memory_gb"] for r in ok]
    cpu_spread, memory_spread = max(cpu) - min(cpu), max(memory) - min(memory)
    agree = cpu_spread <= STEP + 1e-9 and memory_spread <= STEP + 1e-9

    def phase(kind: str) -> str:
        values = [r["phases"].get(kind, 0.0) for r in ok]
        return f"{statistics.median(values):.1f}"

    verdicts = sorted({r["verdict"] for r in ok})
    row = [
        label, f"{len(ok)} of {len(runs)}", seconds.fmt(1), phase("sweep"), phase("steady"), phase("verify"),
        " ".join(f"{v:g}" for v in cpu), " ".join(f"{v:g}" for v in memory),
        f"{cpu_spread:.1f} / {memory_spread:.1f}", "yes" if agree else "**no**", ", ".join(verdicts),
    ]  # fmt: skip
    figures = {
        "runs": runs, "seconds_median": seconds.median, "cpu_spread": cpu_spread, "memory_spread": memory_spread, "agree": agree,
    }
    return row, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="profiles per version (default 5)")
    parser.add_argument("--target", default="process", choices=("process", "docker"))
    parser.add_argument("--old-rev", default=None, help="the git revision to compare with (default: before the adaptive profile)")
    parser.add_argument("--no-old", action="store_true", help="profile this tree only")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one profile may take before it counts as failed")
    args = parser.parse_args()

    missing: list[str] = []
    notes: list[str] = []
    quiet = c.wait_until_quiet()
    if quiet:
        notes.append(quiet)
    old_rev = None if args.no_old else (args.old_rev or default_old_rev())
    if not args.no_old and old_rev is None:
        missing.append("no earlier revision to compare with (pass --old-rev REV)")
    versions: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="bench-profile-old-") as tmp:
        if old_rev:
            short = subprocess.run(["git", "-C", str(c.REPO_ROOT), "rev-parse", "--short", old_rev], capture_output=True, text=True).stdout.strip()
            versions.append((f"old ({short or old_rev})", export_tree(old_rev, Path(tmp))))
        versions.append((f"new ({c.git_commit()}, this tree)", c.REPO_ROOT))
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in versions}
        for n in range(args.rounds):
            order = versions if n % 2 == 0 else list(reversed(versions))  # alternate who goes first
            for label, root in order:
                result = run_profile(root, args.target, args.timeout)
                runs[label].append(result)
                shown = result.get("error") or (
                    f"{result['elapsed_s']:.1f} s, {result['cpu']:g} cores, {result['memory_gb']:g} GB, {result['verdict']}, "
                    f"levels {result['sweep_levels']}, steady {result['phases'].get('steady', 0):.1f} s"
                )
                print(f"round {n + 1}/{args.rounds} {label}: {shown}", flush=True)
    rows, figures = [], {}
    for label, _ in versions:
        row, figures[label] = summarize_version(label, runs[label])
        rows.append(row)
        missing += [f"{label}: {r['error']}" for r in runs[label] if "error" in r]
    ratios = []
    labels = [label for label, _ in versions]
    new = figures[labels[-1]]
    if len(labels) == 2 and figures[labels[0]].get("seconds_median") and new.get("seconds_median"):
        value = new["seconds_median"] / figures[labels[0]]["seconds_median"]
        ratios.append(c.ratio_entry("seconds per profile new / old (medians)", value, "<= 0.5 (about half)", value <= 0.55))
    if "cpu_spread" in new:
        ratios.append(c.ratio_entry("new: CPU spread across profiles (cores)", new["cpu_spread"], f"<= {STEP:g} (one rounding step)", new["cpu_spread"] <= STEP + 1e-9))
        ratios.append(c.ratio_entry("new: memory spread across profiles (GB)", new["memory_spread"], f"<= {STEP:g} (one rounding step)", new["memory_spread"] <= STEP + 1e-9))
    if len(labels) == 2 and "cpu_spread" in figures[labels[0]]:
        old = figures[labels[0]]
        ratios.append(c.ratio_entry("old: CPU / memory spread (information)", max(old["cpu_spread"], old["memory_spread"]), "(information)", None))
    notes += [
        f"{args.target} target, the example's own profile settings (duration_s 20, max_concurrency 32), {args.rounds} profiles per version, "
        "old and new alternating (each round the other goes first), each in its own interpreter on a fresh copy of the example",
        "seconds per profile = ProfileResult.elapsed_s (sweep, steady phase, verification, gates, reports; not the deploy); "
        "sweep / steady / verify = medians of the phases' measured windows",
        "old: every sweep level and phase is its own Locust run of fixed length, the verification a second container; "
        "new: one live load, levels and steady phase end when decided, verification by docker update in place",
    ]
    c.report_and_save(
        NAME if args.target == "process" else f"{NAME}_{args.target}", TITLE.format(target=args.target),
        ("version", "profiles", "s per profile median (min-max)", "sweep s", "steady s", "verify s",
         "CPU (cores) each", "memory (GB) each", "spread CPU / GB", "within one step", "verification"),
        rows, ratios, missing, notes, data={"target": args.target, "old_rev": old_rev, "versions": figures},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
