"""Azure ML v2 files as they are, on Docker: the example (Azure's sample shape) and its export."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "azureml-v2"
DIABETES = REPO / "example_projects" / "sklearn-diabetes"


@pytest.fixture(scope="module", autouse=True)
def engine() -> None:
    from pytest_mldeploy.core.targets.docker import DockerTarget

    target = DockerTarget(notice=None)
    if not target.available():
        pytest.skip(f"docker target unavailable: {target.unavailable_reason}")


def test_the_v2_sample_passes_unchanged_on_docker(pytester: pytest.Pytester) -> None:
    """blue and green (conda packages, a curated image, Standard_DS2_v2/DS3_v2, key auth) in a copy of the folder."""
    project = pytester.path / "azureml-v2"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
    result = pytester.runpytest_subprocess(str(project / "managed" / "sample"), "--mldeploy", "--mldeploy-target", "docker",
                                           "-p", "no:cacheprovider", "-k", "not profile", timeout=1800)
    result.assert_outcomes(passed=7, skipped=3, warnings=7)
    result.stdout.fnmatch_lines(["*blue *docker*Healthy*", "*green *docker*Healthy*"])
    import docker

    engine_cpus = int(docker.from_env().info().get("NCPU") or 0)
    if engine_cpus < 4:  # Standard_DS3_v2 has 4 vCPUs: Docker refuses a limit above its own CPUs
        result.stdout.fnmatch_lines([f"*green: resources.cpu 4 is more than the {engine_cpus} CPUs Docker has here*"])


def test_the_diabetes_example_exported_to_v2_passes_on_docker(pytester: pytest.Pytester) -> None:
    from pytest_mldeploy.cli import main

    out = pytester.path / "exported"
    assert main(["export", "azureml-v2", "diabetes", "--config", str(DIABETES / "mldeploy.yaml"), "--out", str(out), "--no-profile"]) == 0
    result = pytester.runpytest_subprocess(str(out), "--mldeploy", "--mldeploy-target", "docker", "-p", "no:cacheprovider",
                                           "-k", "not profile", timeout=1800)
    result.assert_outcomes(passed=4, skipped=1)
