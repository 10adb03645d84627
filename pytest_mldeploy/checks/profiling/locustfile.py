"""The Locust file the profiler runs in its own process (`locust -f locustfile.py --headless ...`).

Every user POSTs the request bodies in turn, without think time, to the scoring route, each
with its own Content-Type (JSON lines, multipart forms, ...). With MLDEPLOY_LOAD_ALTERNATE set,
users alternate between two services in rounds aligned to the wall clock: round k spans
[k·R, (k+1)·R) for R = MLDEPLOY_LOAD_ROUND_S, even rounds go to --host, odd ones to the
alternate (every process agrees without talking). Every request is recorded (start, latency,
success, status, target 0/1) by a `request` listener; each load process
(the local runner, or every worker in distributed mode) sends its records in small batches as a
custom message to the master (Locust emulates the message locally for a single process), which
writes them all to one JSON file when it quits. The same file therefore drives one process,
`--processes N`, or a remote fleet of `--worker`s.

Settings come from the environment, never the command line (the key must not show in `ps`):
MLDEPLOY_LOAD_BODIES (JSON `[{"body": base64, "contentType": ...}]`, see workload.write_bodies),
MLDEPLOY_LOAD_OUT (the JSON to write), MLDEPLOY_LOAD_KEY (optional bearer key),
MLDEPLOY_LOAD_PATH (default /score), MLDEPLOY_LOAD_TIMEOUT_S (per request, default 60),
MLDEPLOY_LOAD_ALTERNATE (base URL of the other service), MLDEPLOY_LOAD_ALTERNATE_KEY (its key),
MLDEPLOY_LOAD_ROUND_S (the round length), MLDEPLOY_LOAD_RUN_S (how long to load, counted from
the test's start: Locust's own `-t` starts counting before, by seconds on a loaded machine, so
it is only a backstop).

A live run (`loadgen.LiveLoad`) is steered while it loads: with MLDEPLOY_LOAD_CONTROL set, the
master reads that file every 0.1 s (`{"seq": n, "users": k}` sets the users, `{"seq": n, "stop":
true}` ends the run), and with MLDEPLOY_LOAD_STREAM set it appends what it has received to that
file as JSON lines every 0.2 s, so the profiler can judge the load as it runs. Then
RUN_S is only the live run's upper bound.
"""
from __future__ import annotations

import base64
import json
import os
import random
import time

import gevent
from locust import FastHttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

MESSAGE = "mldeploy_records"
FLUSH_INTERVAL_S = 0.25
CONTROL_INTERVAL_S = 0.1
STREAM_INTERVAL_S = 0.2
MAX_ERROR_KINDS = 20


def _read_requests() -> list[tuple[bytes, str]]:
    path = os.environ.get("MLDEPLOY_LOAD_BODIES")
    if not path:
        raise SystemExit("MLDEPLOY_LOAD_BODIES is not set: the profiler passes the request file through it")
    with open(path, "r", encoding="utf-8") as handle:
        requests = [(base64.b64decode(r["body"]), r.get("contentType") or "application/json") for r in json.load(handle)]
    if not requests:
        raise SystemExit(f"{path}: no requests")
    return requests


def _headers(content_type: str, key: str) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = "Bearer " + key
    return headers


SCORE_PATH = os.environ.get("MLDEPLOY_LOAD_PATH", "/score")
TIMEOUT_S = float(os.environ.get("MLDEPLOY_LOAD_TIMEOUT_S", "60"))
ALTERNATE = os.environ.get("MLDEPLOY_LOAD_ALTERNATE", "")
ROUND_S = float(os.environ.get("MLDEPLOY_LOAD_ROUND_S", "0") or 0)
RUN_S = float(os.environ.get("MLDEPLOY_LOAD_RUN_S", "0") or 0)
CONTROL = os.environ.get("MLDEPLOY_LOAD_CONTROL", "")
STREAM = os.environ.get("MLDEPLOY_LOAD_STREAM", "")
#: Per target (0: --host, 1: the alternate): the path to post to and each request's (body, headers).
REQUESTS = [
    (SCORE_PATH, [(body, _headers(ct, os.environ.get("MLDEPLOY_LOAD_KEY", ""))) for body, ct in _read_requests()]),
]
if ALTERNATE:
    REQUESTS.append(
        (ALTERNATE + SCORE_PATH, [(body, _headers(h["Content-Type"], os.environ.get("MLDEPLOY_LOAD_ALTERNATE_KEY", ""))) for body, h in REQUESTS[0][1]])
    )

# This process's records not yet sent, and (on the master/local runner) everything received.
_pending: list[list] = []
_errors: dict[str, int] = {}
_received: dict[str, dict] = {}
_run: dict[str, float] = {}


class ScoringUser(FastHttpUser):
    """A client that scores back to back (a closed loop: concurrency = users)."""

    wait_time = constant(0)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S

    def on_start(self) -> None:
        self._next = random.randrange(len(REQUESTS[0][1]))

    @task
    def score(self) -> None:
        target = int(time.time() // ROUND_S) % 2 if ALTERNATE else 0
        path, requests = REQUESTS[target]
        body, headers = requests[self._next % len(requests)]
        self._next += 1
        self.client.post(path, data=body, headers=headers, name=f"score{target}")


@events.request.add_listener
def _record(response_time, exception, name="", start_time=None, response=None, **_kw) -> None:
    status = getattr(response, "status_code", 0) or 0
    started = start_time if start_time is not None else time.time() - response_time / 1000.0
    _pending.append([started, response_time, exception is None, status, 1 if name == "score1" else 0])
    if exception is not None:
        kind = f"{status}: {str(exception)[:200]}" if status else str(exception)[:200]
        if kind in _errors or len(_errors) < MAX_ERROR_KINDS:
            _errors[kind] = _errors.get(kind, 0) + 1


def _flush(environment) -> None:
    """Send this process's new records (and how far they reach) to the master or the local runner."""
    batch = _pending[:]
    del _pending[: len(batch)]
    errors = dict(_errors)
    _errors.clear()
    environment.runner.send_message(MESSAGE, {"records": batch, "errors": errors, "covered_until": time.time()})


def _flusher(environment) -> None:
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        _flush(environment)


#: Batches received since the last line of the stream (live runs only).
_unstreamed: list[dict] = []


def _receive(environment, msg, **_kw) -> None:
    node = _received.setdefault(str(msg.node_id), {"records": [], "errors": {}, "covered_until": 0.0})
    node["records"].extend(msg.data["records"])
    for kind, count in msg.data["errors"].items():
        node["errors"][kind] = node["errors"].get(kind, 0) + count
    node["covered_until"] = max(node["covered_until"], msg.data["covered_until"])
    if STREAM:
        _unstreamed.append({"node": str(msg.node_id), **msg.data})


def _streamer() -> None:
    """Append the batches received since the last line to the stream file, one JSON line each pass."""
    with open(STREAM, "a", encoding="utf-8") as handle:
        while True:
            gevent.sleep(STREAM_INTERVAL_S)
            batch = _unstreamed[:]
            del _unstreamed[: len(batch)]
            if batch:
                handle.write(json.dumps(batch) + "\n")
                handle.flush()


def _controller(environment) -> None:
    """Apply the newest command in the control file: set the number of users, or stop."""
    applied = 0
    while True:
        gevent.sleep(CONTROL_INTERVAL_S)
        try:
            with open(CONTROL, "r", encoding="utf-8") as handle:
                command = json.load(handle)
        except (OSError, ValueError):
            continue  # not written yet
        if int(command.get("seq", 0)) <= applied:
            continue
        applied = int(command["seq"])
        if command.get("stop"):
            environment.runner.quit()
            return
        users = int(command["users"])
        environment.runner.start(users, spawn_rate=max(users * 10, 1))


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(MESSAGE, _receive)


@events.test_start.add_listener
def _on_start(environment, **_kw) -> None:
    _run.setdefault("started_at", time.time())
    if not isinstance(environment.runner, MasterRunner):
        _run["flusher"] = gevent.spawn(_flusher, environment)  # type: ignore[assignment]
    if RUN_S > 0 and not isinstance(environment.runner, WorkerRunner) and "stopper" not in _run:
        _run["stopper"] = gevent.spawn_later(RUN_S, environment.runner.quit)  # type: ignore[assignment]
    if not isinstance(environment.runner, WorkerRunner) and "live" not in _run:
        _run["live"] = 1.0
        if CONTROL:
            _run["controller"] = gevent.spawn(_controller, environment)  # type: ignore[assignment]
        if STREAM:
            _run["streamer"] = gevent.spawn(_streamer)  # type: ignore[assignment]


@events.test_stopping.add_listener
def _on_stopping(environment, **_kw) -> None:
    _run.setdefault("stopped_at", time.time())


@events.test_stop.add_listener
def _on_stop(environment, **_kw) -> None:
    _run.setdefault("stopped_at", time.time())
    if not isinstance(environment.runner, MasterRunner):
        flusher = _run.pop("flusher", None)
        if flusher is not None:
            flusher.kill()  # type: ignore[attr-defined]
        _flush(environment)


@events.quitting.add_listener
def _on_quitting(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    out = os.environ.get("MLDEPLOY_LOAD_OUT")
    if not out:
        return
    data = {
        "started_at": _run.get("started_at"),
        "stopped_at": _run.get("stopped_at"),
        "nodes": _received,
    }
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, out)
