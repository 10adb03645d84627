"""No entry script: detecting the built-in scorer, the model's requirements, config and layout."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_mldeploy.core import nocode
from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.layout import lay_out_app
from pytest_mldeploy.core.registry import Registry
from pytest_mldeploy.errors import ConfigError
from pytest_mldeploy.server.contract import SCORER_VAR

REPO = Path(__file__).resolve().parents[2]
MLFLOW_MODEL = REPO / "example_projects" / "mlflow-diabetes" / "model"
ONNX_MODEL = REPO / "example_projects" / "onnx-iris" / "models" / "iris.onnx"
PICKLE = REPO / "example_projects" / "sklearn-diabetes" / "models" / "sklearn_regression_model.pkl"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("ScikitLearn", "sklearn"), ("scikit-learn", "sklearn"), ("SKLEARN", "sklearn"), ("scikit_learn", "sklearn"),
     ("Onnx", "onnx"), ("ONNX", "onnx"), ("TensorFlow", "tensorflow"), (None, None)],
)
def test_framework_names_azure_and_common_spellings(given, expected) -> None:
    assert nocode.normalise_framework(given) == expected


def test_sklearn_pickle_pins_the_registered_version() -> None:
    found = nocode.detect(PICKLE, "ScikitLearn", "1.9.1")
    assert found.scorer == "sklearn"
    assert found.requirements == ["scikit-learn==1.9.1", "joblib"]
    assert found.options == {"method": "predict"}
    assert nocode.detect(PICKLE, "sklearn", None, {"method": "predict_proba"}).options == {"method": "predict_proba"}


def test_sklearn_method_must_be_known() -> None:
    with pytest.raises(ValueError, match="properties.method 'transform' is not one of predict, predict_proba"):
        nocode.detect(PICKLE, "ScikitLearn", "1.9.1", {"method": "transform"})


def test_onnx_by_framework_or_suffix() -> None:
    assert nocode.detect(ONNX_MODEL, "Onnx").scorer == "onnx"
    assert nocode.detect(ONNX_MODEL, None).requirements == ["onnxruntime", "numpy"]


def test_a_model_no_scorer_serves_names_the_fix() -> None:
    with pytest.raises(ValueError, match="registered with framework 'TensorFlow', and no entry_script is given"):
        nocode.detect(PICKLE, "TensorFlow")
    with pytest.raises(ValueError, match="registered with no framework"):
        nocode.detect(PICKLE)


def test_mlflow_sklearn_flavor_needs_no_mlflow() -> None:
    found = nocode.detect(MLFLOW_MODEL)
    assert found.scorer == "mlflow" and found.options["loader"] == "sklearn"
    assert found.options["pickled_model"] == "model.pkl" and found.options["serialization_format"] == "pickle"
    assert not any(line.startswith("mlflow") for line in found.requirements)
    assert "scikit-learn==1.9.1" in found.requirements and "pandas==3.1.1" in found.requirements
    assert found.python_version == "3.11"
    columns = [item["name"] for item in found.options["inputs"]]
    assert columns == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert found.options["input_example"] == "input_example.json"


def test_mlflow_other_flavors_get_mlflow_skinny(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(MLFLOW_MODEL, model)
    text = (model / "MLmodel").read_text().replace("loader_module: mlflow.sklearn", "loader_module: mlflow.pyfunc.model")
    (model / "MLmodel").write_text(text)
    found = nocode.detect(model)
    assert found.options["loader"] == "pyfunc" and "pickled_model" not in found.options
    assert "mlflow-skinny==3.17.2" in found.requirements
    assert not any(line.startswith("mlflow==") for line in found.requirements)


def test_mlflow_conda_file_when_there_is_no_requirements_txt(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(MLFLOW_MODEL, model)
    (model / "requirements.txt").unlink()
    found = nocode.detect(model)
    assert "scikit-learn==1.9.1" in found.requirements and "psutil==7.2.2" in found.requirements


def test_a_folder_without_mlmodel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a folder without an MLmodel file"):
        nocode.detect(tmp_path)


# ---- mldeploy.yaml and the layout ------------------------------------------------------------------


def _project(tmp_path: Path, body: str, *copies: Path) -> Path:
    for source in copies:
        target = tmp_path / source.name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    (tmp_path / "mldeploy.yaml").write_text(textwrap.dedent(body))
    return tmp_path / "mldeploy.yaml"


def test_config_without_entry_script_takes_the_models_requirements(tmp_path: Path) -> None:
    config = _project(tmp_path, "deployments:\n  d:\n    models: [{path: model}]\n", MLFLOW_MODEL)
    deployment = load_project(config).deployments["d"]
    assert deployment.entry_script is None and deployment.entry_script_path is None
    assert deployment.builtin_scorer is not None and deployment.builtin_scorer.scorer == "mlflow"
    assert "scikit-learn==1.9.1" in deployment.environment.requirements()
    assert deployment.environment.python_version() == "3.11"
    pin = deployment.environment.python_pin()
    assert pin is not None and not pin.strict and pin.source == "model/MLmodel (python_version)"


def test_config_keeps_a_declared_environment(tmp_path: Path) -> None:
    config = _project(tmp_path, "deployments:\n  d:\n    models: [{path: model}]\n    environment: {pip: [scikit-learn, pandas]}\n",
                      MLFLOW_MODEL)
    assert load_project(config).deployments["d"].environment.requirements() == ["scikit-learn", "pandas"]


def test_config_errors_name_the_deployment_and_the_fix(tmp_path: Path) -> None:
    config = _project(tmp_path, "deployments:\n  d:\n    models: [{path: sklearn_regression_model.pkl}]\n", PICKLE)
    with pytest.raises(ConfigError) as caught:
        load_project(config)
    assert str(caught.value) == (
        f"{config}: deployments.d: sklearn_regression_model.pkl is registered with no framework, and no entry_script "
        "is given; give an entry_script, or register the model with framework ScikitLearn or Onnx (or deploy an "
        "MLflow model folder)"
    )
    config.write_text("deployments:\n  d:\n    resources: {cpu: 1}\n")
    with pytest.raises(ConfigError, match=r"deployments\.d\.entry_script: required key is missing"):
        load_project(config)


def test_layout_writes_the_scorer_description_and_no_source(tmp_path: Path) -> None:
    config = _project(tmp_path, "deployments:\n  d:\n    models: [{name: iris, path: iris.onnx, framework: Onnx}]\n",
                      ONNX_MODEL)
    project = load_project(config)
    deployment = project.deployments["d"]
    registry = Registry(tmp_path / "registry")
    models = registry.register_deployment_models(deployment)
    layout = lay_out_app(deployment, models, registry, tmp_path / "app")
    spec = json.loads((tmp_path / "app" / nocode.SPEC_FILENAME).read_text())
    assert spec == {"scorer": "onnx", "model": "azureml-models/iris/1/iris.onnx"}
    env = layout.server_env()
    assert env[SCORER_VAR] == nocode.SPEC_FILENAME
    assert "AZUREML_ENTRY_SCRIPT" not in env and "AZUREML_SOURCE_DIRECTORY" not in env
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["azureml-models", nocode.SPEC_FILENAME]
    assert layout.relocated("/var/azureml-app")["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/iris/1"


def test_mldeploy_scorer_is_a_reserved_variable(tmp_path: Path) -> None:
    config = _project(tmp_path, "deployments:\n  d:\n    models: [{path: iris.onnx, framework: Onnx}]\n"
                                "    environment: {variables: {MLDEPLOY_SCORER: x}}\n", ONNX_MODEL)
    with pytest.raises(ConfigError, match="MLDEPLOY_SCORER: set by mldeploy"):
        load_project(config)
