"""Azure's own files on the Docker target, unchanged: zero models, SDK inferenceconfig, conda files, fixed ports.

Each project is written here in the shapes Azure ML's SDK and samples produce. The offline base
(`mldeploy/base:bookworm-py3.11`) is the only base this machine has, so a `python=3.x` pin other
than 3.11 is served on it with a notice.
"""
from __future__ import annotations

import json
import socket
import textwrap
import uuid
from pathlib import Path

import pytest
import requests

from pytest_mldeploy.core.base_image import LOCAL_BASE_TAG, ensure_base_image
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.image import remove_deployment_images
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import ServiceState
from pytest_mldeploy.core.targets.docker import DockerTarget

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"

ECHO_SCORE = textwrap.dedent(
    """
    import os

    def init():
        global model_dir
        model_dir = os.environ["AZUREML_MODEL_DIR"]

    def run(raw_data):
        return {"echo": raw_data, "model_dir_exists": os.path.isdir(model_dir)}
    """
)


@pytest.fixture(scope="module")
def target():
    docker_target = DockerTarget(notice=None)
    if not docker_target.available():
        pytest.skip(f"docker target unavailable: {docker_target.unavailable_reason}")
    ensure_base_image(LOCAL_BASE_TAG, client=docker_target.client, bootstrap=True)
    return docker_target


@pytest.fixture
def deployed(target, monkeypatch, tmp_path):
    """Deploy `mldeploy.yaml` in a folder on the Docker target; remove the services and images after."""
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    services, names = [], []

    def deploy(root: Path, notices: list | None = None, **kwargs):
        project = load_project(root)
        (deployment,) = project.deployments.values()
        names.append(deployment.name)
        target.notice = notices.append if notices is not None else None
        service = target.deploy(deployment, project, registry=Registry(tmp_path / "registry"), **kwargs)
        services.append(service)
        return service

    yield deploy
    target.notice = None
    for service in services:
        service.delete()
    for name in names:
        remove_deployment_images(name, client=target.client)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_deployment_without_models_builds_and_serves(deployed, tmp_path):
    root = tmp_path / "nomodels"
    root.mkdir()
    (root / "score.py").write_text(ECHO_SCORE)
    (root / "mldeploy.yaml").write_text(f"deployments:\n  {_name('nomodels')}:\n    entry_script: score.py\n")
    service = deployed(root)
    assert service.state is ServiceState.HEALTHY
    answer = requests.post(service.scoring_uri, json={"x": 1}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_dir_exists"] is True


def test_a_fixed_port_is_not_used_by_checks_deploys(deployed, tmp_path):
    root = tmp_path / "fixedport"
    root.mkdir()
    (root / "score.py").write_text(ECHO_SCORE)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        (root / "mldeploy.yaml").write_text(
            f"deployments:\n  {_name('fixedport')}:\n    entry_script: score.py\n    port: {taken}\n"
        )
        service = deployed(root)
        assert service.state is ServiceState.HEALTHY
        assert not service.base_url.endswith(f":{taken}")
        assert requests.get(service.base_url + "/", timeout=10).status_code == 200
