"""The Locust load generator against real local HTTP servers: records, windows, content types,
alternating rounds between two services, distributed mode, refusals, a live load steered as it runs."""
from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pytest_mldeploy.checks.profiling.loadgen import LiveLoad, LocustLoad
from pytest_mldeploy.checks.profiling.workload import multipart, write_bodies
from pytest_mldeploy.errors import ServiceError


class _Counting(BaseHTTPRequestHandler):
    """Answers POST /score with 200 (and 500 for bodies containing "fail"), counting what it got."""

    protocol_version = "HTTP/1.1"
    seen: list[bytes] = []
    types: list[str] = []
    ports: list[int] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.seen.append(self.headers.get("Authorization", "").encode() + b"|" + body)
            self.types.append(self.headers.get("Content-Type", ""))
            self.ports.append(self.server.server_address[1])
        status = 500 if b"fail" in body else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    _Counting.seen, _Counting.types, _Counting.ports = [], [], []
    with _serving() as url:
        yield url


@pytest.fixture
def other_server(server: str) -> Iterator[str]:
    with _serving() as url:
        yield url


def _bodies(tmp_path: Path, *lines: str, content_type: str = "application/json") -> Path:
    return write_bodies([(line.encode(), content_type) for line in lines], tmp_path / "bodies.json")


def test_records_every_body_with_the_key_and_counts_failures(server: str, tmp_path: Path) -> None:
    load = LocustLoad(server, _bodies(tmp_path, '{"ok": 1}', '{"fail": 1}'), tmp_path, key="secret-key")
    run = load.run(users=2, seconds=2, warmup_s=0.5)
    assert run.nodes == 1
    assert run.records, "no request was recorded"
    assert len(run.records) <= len(_Counting.seen)  # requests killed in flight at the stop are not recorded
    assert all(seen.startswith(b"Bearer secret-key|") for seen in _Counting.seen)
    assert {seen.split(b"|", 1)[1] for seen in _Counting.seen} == {b'{"ok": 1}', b'{"fail": 1}'}
    stats = run.stats()
    assert 0 < stats.success < stats.total
    assert 0.3 < stats.error_rate < 0.7  # the two bodies alternate per user
    assert any(kind.startswith("500") for kind in stats.errors)
    # the measured window is the phase asked for, however long Locust took to start (on a loaded
    # machine Locust's own -t used to end the run seconds early: windows of 0.1 s for 2 s asked)
    assert run.end - run.start >= 1.8


def test_distributed_mode_merges_every_worker(server: str, tmp_path: Path) -> None:
    run = LocustLoad(server, _bodies(tmp_path, '{"ok": 1}'), tmp_path, processes=2).run(users=4, seconds=2, warmup_s=0.5)
    assert run.nodes == 2
    assert run.stats().total > 0
    assert run.stats().success_rate == 1.0


def test_refuses_a_host_that_is_not_this_machine(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="only loads 127.0.0.1"):
        LocustLoad("http://example.com:80", _bodies(tmp_path, "{}"), tmp_path)


def test_a_broken_locust_run_reports_its_log(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ServiceError, match=r"(?s)load generator \(Locust\) failed at 1 users.*no requests"):
        LocustLoad("http://127.0.0.1:9", empty, tmp_path).run(users=1, seconds=1, warmup_s=0)


def test_each_request_goes_with_its_own_content_type(server: str, tmp_path: Path) -> None:
    body, content_type = multipart([("file", "a.bin", b"\x00\x01\n\xff", "application/octet-stream")], boundary="b0")
    bodies = write_bodies([(body, content_type), (b'{"ok": 1}', "application/json")], tmp_path / "bodies.json")
    run = LocustLoad(server, bodies, tmp_path).run(users=1, seconds=2, warmup_s=0)
    assert run.records and all(r.ok for r in run.records)
    assert set(_Counting.types) == {"multipart/form-data; boundary=b0", "application/json"}
    assert {seen.split(b"|", 1)[1] for seen in _Counting.seen} == {body, b'{"ok": 1}'}  # binary bytes and newlines intact


def test_alternating_rounds_switch_between_two_services(server: str, other_server: str, tmp_path: Path) -> None:
    load = LocustLoad(server, _bodies(tmp_path, '{"ok": 1}'), tmp_path, key="key-a", alternate_key="key-b")
    run = load.run(users=2, seconds=6, warmup_s=0.5, alternate_url=other_server, round_s=1.0)
    port_a, port_b = (int(url.rsplit(":", 1)[1]) for url in (server, other_server))
    assert {r.target for r in run.records} == {0, 1}
    # every request went where its round says, with that service's key
    assert all(r.target == int(r.start // 1.0) % 2 for r in run.records if r.start % 1.0 > 0.1)
    seen = list(zip(_Counting.ports, _Counting.seen))
    assert {s.split(b"|")[0] for p, s in seen if p == port_a} == {b"Bearer key-a"}
    assert {s.split(b"|")[0] for p, s in seen if p == port_b} == {b"Bearer key-b"}
    rounds = run.rounds()
    assert len(rounds) >= 3 and [r.target for r in rounds] == [r.index % 2 for r in rounds]
    assert all(r.stats.total > 0 for r in rounds)
    assert run.stats(target=0).total + run.stats(target=1).total <= run.stats().total + 2 * len(rounds)


class _Slow(BaseHTTPRequestHandler):
    """Answers POST /score after 20 ms, noting how many requests were in flight when each arrived."""

    protocol_version = "HTTP/1.1"
    arrivals: list[tuple[float, int]] = []
    in_flight = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            _Slow.in_flight += 1
            self.arrivals.append((time.time(), _Slow.in_flight))
        time.sleep(0.02)
        with self.lock:
            _Slow.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_a_live_load_changes_its_users_while_it_runs_and_reports_as_it_goes(tmp_path: Path) -> None:
    _Slow.arrivals, _Slow.in_flight = [], 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        live = LiveLoad(LocustLoad(f"http://127.0.0.1:{httpd.server_address[1]}", _bodies(tmp_path, "{}"), tmp_path), 1, 60).start()
        try:
            live.wait_covered(time.time() + 1.0)
            one_user_until = time.time()
            streamed = len(live.records())
            assert streamed > 0 and live.covered_until() >= one_user_until - 0.5  # reported while running
            live.set_users(4)
            live.wait_covered(time.time() + 1.5)
            assert len(live.records()) > streamed
            run = live.stop()
        finally:
            live.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert max(n for t, n in _Slow.arrivals if t < one_user_until) == 1  # one user: one request at a time
    # Then up to four at a time: on a busy machine the four users need not all overlap at once.
    assert 1 < max(n for t, n in _Slow.arrivals if t > one_user_until + 0.5) <= 4
    assert len(run.records) >= len(live.records()) and all(r.ok for r in run.records)
