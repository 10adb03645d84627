"""Gates (`gates:` in mldeploy.yaml): limits a profiled service must meet, each with its verdict.

A failed gate reads with the measured figure beside the limit, e.g.
`latency p95 412.3 ms > gate 200 ms`. Pure functions over the profile's figures.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

#: gate key -> (label, figure key, unit, higher_is_worse, formatter)
_GATES: dict[str, tuple[str, str, str, bool, Callable[[float], str]]] = {
    "latency_p95_ms": ("latency p95", "latencyPercentile95InMs", "ms", True, lambda v: f"{v:.1f}"),
    "latency_p99_ms": ("latency p99", "latencyPercentile99InMs", "ms", True, lambda v: f"{v:.1f}"),
    "min_qps": ("throughput", "measuredQueriesPerSecond", "req/s", False, lambda v: f"{v:.1f}"),
    "max_error_rate": ("error rate", "errorRate", "", True, lambda v: f"{v:.2%}"),
    "memory_gb": ("recommended memory", "requestedMemoryInGb", "GB", True, lambda v: f"{v:g}"),
    "cpu": ("recommended cpu", "requestedCpu", "cores", True, lambda v: f"{v:g}"),
}


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured against which limit, and the line a person reads."""

    gate: str
    label: str
    measured: Optional[float]
    limit: float
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float, unit: str, formatter: Callable[[float], str]) -> str:
    text = formatter(value)
    return f"{text} {unit}" if unit else text


def evaluate_gates(gates: Any, figures: dict[str, Any]) -> list[GateResult]:
    """Check every gate that is set (an object with the `Gates` attributes, or a dict) against `figures`.

    `figures` uses profile.json's keys (`latencyPercentile95InMs`, `measuredQueriesPerSecond`,
    `errorRate`, `requestedMemoryInGb`, `requestedCpu`, ...). A figure that could not be measured
    (missing or NaN) fails its gate: an unmeasured service has not shown it meets the limit.
    """
    results = []
    for key, (label, figure, unit, higher_is_worse, formatter) in _GATES.items():
        limit = gates.get(key) if isinstance(gates, dict) else getattr(gates, key, None)
        if limit is None:
            continue
        limit = float(limit)
        measured = figures.get(figure)
        limit_text = _fmt(limit, unit, formatter if key == "max_error_rate" else (lambda v: f"{v:g}"))
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            results.append(GateResult(key, label, None, limit, False, f"{label} not measured (gate {limit_text})"))
            continue
        measured = float(measured)
        passed = measured <= limit if higher_is_worse else measured >= limit
        op = ("<=" if passed else ">") if higher_is_worse else (">=" if passed else "<")
        message = f"{label} {_fmt(measured, unit, formatter)} {op} gate {limit_text}"
        results.append(GateResult(key, label, measured, limit, passed, message))
    return results
