"""From measured use to requested resources, and whether memory keeps growing.

The method (docs/profiling.md) follows the Kubernetes VPA recommender: a high percentile of
observed use plus a safety margin. CPU = the 90th percentile of per-second CPU use in the steady
phase, times (1 + margin), rounded up to 0.1 core, at least `min_cpu`; memory = the peak working
set times (1 + margin), rounded up to 0.1 GB, at least `min_memory_gb`. All pure functions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional, Sequence

import numpy as np

from pytest_mldeploy.checks.profiling.stats import percentile

GIB = 1024**3
MIB = 1024**2
#: CPU use is sized at this percentile of the per-second samples.
CPU_PERCENTILE = 90
#: A too-small recommendation is raised by these factors per retry of the closed loop.
CPU_RAISE = 1.5
MEMORY_RAISE = 1.25
#: CPU use at this share of the cores the service could use means it used them all: a floor, not a size.
SATURATED_SHARE = 0.9
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
    #: The most CPU this host can give (and so verify); the recommendation never exceeds it.
    cpu_cap: Optional[float] = None
    #: The service used every core it could: its CPU figure is a floor, not a size.
    cpu_floor: bool = False
    #: Why the CPU figure is capped or a floor, for the report (empty when neither).
    cpu_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_for(cpu_p90: float, margin: float, min_cpu: float) -> float:
    """The CPU to request for a measured p90 (cores): x (1 + margin), rounded up, at least `min_cpu`."""
    return max(round_up(cpu_p90 * (1 + margin)), round_up(min_cpu))


def memory_for(peak_gb: float, margin: float, min_memory_gb: float) -> float:
    """The memory to request for a measured peak (GB): x (1 + margin), rounded up, at least `min_memory_gb`."""
    return max(round_up(peak_gb * (1 + margin)), round_up(min_memory_gb))


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
    cpu, memory = cpu_for(p90, margin, min_cpu), memory_for(peak_gb, margin, min_memory_gb)
    basis = (
        f"cpu = p{CPU_PERCENTILE} {p90:.3f} cores x (1 + {margin:g}) rounded up to 0.1, at least {min_cpu:g}; "
        f"memory = peak {peak_gb:.3f} GB x (1 + {margin:g}) rounded up to 0.1, at least {min_memory_gb:g}"
    )
    return Recommendation(cpu, memory, p90, max(cpu_cores), peak_gb, margin, basis)


def raised(rec: Recommendation) -> Recommendation:
    """The next, larger recommendation when the closed loop did not hold (+50 % CPU, +25 % memory),
    CPU still within the host's cap."""
    cpu = round_up(rec.cpu * CPU_RAISE)
    if rec.cpu_cap is not None:
        cpu = min(cpu, rec.cpu_cap)
    return replace(
        rec,
        cpu=cpu,
        memory_gb=round_up(rec.memory_gb * MEMORY_RAISE),
        basis=rec.basis + f"; raised x{CPU_RAISE:g} cpu, x{MEMORY_RAISE:g} memory after a failed verification",
    )


def round_down(value: float, step: float = 0.1) -> float:
    """`value` rounded DOWN to a multiple of `step` (2.05 -> 2.0), immune to float noise."""
    return round(math.floor(round(value / step, 6)) * step, 6)


def fit_to_host(rec: Recommendation, host_cores: Optional[float], limit_cores: Optional[float] = None) -> Recommendation:
    """Cap the CPU at the `host_cores` this host can give (a limit above them cannot be tried here)
    and mark it a floor when the service used nearly all of what it could use: the host's cores,
    or its own CPU limit `limit_cores` when it ran under one. Both are said in `cpu_note`."""
    if not host_cores or host_cores <= 0:
        return rec
    cap = round_down(host_cores)
    usable = min(host_cores, limit_cores) if limit_cores else host_cores
    notes = []
    floor = rec.cpu_p90 >= SATURATED_SHARE * usable
    if floor:
        whose = f"its {limit_cores:g}-core limit" if limit_cores and limit_cores < host_cores else f"all {host_cores:g} cores of this host"
        notes.append(
            f"the service used {whose} (p{CPU_PERCENTILE} {rec.cpu_p90:.2f} cores): the CPU figure is a floor, not a size; "
            "profile with more cores to size it"
        )
    cpu = rec.cpu
    if cpu > cap:
        notes.append(f"CPU capped at {cap:g} cores, all this host has (the measurement asked for {cpu:g}): more cannot be verified here")
        cpu = cap
    return replace(rec, cpu=cpu, cpu_cap=cap, cpu_floor=floor, cpu_note="; ".join(notes))


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
