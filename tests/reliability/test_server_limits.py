"""Issue #9, hole 1 and the hand-made malformed transport set, against a live server.

Oversized request lines and headers are refused (414 / 431) before the key check and before they
cost memory; heads that never complete are cut off after MLDEPLOY_HEADER_TIMEOUT_MS; request
smuggling attempts, obs-fold, bad bytes, deep nesting and upgrade requests get a 4xx (or are served
normally), never a 5xx; and after all of it the service is up and its memory flat.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from live_server import (
    EXAMPLE,
    SCRIPTS,
    Server,
    ServerFactory,
    exchange,
    host_port,
    make_app,
    read_until_closed,
    statuses,
    tree_rss,
)

pytestmark = pytest.mark.reliability

KEY = "limits-key"
HEADER_TIMEOUT_MS = 1000
MiB = 1 << 20


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def guarded(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The raw-string script behind a key, with a short header timeout."""
    app = make_app(tmp_path_factory.mktemp("guarded"), SCRIPTS / "plain.py", entry_name="score.py")
    return servers(app, env={"MLDEPLOY_AUTH_KEYS": KEY, "MLDEPLOY_HEADER_TIMEOUT_MS": str(HEADER_TIMEOUT_MS)})


@pytest.fixture(scope="module")
def example(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The sklearn-diabetes example (inference_schema decorators), no key."""
    return servers(make_app(tmp_path_factory.mktemp("example"), EXAMPLE / "score.py"))


def _head(target: str = "/", extra: bytes = b"", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n".encode() + extra + b"\r\n"


def _body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""


# ---- request line and header limits ---------------------------------------------------------------


def test_a_request_line_over_the_limit_is_414_before_the_key_is_checked(guarded: Server) -> None:
    answer = exchange(guarded, _head("/score?pad=" + "a" * 9000))
    assert statuses(answer) == [414]
    assert b"MLDEPLOY_MAX_REQUEST_LINE_BYTES" in _body_of(answer)
    assert b"application/json" in answer


def test_a_request_line_within_the_limit_is_served(guarded: Server) -> None:
    answer = exchange(guarded, _head("/?pad=" + "a" * 8000))
    assert statuses(answer) == [200]


def test_one_header_over_the_limit_is_431_before_the_key_is_checked(guarded: Server) -> None:
    answer = exchange(guarded, _head("/score", b"X-Big: " + b"a" * (40 * 1024) + b"\r\n"))
    assert statuses(answer) == [431]
    assert b"MLDEPLOY_MAX_HEADER_BYTES" in _body_of(answer)


def test_many_small_headers_over_the_limit_are_431(guarded: Server) -> None:
    many = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 30) for i in range(1200))
    assert statuses(exchange(guarded, _head("/score", many))) == [431]


def test_an_over_limit_head_pipelined_behind_a_request_is_closed_after_its_answer(guarded: Server) -> None:
    """Answering 431 at once would put it before the first request's answer: the client must get that one."""
    first = (b"POST /score HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " + KEY.encode()
             + b"\r\nContent-Length: 5\r\n\r\nfirst")
    second = _head("/score", b"X-Big: " + b"a" * (40 * 1024) + b"\r\n")
    answer = exchange(guarded, first + second)
    assert statuses(answer) == [200]
    assert b'"received": "first"' in answer


def test_headers_within_the_limit_are_served(guarded: Server) -> None:
    response = requests.post(guarded.url + "/score", data="x", timeout=30,
                             headers={"Authorization": f"Bearer {KEY}", "X-Big": "a" * (30 * 1024)})
    assert response.status_code == 200
    assert response.json()["received"] == "x"


def test_huge_headers_on_many_connections_are_refused_early_and_memory_stays_flat(guarded: Server) -> None:
    """The OOM of issue #9 in small: several connections each sending a 16 MiB header, no key."""
    before = tree_rss(guarded.process.pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(guarded.process.pid))
            time.sleep(0.01)

    answers: list[bytes] = []

    def flood() -> None:
        answers.append(exchange(guarded, b"GET /score HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (16 * MiB) + b"\r\n\r\n"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    floods = [threading.Thread(target=flood) for _ in range(8)]
    for thread in floods:
        thread.start()
    for thread in floods:
        thread.join(120)
    done.set()
    sampler.join(10)
    assert len(answers) == 8
    assert all(statuses(answer) == [431] for answer in answers), [answer[:80] for answer in answers]
    # 8 x 16 MiB were sent; the server held at most a read buffer of each (it used to hold them all).
    assert peak - before < 32 * MiB, f"resident memory grew by {(peak - before) / MiB:.0f} MiB"
    assert guarded.get("/").status_code == 200


# ---- slow and partial heads ---------------------------------------------------------------------------


def test_partial_headers_get_408_and_the_connection_is_closed(guarded: Server) -> None:
    with socket.create_connection(host_port(guarded), timeout=30) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: test\r\nContent-Le")
        answer, closed = read_until_closed(sock)
    assert closed, "the server kept a connection with a partial head open for 30 s"
    assert statuses(answer) == [408]
    assert b"MLDEPLOY_HEADER_TIMEOUT_MS" in _body_of(answer)


def test_headers_trickled_byte_by_byte_are_cut_off(guarded: Server) -> None:
    """Slowloris: a byte every 0.1 s restarts no timer; the head as a whole must arrive in time."""
    received, closed = b"", False
    with socket.create_connection(host_port(guarded), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        sock.settimeout(0.1)
        deadline = time.monotonic() + 30
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(b"a")
                answer, closed = read_until_closed(sock)
            except (BrokenPipeError, ConnectionResetError):
                break
            received += answer
    assert closed, "a head trickled one byte at a time kept its connection for 30 s"
    assert statuses(received) == [408]


def test_a_connection_that_sends_nothing_is_closed(guarded: Server) -> None:
    with socket.create_connection(host_port(guarded), timeout=30) as sock:
        answer, closed = read_until_closed(sock)
    assert closed and answer == b""


def test_a_partial_second_request_on_a_kept_alive_connection_times_out(guarded: Server) -> None:
    with socket.create_connection(host_port(guarded), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        first = b""
        while b"Healthy" not in first:
            first += sock.recv(65536)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: te")
        answer, closed = read_until_closed(sock)
    assert statuses(first) == [200]
    assert closed and statuses(answer) == [408]


# ---- smuggling attempts and malformed requests ----------------------------------------------------------

_SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n"

#: Each must be refused as a whole: one 400 and the connection closed, never a response for /smuggled.
SMUGGLING = {
    "Content-Length and Transfer-Encoding": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "Transfer-Encoding and Content-Length": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "two different Content-Lengths": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n" + _SMUGGLED,
    "a Content-Length list": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 39\r\n\r\n" + _SMUGGLED,
    "chunked not last": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "an unknown Transfer-Encoding": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "a space before the colon": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n folded\r\n\r\n",
    "Transfer-Encoding in an obs-fold": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED,
    "bare LF line ends": b"GET / HTTP/1.1\nHost: t\n\n",
    "bare CR line ends": b"GET / HTTP/1.1\rHost: t\r\r",
    "a negative Content-Length": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "a signed Content-Length": b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd",
    "an overflowing chunk size": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
    "a bare LF in a chunk extension": b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;\nxx\r\n0\r\n\r\n" + _SMUGGLED,
    "a NUL in a header value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
    "a space in a header name": b"GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n",
    "raw bytes over 0x7f in the target": b"GET /score?data=\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
}


@pytest.mark.parametrize("label", list(SMUGGLING))
def test_smuggling_and_malformed_framing_is_one_400_and_a_closed_connection(guarded: Server, label: str) -> None:
    answer = exchange(guarded, SMUGGLING[label])
    assert statuses(answer) == [400], answer[:200]
    assert b"/smuggled" not in answer


def test_a_websocket_upgrade_is_served_as_plain_http_not_a_500(guarded: Server) -> None:
    answer = exchange(guarded, _head("/", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"))
    assert statuses(answer) == [200]


def test_deep_nesting_in_the_query_is_400_not_500(example: Server) -> None:
    nested = "%5B" * 1300 + "%5D" * 1300  # 1,300 arrays deep, inside the request line limit
    answer = exchange(example, _head("/score?data=" + nested))
    assert statuses(answer) == [400]
    assert b"nested too deeply" in _body_of(answer)


def test_deep_nesting_in_the_body_is_400(example: Server) -> None:
    body = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = requests.post(example.url + "/score", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400


def test_bad_utf8_in_body_header_and_path(example: Server) -> None:
    body = requests.post(example.url + "/score", data=b'{"data": "\xff\xfe"}', headers={"Content-Type": "application/json"}, timeout=30)
    assert body.status_code == 400
    assert statuses(exchange(example, _head("/", b"X-A: \xff\xfe\r\n"))) == [200]
    assert statuses(exchange(example, _head("/%ff%fe"))) == [404]


# ---- after all of it -----------------------------------------------------------------------------------


def _malformed_round(server: Server) -> None:
    for data in SMUGGLING.values():
        exchange(server, data)
    exchange(server, _head("/score?pad=" + "a" * 9000))
    exchange(server, _head("/score", b"X-Big: " + b"a" * (40 * 1024) + b"\r\n"))
    exchange(server, b"GET /score HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (2 * MiB) + b"\r\n\r\n")


def test_the_malformed_set_leaves_the_service_up_and_its_memory_flat(guarded: Server) -> None:
    _malformed_round(guarded)  # warm-up: first-use allocations are not growth
    before = tree_rss(guarded.process.pid)
    for _ in range(20):
        _malformed_round(guarded)
    grown = tree_rss(guarded.process.pid) - before
    assert grown < 16 * MiB, f"resident memory grew by {grown / MiB:.1f} MiB over 20 rounds of malformed requests"
    assert guarded.get("/").status_code == 200
    assert guarded.post("/score", data="still here", headers={"Authorization": f"Bearer {KEY}"}).json()["received"] == "still here"
    assert guarded.process.poll() is None
