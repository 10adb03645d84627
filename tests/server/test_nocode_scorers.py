"""The built-in scorers on their own: request formats, published schemas, conversions and load errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_mldeploy.core import nocode as core_nocode
from pytest_mldeploy.server import validation
from pytest_mldeploy.server.nocode import InputRejected, ScorerError, load_scorer, tensors
from pytest_mldeploy.server.nocode.base import to_json
from pytest_mldeploy.server.nocode.mlflow_model import MlflowScorer
from pytest_mldeploy.server.nocode.onnx_model import OnnxScorer
from pytest_mldeploy.server.nocode.sklearn_model import SklearnScorer

REPO = Path(__file__).resolve().parents[2]
MLFLOW_MODEL = REPO / "example_projects" / "mlflow-diabetes" / "model"
ONNX_MODEL = REPO / "example_projects" / "onnx-iris" / "models" / "iris.onnx"
PROJECTS = REPO / "tests" / "projects"
EXAMPLE = json.loads((MLFLOW_MODEL / "input_example.json").read_text())
COLUMNS = EXAMPLE["columns"]


@pytest.fixture(scope="module")
def mlflow_scorer() -> MlflowScorer:
    scorer = MlflowScorer(MLFLOW_MODEL, core_nocode.detect(MLFLOW_MODEL).spec("model"))
    scorer.init()
    return scorer


def _predict(scorer, body):
    body = scorer.translate(body)
    violation = validation.compile_schema(validation.restrict(scorer.input_schema())[0]).first_violation(body)
    assert violation is None, violation
    return scorer.predict(scorer.prepare(body))


def test_mlflow_formats_give_the_same_prediction(mlflow_scorer) -> None:
    rows = EXAMPLE["data"]
    records = [dict(zip(COLUMNS, row)) for row in rows]
    expected = _predict(mlflow_scorer, {"input_data": {"columns": COLUMNS, "index": [7, 8], "data": rows}})
    assert len(expected) == 2 and all(isinstance(v, float) for v in expected)
    for body in (
        {"dataframe_split": {"columns": COLUMNS, "data": rows}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": records},
        {"inputs": {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}},
        {"instances": rows},
        {"input_data": {"columns": COLUMNS[::-1], "data": [row[::-1] for row in rows]}},
    ):
        assert _predict(mlflow_scorer, body) == pytest.approx(expected), body


def test_mlflow_refuses_two_formats_and_a_missing_column(mlflow_scorer) -> None:
    with pytest.raises(InputRejected, match="exactly one of input_data, dataframe_split"):
        mlflow_scorer.translate({"dataframe_split": {}, "inputs": []})
    with pytest.raises(InputRejected, match=r"dataframe_records\[0\]: column 's6' is missing"):
        mlflow_scorer.translate({"dataframe_records": [{name: 0.0 for name in COLUMNS[:-1]}]})


def test_mlflow_schema_is_the_signature(mlflow_scorer) -> None:
    schema = mlflow_scorer.input_schema()
    frame = schema["properties"]["input_data"]
    assert schema["required"] == ["input_data"]
    assert frame["required"] == ["columns", "data"]
    assert frame["properties"]["columns"]["enum"] == [COLUMNS]
    assert frame["properties"]["data"]["items"] == {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10}
    assert schema["example"] == {"input_data": EXAMPLE}
    assert mlflow_scorer.output_schema() == {"type": "array", "items": {"type": "number"}}
    restricted, dropped = validation.restrict(schema)
    assert dropped == [] and restricted == schema
    checker = validation.compile_schema(schema)
    assert checker.first_violation({"input_data": {"columns": COLUMNS, "data": [[0.0] * 9]}}) is not None
    assert checker.first_violation({"input_data": {"columns": COLUMNS[:-1] + ["x"], "data": [[0.0] * 10]}}) is not None


def test_mlflow_signature_with_tensors_and_params(tmp_path: Path) -> None:
    spec = {"loader": "pyfunc",
            "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}],
            "params": [{"name": "top_k", "type": "long", "default": 3, "shape": None}]}
    scorer = MlflowScorer(tmp_path, spec)
    scorer.example = {"input_data": [[0.0, 0.0, 0.0]], "params": {"top_k": 3}}
    schema = scorer.input_schema()
    assert schema["properties"]["input_data"] == {
        "type": "array", "minItems": 1, "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}}}
    assert schema["properties"]["params"] == {
        "type": "object", "properties": {"top_k": {"type": "integer", "default": 3}}, "additionalProperties": False}
    assert scorer.translate({"inputs": [[1, 2, 3]], "params": {"top_k": 1}}) == {"params": {"top_k": 1}, "input_data": [[1, 2, 3]]}
    model_input, params = scorer.prepare({"input_data": [[1, 2, 3]], "params": {"top_k": 1}})
    assert str(model_input.dtype) == "float32" and params == {"top_k": 1}
    with pytest.raises(InputRejected, match="beyond float32's range"):
        scorer.prepare({"input_data": [[1e39, 0, 0]]})


def test_mlflow_columns_of_mixed_types_are_published_as_row_objects(tmp_path: Path) -> None:
    spec = {"loader": "pyfunc", "inputs": [{"type": "double", "name": "x"}, {"type": "string", "name": "city"},
                                           {"type": "long", "name": "n"}]}
    scorer = MlflowScorer(tmp_path, spec)
    scorer.example = {"input_data": [{"x": 0.0, "city": "", "n": 0}]}
    frame = scorer.input_schema()["properties"]["input_data"]
    assert frame["items"]["required"] == ["x", "city", "n"]
    assert frame["items"]["properties"]["city"] == {"type": "string"}
    assert frame["items"]["properties"]["n"]["type"] == "integer"
    records = [{"x": 1.5, "city": "Oslo", "n": 3}]
    for body in ({"input_data": {"columns": ["x", "city", "n"], "data": [[1.5, "Oslo", 3]]}},
                 {"input_data": {"columns": ["n", "x", "city"], "data": [[3, 1.5, "Oslo"]]}},
                 {"dataframe_split": {"columns": ["x", "city", "n"], "data": [[1.5, "Oslo", 3]]}},
                 {"dataframe_records": records}, {"inputs": {"x": [1.5], "city": ["Oslo"], "n": [3]}}):
        assert scorer.translate(body) == {"input_data": records}, body
    model_input, _ = scorer.prepare({"input_data": records})
    assert [str(t) for t in model_input.dtypes] == ["float64", "object", "int64"]
    with pytest.raises(InputRejected, match="columns must be"):
        scorer.translate({"input_data": {"columns": ["x", "city"], "data": [[1.5, "Oslo"]]}})


def test_signature_that_disagrees_with_the_model_stops_the_start() -> None:
    model = PROJECTS / "nocode-mlflow-badsig" / "model"
    scorer = MlflowScorer(model, core_nocode.detect(model).spec("model"))
    with pytest.raises(ScorerError, match="its signature does not fit the model.*X has 3 features, but Ridge is expecting 10"):
        scorer.init()


def test_sklearn_pickle_of_another_major_version_stops_the_start() -> None:
    pickle = PROJECTS / "nocode-sklearn-oldpickle" / "models" / "old.pkl"
    scorer = SklearnScorer(pickle, {"method": "predict"})
    with pytest.raises(ScorerError, match="old.pkl was pickled with scikit-learn 0.24.2 but the service has 1.9.1"):
        scorer.init()


def test_sklearn_predict_proba_schema() -> None:
    scorer = SklearnScorer(PROJECTS / "nocode-sklearn" / "models" / "iris.pkl", {"method": "predict_proba"})
    scorer.init()
    assert scorer.input_schema()["properties"]["data"]["items"]["maxItems"] == 4
    assert scorer.output_schema() == {"type": "array", "items": {"type": "array", "items": {"type": "number"},
                                                                 "minItems": 3, "maxItems": 3}}
    rows = scorer.predict(scorer.prepare({"data": [[5.1, 3.5, 1.4, 0.2]]}))
    assert len(rows) == 1 and math.isclose(sum(rows[0]), 1.0)


def test_onnx_schema_and_outputs_from_the_graph() -> None:
    scorer = OnnxScorer(ONNX_MODEL, {})
    scorer.init()
    schema = scorer.input_schema()
    assert schema["required"] == ["float_input"] and schema["example"] == {"float_input": [[0.0, 0.0, 0.0, 0.0]]}
    assert scorer.output_schema() == {
        "type": "object", "required": ["label", "probabilities"],
        "properties": {"label": {"type": "array", "items": {"type": "integer"}},
                       "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}
    answer = scorer.predict(scorer.prepare({"float_input": [[6.7, 3.0, 5.2, 2.3]]}))
    assert answer["label"] == [2]
    with pytest.raises(InputRejected, match="cannot be read as a float32 tensor"):
        scorer.prepare({"float_input": [[1.0, 2.0, 3.0, 4.0], [1.0]]})


def test_onnx_output_that_json_cannot_carry_names_the_output() -> None:
    scorer = OnnxScorer(PROJECTS / "nocode-onnx-nan" / "models" / "nan.onnx", {})
    scorer.init()
    with pytest.raises(ValueError, match="the ONNX graph's output 'y' holds nan, which JSON cannot carry"):
        scorer.predict(scorer.prepare({"x": [[0.0, 1.0]]}))


def test_tensor_schemas() -> None:
    assert tensors.tensor_schema([None, 2], "int8") == {
        "type": "array", "minItems": 1,
        "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": -128, "maximum": 127}}}
    assert tensors.tensor_schema([], "bool") == {"type": "boolean"}
    assert tensors.sample([None, 2], "float64") == [[0.0, 0.0]]


def test_to_json_reads_numpy_and_pandas() -> None:
    import numpy as np
    import pandas as pd

    assert to_json(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]
    assert to_json(pd.DataFrame({"a": [1.5], "b": ["x"]})) == [{"a": 1.5, "b": "x"}]
    assert to_json({np.int64(1): np.float32(0.5)}) == {"1": 0.5}
    with pytest.raises(ValueError, match="holds inf"):
        to_json([1.0, float("inf")])


def test_load_scorer_reads_the_description(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"scorer": "onnx", "model": "missing.onnx"}))
    with pytest.raises(ScorerError, match="missing.onnx named by spec.json does not exist"):
        load_scorer(tmp_path, "spec.json")
    (tmp_path / "spec.json").write_text(json.dumps({"scorer": "keras", "model": "m"}))
    with pytest.raises(ScorerError, match="needs 'scorer' \\(one of mlflow, sklearn, onnx\\)"):
        load_scorer(tmp_path, "spec.json")


def test_own_loader_predicts_what_mlflow_pyfunc_predicts(mlflow_scorer) -> None:
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")
    import pandas as pd

    frame = pd.DataFrame(EXAMPLE["data"], columns=COLUMNS)
    expected = mlflow_pyfunc.load_model(str(MLFLOW_MODEL)).predict(frame)
    ours = _predict(mlflow_scorer, {"input_data": EXAMPLE})
    assert ours == [float(v) for v in expected]
