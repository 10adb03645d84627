"""The concurrency sweep's rules: which levels to try, when to stop, which level to keep.

Levels double from 1 up to `max_concurrency`. The sweep stops when throughput stops rising
(less than 5 % over the best level so far), when the latency objective breaks, or when the
service starts failing requests; the level kept is the lowest one that reached the best
throughput within the objective, so the steady phase measures the knee of the curve rather
than a pile-up of queued requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from pytest_mldeploy.checks.profiling.stats import LoadStats

#: Less throughput gain than this over the best level so far ends the sweep.
MIN_GAIN = 0.05
#: A level whose error rate exceeds this is past what the service can take.
MAX_SWEEP_ERROR_RATE = 0.01


def concurrency_levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, ... up to `max_concurrency` (always ending on it)."""
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    levels, level = [], 1
    while level < max_concurrency:
        levels.append(level)
        level *= 2
    levels.append(max_concurrency)
    return levels


@dataclass(frozen=True)
class SweepDecision:
    """Whether to stop after the latest level, and why."""

    stop: bool
    reason: str = ""


def _breaks_objective(step: LoadStats, objective_ms: Optional[float]) -> bool:
    return objective_ms is not None and step.total > 0 and step.latency_p95_ms > objective_ms


def next_decision(steps: Sequence[LoadStats], objective_ms: Optional[float] = None, min_gain: float = MIN_GAIN) -> SweepDecision:
    """Decide after the last of `steps` (in the order run) whether the sweep goes on."""
    if not steps:
        return SweepDecision(False)
    last = steps[-1]
    if last.total == 0:
        return SweepDecision(True, f"no request completed at concurrency {last.concurrency}")
    if _breaks_objective(last, objective_ms):
        return SweepDecision(
            True, f"p95 {last.latency_p95_ms:.1f} ms broke the objective {objective_ms:g} ms at concurrency {last.concurrency}"
        )
    if last.error_rate > MAX_SWEEP_ERROR_RATE:
        return SweepDecision(True, f"{last.error_rate:.1%} of requests failed at concurrency {last.concurrency}")
    if len(steps) > 1:
        best = max(s.qps for s in steps[:-1])
        if last.qps < best * (1 + min_gain):
            return SweepDecision(
                True,
                f"throughput stopped rising at concurrency {last.concurrency} "
                f"({last.qps:.1f} req/s vs best {best:.1f} req/s before, < {min_gain:.0%} gain)",
            )
    return SweepDecision(False)


def choose_level(steps: Sequence[LoadStats], objective_ms: Optional[float] = None) -> tuple[int, str]:
    """The concurrency for the steady phase: the lowest level with the best throughput among the
    levels that met the objective and did not fail requests (level 1 when none did)."""
    if not steps:
        raise ValueError("no sweep steps to choose from")
    good = [
        s for s in steps if s.total > 0 and not _breaks_objective(s, objective_ms) and s.error_rate <= MAX_SWEEP_ERROR_RATE
    ]
    if not good:
        first = steps[0]
        why = "met the latency objective" if objective_ms is not None else "answered without errors"
        return first.concurrency, f"no level {why}; the steady phase runs at concurrency {first.concurrency}"
    best_qps = max(s.qps for s in good)
    # Within MIN_GAIN of the best counts as the best: more users would only queue.
    chosen = min((s for s in good if s.qps >= best_qps / (1 + MIN_GAIN)), key=lambda s: s.concurrency)
    return chosen.concurrency, f"concurrency {chosen.concurrency} reached {chosen.qps:.1f} req/s (best {best_qps:.1f})"


def generator_saturated(max_process_cpu: float, threshold: float = 0.85) -> bool:
    """Whether one load-generator process used (nearly) a whole core, so its numbers are its own ceiling."""
    return max_process_cpu >= threshold
