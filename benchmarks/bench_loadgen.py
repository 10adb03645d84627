"""How many requests/s the profiler's load generator can drive here, against `wrk` on the same endpoint.

The endpoint is trivial (this script serves it: uvicorn + httptools, a fixed JSON answer to any
POST), so the server is not the bottleneck and each client shows its own ceiling. Both clients
get the same connections and time, one after the other; the script prints both rates and the
ratio, and writes `results/loadgen.json`, which also sets Locust's ceiling beside our scoring
server's own rate from `results/server.json` (bench_server.py) when that file is there.
Run: `python benchmarks/bench_loadgen.py [--seconds 10] [--connections 32] [--processes 1]`.
"""
from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

NAME = "loadgen"
TITLE = "Load generator ceiling: Locust (the profiler's) vs wrk on a trivial endpoint"

BODY = b'{"data": [[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]]}'


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    """A trivial ASGI endpoint: reads the body, answers `[1.0]`."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"[1.0]"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    here = Path(__file__).resolve().parent
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_loadgen:app", "--host", "127.0.0.1", "--port", str(port),
         "--http", "httptools", "--loop", "uvloop", "--log-level", "warning", "--no-access-log"],
        cwd=here,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{port}/score", data=BODY, timeout=1)
            return server
        except requests.RequestException:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the trivial endpoint did not start")


def _locust_rate(base_url: str, seconds: int, connections: int, processes: int) -> tuple[float, float]:
    from pytest_mldeploy.checks.profiling.loadgen import LocustLoad

    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.txt"
        bodies.write_bytes(BODY + b"\n")
        run = LocustLoad(base_url, bodies, Path(tmp), processes=processes).run(connections, seconds, warmup_s=1)
        stats = run.stats()
        return stats.qps, run.generator_cpu


def _wrk_rate(base_url: str, seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        body = BODY.decode().replace("\\", "\\\\").replace('"', '\\"')
        script.write(f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", script.name, base_url + "/score"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    Path(script.name).unlink()
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not match:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    return float(match.group(1))


def service_rates() -> dict[str, Any]:
    """Our scoring server's measured req/s (1 and 2 workers) from results/server.json, with where they came from."""
    found = c.load_results("server")
    if not found:
        return {}
    data = found.get("data") or {}
    rates: dict[str, Any] = {"source": f"results/server.json ({found.get('date')}, commit {found.get('commit')})"}
    ours = [r.get("rps") for r in (data.get("runs") or {}).get("ours") or [] if isinstance(r, dict)]
    if ours and all(isinstance(v, (int, float)) for v in ours):
        rates["ours_1_worker"] = c.Spread.of(ours).median
    two = ((data.get("runs_two_workers") or {}).get("rps") or {}).get("median")
    if isinstance(two, (int, float)):
        rates["ours_2_workers"] = float(two)
    return rates


def write(args: argparse.Namespace, base_url: str, locust_qps: float, locust_cpu: float, wrk_qps: float) -> Path:
    """results/loadgen.json: both clients' rates, Locust/wrk, and Locust's ceiling over the service's own rate."""
    header = ["client", "req/s", "busiest load process (cores)", "how"]
    rows = [["locust", c.fmt(locust_qps, 0), c.fmt(locust_cpu, 2),
             f"FastHttpUser, the profiler's locustfile, {args.processes} process(es)"],
            ["wrk", c.fmt(wrk_qps, 0), "-", "1 thread"]]
    ratios = [c.ratio_entry("req/s locust / wrk", c.ratio(locust_qps, wrk_qps), "(information: Locust's cost per request)", None)]
    rates = service_rates()
    missing = [] if rates else ["results/server.json: no scoring-server rate to set Locust's ceiling against; "
                                "run python benchmarks/bench_server.py first"]
    for key, label in (("ours_1_worker", "1 worker"), ("ours_2_workers", "2 workers")):
        if key in rates:
            value = c.ratio(locust_qps, rates[key])
            ratios.append(c.ratio_entry(f"locust ceiling / our server's req/s, {label} ({rates[key]:.0f})", value,
                                        "> 1 (Locust can drive the service to its limit)", value > 1))
    notes = [f"endpoint: trivial POST /score on {base_url} (uvicorn, httptools, uvloop, one process, fixed answer), so "
             "the server is not the bottleneck and each client shows its own ceiling",
             f"{args.connections} connections (Locust users), {args.seconds} s each, Locust first then wrk; nothing pinned",
             "our server's rates come from bench_server.py (wrk -t1 -c8, server pinned to core 0), not from this run"
             + (f": {rates['source']}" if rates else "")]
    data = {"args": vars(args), "locust_qps": locust_qps, "locust_busiest_process_cores": locust_cpu,
            "wrk_qps": wrk_qps, "service_rates": rates}
    return c.write_results(NAME, title=TITLE, header=header, rows=rows, ratios=ratios, missing=missing, notes=notes, data=data)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes (--processes N)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    port = _free_port()
    server = _serve(port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        locust_qps, locust_cpu = _locust_rate(base_url, args.seconds, args.connections, args.processes)
        wrk_qps = _wrk_rate(base_url, args.seconds, args.connections)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"endpoint: trivial POST /score on {base_url} (uvicorn, httptools, one process)")
    print(f"connections {args.connections}, {args.seconds} s each, locust processes {args.processes}")
    print(f"locust (FastHttpUser, profiler's locustfile): {locust_qps:10.1f} req/s  (busiest load process {locust_cpu:.2f} cores)")
    print(f"wrk (1 thread):                                {wrk_qps:10.1f} req/s")
    print(f"ratio locust / wrk:                            {locust_qps / wrk_qps:10.2f}")
    path = write(args, base_url, locust_qps, locust_cpu, wrk_qps)
    print(f"\nwrote {path.relative_to(c.REPO_ROOT)}")


if __name__ == "__main__":
    main()
