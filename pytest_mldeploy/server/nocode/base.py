"""What every built-in scorer offers the server, and the JSON helpers they share."""
from __future__ import annotations

import abc
import math
from pathlib import Path
from typing import Any, Optional


class ScorerError(RuntimeError):
    """The model cannot be served as registered; the message names the model, the problem and the fix."""


class InputRejected(ValueError):
    """A request the model cannot take although it is JSON of the right shape (a client error, 400)."""


class Scorer(abc.ABC):
    """One model served without an entry script.

    The server calls `init()` once (load the model, work out the schema), then per request
    `translate(body)` (accepted alternative formats into the published one), validates the result
    against `input_schema()`, turns it into the model's input with `prepare(body)` (these three on
    the event loop: InputRejected is a 400) and calls `predict(prepared)` on the run thread.
    """

    #: A short name for logs: "MLflow model", "scikit-learn model", "ONNX model".
    kind = "model"

    def __init__(self, model_path: Path, spec: dict[str, Any]) -> None:
        self.model_path = model_path
        self.spec = spec

    @abc.abstractmethod
    def init(self) -> None:
        """Load the model."""

    @abc.abstractmethod
    def input_schema(self) -> dict[str, Any]:
        """The request body's JSON schema (`ServiceInput`), in the subset the server enforces."""

    def output_schema(self) -> dict[str, Any]:
        """The response body's JSON schema (`ServiceOutput`); `{}` when it cannot be known."""
        return {}

    def translate(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` in the published format (other accepted formats are rewritten into it)."""
        return body

    def prepare(self, body: dict[str, Any]) -> Any:
        """The model's input for a request that matches `input_schema()`; InputRejected when it cannot be made."""
        return body

    @abc.abstractmethod
    def predict(self, prepared: Any) -> Any:
        """The JSON-ready prediction for what `prepare()` made."""

    def describe(self) -> str:
        """One line for the start-up log."""
        return f"{self.kind} {self.model_path}"


def to_json(value: Any, where: str = "the prediction") -> Any:
    """numpy/pandas results as plain JSON values (DataFrames as records, as Azure's MLflow scorer does).

    NaN, infinities and other values JSON cannot carry are refused with a one-line ValueError
    naming where they are (the log then says why the request got its 500).
    """
    try:
        return _to_json(value, where)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _to_json(value: Any, where: str) -> Any:
    module = type(value).__module__
    if module.startswith("pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return _to_json(value.to_dict(orient="records"), where)
        if hasattr(value, "tolist"):
            return _to_json(value.tolist(), where)
    if module == "numpy":
        if hasattr(value, "tolist"):
            return _to_json(value.tolist(), where)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} holds {value!r}, which JSON cannot carry (strict JSON has no NaN or Infinity)")
        return value
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, bytes):
        raise ValueError(f"{where} holds bytes, which JSON cannot carry")
    if isinstance(value, dict):
        return {_key(k): _to_json(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, where) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        return _to_json(item(), where)
    raise ValueError(f"{where} holds a {type(value).__name__}, which is not JSON")


def _key(key: Any) -> str:
    item = getattr(key, "item", None)
    return str(item() if callable(item) else key)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: `ValueError: X has 3 features, ...`."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def optional_import(name: str) -> Optional[Any]:
    """A module when it is installed, else None."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None
