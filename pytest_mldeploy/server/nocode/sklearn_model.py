"""A scikit-learn model file registered with `framework: ScikitLearn` and no entry script (Azure v1).

Request `{"data": [[...], ...]}` (one row per sample, `n_features_in_` numbers each); the answer
is `predict(data)` as a list, or `predict_proba(data)` when the model is registered with the
property `method: predict_proba`. The pickle is loaded with joblib (pickle when joblib is absent).
A pickle written by another scikit-learn major version than the one installed stops the start:
scikit-learn only warns, and such a model may predict wrongly or fail later.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

from . import tensors
from .base import InputRejected, Scorer, ScorerError, to_json

log = logging.getLogger("mldeploy.server")
METHODS = ("predict", "predict_proba")


class SklearnScorer(Scorer):
    kind = "scikit-learn model"

    def init(self) -> None:
        self.method = self.spec.get("method") or "predict"
        if self.method not in METHODS:
            raise ScorerError(f"{self.model_path.name}: method {self.method!r} is not one of {', '.join(METHODS)}; "
                              f"fix the model's 'method' property")
        self.model = self._load()
        if not callable(getattr(self.model, self.method, None)):
            raise ScorerError(f"{self.model_path.name}: the loaded {type(self.model).__name__} has no {self.method}(); "
                              f"register it with another method or deploy it with an entry script")
        self.width = getattr(self.model, "n_features_in_", None)

    def _load(self) -> Any:
        try:
            import sklearn
            from sklearn.exceptions import InconsistentVersionWarning
        except ImportError as exc:
            raise ScorerError(f"scikit-learn is not installed in the service ({exc}); "
                              f"give the model a framework_version so mldeploy installs it") from None
        try:
            import joblib

            load = joblib.load
        except ImportError:
            import pickle

            def load(path: Any) -> Any:
                with open(path, "rb") as handle:
                    return pickle.load(handle)  # noqa: S301 - the registered model is trusted like a score.py
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            try:
                model = load(self.model_path)
            except Exception as exc:
                raise ScorerError(f"{self.model_path.name} cannot be loaded with scikit-learn {sklearn.__version__}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        for warning in caught:
            message = warning.message
            if not isinstance(message, InconsistentVersionWarning):
                continue
            built, here = str(message.original_sklearn_version), str(message.current_sklearn_version)
            if built.split(".")[0] != here.split(".")[0]:
                raise ScorerError(
                    f"{self.model_path.name} was pickled with scikit-learn {built} but the service has {here} "
                    f"(another major version: {message.estimator_name} may not load or predict correctly); "
                    f"retrain and pickle it with scikit-learn {here}, or register it with framework_version {built} "
                    f"on a Python that has that version"
                )
            log.warning("%s was pickled with scikit-learn %s; the service has %s", self.model_path.name, built, here)
        return model

    def input_schema(self) -> dict[str, Any]:
        row = tensors.tensor_schema([self.width if isinstance(self.width, int) else None], "float64")
        return {
            "type": "object",
            "properties": {"data": {"type": "array", "items": row, "minItems": 1}},
            "required": ["data"],
            "example": {"data": [tensors.sample([self.width if isinstance(self.width, int) else 1], "float64")]},
        }

    def output_schema(self) -> dict[str, Any]:
        classes = getattr(self.model, "classes_", None)
        if self.method == "predict_proba":
            width = len(classes) if classes is not None and getattr(classes, "ndim", 1) == 1 else None
            return {"type": "array", "items": tensors.tensor_schema([width], "float64")}
        if classes is not None and getattr(classes, "ndim", 1) == 1:
            kind = getattr(getattr(classes, "dtype", None), "kind", "")
            leaf = {"i": "integer", "u": "integer", "f": "number", "b": "boolean", "U": "string"}.get(kind)
            return {"type": "array", "items": {"type": leaf}} if leaf else {"type": "array"}
        if getattr(self.model, "n_outputs_", 1) == 1 and hasattr(self.model, "coef_") and getattr(self.model.coef_, "ndim", 1) == 1:
            return {"type": "array", "items": {"type": "number"}}
        return {"type": "array"}

    def prepare(self, body: dict[str, Any]) -> Any:
        data = tensors.to_array(body["data"], "float64", "data")
        if data.ndim != 2:
            raise InputRejected(f"Invalid value for 'data': expected rows of numbers (2 dimensions), got {data.ndim}")
        return data

    def predict(self, prepared: Any) -> Any:
        return to_json(getattr(self.model, self.method)(prepared), f"{self.method}()'s result")

    def describe(self) -> str:
        return f"scikit-learn model {self.model_path} ({type(self.model).__name__}.{self.method})"


SCORER = SklearnScorer
