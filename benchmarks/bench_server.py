"""Scoring server throughput and latency: ours against azureml-inference-server-http, same run.

Both servers serve the sklearn-diabetes example (`score.py` + the Ridge model) from the same
Azure ML-style app root, one worker each, pinned to core 0; `wrk` (pinned to core 1) POSTs the
same 2-row body to each. Our server as it was at the end of the last round (`git archive` of
`--last-round`, served from a temporary folder) runs in the same rounds, so this round's figures
stand beside the last round's under the same load. After a warm-up, rounds alternate the order
of the servers and the median is reported with the range across rounds. Besides req/s, each of
our servers' CPU time per request is read from /proc (all its processes, user + system): the
figure that other work on a shared machine disturbs least. The model-only line is
`Ridge.predict()` on the same 2 rows in a loop on core 0, with its CPU time per call: the ceiling
no server can beat. Ours with 2 workers is a line on its own (it uses both cores, so it shares
core 1 with wrk).

    python benchmarks/bench_server.py [--rounds 5] [--duration 8] [--connections 8] [--last-round REF]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "server"
TITLE = "Scoring server: ours vs azureml-inference-server-http (sklearn-diabetes, 2-row body)"

AZMLINFSRV_VERSION = "1.5.1"
AZMLINFSRV_PACKAGES = [
    f"azureml-inference-server-http=={AZMLINFSRV_VERSION}",
    "scikit-learn==1.9.1",
    "joblib",
    "inference-schema[numpy-support]",
]

TARGET_RPS_RATIO = 3.0
#: Issue #13: one worker at >= 50 % of the model-only limit, the per-request validation included.
TARGET_MODEL_SHARE = 0.50
#: The code the last round ended with (before issue #13's work on the server), for --last-round.
LAST_ROUND_REF = "8aec1189f424483253dda5d0bea7c82fe68d3efb"

_MODEL_ONLY_CODE = """
import json, sys, time, joblib, numpy as np
model = joblib.load(sys.argv[1])
rows = np.array(json.loads(sys.argv[2])["data"])
seconds, rounds = float(sys.argv[3]), int(sys.argv[4])
for _ in range(200):
    model.predict(rows)
rates, cpu_us = [], []
for _ in range(rounds):
    n, start, cpu = 0, time.perf_counter(), time.thread_time()
    while True:
        for _ in range(100):
            model.predict(rows)
        n += 100
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    rates.append(n / elapsed)
    cpu_us.append((time.thread_time() - cpu) / n * 1e6)
print(json.dumps({"rates": rates, "cpu_us": cpu_us}))
"""


def two_row_body() -> bytes:
    """The first 2-row request in the example's sample_requests.txt."""
    for line in (c.EXAMPLE_DIR / "sample_requests.txt").read_text().splitlines():
        if line.strip() and len(json.loads(line)["data"]) == 2:
            return line.strip().encode("utf-8")
    raise c.MissingPiece("a 2-row request in example_projects/sklearn-diabetes/sample_requests.txt", "add one")


def azmlinfsrv_venv() -> Path:
    """The peer's own virtual environment (created on first use under ~/.cache/mldeploy-bench)."""
    return c.ensure_venv("azmlinfsrv-venv", AZMLINFSRV_PACKAGES, "azmlinfsrv")


def their_server(app: c.AppRoot, venv: Path, port: int) -> c.ServerProcess:
    cmd = [str(venv / "bin" / "azmlinfsrv"), "--entry_script", str(app.source_dir / app.entry_script),
           "--port", str(port), "--worker_count", "1"]
    return c.ServerProcess("azmlinfsrv", cmd, port=port, env={**app.env(), "WORKER_COUNT": "1"},
                           cwd=app.root, cores=[c.SERVER_CORE])


def answer(server: c.ServerProcess, body: bytes) -> list[float]:
    """The server's predictions for `body`; raises when it does not answer 200 with a list of 2."""
    response = requests.post(server.base_url + "/score", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"{server.name}: POST /score answered {response.status_code}: {response.text[:300]}")
    values = response.json()
    if not isinstance(values, list) or len(values) != 2:
        raise RuntimeError(f"{server.name}: POST /score answered {values!r}, expected 2 predictions")
    return [float(v) for v in values]


def model_only(app: c.AppRoot, body: bytes, seconds: float, rounds: int) -> tuple[c.Spread, c.Spread]:
    """Ridge.predict() on the 2 rows alone, on the server core: calls per second and CPU µs per call (over rounds)."""
    model = app.model_dir / "sklearn_regression_model.pkl"
    cmd = c.pinned([sys.executable, "-c", _MODEL_ONLY_CODE, str(model), body.decode(), str(seconds), str(rounds)],
                   [c.SERVER_CORE])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * rounds + 120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return c.Spread.of(result["rates"]), c.Spread.of(result["cpu_us"])


def last_round_tree(ref: str, directory: Path) -> Path:
    """The repository at `ref` (`git archive`), where our server as it was then can be run from."""
    tree = directory / "last-round"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(c.REPO_ROOT), "archive", ref, "pytest_mldeploy"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a server's supervisor and workers, or gunicorn's arbiter and worker)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def cpu_seconds(server: c.ServerProcess) -> float:
    """User + system CPU seconds used so far by the server's processes (Linux /proc)."""
    total = 0
    assert server.proc is not None
    for pid in _process_tree(server.proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(servers: list[c.ServerProcess], script: Path, args: argparse.Namespace,
            rounds: int) -> tuple[dict[str, list[c.WrkResult]], dict[str, list[float]]]:
    """Warm each server up, then `rounds` rounds alternating the order; every wrk run per server, and
    each run's server CPU µs per request."""
    url = {s.name: s.base_url + "/score" for s in servers}
    for server in servers:
        c.run_wrk(url[server.name], script, duration_s=args.warmup, threads=args.threads, connections=args.connections)
    runs: dict[str, list[c.WrkResult]] = {s.name: [] for s in servers}
    cpu: dict[str, list[float]] = {s.name: [] for s in servers}
    for r in range(rounds):
        order = servers if r % 2 == 0 else list(reversed(servers))
        for server in order:
            before = cpu_seconds(server)
            result = c.run_wrk(url[server.name], script, duration_s=args.duration,
                               threads=args.threads, connections=args.connections)
            used_us = (cpu_seconds(server) - before) / max(1, result.requests) * 1e6
            if result.non_2xx_or_errors:
                print(f"warning: {server.name} round {r + 1}: {result.errors} (non-2xx or socket errors)", flush=True)
            runs[server.name].append(result)
            cpu[server.name].append(used_us)
            print(f"  round {r + 1} {server.name:<16} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                  f"p99 {result.p99_ms:6.2f} ms  CPU {used_us:6.1f} µs/req", flush=True)
    return runs, cpu


def summarise(runs: list[c.WrkResult], cpu_us: list[float]) -> dict[str, Any]:
    return {
        "rps": c.Spread.of([r.rps for r in runs]),
        "p50": c.Spread.of([r.p50_ms for r in runs]),
        "p99": c.Spread.of([r.p99_ms for r in runs]),
        "cpu_us": c.Spread.of(cpu_us),
        "errors": sum(r.non_2xx_or_errors for r in runs),
    }


def row(label: str, peer: str, s: dict[str, Any]) -> list[Any]:
    return [label, peer, s["rps"].fmt(0), f"{s['rps'].spread_pct:.0f} %", s["p50"].fmt(2), s["p99"].fmt(2),
            s["cpu_us"].fmt(1), s["errors"]]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per server (median reported)")
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--two-worker-rounds", type=int, default=3, help="rounds for ours with 2 workers (0 to skip)")
    parser.add_argument("--last-round", default=LAST_ROUND_REF, metavar="REF",
                        help="git revision whose server is measured as the last round's (default: the end of the "
                             "last round); 'none' to skip it")
    args = parser.parse_args(argv)

    header = ["server", "peer", "req/s median (min-max)", "spread", "p50 ms", "p99 ms", "server CPU µs/req", "errors"]
    rows: list[list[Any]] = []
    missing: list[str] = []
    notes = [f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, warm-up {args.warmup:g}s, "
             f"{args.rounds} alternating rounds; server on core {c.SERVER_CORE}, wrk on core {c.LOAD_CORE}",
             "latency columns: median of per-round p50/p99 (range across rounds in brackets)",
             "server CPU µs/req: user + system CPU of all the server's processes during a round / its requests "
             "(model-only line: CPU µs per predict() call); the share by CPU is model-only CPU / server CPU"]
    data: dict[str, Any] = {"args": vars(args)}
    if c.cpu_count() < 2:
        notes.append(f"only {c.cpu_count()} core(s) available: server and wrk share cores, numbers are not comparable")

    busy = c.wait_until_quiet()
    if busy:
        notes.append(busy)
        print(f"warning: {busy}", flush=True)
    body = two_row_body()
    try:
        venv = azmlinfsrv_venv()
    except subprocess.CalledProcessError as exc:
        print(f"MISSING: the azmlinfsrv virtual environment could not be set up ({exc}); "
              f"try: python -m pip install {' '.join(AZMLINFSRV_PACKAGES)} in {c.CACHE_DIR / 'azmlinfsrv-venv'}")
        return 1
    data["azmlinfsrv_version"] = c.venv_version(venv, "azureml-inference-server-http")
    data["body"] = body.decode()
    last_label = None
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        tmpdir = Path(tmp)
        app = c.lay_out_example(tmpdir)
        script = c.wrk_script(body, tmpdir)

        print("model only: Ridge.predict() on the 2 rows in a loop, core 0 ...", flush=True)
        model, model_cpu = model_only(app, body, seconds=2.0, rounds=5)
        data["model_only_per_s"] = model
        data["model_only_cpu_us"] = model_cpu
        rows.append(["Ridge.predict() alone", "model-only limit", model.fmt(0), f"{model.spread_pct:.0f} %", "-", "-",
                     model_cpu.fmt(1), "-"])

        theirs_proc = their_server(app, venv, c.free_port())
        servers = [theirs_proc]
        try:
            theirs_proc.start()
            expected = answer(theirs_proc, body)
            candidates = [("ours", None)]
            if args.last_round != "none":
                candidates.append(("ours-last-round", args.last_round))
            for name, ref in candidates:
                proc = None
                try:
                    proc = c.our_server(app, port=c.free_port(), workers=1, name=name)
                    if ref is not None:
                        tree = last_round_tree(ref, tmpdir)
                        proc.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH", "")]))
                        last_label = f"ours, 1 worker, last round ({ref[:7]})"
                    servers.insert(len(servers) - 1, proc)
                    proc.start()
                    got = answer(proc, body)
                    if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(got, expected)):
                        raise RuntimeError(f"{name} answered {got}, azmlinfsrv {expected}: not the same service")
                except c.MissingPiece as exc:
                    missing.append(str(exc))
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    missing.append(f"{name} could not be measured: {exc}")
                    if proc is not None:
                        proc.close()
                        servers.remove(proc)
            print(f"measuring {', '.join(s.name for s in servers)} ...", flush=True)
            runs, cpu = measure(servers, script, args, args.rounds)
        finally:
            for server in servers:
                server.close()

        theirs = summarise(runs["azmlinfsrv"], cpu["azmlinfsrv"])
        ours = summarise(runs["ours"], cpu["ours"]) if "ours" in runs else None
        last = summarise(runs["ours-last-round"], cpu["ours-last-round"]) if "ours-last-round" in runs else None
        data["runs"] = runs
        data["cpu_us_per_request"] = cpu
        if ours:
            rows.append(row("ours, 1 worker, this round", "", ours))
        if last:
            rows.append(row(last_label or "ours, 1 worker, last round", "", last))
        rows.append(row(f"azmlinfsrv {data['azmlinfsrv_version']}, 1 worker", "azureml-inference-server-http", theirs))

        two = None
        if ours and args.two_worker_rounds > 0:
            print("ours with 2 workers (cores 0-1, shares core 1 with wrk) ...", flush=True)
            proc = c.our_server(app, port=c.free_port(), workers=2, cores=[0, 1], name="ours-2w")
            try:
                proc.start()
                answer(proc, body)
                two_runs, two_cpu = measure([proc], script, args, args.two_worker_rounds)
                two = summarise(two_runs["ours-2w"], two_cpu["ours-2w"])
                data["runs_two_workers"] = two
                rows.append(row("ours, 2 workers (cores 0-1)", "", two))
            except RuntimeError as exc:
                missing.append(f"ours with 2 workers could not be measured: {exc}")
            finally:
                proc.close()

    ratios = []
    if ours:
        rps_ratio = c.ratio(ours["rps"].median, theirs["rps"].median)
        paired = c.Spread.of([o.rps / t.rps for o, t in zip(runs["ours"], runs["azmlinfsrv"])])
        p99_ratio = c.ratio(ours["p99"].median, theirs["p99"].median)
        share = c.ratio(ours["rps"].median, model.median)
        cpu_share = c.ratio(model_cpu.median, ours["cpu_us"].median)
        ratios = [
            c.ratio_entry("req/s ours / azmlinfsrv", rps_ratio, f">= {TARGET_RPS_RATIO:g}x", rps_ratio >= TARGET_RPS_RATIO),
            c.ratio_entry("  per-round pairs (min-max)", paired.median, f"{paired.low:.2f}-{paired.high:.2f}", None),
            c.ratio_entry("p99 ours / azmlinfsrv", p99_ratio,
                          f"< 1 (ours {ours['p99'].median:.2f} ms vs {theirs['p99'].median:.2f} ms)", p99_ratio < 1),
            c.ratio_entry("req/s ours / model-only", share, f">= {TARGET_MODEL_SHARE:.0%} (issue #13)",
                          share >= TARGET_MODEL_SHARE),
            c.ratio_entry("  by CPU: model-only CPU per call / ours per request", cpu_share,
                          f">= {TARGET_MODEL_SHARE:.0%} (issue #13)", cpu_share >= TARGET_MODEL_SHARE),
        ]
        if last:
            last_share = c.ratio(last["rps"].median, model.median)
            last_cpu_share = c.ratio(model_cpu.median, last["cpu_us"].median)
            paired_last = c.Spread.of([o.rps / p.rps for o, p in zip(runs["ours"], runs["ours-last-round"])])
            paired_cpu = c.Spread.of([p / o for o, p in zip(cpu["ours"], cpu["ours-last-round"])])
            ratios += [
                c.ratio_entry("last round: req/s / model-only", last_share, "(same run)", None),
                c.ratio_entry("last round: by CPU", last_cpu_share, "(same run)", None),
                c.ratio_entry("req/s this round / last round, per-round pairs", paired_last.median,
                              f"{paired_last.low:.2f}-{paired_last.high:.2f}", None),
                c.ratio_entry("CPU per request last round / this round, per-round pairs", paired_cpu.median,
                              f"{paired_cpu.low:.2f}-{paired_cpu.high:.2f}", None),
            ]
        if two:
            scale = c.ratio(two["rps"].median, ours["rps"].median)
            ratios.append(c.ratio_entry("req/s ours 2 workers / 1 worker", scale, "(information)", None))
    rps_vs_model = c.ratio(theirs["rps"].median, model.median)
    ratios.append(c.ratio_entry("req/s azmlinfsrv / model-only", rps_vs_model, "(information)", None))
    notes.append("reference (docs): azmlinfsrv ~940 req/s, p99 16 ms, wrk -t1 -c8 on a 2-core machine")
    notes.append("azmlinfsrv (gunicorn sync worker) answers `Connection: close`, so wrk reconnects for each of its requests")
    if last:
        notes.append(f"last round = our server at {args.last_round[:12]} (git archive), measured in the same rounds; "
                     f"both validate each request against the published ServiceInput")

    c.report_and_save(NAME, TITLE, header, rows, ratios, missing, notes, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
