"""`server: mldeploy | azureml` and `max_concurrent_requests`: config, layout, Dockerfile and process command."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mldeploy.core import dockerfile as df
from pytest_mldeploy.core import servers
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"


def _project(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "mldeploy.yaml").write_text(f"deployments:\n  svc:\n    entry_script: score.py\n{extra}")
    return tmp_path / "mldeploy.yaml"


def test_defaults_are_our_server_and_no_limit(tmp_path) -> None:
    deployment = load_project(_project(tmp_path, "")).deployments["svc"]
    assert deployment.server == "mldeploy" and deployment.max_concurrent_requests is None


def test_server_and_limit_are_read_and_checked(tmp_path) -> None:
    deployment = load_project(_project(tmp_path, "    server: azureml\n    max_concurrent_requests: 4\n")).deployments["svc"]
    assert deployment.server == "azureml" and deployment.max_concurrent_requests == 4
    with pytest.raises(ConfigError, match="server"):
        load_project(_project(tmp_path, "    server: flask\n"))
    with pytest.raises(ConfigError, match="max_concurrent_requests"):
        load_project(_project(tmp_path, "    max_concurrent_requests: 0\n"))


def test_limit_reaches_the_server_environment(tmp_path) -> None:
    from pytest_mldeploy.core.layout import _settings

    deployment = load_project(_project(tmp_path, "    max_concurrent_requests: 3\n")).deployments["svc"]
    assert _settings(deployment)["MLDEPLOY_MAX_CONCURRENT_REQUESTS"] == "3"
    unlimited = load_project(_project(tmp_path, "")).deployments["svc"]
    assert "MLDEPLOY_MAX_CONCURRENT_REQUESTS" not in _settings(unlimited)


def test_azureml_requirements_and_commands() -> None:
    deployment = load_project(EXAMPLE / "mldeploy.yaml").deployments["diabetes"]
    azure = deployment.model_copy(update={"server": "azureml"})
    assert servers.AZUREML_SERVER_REQUIREMENT in servers.requirements_for(azure)
    assert servers.AZUREML_SERVER_REQUIREMENT not in servers.requirements_for(deployment)
    env = {"AML_APP_ROOT": "/app", "AZUREML_SOURCE_DIRECTORY": "src", "AZUREML_ENTRY_SCRIPT": "score.py"}
    assert servers.command("azureml", "/py", env, 5005) == [
        "/py", "-m", "azureml_inference_server_http", "--entry_script", "/app/src/score.py", "--port", "5005"]
    assert servers.command("mldeploy", "/py", env, 5005)[:3] == ["/py", "-m", "pytest_mldeploy.server"]


def test_dockerfile_for_azureml_runs_azmlinfsrv_without_our_server() -> None:
    ours = df.render_dockerfile(df.DockerfileSpec(base_image="base"))
    azure = df.render_dockerfile(df.DockerfileSpec(base_image="base", server="azureml",
                                                   entry_script="/var/azureml-app/src/score.py"))
    assert "pytest_mldeploy.server" in ours and "COPY server/" in ours
    assert '"/opt/venv/bin/azmlinfsrv", "--entry_script", "/var/azureml-app/src/score.py", "--port", "5001"' in azure
    assert "COPY server/" not in azure and "PYTHONPATH" not in azure
    assert "HEALTHCHECK" in azure


def test_azureml_without_an_entry_script_is_refused_in_one_line() -> None:
    deployment = load_project(EXAMPLE / "mldeploy.yaml").deployments["diabetes"]
    no_code = deployment.model_copy(update={"server": "azureml", "entry_script": None})
    with pytest.raises(ConfigError, match="server: azureml needs an entry_script"):
        servers.requirements_for(no_code)
