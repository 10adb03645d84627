"""The closed loop on the Docker target: a second container under the recommended limits, loaded in
alternating rounds with the running service; and a verification that cannot start says why."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_mldeploy.checks.profiling import ProfileSettings, profile_deployment
from pytest_mldeploy.checks.profiling.profiler import _Profiler
from pytest_mldeploy.checks.profiling.recommend import recommend
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.targets.common import free_port
from pytest_mldeploy.core.targets.docker import DockerTarget

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


@pytest.fixture(scope="module")
def target() -> DockerTarget:
    docker_target = DockerTarget(notice=None)
    if not docker_target.available():
        pytest.skip(f"docker target unavailable: {docker_target.unavailable_reason}")
    return docker_target


def test_recommendation_is_verified_under_its_own_limits(target: DockerTarget, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    project = load_project(copy / "mldeploy.yaml")
    deployment = project.deployment("diabetes")
    # A fixed port (LocalWebservice, deploymentconfig.json) is the running service's: the verification must not need it.
    deployment = deployment.model_copy(
        update={"port": free_port(), "profile": deployment.profile.model_copy(update={"duration_s": 6, "max_concurrency": 2})}
    )
    lines: list[str] = []
    result = profile_deployment(
        project, deployment, target, tmp_path / "out", progress=lines.append,
        settings=ProfileSettings(step_s=2, warmup_s=0.5),
    )  # fmt: skip

    assert result.target == "docker"
    assert len(result.samples) >= 4 and all(s.memory > 0 for s in result.samples)  # Docker stats were streamed
    verification = result.verification
    # a correct deployment: held, or too noisy to tell on a shared machine; never "did not hold" nor "could not run"
    attempts = [(a.cpu, a.memory_gb, a.verdict, a.problems) for a in verification.attempts]
    assert verification.verdict in ("verified", "raised", "inconclusive"), (verification.reason, attempts)
    assert "already allocated" not in verification.reason
    assert verification.attempts, "no container was started under the recommendation"
    first = verification.attempts[0]
    assert first.verdict in ("held", "inconclusive", "did not hold")
    # the rounds alternated between the running service (0) and the limited container (1)
    assert {r.target for r in first.rounds} == {0, 1} and first.comparison is not None and first.comparison.pairs >= 1
    assert first.reference is not None and first.reference.total > 0
    rec = result.initial_recommendation
    # the restarted container's inspect shows exactly the recommended limits
    assert (first.cpu, first.memory_gb) == (rec.cpu, rec.memory_gb)
    assert first.inspected_cpu == pytest.approx(rec.cpu)
    assert first.inspected_memory_gb == pytest.approx(rec.memory_gb, rel=1e-6)
    assert first.stats is not None and first.stats.total > 0
    if verification.verdict == "raised":
        assert result.recommendation.cpu > rec.cpu and len(verification.attempts) >= 2
    data = json.loads(result.json_path.read_text())
    assert data["verification"]["attempts"][0]["inspectedCpu"] == pytest.approx(rec.cpu)
    assert data["requestedCpu"] == result.recommendation.cpu
    # every container the profile started is gone
    names = [c.name for c in target.client.containers.list(all=True)]
    assert not [n for n in names if "diabetes-verify" in n]


def test_a_verification_the_engine_refuses_says_the_engines_reason(target: DockerTarget, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    project = load_project(copy / "mldeploy.yaml")
    deployment = project.deployment("diabetes")
    running = SimpleNamespace(target="docker", keys=[], base_url="http://127.0.0.1:9")
    profiler = _Profiler(project, deployment, running, target, tmp_path, ProfileSettings(), None)
    # Less memory than Docker's minimum (6 MB): the engine refuses the container before it starts.
    # (Too many cores no longer does: the Docker target caps CPU at what the engine has.)
    import dataclasses

    too_big = dataclasses.replace(recommend([0.5] * 5, [0.2 * 1024**3] * 5), memory_gb=0.004)
    verification, kept = profiler.verify(too_big, users=1)
    assert verification.verdict == "unverified"
    assert "could not run" in verification.reason and "did not hold" not in verification.reason
    assert "memory" in verification.reason.lower() and "6" in verification.reason, verification.reason  # the engine's own words
    assert kept is too_big and len(verification.attempts) == 1
    assert not [c.name for c in target.client.containers.list(all=True) if "diabetes-verify" in c.name]
