"""An ONNX model registered with `framework: Onnx` and no entry script, served with onnxruntime.

The request is an object with one key per graph input, each a nested list of the input's shape and
element type: `{"float_input": [[5.1, 3.5, 1.4, 0.2]]}`. The answer is an object with one key per
graph output: tensors as nested lists, sequences of maps (scikit-learn's ZipMap) as lists of
objects. The published schema comes from the graph: dimensions with a size are exact, symbolic or
unknown ones need at least one item.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from . import tensors
from .base import InputRejected, Scorer, ScorerError, first_line, to_json

_TENSOR = re.compile(r"tensor\((\w+)\)")
_SEQ_MAP = re.compile(r"seq\(map\((\w+),\s*tensor\((\w+)\)\)\)")


class OnnxScorer(Scorer):
    kind = "ONNX model"

    def init(self) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise ScorerError(f"onnxruntime is not installed in the service ({exc}); mldeploy installs it for "
                              f"models registered with framework Onnx") from None
        try:
            self.session = onnxruntime.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ScorerError(f"{self.model_path.name} cannot be loaded by onnxruntime {onnxruntime.__version__}: "
                              f"{first_line(exc)}") from None
        self.inputs = []
        for node in self.session.get_inputs():
            match = _TENSOR.fullmatch(node.type)
            dtype = tensors.onnx_dtype(match.group(1)) if match else None
            if dtype is None:
                raise ScorerError(f"{self.model_path.name}: graph input {node.name!r} has type {node.type}, which a JSON "
                                  f"request cannot give; deploy it with an entry script that builds it")
            self.inputs.append((node.name, _dims(node.shape), dtype))
        self.outputs = [(node.name, node.type, _dims(node.shape)) for node in self.session.get_outputs()]

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: tensors.tensor_schema(shape, dtype) for name, shape, dtype in self.inputs},
            "required": [name for name, _, _ in self.inputs],
            "example": {name: tensors.sample(shape, dtype) for name, shape, dtype in self.inputs},
        }

    def output_schema(self) -> dict[str, Any]:
        properties = {}
        for name, kind, shape in self.outputs:
            schema = _output_schema(kind, shape)
            if schema is not None:
                properties[name] = schema
        body: dict[str, Any] = {"type": "object", "properties": properties}
        if len(properties) == len(self.outputs):
            body["required"] = [name for name, _, _ in self.outputs]
        return body

    def prepare(self, body: dict[str, Any]) -> Any:
        feeds = {name: tensors.to_array(body[name], dtype, name) for name, _, dtype in self.inputs}
        for name, shape, _ in self.inputs:
            if feeds[name].ndim != len(shape):
                raise InputRejected(f"Invalid value for {name!r}: expected {len(shape)} dimensions, got {feeds[name].ndim}")
        return feeds

    def predict(self, prepared: Any) -> Any:
        results = self.session.run(None, prepared)
        return {name: to_json(value, f"the ONNX graph's output {name!r}")
                for (name, _, _), value in zip(self.outputs, results)}

    def describe(self) -> str:
        shown = ", ".join(f"{n}{list(s)}:{d}" for n, s, d in self.inputs)
        return f"ONNX model {self.model_path} (inputs {shown}; outputs {', '.join(n for n, _, _ in self.outputs)})"


def _dims(shape: Any) -> list[Optional[int]]:
    """onnxruntime's shape (ints, symbolic names, None) with every unknown size as None."""
    return [d if isinstance(d, int) and d >= 0 else None for d in (shape or [])]


def _output_schema(kind: str, shape: list[Optional[int]]) -> Optional[dict[str, Any]]:
    match = _TENSOR.fullmatch(kind)
    if match:
        dtype = tensors.onnx_dtype(match.group(1)) or "float64"
        return tensors.loosen(tensors.tensor_schema(shape, dtype))
    seq_map = _SEQ_MAP.fullmatch(kind)
    if seq_map:
        value = tensors.leaf_schema(tensors.onnx_dtype(seq_map.group(2)) or "float64")
        return {"type": "array", "items": {"type": "object", "additionalProperties": {"type": value["type"]}}}
    return None


SCORER = OnnxScorer
