"""What we accept and what we write are what `az ml` accepts: Azure's own loader (azure-ai-ml, dev extra)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_mldeploy.core import azure_v2
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "azureml-v2"
DIABETES = REPO / "example_projects" / "sklearn-diabetes"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the example's v2 sample folder (managed/sample beside model-1 and model-2)."""
    copy = tmp_path / "azureml-v2"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns(".mldeploy*", "__pycache__"))
    return copy / "managed" / "sample"


def deployment_of(path: Path):
    project = load_project(path)
    return project, next(iter(project.deployments.values()))

azure_ai_ml = pytest.importorskip("azure.ai.ml", reason="azure-ai-ml (dev extra) validates v2 YAML as az ml does")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:The `context` parameter:Warning")


@pytest.mark.parametrize("name", ["blue-deployment.yml", "green-deployment.yml"])
def test_azure_ai_ml_accepts_the_example_files(name: str) -> None:
    folder = EXAMPLE / "managed" / "sample"
    deployment = azure_ai_ml.load_online_deployment(folder / name)
    endpoint = azure_ai_ml.load_online_endpoint(folder / "endpoint.yml")
    ours = next(iter(load_project(folder / name).deployments.values()))
    assert deployment.instance_type == ours.instance_type
    assert Path(deployment.model.path) == ours.models[0].path
    assert deployment.environment.conda_file == azure_v2.read_yaml(ours.environment.conda_file, "conda")
    assert endpoint.auth_mode == "key" and endpoint.name == deployment.endpoint_name


def test_azure_ai_ml_and_we_both_refuse_an_unknown_key(sample: Path) -> None:
    path = sample / "blue-deployment.yml"
    path.write_text(path.read_text() + "scoring_timeout: 10\n")
    with pytest.raises(Exception, match="Unknown field"):
        azure_ai_ml.load_online_deployment(path)
    with pytest.raises(ConfigError, match="scoring_timeout: unknown key"):
        load_project(path)


def test_the_copied_sample_is_accepted_by_both(sample: Path) -> None:
    path = sample / "blue-deployment.yml"
    assert azure_ai_ml.load_online_deployment(path).name == "blue"
    assert deployment_of(path)[1].models[0].path == sample.parent.parent / "model-1" / "model"


@pytest.mark.parametrize("source, name", [
    (DIABETES / "mldeploy.yaml", "diabetes"),
    (EXAMPLE / "managed" / "sample" / "green-deployment.yml", "green"),
])
def test_what_we_export_azure_ai_ml_loads_and_we_read_back(tmp_path: Path, source: Path, name: str) -> None:
    from pytest_mldeploy.core.export_v2 import export_azureml_v2

    project = load_project(source)
    original = project.deployments[name]
    exported = export_azureml_v2(project, original, tmp_path / "out")
    theirs = azure_ai_ml.load_online_deployment(exported.deployment)
    endpoint = azure_ai_ml.load_online_endpoint(exported.endpoint)
    assert theirs.endpoint_name == endpoint.name and endpoint.traffic == {theirs.name: 100}
    assert theirs.instance_type == exported.instance_type
    assert Path(theirs.model.path) == original.models[0].path
    _, back = deployment_of(exported.deployment)
    assert back.source_directory == original.source_directory and back.entry_script == original.entry_script
    assert back.models[0].path == original.models[0].path
    assert back.environment.requirements() == original.environment.requirements()
    assert back.scoring_timeout_ms == original.scoring_timeout_ms
