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
