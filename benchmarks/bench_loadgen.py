"""How many requests/s the profiler's load generator can drive here, against `wrk` on the same endpoint.

The endpoint is trivial (this script serves it: uvicorn + httptools, a fixed JSON answer to any
POST), so the server is not the bottleneck and each client shows its own ceiling. Both clients
get the same connections and time, one after the other; the script prints both rates and the
ratio. Run: `python benchmarks/bench_loadgen.py [--seconds 10] [--connections 32] [--processes 1]`.
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

import requests

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes (--processes N)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
