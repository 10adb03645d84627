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
from pytest_mldeploy.core.image_prune import remove_deployment_images
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


def _diabetes_source(root: Path) -> Path:
    """The example's score.py and model in an Azure-style `src/` folder."""
    src = root / "src"
    src.mkdir(parents=True)
    (src / "score.py").write_text((EXAMPLE / "score.py").read_text())
    (root / "models").mkdir()
    (root / "models" / "sklearn_regression_model.pkl").write_bytes(
        (EXAMPLE / "models" / "sklearn_regression_model.pkl").read_bytes())
    return src


def _scores(service) -> None:
    sample = json.loads((EXAMPLE / "sample_requests.txt").read_text().splitlines()[0])
    answer = requests.post(service.scoring_uri, json=sample, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == len(sample["data"])


def test_sdk_inference_config_with_a_curated_base_and_python_36_deploys_unchanged(deployed, tmp_path):
    root = tmp_path / "sdk"
    _diabetes_source(root)
    # What azureml-core's InferenceConfig/Environment save: a curated image, Python 3.6.2, conda packages.
    (root / "inferenceconfig.json").write_text(json.dumps({
        "entryScript": "score.py",
        "sourceDirectory": "src",
        "environment": {
            "name": "diabetes-env", "version": "2",
            "python": {"interpreterPath": "python", "userManagedDependencies": False, "baseCondaEnvironment": None,
                       "condaDependencies": {"name": "project_environment", "channels": ["anaconda", "conda-forge"],
                                             "dependencies": ["python=3.6.2", "scikit-learn=1.9.1", "joblib", "cudatoolkit=10.1",
                                                              {"pip": ["inference-schema[numpy-support]"]}]}},
            "docker": {"enabled": False, "baseImage": "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210615.v1",
                       "baseDockerfile": None, "baseImageRegistry": {"address": None, "username": None, "password": None},
                       "arguments": [], "sharedVolumes": True, "shmSize": None},
            "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
            "spark": {"repositories": [], "packages": [], "precachePackages": True},
            "r": None, "inferencingStackVersion": None,
        },
    }, indent=2))
    (root / "mldeploy.yaml").write_text(
        f"deployments:\n  {_name('sdk')}:\n    inference_config: inferenceconfig.json\n"
        "    models: [{name: sklearn_regression_model, path: models/sklearn_regression_model.pkl}]\n"
    )
    notices: list[str] = []
    service = deployed(root, notices)
    assert service.state is ServiceState.HEALTHY
    _scores(service)
    text = "\n".join(notices)
    assert "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210615.v1 is Azure's curated image" in text
    assert "cudatoolkit=10.1 (not a Python package)" in text
    if "building on python:3.6-slim-bookworm" not in text:  # no registry answers: the offline base, said once
        (line,) = [n for n in notices if "asks for Python 3.6" in n]
        assert "is Azure's curated image" in line and "building on the offline base mldeploy/base:bookworm-py3.11 with Python 3.11" in line


def test_v2_conda_file_with_conda_packages_deploys_unchanged(deployed, tmp_path):
    root = tmp_path / "v2"
    _diabetes_source(root)
    (root / "src" / "conda.yaml").write_text(textwrap.dedent(
        """\
        name: model-env
        channels:
          - conda-forge
        dependencies:
          - python=3.10
          - scikit-learn=1.9.1
          - joblib
          - pip
          - pip:
            - inference-schema[numpy-support]
        """
    ))
    (root / "mldeploy.yaml").write_text(
        f"deployments:\n  {_name('v2')}:\n    source_directory: src\n    entry_script: score.py\n"
        "    environment: {conda_file: src/conda.yaml}\n"
        "    models: [{name: sklearn_regression_model, path: models/sklearn_regression_model.pkl}]\n"
    )
    notices: list[str] = []
    service = deployed(root, notices)
    assert service.state is ServiceState.HEALTHY
    _scores(service)
    assert not any("not installed" in n for n in notices)


def _pinned_project(root: Path, environment: str, extra: str = "") -> None:
    root.mkdir()
    (root / "score.py").write_text(ECHO_SCORE)
    (root / "mldeploy.yaml").write_text(f"{extra}deployments:\n  pinned:\n    entry_script: score.py\n    environment: {environment}\n")


def test_a_strict_python_pin_no_base_has_is_one_line_with_the_choices(target, tmp_path, monkeypatch):
    from pytest_mldeploy.core.base_choice import choose_base
    from pytest_mldeploy.errors import BuildError

    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    _pinned_project(tmp_path / "strict", '{python: "3.8", pip: [joblib]}')
    project = load_project(tmp_path / "strict")
    deployment = project.deployments["pinned"]
    try:
        base = choose_base(deployment, project, client=target.client)
    except BuildError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith("deployment pinned: environment.python asks for Python 3.8 and no base image has it: "
                                  "python:3.8-slim-bookworm cannot be pulled (")
        assert message.endswith("choose one: pull python:3.8-slim-bookworm where a registry answers, set base_image to an "
                                "image with Python 3.8, or remove environment.python to build on Python 3.11")
    else:  # a registry answered
        assert (base.tag, base.python_version) == ("python:3.8-slim-bookworm", "3.8")


def test_a_named_base_wins_over_a_conda_python_pin_with_a_notice(target, tmp_path, monkeypatch):
    from pytest_mldeploy.core.base_choice import choose_base

    _pinned_project(tmp_path / "named", "{conda_file: conda.yml}")
    (tmp_path / "named" / "conda.yml").write_text("dependencies: [python=3.7, {pip: [joblib]}]\n")
    monkeypatch.setenv("MLDEPLOY_BASE_IMAGE", LOCAL_BASE_TAG)
    project = load_project(tmp_path / "named")
    said: list[str] = []
    base = choose_base(project.deployments["pinned"], project, client=target.client, progress=said.append)
    assert base.tag == LOCAL_BASE_TAG
    assert said == ["deployment pinned: conda.yml (python=3.7) asks for Python 3.7; base image "
                    f"{LOCAL_BASE_TAG} (from MLDEPLOY_BASE_IMAGE) has Python 3.11, which is used: packages are resolved for it"]
