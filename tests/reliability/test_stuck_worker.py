"""Issue #9, hole 3: a run() stuck in code the scoring timeout cannot interrupt (here `time.sleep`).

Before the fix every later request answered 500 "Scoring timeout" while GET / said 200. Now the
worker answers 503 with the reason, logs the stuck thread's stack, and the supervisor replaces it;
a check that hits it reports a hang with that stack.
"""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import requests

from live_server import SCRIPTS, ServerFactory, make_app, worker_pids

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
HANG_PROJECT = REPO / "tests" / "projects" / "hang"


def test_run_thread_reports_a_call_that_ignores_its_interruption() -> None:
    """The unit under the live tests: a call blocked in C (Event.wait) past timeout + grace is stuck."""
    from pytest_mldeploy.server.runner import RunThread, ScoringTimeout, WorkerStuck

    release = threading.Event()
    stacks: list[str] = []

    def blocked() -> str:
        release.wait(60)
        return "released"

    async def scenario() -> tuple[ScoringTimeout, list]:
        runner = RunThread(stuck_grace_s=0.2, on_stuck=stacks.append)
        first = asyncio.ensure_future(runner.call(blocked, 100))
        queued = asyncio.ensure_future(runner.call(lambda: "never", 60_000))
        timed_out = await asyncio.gather(first, return_exceptions=True)
        outcomes = await asyncio.gather(queued, return_exceptions=True)
        with pytest.raises(WorkerStuck):
            await runner.call(lambda: "refused", 1000)
        return timed_out[0], outcomes

    try:
        timed_out, (queued,) = asyncio.run(scenario())
    finally:
        release.set()
    assert isinstance(timed_out, ScoringTimeout)
    assert "release.wait(60)" in timed_out.stack  # where run() was at the deadline
    assert isinstance(queued, WorkerStuck)  # failed at once, not after its own 60 s timeout
    assert len(stacks) == 1 and "in blocked\n    release.wait(60)" in stacks[0]
    assert "runner.py" not in stacks[0]  # the server's own frames are left out


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def _health(server) -> requests.Response:
    return server.get("/", timeout=10)


@pytest.fixture
def stuck_server(tmp_path: Path):
    factory = ServerFactory(tmp_path)
    app = make_app(tmp_path, SCRIPTS / "stuck.py", entry_name="score.py")
    server = factory(app, env={"SCORING_TIMEOUT_MS": "1000", "MLDEPLOY_STUCK_GRACE_MS": "1000"})
    yield app, server
    factory.stop_all()


def test_a_stuck_run_makes_the_service_unhealthy_and_the_worker_is_replaced(stuck_server) -> None:
    app, server = stuck_server
    (first_worker,) = worker_pids(server)

    timed_out = server.post("/score", data="sleep-forever")
    assert timed_out.status_code == 500
    assert timed_out.json() == {"message": "Scoring timeout after 1000 ms"}

    # The stuck worker stops claiming health: 503 with the reason (it used to stay 200 for good).
    _until(lambda: _health(server).status_code != 200, "GET / turning non-200")
    unhealthy = _health(server)
    assert unhealthy.status_code == 503
    message = unhealthy.json()["message"]
    assert "stuck" in message or "replaced" in message, message

    # The stack of the stuck thread is in the service log, down to the line that blocks.
    log = server.log()
    assert "hang: run() is stuck" in log
    assert "in run\n    time.sleep(100000)" in log

    # The supervisor started a replacement, which runs init() again (held by the test here)...
    _until(lambda: (app.root / "restarted").exists(), "a replacement worker's init()")
    (replacement,) = worker_pids(server)
    assert replacement != first_worker
    starting = _health(server)
    assert starting.status_code == 503
    assert "run() got stuck" in starting.json()["message"]

    # ...and once it is done the service is healthy and serves again, from the new worker.
    (app.root / "release-init").write_text("1")
    _until(lambda: _health(server).status_code == 200, "GET / answering 200 again")
    after = server.post("/score", data="after")
    assert after.status_code == 200
    assert after.json() == {"pid": replacement, "received": "after"}
    assert server.process.poll() is None


def test_requests_queued_behind_a_stuck_run_are_not_left_to_time_out_one_by_one(stuck_server) -> None:
    app, server = stuck_server
    assert server.post("/score", data="sleep-forever").status_code == 500
    _until(lambda: _health(server).status_code != 200, "GET / turning non-200")
    queued = server.post("/score", data="x")
    assert queued.status_code == 503
    assert queued.headers["x-ms-run-function-failed"] == "False"


def test_the_check_that_hits_a_stuck_run_reports_a_hang_with_the_stack(tmp_path: Path) -> None:
    from pytest_mldeploy.checks.base import CheckContext, Outcome
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.checks.samples import check_samples
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.targets import get_target

    project = load_project(HANG_PROJECT / "mldeploy.yaml")
    (deployment,) = project.deployments.values()
    target = get_target("process")
    service = target.deploy(deployment, project, registry=Registry(tmp_path / "registry"))
    try:
        ctx = CheckContext(project=project, deployment=deployment, service=service,
                           client=ScoringClient.from_service(service), target=target, report_dir=tmp_path)
        result = check_samples(ctx)
        # The harness sees the stuck (then restarting) service as Unhealthy, not as still starting.
        from pytest_mldeploy.core.service import ServiceState

        deadline = time.monotonic() + 20
        while service.refresh_state() is not ServiceState.UNHEALTHY and time.monotonic() < deadline:
            time.sleep(0.2)
        state, reason = service.state, service.reason
    finally:
        service.delete()
    assert state is ServiceState.UNHEALTHY, (state, reason)
    assert "stuck" in reason or "restarting" in reason, reason
    assert result.outcome is Outcome.FAILED
    assert "requests.txt line 2" in result.summary
    assert "hung: run() did not return within the scoring timeout" in result.summary
    assert "hang: stack of the run() thread at the scoring timeout" in result.report
    assert "in run\n        time.sleep(100000)" in result.report, result.report


def test_a_worker_frozen_by_run_holding_the_gil_is_killed_with_its_stacks_and_replaced(tmp_path: Path) -> None:
    """run() inside C code that keeps the GIL freezes the event loop too: GET / cannot even answer 503.
    The supervisor sees the worker's heartbeat stop, has faulthandler dump its threads, and replaces it."""
    factory = ServerFactory(tmp_path)
    app = make_app(tmp_path, SCRIPTS / "gil_hang.py", entry_name="score.py")
    server = factory(app, env={"SCORING_TIMEOUT_MS": "1000", "MLDEPLOY_STUCK_GRACE_MS": "1000"})
    try:
        (frozen,) = worker_pids(server)
        with pytest.raises(requests.RequestException):  # the frozen worker is killed with the request open
            server.post("/score", data="hold-the-gil", timeout=60)
        _until(lambda: worker_pids(server) not in ([], [frozen]), "a replacement worker")
        _until(lambda: _health(server).status_code == 200, "GET / answering 200 again")
        (replacement,) = worker_pids(server)
        assert server.post("/score", data="after").json() == {"pid": replacement, "received": "after"}
        log = server.log()
        assert f"hang: worker 0 (pid {frozen}) has been frozen" in log
        assert 'score.py", line 13 in run' in log  # faulthandler's dump of the run thread
        assert "was replaced because run() got stuck" in log
    finally:
        factory.stop_all()


class _LogOnly:
    def __init__(self, text: str) -> None:
        self.text = text

    def logs(self, tail=None) -> str:
        return self.text


def test_hang_stack_takes_the_last_hang_block_in_either_form() -> None:
    from pytest_mldeploy.checks.failure_report import hang_stack

    timeout_form = (
        "mldeploy-server: init() done in 5 ms\n"
        "mldeploy-server: ERROR: hang: run() did not return within SCORING_TIMEOUT_MS=1500; the run() thread was at:\n"
        '  File "/app/score.py", line 12, in run\n'
        "    time.sleep(100000)\n"
        "mldeploy-server: ERROR: worker 0 (pid 7) was replaced because run() got stuck\n"
    )
    assert hang_stack(_LogOnly(timeout_form), wait_s=0) == "\n".join(timeout_form.splitlines()[1:4])
    frozen_form = timeout_form + (
        "mldeploy-server: ERROR: hang: worker 0 (pid 8) has been frozen for 2.3 s ...\n"
        "Thread 0x00007f909b7966c0 (most recent call first):\n"
        '  File "/app/score.py", line 13 in run\n'
        "\n"
        "Current thread 0x00007f909d491b80 (most recent call first):\n"
        '  File "/usr/lib/python3.11/asyncio/runners.py", line 118 in run\n'
        "mldeploy-server: ERROR: worker 0 (pid 8) was replaced because run() got stuck\n"
    )
    stack = hang_stack(_LogOnly(frozen_form), wait_s=0)
    assert stack.startswith("mldeploy-server: ERROR: hang: worker 0 (pid 8) has been frozen")
    assert 'score.py", line 13 in run' in stack and "runners.py" in stack and "was replaced" not in stack
    assert hang_stack(_LogOnly("mldeploy-server: init() done\n"), wait_s=0) is None
