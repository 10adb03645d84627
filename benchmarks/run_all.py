"""Run every benchmark (each as its own subprocess), then write the latest results into the README.

Each script also runs alone; here they share one run id (`MLDEPLOY_BENCH_RUN_ID`) so one can reuse
another's results from the same run (bench_pytest_walltime reuses bench_image_build's). A script
that is missing or fails is listed as such in the README instead of stopping the run.

    python benchmarks/run_all.py                  # all of them, then README
    python benchmarks/run_all.py --only server    # just bench_server.py, then README
    python benchmarks/run_all.py --readme-only    # rebuild the README table from results/*.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SCRIPTS = [
    "bench_server",
    "bench_server_stacks",
    "bench_validation",
    "bench_image_build",
    "bench_pytest_walltime",
    "bench_properties",
    "bench_loadgen",
    "bench_profile",
    "bench_reliability",
    "bench_cold_ci",
]
"""In run order: image build before pytest wall time, whose image numbers it reuses."""
MIN_TIMEOUT = {"bench_cold_ci": 3600.0}
"""Scripts that need longer than --timeout by design (bench_cold_ci: eight cold builds of two minutes or more)."""

README = c.BENCH_DIR / "README.md"
START = "<!-- results:start (written by run_all.py) -->"
END = "<!-- results:end -->"


def run_script(name: str, timeout: float) -> dict[str, Any]:
    """Run benchmarks/<name>.py, streaming its output; which results files it wrote, and how it ended."""
    path = c.BENCH_DIR / f"{name}.py"
    if not path.exists():
        print(f"\n=== {name}: MISSING (benchmarks/{name}.py has not landed yet)", flush=True)
        return {"script": name, "status": "missing", "results": []}
    print(f"\n=== {name} ===", flush=True)
    before = {p: p.stat().st_mtime for p in c.RESULTS_DIR.glob("*.json")} if c.RESULTS_DIR.exists() else {}
    started = time.monotonic()
    status, output = tee([sys.executable, str(path)], timeout)
    seconds = time.monotonic() - started
    fallback = c.RESULTS_DIR / f"{name}.json"
    written = sorted(p.stem for p in c.RESULTS_DIR.glob("*.json") if before.get(p) != p.stat().st_mtime) \
        if c.RESULTS_DIR.exists() else []
    if written and fallback.exists() and name not in written:
        fallback.unlink()  # an earlier stand-in for a script that now writes its own results
    if not written:
        c.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        fallback.write_text(json.dumps({
            "name": name, "title": f"{name}.py (printed output; it wrote no results JSON)",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": os.environ.get(c.RUN_ID_ENV),
            "command": f"python benchmarks/{name}.py", "commit": c.git_commit(),
            "missing": [f"benchmarks/{name}.py wrote no results/<name>.json ({status}); its last output lines are shown"],
            "output": output[-60:],
        }, indent=2) + "\n")
        written = [name]
    print(f"=== {name}: {status} in {seconds:.0f} s, wrote {', '.join(written) or 'no results'}", flush=True)
    return {"script": name, "status": status, "seconds": round(seconds, 1), "results": written}


def tee(cmd: list[str], timeout: float) -> tuple[str, list[str]]:
    """Run `cmd`, echoing its output as it comes; (status, output lines)."""
    lines: list[str] = []
    proc = subprocess.Popen(cmd, cwd=c.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return f"timed out after {timeout:.0f} s", lines
    code = proc.wait()
    return ("ok" if code == 0 else f"exit {code}"), lines


# ---- README --------------------------------------------------------------------------------------

def render_result(result: dict[str, Any]) -> list[str]:
    """One results JSON as Markdown: its table (whatever shape it has), ratios, missing pieces, notes."""
    lines = [f"#### {result.get('title') or result.get('name')}", ""]
    meta = [f"`{result['command']}`" if result.get("command") else None,
            result.get("date"), f"commit {result['commit']}" if result.get("commit") else None,
            f"load avg {result['machine']['load_1m']}" if isinstance(result.get("machine"), dict) and "load_1m" in result["machine"] else None]
    if any(meta):
        lines += ["_" + " · ".join(m for m in meta if m) + "_", ""]
    header, rows = result.get("header"), result.get("rows")
    if header and isinstance(rows, list):
        lines += [c.format_table(header, rows), ""]
    elif isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        keys = list(dict.fromkeys(k for r in rows for k in r))
        lines += [c.format_table(keys, [[_cell(r.get(k)) for k in keys] for r in rows]), ""]
    else:
        flat = [(k, v) for k, v in result.items()
                if k not in {"name", "title", "date", "command", "commit", "machine", "run_id"} and not isinstance(v, (dict, list))]
        if flat:
            lines += [c.format_table(("key", "value"), [(k, _cell(v)) for k, v in flat]), ""]
    ratios = result.get("ratios") or []
    if ratios and all(isinstance(r, dict) for r in ratios):
        lines += [c.format_table(("ratio", "value", "target", "met"),
                                 [(r.get("name"), _cell(r.get("value")), r.get("target", "-"), _met(r.get("met"))) for r in ratios]), ""]
    if result.get("output"):
        lines += ["```", *result["output"], "```", ""]
    for item in result.get("missing") or []:
        lines.append(f"- **missing:** {item}")
    for item in result.get("notes") or []:
        lines.append(f"- {item}")
    return lines + [""]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)[:80]
    return str(value)


def _met(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def render_section(outcomes: list[dict[str, Any]], command: str) -> str:
    """The README's results section: date, machine, command, then one block per benchmark."""
    m = c.machine()
    results = sorted(c.RESULTS_DIR.glob("*.json"), key=lambda p: p.stat().st_mtime) if c.RESULTS_DIR.exists() else []
    lines = [START, "", f"Latest run: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{m['cores']} cores ({m['cpu'] or 'unknown CPU'}), Python {m['python']}, commit {c.git_commit()}.",
             "", f"Command: `{command}`", ""]
    if outcomes:
        lines += [c.format_table(("script", "status", "seconds", "results"),
                                 [(o["script"], o["status"], o.get("seconds", "-"), ", ".join(o["results"]) or "-")
                                  for o in outcomes]), ""]
    for path in results:
        try:
            lines += render_result(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            lines += [f"#### {path.name}", "", f"(could not render: {exc})", ""]
    return "\n".join(lines + [END])


def write_readme(section: str) -> None:
    """Replace the results section of the README (appending one if it has none)."""
    text = README.read_text() if README.exists() else "# Benchmarks\n\n## Latest results\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    README.write_text(text)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated script names (bench_ prefix optional)")
    parser.add_argument("--skip", default="", help="comma-separated script names to leave out")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per script")
    parser.add_argument("--readme-only", action="store_true", help="only rebuild the README from results/*.json")
    args = parser.parse_args(argv)

    def names(text: str) -> set[str]:
        return {n if n.startswith("bench_") else f"bench_{n}" for n in (t.strip() for t in text.split(",")) if n}

    only, skip = names(args.only), names(args.skip)
    unknown = (only | skip) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCRIPTS)}")
    command = " ".join(["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    outcomes: list[dict[str, Any]] = []
    if not args.readme_only:
        os.environ[c.RUN_ID_ENV] = uuid.uuid4().hex
        for name in SCRIPTS:
            if (only and name not in only) or name in skip:
                continue
            outcomes.append(run_script(name, max(args.timeout, MIN_TIMEOUT.get(name, 0.0))))
    write_readme(render_section(outcomes, command))
    print(f"\nwrote {README.relative_to(c.REPO_ROOT)}")
    if outcomes:
        print(c.format_table(("script", "status", "seconds"), [(o["script"], o["status"], o.get("seconds", "-")) for o in outcomes]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
