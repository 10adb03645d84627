"""Strict JSON for request bodies and query values: no NaN/Infinity, no number past float64's range.

Python's json accepts `NaN`, `Infinity` and `1e400` (read as infinity); the server refuses them
(400). Checking every float through a `parse_float` hook costs a Python call per number, most of
the parse time of a numeric body. A number can only exceed float64's range when it has an
exponent or at least 309 digits in a row, so the hook runs only for a body that holds one of
those (a C-speed scan of the bytes); any other body is parsed by the C scanner alone. Decoders are
made once: `json.loads(..., parse_float=...)` builds a new one per call.
"""
from __future__ import annotations

import json
from typing import Any

#: The fewest digits in a row of a JSON number beyond float64's range written without exponent (~1.8e308).
_OVERFLOW_DIGITS = 309
_DIGITS_AS_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * _OVERFLOW_DIGITS


def _reject_constant(name: str) -> Any:
    """Strict JSON: `NaN`, `Infinity` and `-Infinity` are not JSON numbers (Azure's server takes them)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number as a float, refusing those beyond float64's range (which would read as infinity)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is beyond the range of a 64-bit float")
    return value


_PLAIN = json.JSONDecoder(parse_constant=_reject_constant)
_CHECKED = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads(data: bytes | str) -> Any:
    """`json.loads(data)` with strict numbers; ValueError (json.JSONDecodeError, UnicodeDecodeError) as json.loads raises."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        return _CHECKED.decode(data)
    # A body that opens with "{" and a non-zero byte is UTF-8 (no BOM, not UTF-16/32): json.detect_encoding's answer.
    encoding = "utf-8" if data[:1] == b"{" and data[1:2] not in (b"", b"\x00") else json.detect_encoding(data)
    text = data.decode(encoding, "surrogatepass")
    if encoding == "utf-8" and not _may_overflow(data):
        return _PLAIN.decode(text)
    return _CHECKED.decode(text)


def _may_overflow(data: bytes) -> bool:
    """Whether a UTF-8 body may hold a number past float64's range (an exponent, or 309+ digits in a row)."""
    if b"e" in data or b"E" in data:
        return True
    return len(data) >= _OVERFLOW_DIGITS and _LONG_DIGIT_RUN in data.translate(_DIGITS_AS_ZERO)
