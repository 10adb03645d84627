"""Start-up: logging, the listening socket, one uvicorn server per worker, and the worker supervisor.

The socket is bound before anything else, so the service answers (503 until init() is done) as soon
as it logs that it listens. The parent forks the workers over the same socket and supervises them:
a worker whose run() is stuck exits with STUCK_EXIT_CODE and is replaced by a new one (which runs
init() again); any other non-zero exit (e.g. init() failed) stops the rest and becomes the exit code.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import sys
import time
from typing import Optional

from . import admission
from .app import SERVER_VERSION, STUCK_EXIT_CODE, ScoringApp
from .readiness import SharedReadiness
from .settings import Settings

log = logging.getLogger("mldeploy.server")

#: How often the supervisor looks at its workers (exits, heartbeats).
SUPERVISE_INTERVAL_S = 0.5
#: The signal on which a worker's faulthandler writes every thread's stack to stderr.
STACKS_SIGNAL = signal.SIGUSR1
#: How long a frozen worker has to write its stacks before it is killed.
FROZEN_KILL_DELAY_S = 1.0


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
               loop: Optional[str] = None, readiness: Optional[SharedReadiness] = None, index: int = 0,
               restart_reason: Optional[str] = None) -> int:
    """Serve on `sock` in this process until stopped (uvicorn + httptools, uvloop when installed).

    `http` and `loop` are uvicorn's choices; other values than the defaults are for benchmarks.
    With "httptools" the request head is limited (protocol.py); "httptools-unlimited" is uvicorn's
    own protocol, for comparing the cost of the limits.
    """
    import uvicorn

    from .protocol import limited_protocol

    app = ScoringApp(settings, public_url, readiness, index, restart_reason)
    protocol: object = {"httptools": limited_protocol(settings, SERVER_VERSION),
                        "httptools-unlimited": "httptools"}.get(http, http)
    config = uvicorn.Config(
        app,
        http=protocol,  # type: ignore[arg-type]
        ws="none",  # no WebSocket routes: an Upgrade request is served as plain HTTP, not a failed handshake
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
    """Run the server: a supervisor process and `settings.workers` worker processes; the exit code for the process."""
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
    admission.gate_for(settings)  # before the workers fork, so they share one count
    return _supervise(settings, sock, public_url)


def _supervise(settings: Settings, sock: socket.socket, public_url: str) -> int:
    """Fork the workers and watch them; replace a worker whose run() is stuck.

    A worker notices a stuck run thread itself and exits with STUCK_EXIT_CODE. A worker whose whole
    event loop is frozen (run() holding the GIL inside C code) cannot: its heartbeat stops, and once
    it is older than the scoring timeout plus the stuck grace the supervisor has it dump every
    thread's stack (faulthandler, SIGUSR1), kills it and starts a new one. Any other non-zero exit
    (init() failed, a crash) stops the other workers and becomes the exit code. The supervisor runs
    even for one worker: it is what replaces a stuck one, as gunicorn's arbiter does.
    """
    children: dict[int, int] = {}  # pid -> worker index
    killing: dict[int, float] = {}  # pid of a frozen worker -> when SIGKILL is due
    stopping = False
    readiness = SharedReadiness(settings.workers)
    frozen_after_s = (settings.timeout_ms + settings.stuck_grace_ms) / 1000

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    def start(index: int, restart_reason: Optional[str] = None) -> None:
        readiness.clear(index)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if wait_for_sigchld:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if hasattr(faulthandler, "register"):
                    faulthandler.register(STACKS_SIGNAL, all_threads=True)
                code = run_worker(settings, sock, public_url, readiness=readiness, index=index,
                                  restart_reason=restart_reason)
            finally:
                os._exit(code)
        children[pid] = index

    def check_frozen() -> None:
        now = time.monotonic()
        for pid, index in list(children.items()):
            if pid in killing:
                if now >= killing[pid]:
                    _signal(pid, signal.SIGKILL)
                continue
            last = readiness.last_beat(index)
            if not readiness.is_ready(index) or last == 0.0 or now - last <= frozen_after_s:
                continue
            log.error("hang: worker %d (pid %d) has been frozen for %.1f s (longer than SCORING_TIMEOUT_MS + "
                      "MLDEPLOY_STUCK_GRACE_MS): run() holds the GIL in native code. Its threads' stacks follow; "
                      "then it is killed and replaced.", index, pid, now - last)
            for handler in log.handlers:
                handler.flush()
            _signal(pid, STACKS_SIGNAL)
            killing[pid] = now + FROZEN_KILL_DELAY_S

    # A worker's exit is noticed at once (SIGCHLD), heartbeats every SUPERVISE_INTERVAL_S.
    wait_for_sigchld = hasattr(signal, "sigtimedwait")
    if wait_for_sigchld:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    for index in range(settings.workers):
        start(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    exit_code = 0
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if not stopping:
                check_frozen()
            if wait_for_sigchld:
                signal.sigtimedwait({signal.SIGCHLD}, SUPERVISE_INTERVAL_S)
            else:
                time.sleep(0.05)
            continue
        index = children.pop(pid, None)
        if index is None:
            continue  # an orphan the entry script started, reaped because we may be PID 1
        code = os.waitstatus_to_exitcode(status)
        frozen = killing.pop(pid, None) is not None
        if stopping:
            continue
        if code == STUCK_EXIT_CODE or frozen:
            reason = f"worker {index} (pid {pid}) was replaced because run() got stuck"
            log.error("%s; starting a new worker %d, which runs init() again", reason, index)
            start(index, reason)
        elif code != 0 and settings.workers == 1:
            # The one worker is the server: end the way it ended, as a server without supervisor would.
            log.error("the worker (pid %d) ended with code %d; the server ends the same way", pid, code)
            exit_code = code
        elif code != 0:
            log.error("worker %d exited with code %d; stopping the other workers", pid, code)
            exit_code = code if code > 0 else 1
            stop(signal.SIGTERM, None)
    sock.close()
    if exit_code < 0:
        if -exit_code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-exit_code, signal.SIG_DFL)
        os.kill(os.getpid(), -exit_code)
        return 128 - exit_code  # still here: PID 1 of a container ignores its own signals; report as a shell does
    return exit_code


def _signal(pid: int, signum: int) -> Optional[bool]:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True
