"""Gates (`gates:` in mldeploy.yaml): limits a profiled service must meet, each with its verdict.

A failed gate reads with the measured figure beside the limit, e.g.
`latency p95 412.3 ms > gate 200 ms`. Pure functions over the profile's figures.

Latency and throughput gates are also judged over the rounds the steady load was split into
(`noise.judge`): a figure past its limit fails only when the rounds are past it by more than
their own spread; otherwise the gate is *inconclusive* (a warning with the figures), because a
noisy CI runner, not the service, may have moved it. The other gates compare plainly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Optional, Sequence

from pytest_mldeploy.checks.profiling.noise import FAIL, INCONCLUSIVE, PASS, judge
from pytest_mldeploy.checks.profiling.stats import LoadStats

#: gate key -> (label, figure key, unit, higher_is_worse, formatter)
_GATES: dict[str, tuple[str, str, str, bool, Callable[[float], str]]] = {
    "latency_p95_ms": ("latency p95", "latencyPercentile95InMs", "ms", True, lambda v: f"{v:.1f}"),
    "latency_p99_ms": ("latency p99", "latencyPercentile99InMs", "ms", True, lambda v: f"{v:.1f}"),
    "min_qps": ("throughput", "measuredQueriesPerSecond", "req/s", False, lambda v: f"{v:.1f}"),
    "max_error_rate": ("error rate", "errorRate", "", True, lambda v: f"{v:.2%}"),
    "memory_gb": ("recommended memory", "requestedMemoryInGb", "GB", True, lambda v: f"{v:g}"),
    "cpu": ("recommended cpu", "requestedCpu", "cores", True, lambda v: f"{v:g}"),
}
#: gate key -> the per-round figure a noisy measurement is judged by.
ROUND_FIGURES: dict[str, Callable[[LoadStats], float]] = {
    "latency_p95_ms": lambda s: s.latency_p95_ms,
    "latency_p99_ms": lambda s: s.latency_p99_ms,
    "min_qps": lambda s: s.qps,
}
#: The gates judged over rounds (the others compare plainly).
ROUND_GATES = frozenset(ROUND_FIGURES)


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured against which limit, its verdict (pass, fail or inconclusive)
    and the line a person reads. Only `fail` fails the profile; `inconclusive` is a warning."""

    gate: str
    label: str
    measured: Optional[float]
    limit: float
    passed: bool
    message: str
    verdict: str = ""

    def __post_init__(self) -> None:
        if not self.verdict:
            object.__setattr__(self, "verdict", PASS if self.passed else FAIL)

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    @property
    def status(self) -> str:
        """How a log line reads it: passed, FAILED or inconclusive."""
        return {PASS: "passed", FAIL: "FAILED"}.get(self.verdict, self.verdict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float, unit: str, formatter: Callable[[float], str]) -> str:
    text = formatter(value)
    return f"{text} {unit}" if unit else text


def evaluate_gates(gates: Any, figures: dict[str, Any], rounds: Optional[Sequence[LoadStats]] = None) -> list[GateResult]:
    """Check every gate that is set (an object with the `Gates` attributes, or a dict) against `figures`.

    `figures` uses profile.json's keys (`latencyPercentile95InMs`, `measuredQueriesPerSecond`,
    `errorRate`, `requestedMemoryInGb`, `requestedCpu`, ...). A figure that could not be measured
    (missing or NaN) fails its gate: an unmeasured service has not shown it meets the limit.
    `rounds` (the steady load split in rounds) let a latency or throughput figure past its limit
    be told from noise: it fails only when the rounds clearly are past it too, else it is inconclusive.
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
        per_round = ROUND_FIGURES.get(key)
        if passed or per_round is None or not rounds:
            results.append(GateResult(key, label, measured, limit, passed, message))
            continue
        values = [per_round(r) for r in rounds]
        excess = [(v - limit) if higher_is_worse else (limit - v) for v in values]
        judgement = judge(excess)
        beyond = sum(e > 0 for e in excess)
        middle = limit + judgement.median if higher_is_worse else limit - judgement.median
        detail = (
            f"{beyond} of {len(values)} rounds past the gate, median round {_fmt(middle, unit, formatter)}, "
            f"rounds' spread {_fmt(judgement.spread, unit, formatter)}"
        )
        if judgement.verdict == FAIL:
            results.append(GateResult(key, label, measured, limit, False, f"{message} ({detail})", FAIL))
        else:
            results.append(GateResult(
                key, label, measured, limit, True,
                f"{message}, but within the noise of the rounds ({detail}): inconclusive, re-run on a quieter machine to decide",
                INCONCLUSIVE,
            ))  # fmt: skip
    return results


def stats_figures(stats: LoadStats) -> dict[str, Any]:
    """The figures the round-judged gates read, from one load's stats."""
    return {
        "latencyPercentile95InMs": stats.latency_p95_ms,
        "latencyPercentile99InMs": stats.latency_p99_ms,
        "measuredQueriesPerSecond": stats.qps,
    }


def confirm_gates(first: Sequence[GateResult], again: Sequence[GateResult]) -> list[GateResult]:
    """A failed round-judged gate stays failed only when a later load (`again`) fails it too;
    otherwise it becomes inconclusive, with both figures. Other gates are kept as they were."""
    later = {g.gate: g for g in again}
    results = []
    for gate in first:
        second = later.get(gate.gate)
        if gate.verdict != FAIL or gate.gate not in ROUND_GATES or second is None:
            results.append(gate)
        elif second.verdict == FAIL:
            results.append(replace(gate, message=f"{gate.message}; confirmed by a later load: {second.message}"))
        else:
            results.append(replace(
                gate, passed=True, verdict=INCONCLUSIVE,
                message=f"{gate.message}; but a later load did not confirm it ({second.message}): inconclusive, re-run on a quieter machine to decide",
            ))  # fmt: skip
    return results
