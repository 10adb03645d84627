"""The real server with a built-in scorer (MLDEPLOY_SCORER): routes, errors and start-up failures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from pytest_mldeploy.core import nocode as core_nocode
from pytest_mldeploy.server.contract import SCORER_VAR

REPO = Path(__file__).resolve().parents[2]
ONNX_MODEL = REPO / "example_projects" / "onnx-iris" / "models" / "iris.onnx"
MLFLOW_MODEL = REPO / "example_projects" / "mlflow-diabetes" / "model"
BADSIG = REPO / "tests" / "projects" / "nocode-mlflow-badsig" / "model"


def no_code_app(tmp_path: Path, model: Path, name: str) -> SimpleNamespace:
    """An app root as the layout writes it for a no-code deployment: the model and mldeploy-scorer.json."""
    root = tmp_path / "app"
    version_dir = root / "azureml-models" / name / "1"
    version_dir.mkdir(parents=True)
    (shutil.copytree if model.is_dir() else shutil.copy2)(model, version_dir / model.name)
    spec = core_nocode.detect(model, "Onnx" if model.suffix == ".onnx" else None).spec(
        f"azureml-models/{name}/1/{model.name}")
    (root / core_nocode.SPEC_FILENAME).write_text(json.dumps(spec))
    return SimpleNamespace(root=root, env={"AML_APP_ROOT": str(root), "AZUREML_MODEL_DIR": str(version_dir),
                                           SCORER_VAR: core_nocode.SPEC_FILENAME})


def test_onnx_model_is_served_with_its_graph_schema(start_server, tmp_path: Path) -> None:
    server = start_server(no_code_app(tmp_path, ONNX_MODEL, "iris"))
    assert "loading the built-in scorer of mldeploy-scorer.json" in server.log()
    answer = server.post("/score", json={"float_input": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.status_code == 200 and answer.json()["label"] == [0]
    assert server.get("/score", params={"float_input": "[[5.1, 3.5, 1.4, 0.2]]"}).json()["label"] == [0]
    wrong = server.post("/score", json={"float_input": [[5.1, 3.5]]})
    assert wrong.status_code == 400
    assert wrong.json()["message"] == "Invalid value for the 'float_input' parameter: /float_input/0 must have exactly 4 items, not 2"
    assert server.post("/score", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
    swagger = server.get("/swagger.json").json()
    assert swagger["definitions"]["ServiceInput"]["required"] == ["float_input"]
    assert "serving ONNX model" in server.log()


def test_mlflow_formats_over_http(start_server, tmp_path: Path) -> None:
    server = start_server(no_code_app(tmp_path, MLFLOW_MODEL, "diabetes"))
    example = json.loads((MLFLOW_MODEL / "input_example.json").read_text())
    azure = server.post("/score", json={"input_data": example})
    served = server.post("/score", json={"dataframe_split": example})
    assert azure.status_code == 200 and served.json() == azure.json()
    both = server.post("/score", json={"dataframe_split": example, "inputs": example["data"]})
    assert both.status_code == 400 and "exactly one of" in both.json()["message"]
    missing = server.post("/score", json={"params": {}})
    assert missing.status_code == 400 and "input_data" in missing.json()["message"]


def test_a_signature_that_disagrees_stops_the_start(start_server, tmp_path: Path) -> None:
    server = start_server(no_code_app(tmp_path, BADSIG, "badsig"), wait=False)
    assert server.wait_exit() == 3
    log = server.log()
    assert "cannot serve the model described by mldeploy-scorer.json (built-in scorer)" in log
    assert "X has 3 features, but Ridge is expecting 10 features as input" in log
