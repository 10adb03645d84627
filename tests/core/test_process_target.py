"""The process target against the real scoring server: serving, failing init(), health timeout."""
from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import ServiceFailed, ServiceState
from pytest_mldeploy.core.targets.process import ProcessTarget
from pytest_mldeploy.errors import ServiceError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
PROJECTS = REPO / "tests" / "projects"


def _server_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "pytest_mldeploy.server" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def services():
    """Services a test started; all deleted at teardown, even when the test failed."""
    before = {p.pid for p in _server_children()}  # other modules' session-scoped services may be running
    started: list = []
    yield started
    for service in started:
        service.delete()
    assert [p for p in _server_children() if p.pid not in before] == []


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


def _deploy(project_dir: Path, registry, services, **kwargs):
    project = load_project(project_dir / "mldeploy.yaml")
    (deployment,) = project.deployments.values()
    service = ProcessTarget().deploy(deployment, project, registry=registry, **kwargs)
    services.append(service)
    return service


def test_example_is_served_end_to_end(registry, services):
    service = _deploy(EXAMPLE, registry, services)
    assert service.state is ServiceState.HEALTHY and service.reason is None
    assert service.target == "process" and service.container_id is None
    assert service.scoring_uri == service.base_url + "/score"
    assert psutil.pid_exists(service.pid)

    response = requests.post(service.scoring_uri, json={"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}, timeout=30)
    assert response.status_code == 200, response.text
    (prediction,) = json.loads(response.text)
    assert isinstance(prediction, float)
    assert requests.get(service.swagger_uri, timeout=30).status_code == 200
    assert service.refresh_state() is ServiceState.HEALTHY
    assert service.logs().strip() != ""
    assert len(service.logs(tail=1).splitlines()) == 1

    pid, workdir = service.pid, service.workdir
    service.delete()
    assert not psutil.pid_exists(pid)
    assert not workdir.exists()
    assert service.state is ServiceState.FAILED
    service.delete()  # idempotent


def test_failing_init_is_failed_with_its_traceback(registry, services):
    service = _deploy(PROJECTS / "init-fails", registry, services, wait=False)
    with pytest.raises(ServiceFailed) as caught:
        service.wait_until_healthy(timeout=120)
    assert service.state is ServiceState.FAILED
    assert service.reason.startswith("init() raised RuntimeError: cannot load the model")
    assert "Traceback (most recent call last):" in service.reason
    assert "exited with code" in service.reason
    message = str(caught.value)
    assert "service 'init-fails' (process" in message and "is Failed" in message
    assert "checksum mismatch" in caught.value.log_tail


def test_deploy_that_fails_raises_and_leaves_no_process(registry, services):
    before = {p.pid for p in _server_children()}
    with pytest.raises(ServiceError, match="init\\(\\) raised RuntimeError"):
        _deploy(PROJECTS / "init-fails", registry, services)
    assert [p for p in _server_children() if p.pid not in before] == []


def test_health_timeout_names_the_wait_and_the_last_state(registry, services):
    service = _deploy(PROJECTS / "slow-init", registry, services, wait=False)
    with pytest.raises(ServiceFailed) as caught:
        service.wait_until_healthy(timeout=3)
    assert service.state is ServiceState.FAILED
    assert "timed out after 3 s waiting for GET / to answer 200" in service.reason
    assert "health_timeout_s" in service.reason
    assert "timed out after 3 s" in str(caught.value)
    pid = service.pid
    service.delete()
    assert not psutil.pid_exists(pid)
