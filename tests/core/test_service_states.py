"""State and reason rules: from process exits, Docker inspect data, GET / answers and logs."""
from __future__ import annotations

import traceback

import pytest

from pytest_mldeploy.core.service import tail_lines
from pytest_mldeploy.core.service_state import (
    ServiceState,
    describe_exit_code,
    extract_traceback,
    reading_from_exit,
    reading_from_inspect,
    reading_from_probe,
)

MiB = 1024**2


def _traceback_of_failing_init() -> str:
    def init():
        try:
            {}["model"]
        except KeyError as exc:
            raise ValueError("model file is corrupt") from exc

    try:
        init()
    except ValueError:
        return traceback.format_exc()
    raise AssertionError("init() did not raise")


def test_state_values_are_azures_names():
    assert [s.value for s in ServiceState] == ["Transitioning", "Healthy", "Unhealthy", "Failed"]
    assert ServiceState("Healthy") is ServiceState.HEALTHY
    assert ServiceState.FAILED == "Failed"


def test_extract_traceback_keeps_the_chain_and_drops_surrounding_lines():
    log = "INFO: starting server\n" + _traceback_of_failing_init() + "INFO: shutting down\n"
    tb = extract_traceback(log)
    assert tb is not None
    assert tb.startswith("Traceback (most recent call last):")
    assert "KeyError: 'model'" in tb
    assert "direct cause" in tb
    assert tb.rstrip().endswith("ValueError: model file is corrupt")
    assert "INFO" not in tb


def test_extract_traceback_none_without_one():
    assert extract_traceback("INFO: all good\nERROR: but no traceback\n") is None


def test_extract_traceback_with_prefixed_lines():
    log = "\n".join(
        [
            "w1 | Traceback (most recent call last):",
            'w1 |   File "/var/azureml-app/score.py", line 3, in init',
            "w1 |     raise RuntimeError('no')",
            "w1 | RuntimeError: no",
            "w1 | bye",
        ]
    )
    tb = extract_traceback(log)
    assert tb is not None and tb.endswith("RuntimeError: no") and "bye" not in tb


def test_exit_with_init_traceback_is_failed_and_names_init():
    reading = reading_from_exit(1, "booting\n" + _traceback_of_failing_init())
    assert reading.state is ServiceState.FAILED
    assert reading.reason.startswith("init() raised ValueError: model file is corrupt")
    assert "exited with code 1" in reading.reason
    assert "Traceback (most recent call last):" in reading.reason


def test_exit_with_traceback_outside_init_names_the_server():
    log = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nImportError: no module named joblib\n'
    reading = reading_from_exit(1, log)
    assert reading.reason.startswith("the scoring server raised ImportError: no module named joblib")


@pytest.mark.parametrize(
    "code, expected",
    [(1, "exited with code 1"), (-9, "was killed by SIGKILL (exit code -9)"), (137, "was killed by SIGKILL (exit code 137)"), (143, "SIGTERM")],
)
def test_exit_codes_are_described(code, expected):
    assert expected in describe_exit_code(code)
    assert reading_from_exit(code, "").state is ServiceState.FAILED


def test_inspect_oom_killed_names_the_limit():
    reading = reading_from_inspect({"Status": "exited", "OOMKilled": True, "ExitCode": 137}, 128 * MiB)
    assert reading.state is ServiceState.FAILED
    assert "OOM-killed" in reading.reason and "128 MiB" in reading.reason and "memory_gb" in reading.reason


def test_inspect_137_without_oom_record_is_not_called_oom():
    reading = reading_from_inspect({"Status": "exited", "OOMKilled": False, "ExitCode": 137}, 1024 * MiB)
    assert reading.state is ServiceState.FAILED
    assert "OOM-killed" not in reading.reason and "SIGKILL" in reading.reason


def test_inspect_exited_with_traceback():
    reading = reading_from_inspect({"Status": "exited", "ExitCode": 3}, None, _traceback_of_failing_init())
    assert reading.state is ServiceState.FAILED
    assert "init() raised ValueError" in reading.reason and "exited with code 3" in reading.reason


def test_inspect_running_unhealthy_quotes_the_healthcheck():
    state = {"Status": "running", "Health": {"Status": "unhealthy", "Log": [{"ExitCode": 1, "Output": "curl: (7) refused"}]}}
    reading = reading_from_inspect(state)
    assert reading.state is ServiceState.UNHEALTHY and "curl: (7) refused" in reading.reason


@pytest.mark.parametrize("health", [None, {"Status": "starting"}, {"Status": "healthy"}])
def test_inspect_running_leaves_it_to_the_probe(health):
    state = {"Status": "running", "OOMKilled": False, "ExitCode": 0}
    if health:
        state["Health"] = health
    assert reading_from_inspect(state) is None


def test_inspect_created_is_transitioning_and_paused_is_unhealthy():
    assert reading_from_inspect({"Status": "created"}).state is ServiceState.TRANSITIONING
    assert reading_from_inspect({"Status": "paused"}).state is ServiceState.UNHEALTHY


def test_probe_answers():
    assert reading_from_probe(200, None, False).state is ServiceState.HEALTHY
    assert reading_from_probe(503, None, False).state is ServiceState.TRANSITIONING
    stuck = reading_from_probe(503, "Unhealthy: run() is stuck: still running 5000 ms after SCORING_TIMEOUT_MS=3000", False)
    assert stuck.state is ServiceState.UNHEALTHY and "run() is stuck" in stuck.reason
    restarting = reading_from_probe(503, "The service is restarting (run() got stuck): init() has not finished yet.", True)
    assert restarting.state is ServiceState.UNHEALTHY and "restarting" in restarting.reason
    assert reading_from_probe(500, None, True).state is ServiceState.UNHEALTHY
    assert reading_from_probe(None, "connection refused", False).state is ServiceState.TRANSITIONING
    # A server that was healthy and stops answering is Unhealthy, not starting.
    assert reading_from_probe(None, "connection refused", True).state is ServiceState.UNHEALTHY


def test_tail_lines():
    text = "a\nb\nc\n"
    assert tail_lines(text, None) == text
    assert tail_lines(text, 2) == "b\nc\n"
    assert tail_lines(text, 0) == ""


def test_a_death_after_start_names_the_exit_not_an_earlier_run_traceback():
    """Once healthy, the log holds tracebacks of run() errors answered 500: they are not why the server ended."""
    log = "ready\nmldeploy-server: ERROR: run() raised:\n" + _traceback_of_failing_init() + "\nlater request\n"
    reading = reading_from_exit(-9, log, after_start=True)
    assert reading.state is ServiceState.FAILED
    assert reading.reason == "the server was killed by SIGKILL (exit code -9) after a healthy start"
    assert reading_from_exit(-9, log).reason.startswith("init() raised ValueError")  # before start: the traceback is the cause


def test_a_dead_worker_is_named_behind_the_supervisor_exit_code():
    log = "mldeploy-server: ERROR: worker 4242 exited with code -11; stopping the other workers\n"
    reading = reading_from_exit(1, log, after_start=True)
    assert reading.reason == ("the server exited with code 1 after a worker (pid 4242) was killed by SIGSEGV (exit code -11) "
                              "after a healthy start")


def test_inspect_after_start_keeps_oom_and_137_and_skips_old_tracebacks():
    oom = reading_from_inspect({"Status": "exited", "OOMKilled": True, "ExitCode": 137}, 128 * MiB, "x", after_start=True)
    assert "OOM-killed" in oom.reason and "128 MiB" in oom.reason
    killed = reading_from_inspect({"Status": "exited", "ExitCode": 137}, 128 * MiB, _traceback_of_failing_init(), after_start=True)
    assert "SIGKILL (exit code 137)" in killed.reason and "ValueError" not in killed.reason
    exited = reading_from_inspect({"Status": "exited", "ExitCode": 3}, None, _traceback_of_failing_init(), after_start=True)
    assert exited.reason == "the server exited with code 3 after a healthy start"
