"""`server: azureml` in a Docker image: Azure's azmlinfsrv, installed offline from the wheelhouse, serves
the example; Docker's HEALTHCHECK works against it; our server is not in the image."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.targets.docker import DockerTarget

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"


@pytest.fixture(scope="module")
def azureml_service(tmp_path_factory):
    target = DockerTarget(notice=None)
    if not target.available():
        pytest.skip(f"docker target unavailable: {target.unavailable_reason}")
    project = load_project(EXAMPLE / "mldeploy.yaml")
    deployment = project.deployments["diabetes"].model_copy(update={"server": "azureml"})
    registry = Registry(tmp_path_factory.mktemp("registry"))
    service = target.deploy(deployment, project, registry=registry)
    yield service
    service.delete()


def test_azureml_image_answers_as_azure(azureml_service) -> None:
    url = azureml_service.base_url
    health = requests.get(url + "/", timeout=30)
    assert (health.status_code, health.text) == (200, "Healthy")
    scored = requests.post(url + "/score", json={"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}, timeout=30)
    assert scored.status_code == 200 and len(scored.json()) == 1
    assert scored.headers["x-ms-server-version"].startswith("azmlinfsrv/")
    # Azure's documented answer to input inference_schema rejects inside run(): 500, not our 400.
    rejected = requests.post(url + "/score", json={"data": [[1, 2, 3]]}, timeout=30)
    assert rejected.status_code == 500


def test_azureml_image_has_no_mldeploy_server_and_turns_healthy(azureml_service) -> None:
    container = azureml_service._container
    exit_code, output = container.exec_run(["/opt/venv/bin/python", "-c", "import pytest_mldeploy.server"])
    assert exit_code != 0 and b"No module named" in output
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        container.reload()
        status = container.attrs["State"].get("Health", {}).get("Status")
        if status == "healthy":
            break
        time.sleep(1)
    assert status == "healthy"
