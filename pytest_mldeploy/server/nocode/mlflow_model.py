"""An MLflow model folder (`MLmodel`) deployed with no entry script, as Azure's MLflow deployments are.

Requests (written down in docs/server.md, checked against Azure's and MLflow's documentation):
- Azure's form, published as `ServiceInput`: `{"input_data": ..., "params": {...}}` with
  `input_data` a DataFrame in pandas' split orientation for a column signature
  (`{"columns": [...], "index": [...], "data": [[...]]}`, `index` optional and ignored), a nested
  list for a single unnamed tensor, or an object of nested lists for named tensors;
- the forms of `mlflow models serve`, accepted and rewritten into the one above before validation:
  exactly one of `dataframe_split`, `dataframe_records` (a list of row objects), `instances` or
  `inputs` (rows, row objects, or for named tensors/columns an object of lists), with `params`.
The answer is the prediction alone, as Azure gives it (a list; DataFrames as records), not
`mlflow models serve`'s `{"predictions": ...}`.

The core says how to load the model: the scikit-learn flavor is loaded with its own loader
(pickle or cloudpickle, exactly the file `mlflow.sklearn.load_model` reads, so the image needs no
MLflow); any other flavor through `mlflow.pyfunc.load_model` (mlflow-skinny). The signature gives
the schema; at start the model must predict its own input example (or a sample of its signature),
so a signature that disagrees with the model stops the start with the model's own error.
"""
from __future__ import annotations

import copy
import json
import math
import logging
import warnings
from typing import Any, Optional

from . import tensors
from .base import InputRejected, Scorer, ScorerError, first_line, to_json

log = logging.getLogger("mldeploy.server")
SERVE_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_PARAM_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
                "boolean": "boolean", "string": "string", "datetime": "string"}


class MlflowScorer(Scorer):
    kind = "MLflow model"

    def __init__(self, model_path: Any, spec: dict[str, Any]) -> None:
        super().__init__(model_path, spec)
        self.columns: Optional[list[tuple[str, str]]] = None
        self.tensors: Optional[list[tuple[Optional[str], list[Optional[int]], str]]] = None
        self.params: list[dict[str, Any]] = list(spec.get("params") or [])
        self.as_records = False
        self._read_signature(spec.get("inputs"))

    # ---- signature ------------------------------------------------------------------------------

    def _read_signature(self, inputs: Optional[list[dict[str, Any]]]) -> None:
        if not inputs:
            return
        if all(item.get("type") == "tensor" for item in inputs):
            self.tensors = []
            for item in inputs:
                tensor = item.get("tensor-spec") or {}
                dtype = tensors.dtype_name(tensor.get("dtype", "float64"))
                if dtype is None:
                    raise ScorerError(f"{self.where}: signature tensor dtype {tensor.get('dtype')!r} is not supported")
                shape = [d if isinstance(d, int) and d >= 0 else None for d in tensor.get("shape") or [-1]]
                self.tensors.append((item.get("name"), shape, dtype))
            if len(self.tensors) > 1 and any(name is None for name, _, _ in self.tensors):
                raise ScorerError(f"{self.where}: a signature with several tensors must name each one")
            return
        self.columns = []
        for index, item in enumerate(inputs):
            dtype = tensors.dtype_name(item.get("type", ""))
            if dtype is None or item.get("type") == "tensor":
                raise ScorerError(f"{self.where}: signature input {item.get('name', index)!r} has type "
                                  f"{item.get('type')!r}, which this server cannot read from JSON; deploy with an entry script")
            self.columns.append((str(item["name"]) if item.get("name") is not None else str(index), dtype))
        kinds = {tensors.leaf_schema(dtype)["type"] for _, dtype in self.columns}
        # JSON Schema draft 4 cannot type an array position by position: columns of different JSON
        # types are published (and validated) as row objects, each column typed by name.
        self.as_records = len(kinds) > 1

    @property
    def where(self) -> str:
        return f"MLflow model {'/'.join(self.model_path.parts[-3:])}"

    # ---- start ----------------------------------------------------------------------------------

    def init(self) -> None:
        self.model = self._load()
        example = self._example_input()
        if self.columns is not None and self.as_records and isinstance(example, dict):
            example = self._records(example)
        self.example = {"input_data": example}
        if self.params:
            self.example["params"] = {p["name"]: p["default"] for p in self.params if p.get("default") is not None}
        try:
            to_json(self._call(self._model_input(copy.deepcopy(example)), None), "the prediction")
        except Exception as exc:  # the model's own error, whatever its type, is the reason
            shown = json.dumps(example)
            shown = shown if len(shown) <= 200 else shown[:197] + "..."
            raise ScorerError(
                f"{self.where}: its signature does not fit the model: predicting the input the signature "
                f"describes ({shown}) failed with {first_line(exc)}; log the model again with a signature "
                f"inferred from its training data (mlflow.models.infer_signature)"
            ) from exc

    def _load(self) -> Any:
        loader = self.spec.get("loader", "pyfunc")
        if loader == "sklearn":
            return self._load_sklearn()
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise ScorerError(f"{self.where}: MLflow is not installed in the service ({exc}); mldeploy installs "
                              f"mlflow-skinny for models that are not of the scikit-learn flavor") from None
        try:
            return mlflow.pyfunc.load_model(str(self.model_path))
        except Exception as exc:
            raise ScorerError(f"{self.where} cannot be loaded by mlflow.pyfunc: {first_line(exc)}") from None

    def _load_sklearn(self) -> Any:
        path = self.model_path / self.spec.get("pickled_model", "model.pkl")
        fmt = self.spec.get("serialization_format", "cloudpickle")
        try:
            from sklearn.exceptions import InconsistentVersionWarning
            import sklearn
        except ImportError as exc:
            raise ScorerError(f"{self.where}: scikit-learn is not installed in the service ({exc}); list it in the "
                              f"model's requirements.txt") from None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            try:
                if fmt == "cloudpickle":
                    import cloudpickle

                    with open(path, "rb") as handle:
                        model = cloudpickle.load(handle)
                elif fmt == "pickle":
                    import pickle

                    with open(path, "rb") as handle:
                        model = pickle.load(handle)  # noqa: S301 - trusted like a score.py
                else:
                    raise ScorerError(f"{self.where}: serialization format {fmt!r} is not supported; "
                                      f"deploy with an entry script")
            except ScorerError:
                raise
            except Exception as exc:
                raise ScorerError(f"{self.where}: {path.name} cannot be loaded with scikit-learn "
                                  f"{sklearn.__version__}: {first_line(exc)}") from None
        for warning in caught:
            message = warning.message
            if isinstance(message, InconsistentVersionWarning):
                built, here = str(message.original_sklearn_version), str(message.current_sklearn_version)
                if built.split(".")[0] != here.split(".")[0]:
                    raise ScorerError(f"{self.where}: {path.name} was pickled with scikit-learn {built} but the "
                                      f"service has {here}; log the model again with scikit-learn {here}")
        return model

    def _example_input(self) -> Any:
        """The model's saved input example when it fits the signature's form, else a sample of the signature."""
        saved = self._saved_example()
        if saved is not None:
            return saved
        if self.columns is not None:
            return {"columns": [name for name, _ in self.columns],
                    "data": [[tensors.leaf_value(dtype) for _, dtype in self.columns]]}
        if self.tensors is not None:
            if self.tensors[0][0] is None:
                _, shape, dtype = self.tensors[0]
                return tensors.sample(shape, dtype)
            return {name: tensors.sample(shape, dtype) for name, shape, dtype in self.tensors}
        return None

    def _saved_example(self) -> Any:
        name = self.spec.get("input_example")
        if not name:
            return None
        try:
            loaded = json.loads((self.model_path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if self.columns is not None and isinstance(loaded, dict) and "data" in loaded:
            names = [n for n, _ in self.columns]
            if loaded.get("columns") == names and isinstance(loaded["data"], list) and loaded["data"]:
                return {"columns": names, "data": loaded["data"]}
        if self.tensors is not None and isinstance(loaded, dict) and "inputs" in loaded:
            return loaded["inputs"]
        return None

    # ---- schema ---------------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {"input_data": self._input_data_schema()}
        if self.params:
            properties["params"] = {
                "type": "object",
                "properties": {p["name"]: _param_schema(p) for p in self.params},
                "additionalProperties": False,
            }
        body: dict[str, Any] = {"type": "object", "properties": properties, "required": ["input_data"],
                                "x-mldeploy-also-accepts": list(SERVE_FORMATS)}
        if self.example.get("input_data") is not None:
            body["example"] = self.example
        return body

    def _input_data_schema(self) -> dict[str, Any]:
        if self.columns is not None and self.as_records:
            return {
                "type": "array",
                "minItems": 1,
                "items": {"type": "object", "properties": {name: tensors.leaf_schema(dtype) for name, dtype in self.columns},
                          "required": [name for name, _ in self.columns]},
            }
        if self.columns is not None:
            names = [name for name, _ in self.columns]
            cell = tensors.leaf_schema(self.columns[0][1])
            row = {"type": "array", "items": cell, "minItems": len(names), "maxItems": len(names)}
            return {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}, "enum": [names]},
                    "index": {"type": "array", "items": {"type": "integer"}},
                    "data": {"type": "array", "items": row, "minItems": 1},
                },
                "required": ["columns", "data"],
            }
        if self.tensors is not None:
            if self.tensors[0][0] is None:
                _, shape, dtype = self.tensors[0]
                return tensors.tensor_schema(shape, dtype)
            return {
                "type": "object",
                "properties": {name: tensors.tensor_schema(shape, dtype) for name, shape, dtype in self.tensors},
                "required": [name for name, _, _ in self.tensors],
            }
        return {}

    def output_schema(self) -> dict[str, Any]:
        outputs = self.spec.get("outputs")
        if not outputs:
            return {}
        if all(item.get("type") == "tensor" for item in outputs):
            specs = [(item.get("name"), item.get("tensor-spec") or {}) for item in outputs]
            schemas = {name: tensors.loosen(tensors.tensor_schema(
                [d if isinstance(d, int) and d >= 0 else None for d in t.get("shape") or [-1]],
                tensors.dtype_name(t.get("dtype", "float64")) or "float64")) for name, t in specs}
            if len(specs) == 1:
                return next(iter(schemas.values()))
            return {"type": "object", "properties": schemas}
        kinds = [(item.get("name"), tensors.dtype_name(item.get("type", "")) or "str") for item in outputs]
        if len(kinds) == 1:
            return {"type": "array", "items": {"type": tensors.leaf_schema(kinds[0][1])["type"]}}
        return {"type": "array", "items": {"type": "object", "properties": {
            str(name): {"type": tensors.leaf_schema(dtype)["type"]} for name, dtype in kinds}}}

    # ---- per request ----------------------------------------------------------------------------

    def translate(self, body: dict[str, Any]) -> dict[str, Any]:
        body = self._published_format(body)
        if self.columns is not None and self.as_records and "input_data" in body:
            body["input_data"] = self._records(body["input_data"])
        return body

    def _published_format(self, body: dict[str, Any]) -> dict[str, Any]:
        if "input_data" in body:
            if self.columns is not None:
                return {**body, "input_data": self._reordered(body["input_data"])}
            return body
        given = [key for key in SERVE_FORMATS if key in body]
        if not given:
            return body
        if len(given) > 1:
            raise InputRejected(f"Give exactly one of input_data, {', '.join(SERVE_FORMATS)}; got {', '.join(given)}")
        key = given[0]
        value = body[key]
        out = {k: v for k, v in body.items() if k not in SERVE_FORMATS}
        out["input_data"] = self._from_serve_format(key, value)
        return out

    def _from_serve_format(self, key: str, value: Any) -> Any:
        if self.columns is None:
            if self.tensors is not None and self.tensors[0][0] is not None and _is_row_objects(value):
                return {name: [row.get(name) for row in value] for name, _, _ in self.tensors}
            return value  # a tensor (or free-form input): the same nesting as input_data
        names = [name for name, _ in self.columns]
        if key == "dataframe_split":
            return self._reordered(value)
        if _is_row_objects(value):
            if self.as_records:
                return value
            return {"columns": names, "data": [[_cell(row, name, i, key) for name in names] for i, row in enumerate(value)]}
        if isinstance(value, dict) and key in ("inputs", "instances"):
            missing = [name for name in names if name not in value]
            if missing:
                raise InputRejected(f"{key}: column {missing[0]!r} is missing (columns: {', '.join(names)})")
            columns = [value[name] if isinstance(value[name], list) else [value[name]] for name in names]
            if len({len(c) for c in columns}) != 1:
                raise InputRejected(f"{key}: every column needs the same number of values")
            return {"columns": names, "data": [list(row) for row in zip(*columns)]}
        if key == "dataframe_records":
            raise InputRejected("dataframe_records must be a list of row objects")
        return {"columns": names, "data": value}

    def _reordered(self, frame: Any) -> Any:
        """A split frame whose columns are the signature's in another order, with its rows reordered to match."""
        if self.columns is None or not isinstance(frame, dict):
            return frame
        names = [name for name, _ in self.columns]
        given = frame.get("columns")
        if not isinstance(given, list) or given == names or sorted(map(str, given)) != sorted(names) or len(set(given)) != len(given):
            return frame
        order = [given.index(name) for name in names]
        data = frame.get("data")
        if not isinstance(data, list) or not all(isinstance(row, list) and len(row) == len(names) for row in data):
            return frame
        return {**frame, "columns": names, "data": [[row[i] for i in order] for row in data]}

    def prepare(self, body: dict[str, Any]) -> Any:
        return self._model_input(body["input_data"]), body.get("params")

    def _records(self, frame: Any) -> Any:
        """A split frame (Azure's form) as the row objects published for mixed-type columns."""
        if not isinstance(frame, dict):
            return frame
        names = [name for name, _ in self.columns or []]
        if frame.get("columns") != names:
            raise InputRejected(f"Invalid value for the 'input_data' parameter: columns must be {names}")
        data = frame.get("data")
        if not isinstance(data, list) or not all(isinstance(row, list) and len(row) == len(names) for row in data):
            raise InputRejected(f"Invalid value for the 'input_data' parameter: data must be rows of {len(names)} values")
        return [dict(zip(names, row)) for row in data]

    def predict(self, prepared: Any) -> Any:
        model_input, params = prepared
        return to_json(self._call(model_input, params), "the prediction")

    def _model_input(self, input_data: Any) -> Any:
        if self.columns is not None and self.as_records:
            return _frame([[row[name] for name, _ in self.columns] for row in input_data], self.columns)
        if self.columns is not None:
            return _frame(input_data["data"], self.columns)
        if self.tensors is not None:
            if self.tensors[0][0] is None:
                _, _, dtype = self.tensors[0]
                return tensors.to_array(input_data, dtype, "input_data")
            return {name: tensors.to_array(input_data[name], dtype, name) for name, _, dtype in self.tensors}
        return input_data

    def _call(self, model_input: Any, params: Optional[dict[str, Any]]) -> Any:
        if self.spec.get("loader") == "sklearn":
            return self.model.predict(model_input)
        if params:
            return self.model.predict(model_input, params=params)
        return self.model.predict(model_input)

    def describe(self) -> str:
        loader = "its scikit-learn flavor" if self.spec.get("loader") == "sklearn" else "mlflow.pyfunc"
        form = (f"{len(self.columns)} columns" if self.columns is not None
                else f"{len(self.tensors)} tensor(s)" if self.tensors is not None else "no signature")
        return f"MLflow model {self.model_path} (loaded with {loader}; input: {form})"


def _is_row_objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


def _cell(row: dict[str, Any], name: str, index: int, key: str) -> Any:
    if name not in row:
        raise InputRejected(f"{key}[{index}]: column {name!r} is missing")
    return row[name]


def _frame(rows: list[list[Any]], columns: list[tuple[str, str]]) -> Any:
    """A DataFrame of the signature's columns and types (what MLflow's schema enforcement would make)."""
    import base64

    import pandas as pd

    names = [name for name, _ in columns]
    frame = pd.DataFrame(rows, columns=names)
    for name, dtype in columns:
        try:
            if dtype == "datetime":
                frame[name] = pd.to_datetime(frame[name])
            elif dtype == "bytes":
                frame[name] = [base64.b64decode(v) for v in frame[name]]
            elif dtype == "str":
                frame[name] = frame[name].astype(object)
            else:
                frame[name] = frame[name].astype(dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputRejected(f"Invalid value in column {name!r}: cannot be read as {dtype} ({exc})") from None
        if dtype in ("float32", "float16") and not frame[name].map(math.isfinite).all():
            raise InputRejected(f"Invalid value in column {name!r}: a number is beyond {dtype}'s range")
    return frame


def _param_schema(param: dict[str, Any]) -> dict[str, Any]:
    leaf: dict[str, Any] = {"type": _PARAM_TYPES.get(str(param.get("type")), "string")}
    schema = {"type": "array", "items": leaf} if param.get("shape") else dict(leaf)
    if param.get("default") is not None:
        schema["default"] = param["default"]
    return schema


SCORER = MlflowScorer
