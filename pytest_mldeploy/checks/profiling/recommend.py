"""From measured use to requested resources, and whether memory keeps growing.

The method (docs/profiling.md) follows the Kubernetes VPA recommender: a high percentile of
observed use plus a safety margin. CPU = the 90th percentile of per-second CPU use in the steady
phase, times (1 + margin), rounded up to 0.1 core, at least `min_cpu`; memory = the peak working
set times (1 + margin), rounded up to 0.1 GB, at least `min_memory_gb`. All pure functions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np

from pytest_mldeploy.checks.profiling.stats import LoadStats, percentile

GIB = 1024**3
MIB = 1024**2
#: CPU use is sized at this percentile of the per-second samples.
CPU_PERCENTILE = 90
#: A too-small recommendation is raised by these factors per retry of the closed loop.
CPU_RAISE = 1.5
MEMORY_RAISE = 1.25
#: The closed loop holds when throughput stays at this share of before and p95 within this factor.
QPS_HOLD = 0.90
P95_HOLD = 1.10
#: A leak is probable when memory grows this steadily (r²) and this fast.
LEAK_MIN_R2 = 0.8
LEAK_SHARE_PER_MIN = 0.05
LEAK_MB_PER_MIN = 10.0
LEAK_MIN_SAMPLES = 5


def round_up(value: float, step: float = 0.1) -> float:
    """`value` rounded UP to a multiple of `step` (0.31 -> 0.4), immune to float noise (0.3 stays 0.3)."""
    steps = math.ceil(round(value / step, 6))
    return round(steps * step, 6)


@dataclass
class Recommendation:
    """Requested CPU (cores) and memory (GB), with the measurements they came from."""

    cpu: float
    memory_gb: float
    cpu_p90: float
    cpu_max: float
    memory_peak_gb: float
    margin: float
    basis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(
    cpu_cores: Sequence[float],
    memory_bytes: Sequence[float],
    *,
    margin: float = 0.15,
    min_cpu: float = 0.1,
    min_memory_gb: float = 0.1,
) -> Recommendation:
    """Recommend CPU and memory from per-second samples of the steady phase (see the module doc)."""
    if not cpu_cores or not memory_bytes:
        raise ValueError("no resource samples in the steady phase: the load ran too briefly to size the service")
    p90 = percentile(cpu_cores, CPU_PERCENTILE)
    peak_gb = max(memory_bytes) / GIB
    cpu = max(round_up(p90 * (1 + margin)), round_up(min_cpu))
    memory = max(round_up(peak_gb * (1 + margin)), round_up(min_memory_gb))
    basis = (
        f"cpu = p{CPU_PERCENTILE} {p90:.3f} cores x (1 + {margin:g}) rounded up to 0.1, at least {min_cpu:g}; "
        f"memory = peak {peak_gb:.3f} GB x (1 + {margin:g}) rounded up to 0.1, at least {min_memory_gb:g}"
    )
    return Recommendation(cpu, memory, p90, max(cpu_cores), peak_gb, margin, basis)


def raised(rec: Recommendation) -> Recommendation:
    """The next, larger recommendation when the closed loop did not hold (+50 % CPU, +25 % memory)."""
    return Recommendation(
        cpu=round_up(rec.cpu * CPU_RAISE),
        memory_gb=round_up(rec.memory_gb * MEMORY_RAISE),
        cpu_p90=rec.cpu_p90,
        cpu_max=rec.cpu_max,
        memory_peak_gb=rec.memory_peak_gb,
        margin=rec.margin,
        basis=rec.basis + f"; raised x{CPU_RAISE:g} cpu, x{MEMORY_RAISE:g} memory after a failed verification",
    )


def holds(before: LoadStats, after: LoadStats, objective_ms: Optional[float] = None) -> list[str]:
    """Why the service under the recommended limits did worse than before; [] when it held.

    Held means throughput >= 90 % of before, p95 <= 110 % of before (or within the latency
    objective when one is set), and no new errors.
    """
    problems = []
    if after.total == 0:
        return ["no request completed under the recommended limits"]
    if after.qps < QPS_HOLD * before.qps:
        problems.append(f"throughput {after.qps:.1f} req/s < {QPS_HOLD:.0%} of {before.qps:.1f} req/s before")
    p95_limit = P95_HOLD * before.latency_p95_ms
    within_objective = objective_ms is not None and after.latency_p95_ms <= objective_ms
    if after.latency_p95_ms > p95_limit and not within_objective:
        objective = f" and the objective {objective_ms:g} ms" if objective_ms is not None else ""
        problems.append(
            f"latency p95 {after.latency_p95_ms:.1f} ms > {P95_HOLD:.0%} of {before.latency_p95_ms:.1f} ms before{objective}"
        )
    if after.error_rate > before.error_rate + 0.01:
        problems.append(f"error rate {after.error_rate:.2%} > {before.error_rate:.2%} before")
    return problems


@dataclass
class Growth:
    """Least-squares trend of the working set over the steady phase."""

    slope_mb_per_min: float
    r2: float
    peak_mb: float
    samples: int
    leak: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def memory_growth(times_s: Sequence[float], memory_bytes: Sequence[float]) -> Growth:
    """Fit memory = a + b·t; a probable leak is steady growth (r² >= 0.8) that is large
    (> 5 % of the peak per minute or > 10 MB/min)."""
    n = len(times_s)
    if n != len(memory_bytes):
        raise ValueError("times and memory samples differ in length")
    peak_mb = max(memory_bytes) / MIB if n else 0.0
    if n < LEAK_MIN_SAMPLES:
        return Growth(0.0, 0.0, peak_mb, n, False, f"too few samples ({n} < {LEAK_MIN_SAMPLES}) to fit a trend")
    t = np.asarray(times_s, dtype=float) - float(times_s[0])
    y = np.asarray(memory_bytes, dtype=float) / MIB
    if np.ptp(t) == 0:
        return Growth(0.0, 0.0, peak_mb, n, False, "all samples at one instant")
    slope_per_s, intercept = np.polyfit(t, y, 1)
    residual = float(np.sum((y - (slope_per_s * t + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 0.0
    slope = float(slope_per_s) * 60.0
    large = slope > LEAK_MB_PER_MIN or slope > LEAK_SHARE_PER_MIN * peak_mb
    leak = slope > 0 and r2 >= LEAK_MIN_R2 and large
    if leak:
        reason = f"memory grows {slope:.1f} MB/min steadily (r² {r2:.2f}) against a peak of {peak_mb:.0f} MB: probable leak"
    elif slope > 0 and large:
        reason = f"memory rose {slope:.1f} MB/min but unsteadily (r² {r2:.2f} < {LEAK_MIN_R2}): not a clear leak"
    else:
        reason = f"memory trend {slope:+.1f} MB/min (r² {r2:.2f}): no leak"
    return Growth(slope, r2, peak_mb, n, leak, reason)
