"""The service contract between core and the server: variables a deployment sets reach a real
server, and the routes core probes and hands out stay where that server answers."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.core.service import ServiceState
from pytest_mldeploy.core.targets.process import ProcessTarget
from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server import contract

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"


def _example_with(tmp_path: Path, variables: str, deployment_lines: str = "") -> Path:
    """A copy of the diabetes example whose deployment has `environment.variables: {variables}`
    and `deployment_lines` (indented 4) added."""
    project_dir = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    config = project_dir / "mldeploy.yaml"
    text = config.read_text()
    anchor = "    environment:\n"
    assert anchor in text
    config.write_text(text.replace(anchor, deployment_lines + anchor + f"      variables: {{{variables}}}\n"))
    return config


def test_service_path_prefix_leaves_the_routes_where_core_probes_them(tmp_path: Path) -> None:
    # Azure's server keeps its routes at the root and puts SERVICE_PATH_PREFIX only into the swagger
    # document's paths. Ours moved the routes, so the probe of GET / never saw Healthy.
    config = _example_with(tmp_path, "SERVICE_PATH_PREFIX: api/v1", "    health_timeout_s: 60\n")
    project = load_project(config)
    deployment = project.deployments["diabetes"]
    assert deployment.environment_variables[contract.SERVICE_PATH_PREFIX_VAR] == "api/v1"
    service = ProcessTarget().deploy(deployment, project, registry=Registry(tmp_path / "registry"))
    try:
        assert service.state is ServiceState.HEALTHY
        assert service.scoring_uri == service.base_url + contract.SCORE_ROUTE
        response = requests.post(service.scoring_uri, json={"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}, timeout=30)
        assert response.status_code == 200, response.text
        document = requests.get(service.swagger_uri, timeout=30).json()
        assert sorted(document["paths"]) == ["/api/v1/", "/api/v1/score", "/api/v1/swagger.json"]
    finally:
        service.delete()


def test_the_port_is_reserved_with_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    # The Docker target passes environment.variables to the container: a port there would move the
    # server off the port Docker publishes.
    config = _example_with(tmp_path, f"{contract.PORT_VAR}: '6000'")
    with pytest.raises(ConfigError) as caught:
        load_project(config)
    message = str(caught.value)
    assert str(config) in message and contract.PORT_VAR in message and "set by mldeploy from port" in message
