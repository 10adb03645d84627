"""Start-up: logging, the listening socket, one uvicorn server per worker, and the worker supervisor.

The socket is bound before anything else, so the service answers (503 until init() is done) as soon
as it logs that it listens. With several workers the parent forks them over the same socket and
exits with a worker's non-zero code if one dies (e.g. its init() failed), after stopping the rest.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import Optional

from .app import ScoringApp, SharedReadiness
from .settings import Settings

log = logging.getLogger("mldeploy.server")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"mldeploy-server: {record.levelname}: {text}"
        return f"mldeploy-server: {text}"


def configure_logging(level: str) -> None:
    """Our lines on stderr prefixed `mldeploy-server:`; the entry script's logging at the same level."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(numeric)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the proto says
    # TCP, and without it every response waits ~40 ms for Nagle + delayed ACK (uvloop sets it anyway).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_worker(settings: Settings, sock: socket.socket, public_url: str, http: str = "httptools",
               loop: Optional[str] = None, readiness: Optional[SharedReadiness] = None, index: int = 0) -> int:
    """Serve on `sock` in this process until stopped (uvicorn + httptools, uvloop when installed).

    `http` and `loop` are uvicorn's choices; other values than the defaults are for benchmarks.
    """
    import uvicorn

    app = ScoringApp(settings, public_url, readiness, index)
    config = uvicorn.Config(
        app,
        http=http,
        loop=loop or _loop_name(),
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def serve(settings: Settings) -> int:
    """Run the server with `settings.workers` worker processes; the exit code for the process."""
    configure_logging(settings.log_level)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s; choose another --port/MLDEPLOY_PORT", settings.host, settings.port, exc)
        return 2
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    public_url = f"http://{shown_host}:{settings.port}"
    served = f"the built-in scorer of {settings.scorer_spec}" if settings.scorer_spec else settings.entry_script
    log.info("listening on %s with %d worker(s); loading %s", public_url, settings.workers, served)
    if settings.workers == 1:
        return run_worker(settings, sock, public_url)
    return _supervise(settings, sock, public_url)


def _supervise(settings: Settings, sock: socket.socket, public_url: str) -> int:
    children: set[int] = set()
    stopping = False
    readiness = SharedReadiness(settings.workers)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = run_worker(settings, sock, public_url, readiness=readiness, index=index)
            finally:
                os._exit(code)
        children.add(pid)
    sock.close()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not stopping:
            log.error("worker %d exited with code %d; stopping the other workers", pid, code)
            exit_code = code if code > 0 else 1
            stop(signal.SIGTERM, None)
    return exit_code


def _signal(pid: int, signum: int) -> Optional[bool]:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True
