"""`mldeploy export azureml-v2`: the instance type it picks, the files it writes, what it refuses."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pytest_mldeploy.cli import main
from pytest_mldeploy.core import azure_vm_sizes
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.export_v2 import choose_instance_type, endpoint_name, export_azureml_v2
from pytest_mldeploy.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DIABETES = REPO / "example_projects" / "sklearn-diabetes"


def test_vm_sizes_are_looked_up_without_regard_to_case_and_carry_their_source() -> None:
    size = azure_vm_sizes.lookup("standard_ds3_v2")
    assert size is not None and (size.name, size.vcpus, size.memory_gib) == ("Standard_DS3_v2", 4, 14.0)
    assert size.source.startswith("https://learn.microsoft.com/")
    assert all(s.source.startswith("https://") for s in azure_vm_sizes.VM_SIZES.values())


@pytest.mark.parametrize("cpu, memory, expected", [
    (0.5, 1, "Standard_DS1_v2"),
    (1, 3.6, "Standard_F2s_v2"),   # 2 vCPUs: F2s_v2 has the least memory that holds 3.6 GB
    (2, 5, "Standard_DS2_v2"),
    (3, 10, "Standard_DS3_v2"),
    (2, 12, "Standard_E2s_v3"),
])
def test_the_smallest_listed_size_that_holds(cpu: float, memory: float, expected: str) -> None:
    assert azure_vm_sizes.smallest_holding(cpu, memory).name == expected


def test_instance_type_comes_from_a_profile_report_when_there_is_one(tmp_path: Path) -> None:
    deployment = load_project(DIABETES / "mldeploy.yaml").deployments["diabetes"]
    report = tmp_path / "profile.json"
    report.write_text(json.dumps({"requestedCpu": 1.7, "requestedMemoryInGb": 0.6}))
    name, reason = choose_instance_type(deployment, report)
    assert name == "Standard_F2s_v2"
    assert "the profile's recommendation (1.7 cores, 0.6 GB)" in reason
    name, reason = choose_instance_type(deployment, None)
    assert name == "Standard_DS1_v2" and "resources (1 cores, 1 GB)" in reason


def test_the_export_writes_three_files_with_relative_paths_and_the_reason(tmp_path: Path) -> None:
    project = load_project(DIABETES / "mldeploy.yaml")
    exported = export_azureml_v2(project, project.deployments["diabetes"], tmp_path / "out")
    text = exported.deployment.read_text()
    body = yaml.safe_load(text)
    assert not Path(body["model"]["path"]).is_absolute()
    assert (exported.deployment.parent / body["model"]["path"]).resolve() == DIABETES / "models" / "sklearn_regression_model.pkl"
    assert (exported.deployment.parent / body["code_configuration"]["code"]).resolve() == DIABETES
    assert body["environment"]["conda_file"] == exported.conda_file.name
    assert "# Standard_DS1_v2 (1 vCPUs, 3.5 GiB): the smallest listed size holding resources" in text
    conda = yaml.safe_load(exported.conda_file.read_text())
    assert conda["dependencies"][-1] == {"pip": ["scikit-learn==1.9.1", "joblib", "inference-schema[numpy-support]"]}
    endpoint = yaml.safe_load(exported.endpoint.read_text())
    assert endpoint["auth_mode"] == "key" and endpoint["traffic"] == {"diabetes": 100}


def test_more_than_one_model_is_refused_with_the_way_out(tmp_path: Path) -> None:
    project = load_project(DIABETES / "mldeploy.yaml")
    deployment = project.deployments["diabetes"]
    deployment.models = deployment.models * 2
    with pytest.raises(ConfigError, match="an Azure ML v2 deployment takes one: put them in one folder"):
        export_azureml_v2(project, deployment, tmp_path / "out")


def test_endpoint_names_fit_azure_rules() -> None:
    assert endpoint_name("diabetes") == "diabetes-endpoint"
    assert endpoint_name("1st_model") == "e-1st-model-endpoint"
    assert len(endpoint_name("x" * 80)) <= 32


def test_the_cli_exports_and_reports_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v2"
    assert main(["export", "azureml-v2", "diabetes", "--config", str(DIABETES / "mldeploy.yaml"), "--out", str(out), "--no-profile"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote: {out / 'diabetes.yml'}" in printed and "instance_type: Standard_DS1_v2" in printed
    assert {p.name for p in out.iterdir()} == {"endpoint.yml", "diabetes.yml", "diabetes-conda.yml"}


def test_the_cli_reads_a_v2_file_as_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v2"
    assert main(["export", "azureml-v2", "--config", str(DIABETES / "mldeploy.yaml"), "--out", str(out), "--no-profile"]) == 0
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["export", "azureml-v2", "--config", str(out / "diabetes.yml"), "--out", str(again), "--no-profile"]) == 0
    assert yaml.safe_load((again / "diabetes.yml").read_text())["instance_type"] == "Standard_DS1_v2"


def test_models_register_with_a_registry_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / ".mldeploy"
    model = DIABETES / "models" / "sklearn_regression_model.pkl"
    assert main(["models", "--registry", str(registry), "register", "--name", "my-model", "--version", "1", "--path", str(model)]) == 0
    assert capsys.readouterr().out.startswith("my-model:1  sha256:")
    assert main(["models", "--registry", str(registry), "list"]) == 0
    assert "my-model:1" in capsys.readouterr().out
