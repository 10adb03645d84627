"""Azure ML CLI v1 files (`inferenceconfig.json`, `deploymentconfig.json`) in place of inline keys."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "sklearn-diabetes"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "proj"
    target.mkdir()
    shutil.copytree(EXAMPLE / "models", target / "models")
    (target / "src").mkdir()
    shutil.copy(EXAMPLE / "score.py", target / "src" / "score.py")
    monkeypatch.chdir(target)
    monkeypatch.delenv("MLDEPLOY_BASE_IMAGE", raising=False)
    return target


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2))


def write_yaml(project_dir: Path, deployment_body: str, defaults: str = "") -> None:
    (project_dir / "mldeploy.yaml").write_text(f"{defaults}deployments:\n  svc:\n{deployment_body}")


INFERENCE_ENV_FORM = {
    "entryScript": "score.py",
    "sourceDirectory": "src",
    "environment": {
        "name": "deploy-env",
        "version": "1",
        "docker": {"baseImage": "python:3.11-slim", "enabled": False, "arguments": []},
        "environmentVariables": {"MODE": "fast", "WORKER_COUNT": "2", "CORS_ORIGINS": "https://a.example, https://b.example"},
        "python": {
            "condaDependencies": {
                "channels": ["conda-forge"],
                "dependencies": ["python=3.11", {"pip": ["azureml-defaults", "scikit-learn==1.9.1", "joblib"]}],
                "name": "project_environment",
            },
            "condaDependenciesFile": None,
            "interpreterPath": "python",
            "userManagedDependencies": False,
        },
    },
}

ACI_CONFIG = {
    "computeType": "ACI",
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.5},
    "authEnabled": True,
    "primaryKey": "key-one",
    "secondaryKey": "key-two",
    "sslEnabled": False,
    "appInsightsEnabled": False,
}


def test_inference_and_aci_deployment_config(project_dir: Path) -> None:
    write_json(project_dir / "inferenceconfig.json", INFERENCE_ENV_FORM)
    write_json(project_dir / "deploymentconfig.json", ACI_CONFIG)
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n    deployment_config: deploymentconfig.json\n")
    d = load_project().deployments["svc"]
    assert d.source_directory == project_dir / "src"
    assert d.entry_script == "score.py"
    assert d.environment.requirements() == ["azureml-defaults", "scikit-learn==1.9.1", "joblib"]
    assert d.environment.python_version() == "3.11"
    assert d.environment_variables == {"MODE": "fast"}
    assert d.workers == 2
    assert d.cors_origins == ["https://a.example", "https://b.example"]
    assert d.base_image == "python:3.11-slim"
    assert (d.resources.cpu, d.resources.memory_gb) == (0.5, 1.5)
    assert d.auth.enabled and d.auth.keys == ["key-one", "key-two"]
    assert d.inference_config == project_dir / "inferenceconfig.json"


def test_old_flat_inference_form_with_conda_file(project_dir: Path) -> None:
    (project_dir / "src" / "myenv.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n    - joblib\n")
    write_json(project_dir / "inferenceconfig.json", {"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml",
                                                     "sourceDirectory": "src", "extraDockerfileSteps": None, "enableGpu": False})
    write_json(project_dir / "deploymentconfig.json", {"computeType": "local", "port": 32267})
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n    deployment_config: deploymentconfig.json\n")
    d = load_project().deployments["svc"]
    assert d.environment.conda_file == project_dir / "src" / "myenv.yml"
    assert d.environment.requirements() == ["joblib"]
    assert d.port == 32267
    assert (d.resources.cpu, d.resources.memory_gb) == (0.1, 0.5)


def test_deployment_config_wins_over_defaults(project_dir: Path) -> None:
    write_json(project_dir / "deploymentconfig.json", ACI_CONFIG)
    write_yaml(
        project_dir,
        "    entry_script: src/score.py\n    deployment_config: deploymentconfig.json\n",
        defaults="defaults:\n  resources: {cpu: 4, memory_gb: 8}\n",
    )
    d = load_project().deployments["svc"]
    assert (d.resources.cpu, d.resources.memory_gb) == (0.5, 1.5)


@pytest.mark.parametrize(
    ("files", "body", "expected"),
    [
        (
            {"inferenceconfig.json": INFERENCE_ENV_FORM},
            "    inference_config: inferenceconfig.json\n    entry_script: src/score.py\n",
            "mldeploy.yaml: deployments.svc: inference_config replaces entry_script; remove it or the inference_config",
        ),
        (
            {"deploymentconfig.json": ACI_CONFIG},
            "    entry_script: src/score.py\n    deployment_config: deploymentconfig.json\n    resources: {cpu: 1}\n"
            "    auth: {enabled: false}\n",
            "mldeploy.yaml: deployments.svc: deployment_config replaces resources, auth; remove them or the deployment_config",
        ),
        (
            {},
            "    inference_config: nowhere.json\n",
            "mldeploy.yaml: deployments.svc.inference_config: nowhere.json does not exist",
        ),
        (
            {"inferenceconfig.json": {"entryScript": "score.py", "sourceDirectory": "src", "environment": {"pyhton": {}}}},
            "    inference_config: inferenceconfig.json\n",
            "inferenceconfig.json: environment.pyhton: unknown key (did you mean 'python'?)",
        ),
        (
            {"deploymentconfig.json": {"computeType": "ACI", "containerResourceRequirements": {"cpu": "many"}}},
            "    entry_script: src/score.py\n    deployment_config: deploymentconfig.json\n",
            "deploymentconfig.json: containerResourceRequirements.cpu: expected a number, got 'many'",
        ),
        (
            {"inferenceconfig.json": {"entryScript": "missing.py", "sourceDirectory": "src"}},
            "    inference_config: inferenceconfig.json\n",
            "inferenceconfig.json: entryScript: missing.py does not exist (looked for {root}/src/missing.py)",
        ),
        (
            {"inferenceconfig.json": {"entryScript": "score.py", "sourceDirectory": "src", "workers": 2}},
            "    inference_config: inferenceconfig.json\n",
            "inferenceconfig.json: workers: unknown key (expected one of: baseImage, baseImageRegistry, condaFile, cudaVersion, "
            "dependencies, description, enableGpu, entryScript, environment, extraDockerfileSteps, runtime, schemaFile, "
            "sourceDirectory)",
        ),
    ],
)
def test_azure_file_errors(project_dir: Path, files: dict, body: str, expected: str) -> None:
    for name, data in files.items():
        write_json(project_dir / name, data)
    write_yaml(project_dir, body)
    with pytest.raises(ConfigError) as info:
        load_project()
    assert str(info.value) == expected.format(root=project_dir)


def test_invalid_json_names_the_line(project_dir: Path) -> None:
    (project_dir / "inferenceconfig.json").write_text('{\n  "entryScript": "score.py",\n}\n')
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n")
    with pytest.raises(ConfigError, match=r"^inferenceconfig.json: line 3: not valid JSON: "):
        load_project()


# The shape `InferenceConfig(...).environment` takes when the azureml-core SDK saves it: an Azure
# curated base image, an old Python pin, conda packages inline next to the pip section.
SDK_INFERENCE_CONFIG = {
    "entryScript": "score.py",
    "sourceDirectory": "src",
    "environment": {
        "name": "sklearn-inference-env",
        "version": "3",
        "python": {
            "interpreterPath": "python",
            "userManagedDependencies": False,
            "condaDependencies": {
                "name": "project_environment",
                "channels": ["anaconda", "conda-forge"],
                "dependencies": ["python=3.6.2", {"pip": ["azureml-defaults~=1.38", "inference-schema"]},
                                 "scikit-learn==1.9.1", "numpy", "cudatoolkit=10.1"],
            },
            "baseCondaEnvironment": None,
        },
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
        "docker": {
            "enabled": False,
            "baseImage": "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210615.v1",
            "platform": {"os": "Linux", "architecture": "amd64"},
            "baseDockerfile": None,
            "baseImageRegistry": {"address": None, "username": None, "password": None},
            "arguments": [],
            "sharedVolumes": True,
            "shmSize": None,
        },
        "spark": {"repositories": [], "packages": [], "precachePackages": True},
        "databricks": {"mavenLibraries": [], "pypiLibraries": [], "rcranLibraries": [], "jarLibraries": [], "eggLibraries": []},
        "r": None,
        "inferencingStackVersion": None,
    },
}


def test_sdk_inference_config_maps_conda_packages_and_keeps_the_curated_image_for_the_builder(project_dir: Path) -> None:
    write_json(project_dir / "inferenceconfig.json", SDK_INFERENCE_CONFIG)
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n")
    d = load_project().deployments["svc"]
    assert d.environment.requirements() == ["scikit-learn==1.9.1", "numpy", "azureml-defaults~=1.38", "inference-schema"]
    pin = d.environment.python_pin()
    assert (pin.version, pin.strict) == ("3.6", False)
    assert pin.source == "inferenceconfig.json: environment.python.condaDependencies (python=3.6.2)"
    (notice,) = d.environment.notices()
    assert notice.startswith("inferenceconfig.json: environment.python.condaDependencies: conda package(s) not installed")
    assert "cudatoolkit=10.1" in notice
    assert d.environment.origins()["scikit-learn==1.9.1"].startswith("conda scikit-learn==1.9.1 in inferenceconfig.json")
    # The curated image is nobody's choice here: the builder picks mldeploy's base for the pin.
    assert d.base_image == "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04:20210615.v1"
    assert d.base_image_source is None


def test_a_top_level_or_environment_base_image_wins_over_azure_curated(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(project_dir / "inferenceconfig.json", SDK_INFERENCE_CONFIG)
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n", defaults="base_image: mldeploy/base:bookworm-py3.11\n")
    d = load_project().deployments["svc"]
    assert (d.base_image, d.base_image_source) == ("mldeploy/base:bookworm-py3.11", "base_image")
    monkeypatch.setenv("MLDEPLOY_BASE_IMAGE", "python:3.11-slim")
    d = load_project().deployments["svc"]
    assert (d.base_image, d.base_image_source) == ("python:3.11-slim", "MLDEPLOY_BASE_IMAGE")


def test_an_own_base_image_in_the_inference_config_is_kept(project_dir: Path) -> None:
    write_json(project_dir / "inferenceconfig.json", INFERENCE_ENV_FORM)
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n", defaults="base_image: mldeploy/base:bookworm-py3.11\n")
    d = load_project().deployments["svc"]
    assert (d.base_image, d.base_image_source) == ("python:3.11-slim", "deployments.svc.base_image")


def test_v2_conda_file_by_condaDependenciesFile(project_dir: Path) -> None:
    (project_dir / "src" / "conda.yml").write_text(
        "name: model-env\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.8\n  - numpy=1.26.4\n  - pip=23.3\n"
        "  - scikit-learn=1.9.1\n  - pip:\n    - inference-schema[numpy-support]==1.8\n    - joblib\n"
    )
    config = {"entryScript": "score.py", "sourceDirectory": "src",
              "environment": {"python": {"condaDependenciesFile": "conda.yml"},
                              "docker": {"baseImage": "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest",
                                         "baseImageRegistry": {"address": None}}}}
    write_json(project_dir / "inferenceconfig.json", config)
    write_yaml(project_dir, "    inference_config: inferenceconfig.json\n")
    d = load_project().deployments["svc"]
    assert d.environment.requirements() == ["numpy==1.26.4", "scikit-learn==1.9.1", "inference-schema[numpy-support]==1.8", "joblib"]
    pin = d.environment.python_pin()
    assert (pin.version, pin.strict) == ("3.8", False) and pin.source.endswith("conda.yml (python=3.8)")
    assert d.environment.notices() == []


def test_inline_conda_environment_in_mldeploy_yaml(project_dir: Path) -> None:
    write_yaml(project_dir, "    entry_script: src/score.py\n    environment:\n      conda: {dependencies: [python=3.11, numpy=1.26.4, mkl]}\n")
    d = load_project().deployments["svc"]
    assert d.environment.requirements() == ["numpy==1.26.4"]
    assert d.environment.notices() == [
        "mldeploy.yaml: deployments.svc.environment.conda: conda package(s) not installed, no PyPI equivalent: "
        "mkl (not a Python package) (the image installs wheels from PyPI); if the service needs one, list its pip name under `pip:`"
    ]


def test_environment_python_is_a_strict_pin(project_dir: Path) -> None:
    write_yaml(project_dir, '    entry_script: src/score.py\n    environment: {python: "3.10", pip: [joblib]}\n')
    pin = load_project().deployments["svc"].environment.python_pin()
    assert (pin.version, pin.source, pin.strict) == ("3.10", "environment.python", True)
