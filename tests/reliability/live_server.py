"""Live scoring servers for the reliability tests: the server suite's own helpers (tests/server/conftest.py),
loaded by path so that both suites start servers the same way, plus raw-socket and memory helpers."""
from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from typing import Optional

import psutil

_SERVER_CONFTEST = Path(__file__).resolve().parents[1] / "server" / "conftest.py"
_spec = importlib.util.spec_from_file_location("mldeploy_tests_server_helpers", _SERVER_CONFTEST)
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _helpers
_spec.loader.exec_module(_helpers)

AppRoot = _helpers.AppRoot
Server = _helpers.Server
ServerFactory = _helpers.ServerFactory
make_app = _helpers.make_app
SCRIPTS = _helpers.SCRIPTS
EXAMPLE = _helpers.EXAMPLE


def host_port(server: "Server") -> tuple[str, int]:
    """(host, port) of a server's URL."""
    host, port = server.url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> tuple[bytes, bool]:
    """What the peer sends until it closes (or resets) the connection: (data, True); (data, False) on the socket's timeout."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            return b"".join(chunks), False
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), True


def exchange(server: "Server", data: bytes, timeout: float = 30) -> bytes:
    """Send `data` on a new connection and return all the server answers until it closes the connection.

    A request the server accepts should say `Connection: close`, or this waits for the keep-alive
    timeout (no half-close here: uvicorn closes a connection when the client half-closes it).
    """
    with socket.create_connection(host_port(server), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early; what it answered is still readable
        return read_until_closed(sock)[0]


def statuses(answer: bytes) -> list[int]:
    """The status codes of the HTTP responses in `answer` (several when requests were pipelined)."""
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def worker_pids(server: "Server") -> list[int]:
    """The worker processes under the server's supervisor."""
    return [child.pid for child in psutil.Process(server.process.pid).children()]


def first_status(answer: bytes) -> Optional[int]:
    found = statuses(answer)
    return found[0] if found else None
