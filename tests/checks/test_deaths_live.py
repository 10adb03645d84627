"""A service that dies after a healthy start: the failing check names the death first.

Real servers on the process target (and Docker for the OOM kill), broken on purpose by
tests/projects/dies: run() ends the server on a request holding a value over 1000, by
os._exit(3), SIGKILL, a segfault, or an allocation past the memory limit.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.health import check_health
from pytest_mldeploy.checks.properties import check_properties
from pytest_mldeploy.checks.robustness import check_robustness
from pytest_mldeploy.checks.samples import check_samples

REPO = Path(__file__).resolve().parents[2]
PROJECTS = REPO / "tests" / "projects"
DIES = PROJECTS / "dies"

pytestmark = pytest.mark.slow


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[..., CheckContext]]:
    """`deploy(project_dir, name, **updates)`: the deployment started on the process target, as a CheckContext."""
    from pytest_mldeploy.client import ScoringClient
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.core.registry import Registry
    from pytest_mldeploy.core.targets import get_target

    target = get_target("process")
    services = []

    def start(project_dir: Path, name: str, **updates) -> CheckContext:
        project = load_project(project_dir / "mldeploy.yaml")
        deployment = project.deployments[name]
        if updates:
            deployment = deployment.model_copy(update=updates)
        service = target.deploy(deployment, project, registry=Registry(tmp_path / "registry"))
        services.append(service)
        return CheckContext(project=project, deployment=deployment, service=service, client=ScoringClient.from_service(service),
                            target=target, examples=30, report_dir=tmp_path / "report")

    yield start
    for service in services:
        service.delete()


def _first_lines(result: CheckResult, n: int = 1) -> str:
    return "\n".join(result.report.splitlines()[:n])


def _assert_death_first(result: CheckResult, how: str, last_words: str) -> None:
    """Failed, the death in the summary and the report's first line, then the log tail holding the script's last words."""
    assert result.outcome is Outcome.FAILED, result.summary
    assert result.died and how in result.died
    assert result.summary.startswith("the service died") and how in result.summary, result.summary
    assert how in _first_lines(result), result.report
    tail = result.report.split("service log (last 20 lines):", 1)[1]
    assert last_words in tail, result.report
    assert "minimal failing request" not in result.report
    assert "got no answer" not in result.summary


def test_properties_names_an_exit_and_does_not_shrink_against_a_dead_server(deploy):
    ctx = deploy(DIES, "dies-exit")
    result = check_properties(ctx)
    _assert_death_first(result, "exited with code 3 after a healthy start", "dying by exit")
    assert "so it was not shrunk" in result.report
    # The request shown is the one the server died on (a value over 1000), not a shrunk `{"data": []}`.
    section = result.report.split("the request it was answering:\n", 1)[1].split("\n\n", 1)[0]
    body = json.loads("\n".join(line[4:] for line in section.splitlines()[1:]))
    assert max(abs(v) for row in body["data"] for v in row) > 1000, body
    assert "received no response" in result.report and "curl " in result.report


def test_samples_names_a_sigkill_instead_of_crashing(deploy):
    ctx = deploy(DIES, "dies-kill")
    result = check_samples(ctx)
    _assert_death_first(result, "was killed by SIGKILL (exit code -9)", "dying by kill")
    assert "requests.txt line 3" in result.summary
    assert "2 of the 4 requests" in result.report and "1 after it was not sent" in result.report
    assert result.warnings == []


def test_samples_after_the_service_died_fails_with_the_reason_not_an_assertion(deploy):
    """A dead service cannot serve its swagger document either: samples must still report, not crash."""
    ctx = deploy(DIES, "dies-kill")
    os.killpg(ctx.service.pid, signal.SIGKILL)
    ctx.service.process.wait()
    result = check_samples(ctx)
    assert result.outcome is Outcome.FAILED
    assert "killed by SIGKILL" in result.summary and "line 1" in result.summary


def test_a_segfault_in_a_native_library_is_named(deploy):
    ctx = deploy(DIES, "dies-segfault")
    result = check_samples(ctx)
    _assert_death_first(result, "was killed by SIGSEGV (exit code -11)", "dying by segfault")


def test_a_dead_worker_is_named_behind_the_supervisor_exit(deploy):
    ctx = deploy(DIES, "dies-kill", workers=2)
    result = check_samples(ctx)
    assert result.outcome is Outcome.FAILED
    assert "exited with code 1 after a worker (pid " in result.summary, result.summary
    assert ") was killed by SIGKILL (exit code -9)" in result.summary


def test_sys_exit_in_run_is_answered_500_not_a_death(deploy):
    """The server catches SystemExit from run() (as any error of run()): the service lives, properties fails on the 500."""
    ctx = deploy(DIES, "dies-sysexit")
    result = check_properties(ctx)
    assert result.outcome is Outcome.FAILED and result.died is None
    assert "answered 500" in result.summary
    assert "SystemExit: 4" in result.report
    assert check_health(ctx).outcome is Outcome.PASSED


def test_robustness_names_the_exit_of_a_script_that_dies_on_bad_input(deploy):
    ctx = deploy(PROJECTS / "broken-crash", "broken-crash")
    result = check_robustness(ctx)
    assert result.outcome is Outcome.FAILED
    assert result.summary.startswith("the service died while answering POST ")
    assert "(not JSON): the server exited with code 3 after a healthy start" in result.summary
    assert "exited with code 3" in _first_lines(result)
    assert "unparseable request: exiting" in result.report


def test_health_names_the_signal_that_killed_the_server(deploy):
    ctx = deploy(DIES, "dies-exit")
    os.killpg(ctx.service.pid, signal.SIGKILL)
    ctx.service.process.wait()
    result = check_health(ctx)
    assert result.outcome is Outcome.FAILED
    assert result.summary.startswith("the service died: the server was killed by SIGKILL (exit code -9)"), result.summary


def test_the_runner_fails_the_check_a_service_died_in_and_points_the_rest_to_it(deploy):
    """A check that does not look for a death itself (here: any check, after the server is killed) still fails
    with the death first; the checks after it fail at once, pointing to it."""
    from pytest_mldeploy.check_run import CheckRunner

    ctx = deploy(DIES, "dies-exit")
    runner = CheckRunner(ctx.project, target="process")
    runner._services["dies-exit"] = ctx.service
    assert runner.run_check("dies-exit", "health").outcome is Outcome.PASSED
    passed = CheckResult("swagger", Outcome.PASSED, "all good")
    os.killpg(ctx.service.pid, signal.SIGKILL)
    ctx.service.process.wait()
    noted = runner._note_death(passed, ctx.service)
    assert noted.outcome is Outcome.FAILED and noted.summary.startswith("the service died during the swagger check: ")
    assert "killed by SIGKILL" in noted.summary
    assert "what the swagger check saw:\n    all good" in noted.report

    robustness = runner.run_check("dies-exit", "robustness")
    assert robustness.outcome is Outcome.FAILED and "killed by SIGKILL" in robustness.summary
    samples = runner.run_check("dies-exit", "samples")
    assert samples.outcome is Outcome.FAILED
    assert samples.summary.startswith("the service died during the robustness check (the server was killed by SIGKILL")
    assert "see the report of dies-exit::robustness" in samples.summary
    runner._services.clear()


@pytest.mark.docker
def test_an_oom_kill_in_run_names_the_limit_on_docker(tmp_path):
    """run() fills 400 MiB under a 128 MiB limit: samples names the OOM kill and the limit; later checks point to it."""
    from pytest_mldeploy.core.config import load_project
    from pytest_mldeploy.check_run import CheckRunner

    runner = CheckRunner(load_project(DIES / "mldeploy.yaml"), target="docker", report_dir=tmp_path)
    try:
        assert runner.run_check("dies-oom", "health").outcome is Outcome.PASSED
        result = runner.run_check("dies-oom", "samples")
        assert result.outcome is Outcome.FAILED
        assert result.summary.startswith("the service died while answering POST "), result.summary
        assert "requests_raw.txt line 2" in result.summary
        assert "OOM-killed" in result.summary and "128 MiB" in result.summary
        assert "OOM-killed" in _first_lines(result)
        assert "allocating 400 MiB" in result.report.split("service log", 1)[1]
        profile = runner.run_check("dies-oom", "profile")
        assert profile.outcome is Outcome.FAILED and "died during the samples check (OOM-killed" in profile.summary
        assert runner.record("dies-oom").state == "Failed"
    finally:
        runner.close()
