"""The closed loop on the Docker target: the service restarted under the recommended limits."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_mldeploy.checks.profiling import ProfileSettings, profile_deployment
from pytest_mldeploy.core.config import load_project
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
    deployment = deployment.model_copy(
        update={"profile": deployment.profile.model_copy(update={"duration_s": 4, "max_concurrency": 2})}
    )
    lines: list[str] = []
    result = profile_deployment(
        project, deployment, target, tmp_path / "out", progress=lines.append,
        settings=ProfileSettings(step_s=2, warmup_s=0.5, max_raises=1),
    )  # fmt: skip

    assert result.target == "docker"
    assert len(result.samples) >= 4 and all(s.memory > 0 for s in result.samples)  # Docker stats were streamed
    verification = result.verification
    assert verification.verdict in ("verified", "raised", "failed"), verification.reason
    assert verification.attempts, "no container was restarted under the recommendation"
    first = verification.attempts[0]
    rec = result.initial_recommendation
    # the restarted container's inspect shows exactly the recommended limits
    assert (first.cpu, first.memory_gb) == (rec.cpu, rec.memory_gb)
    assert first.inspected_cpu == pytest.approx(rec.cpu)
    assert first.inspected_memory_gb == pytest.approx(rec.memory_gb, rel=1e-6)
    assert first.stats is not None and first.stats.total > 0
    if verification.verdict == "raised":
        assert result.recommendation.cpu > rec.cpu and len(verification.attempts) == 2
    data = json.loads(result.json_path.read_text())
    assert data["verification"]["attempts"][0]["inspectedCpu"] == pytest.approx(rec.cpu)
    assert data["requestedCpu"] == result.recommendation.cpu
    # every container the profile started is gone
    names = [c.name for c in target.client.containers.list(all=True)]
    assert not [n for n in names if "diabetes-verify" in n]
