"""Run the reliability suite and report its figures: scenarios tried / held / failed, by area.

    python benchmarks/bench_reliability.py            # run `pytest -m reliability`, print, write results/reliability.json
    python benchmarks/bench_reliability.py --docs     # ... and rewrite the figures in docs/reliability.md
    python benchmarks/bench_reliability.py --from-json benchmarks/results/reliability.json --docs   # no run (also a tally)

The suite itself runs in CI as part of `python -m pytest`; this script runs only the tests marked
`reliability` and turns the tally that tests/reliability/conftest.py writes into the same results
JSON as the other benchmarks, and into the table in docs/reliability.md. Nothing here is timed
against a target.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DOCS = c.REPO_ROOT / "docs" / "reliability.md"
START = "<!-- figures:start (written by benchmarks/bench_reliability.py --docs) -->"
END = "<!-- figures:end -->"
HEADER = ("area", "tests", "tried", "held", "failed", "skipped tests", "seconds")


def run_suite(json_path: Path, extra: list[str]) -> tuple[int, float]:
    """`pytest -m reliability` over tests/, the tally written to `json_path`; (exit code, seconds)."""
    env = {**os.environ, "MLDEPLOY_RELIABILITY_JSON": str(json_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(c.REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "pytest", "tests", "-m", "reliability", "-q", "-p", "no:cacheprovider", *extra]
    print("$ " + " ".join(cmd[1:]), flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=c.REPO_ROOT, env=env)
    return code, time.monotonic() - started


def table(summary: dict[str, Any]) -> list[list[Any]]:
    """One row per area and a total row, from the conftest's tally."""
    tests: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for scenario in summary["scenarios"]:
        tests[scenario["area"]] = tests.get(scenario["area"], 0) + 1
        seconds[scenario["area"]] = seconds.get(scenario["area"], 0.0) + scenario["duration_s"]
    rows: list[list[Any]] = []
    for area, counts in summary["areas"].items():
        rows.append([area, tests.get(area, 0), counts["tried"], counts["held"], counts["failed"], counts["skipped"],
                     f"{seconds.get(area, 0.0):.1f}"])
    t = summary["totals"]
    rows.append(["**total**", sum(tests.values()), t["tried"], t["held"], t["failed"], summary["tests"]["skipped"],
                 f"{sum(seconds.values()):.1f}"])
    return rows


def campaign_lines(summary: dict[str, Any]) -> list[str]:
    """Per-campaign counts and notes, for the docs and the results notes."""
    lines: list[str] = []
    for scenario in summary["scenarios"]:
        for kind, counts in (scenario.get("campaign") or {}).items():
            line = f"{scenario['area']}: {kind}: {counts['tried']} tried, {counts['held']} held, {counts['failed']} failed"
            if counts.get("notes"):
                line += " (" + "; ".join(counts["notes"]) + ")"
            lines.append(line)
    return lines


def write_docs(summary: dict[str, Any], rows: list[list[Any]], command: str) -> None:
    """Replace the figures section of docs/reliability.md."""
    m = c.machine()
    t = summary["totals"]
    section = "\n".join([
        START, "",
        f"Measured {summary['date']} on commit {c.git_commit()}, {m['cores']} cores, Python {m['python']} "
        f"(load average {m['load_1m']}); command: `{command}`.", "",
        f"**{t['tried']} tried, {t['held']} held, {t['failed']} failed** "
        f"({summary['tests']['passed']} tests passed, {summary['tests']['failed']} failed, {summary['tests']['skipped']} skipped).", "",
        c.format_table(HEADER, rows), "",
        "Campaigns inside those tests:", "",
        *[f"- {line}" for line in campaign_lines(summary)], "",
        END,
    ])
    text = DOCS.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)
    print(f"wrote {DOCS.relative_to(c.REPO_ROOT)}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true", help="rewrite the figures in docs/reliability.md")
    parser.add_argument("--from-json", metavar="PATH", help="report an existing tally instead of running the suite")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. -- -m 'reliability and not docker'")
    args = parser.parse_args(argv)
    notes: list[str] = []
    if args.from_json:
        json_path, code, seconds = Path(args.from_json), None, None
    else:
        json_path = Path(tempfile.mkdtemp(prefix="mldeploy-reliability-")) / "reliability.json"
        code, seconds = run_suite(json_path, args.pytest_args)
        notes.append(f"pytest exit code {code}, {seconds:.0f} s wall time")
    if not json_path.exists():
        print(f"no tally at {json_path}: did the reliability tests run?", file=sys.stderr)
        return 1
    summary = json.loads(json_path.read_text())
    if "scenarios" not in summary and "summary" in summary.get("data", {}):  # a results/reliability.json
        summary = summary["data"]["summary"]
        code, seconds = summary.get("exit_code"), summary.get("seconds")
    rows = table(summary)
    notes += campaign_lines(summary)
    notes += [f"{s['test']}: {s['outcome']}: {s['detail'][:300]}" for s in summary["scenarios"] if s["outcome"] != "passed"]
    c.report_and_save("reliability", "Reliability suite: scenarios tried / held / failed (pytest -m reliability)",
                      HEADER, rows, notes=notes, data={"summary": summary, "exit_code": code, "seconds": seconds})
    if args.docs:
        write_docs(summary, rows, "python benchmarks/bench_reliability.py --docs")
    return 0 if code in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
