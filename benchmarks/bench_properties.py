"""Property-test throughput: our `properties` check beside schemathesis, on the same running service.

One scoring server (ours; azmlinfsrv when ours has not landed) serves the sklearn-diabetes
example. Our check (`pytest_mldeploy.checks.properties.check_properties`) and `schemathesis run`
(in its own venv under ~/.cache/mldeploy-bench, positive mode, fuzzing phase, POST /score only,
one worker, same example budget, continuing past failures without shrinking) each generate schema-valid request bodies from the service's
`/swagger.json` and send them one at a time. Reported: examples (= requests sent) per second,
median over alternating rounds.

For schemathesis two rates are shown: over its test loop (first to last request, read from its
HAR report) and over the whole CLI run (process start-up and schema loading included). Ours runs
in-process, so its only overhead is fetching the swagger document.

    python benchmarks/bench_properties.py [--examples 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from bench_server import azmlinfsrv_venv, their_server  # noqa: E402

NAME = "properties"
TITLE = "Property-test throughput: our properties check vs schemathesis (same service, same swagger)"

SCHEMATHESIS_PACKAGES = ["schemathesis"]
SCHEMATHESIS_CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


def schemathesis_venv() -> Path:
    """schemathesis in its own virtual environment (it pins its own hypothesis and friends)."""
    return c.ensure_venv("schemathesis-venv", SCHEMATHESIS_PACKAGES, "schemathesis")


def run_ours(base_url: str, examples: int, seed: int) -> dict[str, Any]:
    """Our properties check against `base_url`: requests sent, seconds, outcome."""
    try:
        from pytest_mldeploy.checks.base import CheckContext
        from pytest_mldeploy.client import ScoringClient
        from pytest_mldeploy.checks.properties import check_properties
    except ImportError as exc:
        raise c.MissingPiece("pytest_mldeploy.checks.properties", f"cannot import it ({exc})") from None
    ctx = CheckContext(project=None, deployment=None, service=None, client=ScoringClient(base_url),
                       examples=examples, seed=seed)
    started = time.perf_counter()
    result = check_properties(ctx)
    seconds = time.perf_counter() - started
    sent = int(result.figures.get("requests", 0))
    return {"requests": sent, "seconds": seconds, "loop_seconds": seconds, "outcome": result.outcome.value,
            "summary": result.summary}


def run_schemathesis(venv: Path, base_url: str, examples: int, seed: int, workdir: Path) -> dict[str, Any]:
    """`schemathesis run` against the same service; requests counted from its HAR report."""
    har = workdir / f"schemathesis-{time.monotonic_ns()}.har"
    cmd = [str(venv / "bin" / "schemathesis"), "run", f"{base_url}/swagger.json", "--url", base_url,
           "--checks", SCHEMATHESIS_CHECKS, "--phases", "fuzzing", "--mode", "positive",
           "--max-examples", str(examples), "--workers", "1", "--seed", str(seed),
           "--include-path", "/score", "--include-method", "POST", "--suppress-health-check", "all",
           "--continue-on-failure", "--no-shrink",
           "--report", "har", "--report-har-path", str(har)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=600)
    seconds = time.perf_counter() - started
    if not har.exists():
        raise RuntimeError(f"schemathesis wrote no HAR report (exit {done.returncode}):\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    entries = [e for e in json.loads(har.read_text())["log"]["entries"]
               if e["request"]["method"] == "POST" and e["request"]["url"].rstrip("/").endswith("/score")]
    if not entries:
        raise RuntimeError(f"schemathesis sent no POST /score (exit {done.returncode}):\n{done.stdout[-1500:]}")
    starts = [dt.datetime.fromisoformat(e["startedDateTime"].replace("Z", "+00:00")) for e in entries]
    ends = [s + dt.timedelta(milliseconds=float(e.get("time") or 0)) for s, e in zip(starts, entries)]
    loop = (max(ends) - min(starts)).total_seconds()
    statuses: dict[str, int] = {}
    for e in entries:
        key = str(e["response"]["status"])
        statuses[key] = statuses.get(key, 0) + 1
    return {"requests": len(entries), "seconds": seconds, "loop_seconds": loop, "exit_code": done.returncode,
            "outcome": "passed" if done.returncode == 0 else "failed", "statuses": statuses}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="example budget for each tool per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    header = ["tool", "requests/round", "examples/s (test loop)", "examples/s (whole run)", "outcome"]
    rows: list[list[Any]] = []
    missing: list[str] = []
    notes: list[str] = []
    data: dict[str, Any] = {"args": vars(args)}

    busy = c.wait_until_quiet()
    if busy:
        notes.append(busy)
        print(f"warning: {busy}", flush=True)
    st_venv = schemathesis_venv()
    data["schemathesis_version"] = c.venv_version(st_venv, "schemathesis")
    with tempfile.TemporaryDirectory(prefix="bench-properties-") as tmp:
        workdir = Path(tmp)
        app = c.lay_out_example(workdir)
        try:
            server = c.our_server(app, port=c.free_port(), cores=None)
            service_name = "ours (python -m pytest_mldeploy.server, 1 worker)"
        except c.MissingPiece as exc:
            missing.append(f"{exc}; measured against azmlinfsrv instead")
            server = their_server(app, azmlinfsrv_venv(), c.free_port())
            service_name = "azmlinfsrv 1.5.1 (stand-in: ours is missing)"
        data["service"] = service_name
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "schemathesis": []}
        tools = {
            "ours": lambda: run_ours(server.base_url, args.examples, args.seed),
            "schemathesis": lambda: run_schemathesis(st_venv, server.base_url, args.examples, args.seed, workdir),
        }
        with server:
            for r in range(args.rounds):
                for tool in (["ours", "schemathesis"] if r % 2 == 0 else ["schemathesis", "ours"]):
                    if tool == "ours" and any("checks.properties" in m for m in missing):
                        continue
                    try:
                        run = tools[tool]()
                    except c.MissingPiece as exc:
                        missing.append(str(exc))
                        continue
                    runs[tool].append(run)
                    print(f"  round {r + 1} {tool:<13} {run['requests']:5d} requests  "
                          f"{run['requests'] / run['loop_seconds']:7.1f}/s loop  "
                          f"{run['requests'] / run['seconds']:7.1f}/s whole  {run['outcome']}", flush=True)
        data["runs"] = runs

    rates: dict[str, c.Spread] = {}
    for tool, label in (("ours", "ours: properties check (in-process)"),
                        ("schemathesis", f"schemathesis {data['schemathesis_version']} (CLI, -w 1)")):
        if not runs[tool]:
            rows.append([label, "-", "-", "-", "not run"])
            continue
        loop = c.Spread.of([x["requests"] / x["loop_seconds"] for x in runs[tool]])
        whole = c.Spread.of([x["requests"] / x["seconds"] for x in runs[tool]])
        rates[tool], rates[tool + "_whole"] = loop, whole
        outcomes = sorted({x["outcome"] for x in runs[tool]})
        statuses: dict[str, int] = {}
        for x in runs[tool]:
            for code, n in x.get("statuses", {}).items():
                statuses[code] = statuses.get(code, 0) + n
        if statuses:
            outcomes = [f"{'/'.join(outcomes)} (statuses: {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})"]
        requests = c.Spread.of([x["requests"] for x in runs[tool]])
        rows.append([label, requests.fmt(0), loop.fmt(1), whole.fmt(1), "/".join(outcomes)])

    ratios = []
    if "ours" in rates and "schemathesis" in rates:
        loop_ratio = c.ratio(rates["ours"].median, rates["schemathesis"].median)
        whole_ratio = c.ratio(rates["ours_whole"].median, rates["schemathesis_whole"].median)
        ratios = [
            c.ratio_entry("examples/s ours / schemathesis (test loop)", loop_ratio, "(higher is better)", None),
            c.ratio_entry("examples/s ours / schemathesis (whole run)", whole_ratio, "(higher is better)", None),
        ]
    notes.append(f"service: {service_name}, not pinned; one request at a time from each tool")
    notes.append(f"schemathesis: --phases fuzzing --mode positive -n {args.examples} -w 1 --checks {SCHEMATHESIS_CHECKS} "
                 "--include-path /score --include-method POST")
    notes.append("schemathesis runs with --continue-on-failure --no-shrink so a failure does not cut its budget short; "
                 "a failing run of ours includes Hypothesis shrinking, and its requests/round then differs from the budget")
    notes.append("the two generate differently: ours bounds unbounded numbers to +-1e9 (strategies.NUMBER_BOUND) and arrays to "
                 "10 items; schemathesis draws any float, e.g. +-1.8e308, which overflows the Ridge model's output")

    c.report_and_save(NAME, TITLE, header, rows, ratios, missing, notes, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
