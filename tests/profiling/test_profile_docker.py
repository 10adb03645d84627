"""The closed loop on the Docker target: the running container's limits switched in place (docker
update) in alternating rounds, a second container when memory cannot be lowered in place, and a
verification that cannot start says why."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_mldeploy.checks.profiling import ProfileSettings, profile_deployment
from pytest_mldeploy.checks.profiling.phases import PhaseRunner
from pytest_mldeploy.checks.profiling.recommend import recommend
from pytest_mldeploy.checks.profiling.verification import limits_of
from pytest_mldeploy.checks.profiling.workload import write_bodies
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.targets.common import free_port
from pytest_mldeploy.core.targets.docker import DockerTarget

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"
FAST = ProfileSettings(step_s=2, min_step_s=1, warmup_s=0.5)


@pytest.fixture(scope="module")
def target() -> DockerTarget:
    docker_target = DockerTarget(notice=None)
    if not docker_target.available():
        pytest.skip(f"docker target unavailable: {docker_target.unavailable_reason}")
    return docker_target


def _example(tmp_path: Path) -> Any:
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    return load_project(copy / "mldeploy.yaml")


def test_recommendation_is_verified_in_place_under_its_own_limits(target: DockerTarget, tmp_path: Path) -> None:
    project = _example(tmp_path)
    deployment = project.deployment("diabetes")
    # A fixed port (LocalWebservice, deploymentconfig.json) is the running service's: the verification must not need it.
    deployment = deployment.model_copy(
        update={"port": free_port(), "profile": deployment.profile.model_copy(update={"duration_s": 6, "max_concurrency": 2})}
    )
    service = target.deploy(deployment, project)
    try:
        lines: list[str] = []
        result = profile_deployment(project, deployment, target, tmp_path / "out", service=service, progress=lines.append, settings=FAST)
        # the running container is back under its own limits (1 core, 1 GB in the example)
        assert limits_of(service.inspect()) == (pytest.approx(1.0), pytest.approx(1.0))
        assert service.refresh_state().value == "Healthy"
    finally:
        service.delete()

    assert result.target == "docker"
    assert len(result.samples) >= 4 and all(s.memory > 0 for s in result.samples)  # Docker stats were streamed
    verification = result.verification
    # a correct deployment: held, or too noisy to tell on a shared machine; never "did not hold" nor "could not run"
    attempts = [(a.cpu, a.memory_gb, a.verdict, a.problems, a.how) for a in verification.attempts]
    assert verification.verdict in ("verified", "raised", "inconclusive"), (verification.reason, attempts)
    assert verification.attempts, "nothing was tried under the recommendation"
    first = verification.attempts[0]
    assert first.method == "in place" and "docker update" in first.how, attempts  # no second container
    assert "switched in place (docker update)" in verification.reason
    assert first.verdict in ("held", "inconclusive", "did not hold")
    # the rounds alternated between the container's own limits (0) and the recommended ones (1)
    assert {r.target for r in first.rounds} == {0, 1} and first.comparison is not None and first.comparison.pairs >= 3
    assert first.reference is not None and first.reference.total > 0
    rec = result.initial_recommendation
    # docker inspect during a recommended round shows exactly the recommended limits
    assert (first.cpu, first.memory_gb) == (rec.cpu, rec.memory_gb)
    assert first.inspected_cpu == pytest.approx(rec.cpu)
    assert first.inspected_memory_gb == pytest.approx(rec.memory_gb, rel=1e-6)
    assert first.stats is not None and first.stats.total > 0
    if verification.verdict == "raised":
        assert result.recommendation.cpu > rec.cpu and len(verification.attempts) >= 2
    # the steady phase says how settled its estimates were
    assert result.stability is not None and result.stability.samples >= 2
    data = json.loads(result.json_path.read_text())
    assert data["verification"]["attempts"][0]["inspectedCpu"] == pytest.approx(rec.cpu)
    assert data["verification"]["attempts"][0]["method"] == "in place"
    assert data["requestedCpu"] == result.recommendation.cpu
    assert data["stability"]["samples"] == result.stability.samples
    assert "Confidence:" in result.html_path.read_text()
    # no container was started for the verification
    assert not [c.name for c in target.client.containers.list(all=True) if "diabetes-verify" in c.name]
    assert any("docker update in place" in line for line in lines)


def test_memory_below_what_the_service_used_is_verified_in_a_second_container_and_says_so(target: DockerTarget, tmp_path: Path) -> None:
    project = _example(tmp_path)
    deployment = project.deployment("diabetes")
    deployment = deployment.model_copy(update={"profile": deployment.profile.model_copy(update={"duration_s": 4})})
    service = target.deploy(deployment, project)
    try:
        # one attempt is enough to see which way it went
        profiler = PhaseRunner(project, deployment, service, target, tmp_path, dataclasses.replace(FAST, max_raises=0), None)
        write_bodies([(line, "application/json") for line in (project.root / "sample_requests.txt").read_bytes().splitlines() if line.strip()], profiler.bodies_path)
        profiler.start_live(1)
        recommendation = recommend([0.5] * 5, [0.2 * 1024**3] * 5)  # 0.3 GB
        # the running service is said to have used 0.5 GB: lowering its limit to 0.3 GB in place could kill it
        verification, _ = profiler.verify(recommendation, users=1, peak_memory=0.5 * 1024**3)
        profiler.end_live()
        assert limits_of(service.inspect()) == (pytest.approx(1.0), pytest.approx(1.0))  # never touched
    finally:
        profiler.end_live()
        service.delete()
    first = verification.attempts[0]
    assert first.method == "new container", (verification.reason, first.problems)
    assert "below what the running service has used (0.50 GB)" in first.how
    assert "a second container was started" in verification.reason
    assert first.inspected_memory_gb == pytest.approx(0.3, rel=1e-6)
    assert {r.target for r in first.rounds} == {0, 1}
    assert not [c.name for c in target.client.containers.list(all=True) if "diabetes-verify" in c.name]


def test_a_verification_the_engine_refuses_says_the_engines_reason(target: DockerTarget, tmp_path: Path) -> None:
    project = _example(tmp_path)
    deployment = project.deployment("diabetes")
    running = SimpleNamespace(target="docker", keys=[], base_url="http://127.0.0.1:9")
    profiler = PhaseRunner(project, deployment, running, target, tmp_path, ProfileSettings(), None)
    # Less memory than Docker's minimum (6 MB): the engine refuses the container before it starts.
    # (Too many cores no longer does: the Docker target caps CPU at what the engine has.)
    too_big = dataclasses.replace(recommend([0.5] * 5, [0.2 * 1024**3] * 5), memory_gb=0.004)
    verification, kept = profiler.verify(too_big, users=1)
    assert verification.verdict == "unverified"
    assert "could not run" in verification.reason and "did not hold" not in verification.reason
    assert "memory" in verification.reason.lower() and "6" in verification.reason, verification.reason  # the engine's own words
    assert kept is too_big and len(verification.attempts) == 1
    assert not [c.name for c in target.client.containers.list(all=True) if "diabetes-verify" in c.name]
