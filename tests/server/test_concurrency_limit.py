"""MLDEPLOY_MAX_CONCURRENT_REQUESTS: Azure's max_concurrent_requests_per_instance, enforced as Azure's
front door does (2 x the setting in flight per instance, the rest 429 "Too many pending requests")."""
from __future__ import annotations

import socket
import time

import pytest

from pytest_mldeploy.server.admission import AdmissionGate, gate_for
from pytest_mldeploy.server.settings import SettingsError, load_settings


def test_gate_admits_twice_the_setting_then_refuses() -> None:
    gate = AdmissionGate(2)
    assert [gate.enter() for _ in range(5)] == [True, True, True, True, False]
    gate.leave()
    assert gate.enter() is True
    assert gate.in_flight == 4
    assert "Too many pending requests" in gate.message


def test_gate_counts_workers_together_and_a_restarted_worker_frees_its_places() -> None:
    gate = AdmissionGate(1, workers=2)
    assert gate.enter(0) and gate.enter(1) and not gate.enter(0)
    gate.reset(1)  # worker 1 died holding a place and was started again
    assert gate.in_flight == 1 and gate.enter(1)


def test_setting_is_read_and_unlimited_by_default(tmp_path) -> None:
    base = {"AML_APP_ROOT": str(tmp_path)}
    assert load_settings(base).max_concurrent_requests == 0
    assert gate_for(load_settings(base)) is None
    assert load_settings({**base, "MLDEPLOY_MAX_CONCURRENT_REQUESTS": "3"}).max_concurrent_requests == 3
    with pytest.raises(SettingsError, match="MLDEPLOY_MAX_CONCURRENT_REQUESTS"):
        load_settings({**base, "MLDEPLOY_MAX_CONCURRENT_REQUESTS": "-1"})


def _hold_open(url: str) -> socket.socket:
    """A /score request whose body never finishes arriving: it holds a place without using run()."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhel")
    return sock


def _finish(sock: socket.socket) -> bytes:
    sock.sendall(b"lo, you")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


@pytest.mark.parametrize("workers", ["1", "2"])
def test_requests_past_the_limit_get_429(start_server, script_app, workers) -> None:
    server = start_server(script_app("plain.py"),
                          env={"MLDEPLOY_MAX_CONCURRENT_REQUESTS": "1", "WORKER_COUNT": workers})
    assert server.post("/score", data="one").status_code == 200
    held = [_hold_open(server.url), _hold_open(server.url)]
    deadline = time.monotonic() + 30
    while True:  # until the server has taken both held requests in (then every further one is refused)
        response = server.post("/score", data="probe")
        if response.status_code == 429 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert response.status_code == 429, response.text
    assert response.json()["message"].startswith("Too many pending requests")
    assert response.headers["content-type"] == "application/json"
    assert "x-ms-request-id" in response.headers
    assert server.get("/").status_code == 200  # the health probe is not a scoring request
    answers = [_finish(sock) for sock in held]
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers
    assert server.post("/score", data="after").status_code == 200
