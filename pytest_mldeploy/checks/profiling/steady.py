"""When the steady phase has measured enough: CPU and memory estimates that no longer move.

The steady phase loads the service at the chosen concurrency for up to `profile.duration_s`
and ends as soon as the recommendation it feeds is settled (docs/profiling.md, "Steady phase"):

- **CPU**: the recommendation is p90 x (1 + margin), rounded up to 0.1 core. A bootstrap of the
  p90 over the per-second samples (seeded, so the same samples give the same answer) gives its
  90 % interval; CPU is settled when that interval is narrower than `CPU_REL_WIDTH` of its
  upper end and the recommendations at both ends are at most one rounding step apart (what
  repeated profiles must agree within). The width bound matters on a shared machine: a p90 of a
  few noisy seconds can round to neighbouring steps and still be far from what the next profile
  measures.
- **memory**: the recommendation is the peak x (1 + margin), rounded up. Settled when the
  working set is not climbing: its trend (`recommend.memory_growth`) carried over the rest of
  `duration_s` would not move the recommendation, and it does not grow like a leak
  (`recommend.memory_growth`: steady and large growth).

Both need at least `MIN_SAMPLES` samples. All pure functions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np

from pytest_mldeploy.checks.profiling import recommend as rec

#: Fewer per-second samples than this settle nothing.
MIN_SAMPLES = 6
#: The CPU recommendation's interval may span this many rounding steps (0.1 core each).
CPU_STEPS = 1
#: ... and the p90's interval may be at most this wide, relative to its upper end.
CPU_REL_WIDTH = 0.15
BOOTSTRAP_RESAMPLES = 1000
#: The bootstrap's interval: from the 5th to the 95th percentile of the resampled p90s.
INTERVAL = (5.0, 95.0)


@dataclass(frozen=True)
class Stability:
    """How settled the steady phase's CPU and memory estimates were when it ended, and why."""

    stable: bool
    seconds: float
    samples: int
    #: The measured p90 CPU's 90 % interval (cores) and the recommendations at its ends.
    cpu_p90_low: float
    cpu_p90_high: float
    cpu_low: float
    cpu_high: float
    #: The memory recommendation now, and with the working set's trend carried to `duration_s`.
    memory_gb: float
    memory_projected_gb: float
    slope_mb_per_min: float
    cpu_stable: bool
    memory_stable: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def confidence(self) -> str:
        """One line for the report: the recommendation's interval for CPU and memory."""
        cpu = f"{self.cpu_low:g}" if self.cpu_low == self.cpu_high else f"{self.cpu_low:g}–{self.cpu_high:g}"
        memory = (
            f"{self.memory_gb:g}" if self.memory_projected_gb == self.memory_gb else f"{self.memory_gb:g}–{self.memory_projected_gb:g}"
        )
        return (
            f"CPU {cpu} cores (p90 {self.cpu_p90_low:.2f}–{self.cpu_p90_high:.2f} cores, 90 % bootstrap interval), "
            f"memory {memory} GB (trend {self.slope_mb_per_min:+.1f} MB/min), from {self.samples} samples over {self.seconds:.0f} s"
        )


def p90_interval(cpu: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 90 % bootstrap interval of the samples' `CPU_PERCENTILE`th percentile."""
    values = np.asarray(cpu, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, values.size, size=(BOOTSTRAP_RESAMPLES, values.size))]
    p90s = np.percentile(resampled, rec.CPU_PERCENTILE, axis=1)
    low, high = np.percentile(p90s, INTERVAL)
    return float(low), float(high)


def assess(
    times_s: Sequence[float],
    cpu: Sequence[float],
    memory_bytes: Sequence[float],
    *,
    margin: float,
    min_cpu: float,
    min_memory_gb: float,
    remaining_s: float,
    cpu_cap: Optional[float] = None,
) -> Stability:
    """Whether the samples so far settle the CPU and memory recommendation (see the module doc).

    `remaining_s` is how much longer the phase could run (the memory trend is carried over it);
    `cpu_cap` the host's cores (a recommendation at the cap cannot move further up).
    """
    n = len(cpu)
    seconds = float(times_s[-1] - times_s[0]) if n > 1 else 0.0
    low, high = p90_interval(cpu)

    def cpu_of(p90: float) -> float:
        value = rec.cpu_for(p90, margin, min_cpu)
        return min(value, rec.round_down(cpu_cap)) if cpu_cap else value

    cpu_low, cpu_high = (cpu_of(low), cpu_of(high)) if n else (float("nan"), float("nan"))
    peak_gb = max(memory_bytes) / rec.GIB if n else 0.0
    growth = rec.memory_growth(times_s, memory_bytes)
    rise_gb = max(growth.slope_mb_per_min, 0.0) * rec.MIB / rec.GIB * max(remaining_s, 0.0) / 60.0
    memory_now = rec.memory_for(peak_gb, margin, min_memory_gb)
    memory_later = rec.memory_for(peak_gb + rise_gb, margin, min_memory_gb)
    climbing = growth.leak
    enough = n >= MIN_SAMPLES
    narrow = high <= 0 or (high - low) <= CPU_REL_WIDTH * high
    cpu_stable = enough and narrow and cpu_high - cpu_low <= CPU_STEPS * 0.1 + 1e-9
    memory_stable = enough and memory_later == memory_now and not climbing
    if not enough:
        reason = f"{n} of the {MIN_SAMPLES} samples needed"
    else:
        parts = []
        parts.append(
            f"CPU {'settled' if cpu_stable else 'still moving'}: p90 {low:.2f}–{high:.2f} cores gives {cpu_low:g}–{cpu_high:g} cores"
        )
        if memory_stable:
            parts.append(f"memory settled: {memory_now:g} GB (trend {growth.slope_mb_per_min:+.1f} MB/min)")
        elif climbing:
            parts.append(f"memory still climbing {growth.slope_mb_per_min:+.1f} MB/min")
        else:
            parts.append(f"memory trend {growth.slope_mb_per_min:+.1f} MB/min would move it from {memory_now:g} to {memory_later:g} GB")
        reason = "; ".join(parts)
    return Stability(
        cpu_stable and memory_stable, seconds, n, low, high, cpu_low, cpu_high, memory_now, memory_later,
        growth.slope_mb_per_min, cpu_stable, memory_stable, reason,
    )  # fmt: skip
