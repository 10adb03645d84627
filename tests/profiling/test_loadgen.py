"""The Locust load generator against a real local HTTP server: records, windows, distributed mode, refusals."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pytest_mldeploy.checks.profiling.loadgen import LocustLoad
from pytest_mldeploy.errors import ServiceError


class _Counting(BaseHTTPRequestHandler):
    """Answers POST /score with 200 (and 500 for bodies containing "fail"), counting what it got."""

    protocol_version = "HTTP/1.1"
    seen: list[bytes] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.seen.append(self.headers.get("Authorization", "").encode() + b"|" + body)
        status = 500 if b"fail" in body else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Counting.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _bodies(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bodies.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


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
    assert run.start < run.end


def test_distributed_mode_merges_every_worker(server: str, tmp_path: Path) -> None:
    run = LocustLoad(server, _bodies(tmp_path, '{"ok": 1}'), tmp_path, processes=2).run(users=4, seconds=2, warmup_s=0.5)
    assert run.nodes == 2
    assert run.stats().total > 0
    assert run.stats().success_rate == 1.0


def test_refuses_a_host_that_is_not_this_machine(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="only loads 127.0.0.1"):
        LocustLoad("http://example.com:80", _bodies(tmp_path, "{}"), tmp_path)


def test_a_broken_locust_run_reports_its_log(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ServiceError, match=r"(?s)load generator \(Locust\) failed at 1 users.*no request bodies"):
        LocustLoad("http://127.0.0.1:9", empty, tmp_path).run(users=1, seconds=1, warmup_s=0)
