"""JSON schemas for tensors and typed values, and their conversion to numpy, shared by the scorers.

A tensor of shape (-1, 4) float32 is published as an array (at least one item) of arrays of
exactly 4 numbers, so every request the schema admits converts (integer types carry their range;
a number beyond float32's range, about 3.4e38, is refused when converted: see `leaf_schema`).
Unknown dimensions past the first are published with `minItems: 1`; numpy's rule that such rows
have equal lengths cannot be written in JSON Schema (a ragged request is a 400 from the conversion).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .base import InputRejected

_FLOAT_MAX = {"float16": 65504.0, "float32": 3.4028234663852886e38}
_INT_RANGE = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
}
#: MLflow column types and ONNX element types as numpy dtype names.
_ALIASES = {
    "double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool",
    "string": "str", "binary": "bytes", "float16": "float16", "float32": "float32", "float64": "float64",
    "bool": "bool", "str": "str", "object": "str", "bytes": "bytes", "datetime": "datetime",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}
_ONNX_TYPES = {
    "float": "float32", "double": "float64", "float16": "float16", "int8": "int8", "int16": "int16",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "uint64": "uint64", "bool": "bool", "string": "str",
}


def dtype_name(kind: str) -> Optional[str]:
    """numpy's name for an MLflow or numpy type name (`double` -> `float64`), None when unknown."""
    return _ALIASES.get(str(kind).lower())


def onnx_dtype(element: str) -> Optional[str]:
    """numpy's name for an ONNX element type as onnxruntime writes it (`float` in `tensor(float)`)."""
    return _ONNX_TYPES.get(element)


def leaf_schema(dtype: str) -> dict[str, Any]:
    """The JSON schema of one value of numpy dtype `dtype` (as named by `dtype_name`)."""
    if dtype in ("float64",) or dtype in _FLOAT_MAX:
        # float32/float16 ranges are not published: the property check would then draw values near
        # 3.4e38 that overflow any model. A value beyond the range is refused when converted instead.
        return {"type": "number"}
    if dtype in _INT_RANGE:
        low, high = _INT_RANGE[dtype]
        return {"type": "integer", "minimum": low, "maximum": high}
    if dtype == "bool":
        return {"type": "boolean"}
    if dtype == "bytes":
        return {"type": "string", "format": "byte"}
    if dtype == "datetime":
        return {"type": "string", "format": "date-time"}
    return {"type": "string"}


def tensor_schema(shape: Optional[Sequence[Optional[int]]], dtype: str) -> dict[str, Any]:
    """Nested arrays for a tensor; a dimension of None or -1 is unknown (the first one: at least one item)."""
    node = leaf_schema(dtype)
    dims = list(shape) if shape is not None else [None]
    for index in range(len(dims) - 1, -1, -1):
        size = dims[index]
        array: dict[str, Any] = {"type": "array", "items": node}
        if isinstance(size, int) and size >= 0:
            array["minItems"] = array["maxItems"] = size
        else:
            array["minItems"] = 1
        node = array
    return node


def sample(shape: Optional[Sequence[Optional[int]]], dtype: str) -> Any:
    """A small value of that shape and type (one item in unknown dimensions), for examples."""
    leaf = leaf_value(dtype)
    dims = list(shape) if shape is not None else [None]
    value: Any = leaf
    for size in reversed(dims):
        count = size if isinstance(size, int) and size >= 0 else 1
        value = [value] * count
    return value


def leaf_value(dtype: str) -> Any:
    """A neutral value of a type: 0.0, 0, False or an empty string."""
    schema = leaf_schema(dtype)
    return {"number": 0.0, "integer": 0, "boolean": False}.get(schema["type"], "")


def to_array(value: Any, dtype: str, name: str) -> Any:
    """`value` as a numpy array of `dtype`; InputRejected when numpy cannot make one (ragged rows)."""
    import numpy as np

    try:
        if dtype == "str":
            return np.asarray(value, dtype=object)
        with np.errstate(over="ignore"):
            array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputRejected(f"Invalid value for {name!r}: cannot be read as a {dtype} tensor ({exc})") from None
    if dtype in _FLOAT_MAX and not np.isfinite(array).all():
        raise InputRejected(f"Invalid value for {name!r}: a number is beyond {dtype}'s range (±{_FLOAT_MAX[dtype]:g})")
    return array


def loosen(node: dict[str, Any]) -> dict[str, Any]:
    """An output's schema without sizes or bounds: an answer's sizes follow the request's."""
    out = {"type": node["type"]}
    if "items" in node:
        out["items"] = loosen(node["items"])
    return out
