"""The concurrency sweep's rules: which levels to try, when to stop, which level to keep.

Levels double from 1 up to `max_concurrency`. The sweep stops when throughput stops rising
(not clearly 5 % over the best level so far, `gain_verdict`), when the latency objective
breaks, or when the service starts failing requests (`past_the_limits`); the level kept is the lowest one that reached the best
throughput within the objective, so the steady phase measures the knee of the curve rather
than a pile-up of queued requests.

The sweep runs in one live load (`loadgen.LiveLoad`) split into short rounds, and a level ends
as soon as its rounds decide (`gain_verdict`): throughput *clearly* rising by `MIN_GAIN` over
the best level so far (even after the rounds' spread) goes on to the next level, throughput
clearly short of it ends the sweep (the curve has flattened), and rounds that scatter too much
to say are measured further, up to the level's longest time; then the median decides.
"""
from __future__ import annotations

from typing import Optional, Sequence

from pytest_mldeploy.checks.profiling.noise import FAIL, PASS, iqr, judge, median
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


def _breaks_objective(step: LoadStats, objective_ms: Optional[float]) -> bool:
    return objective_ms is not None and step.total > 0 and step.latency_p95_ms > objective_ms


def past_the_limits(step: LoadStats, objective_ms: Optional[float] = None) -> str:
    """Why a level ends the sweep whatever its throughput (nothing completed, the objective broke,
    requests failed); empty when none of these."""
    if step.total == 0:
        return f"no request completed at concurrency {step.concurrency}"
    if _breaks_objective(step, objective_ms):
        return f"p95 {step.latency_p95_ms:.1f} ms broke the objective {objective_ms:g} ms at concurrency {step.concurrency}"
    if step.error_rate > MAX_SWEEP_ERROR_RATE:
        return f"{step.error_rate:.1%} of requests failed at concurrency {step.concurrency}"
    return ""


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


RISING, FLAT, UNDECIDED = "rising", "flat", "undecided"


def gain_verdict(level_qps: Sequence[float], best_qps: Sequence[float], *, final: bool, min_gain: float = MIN_GAIN) -> str:
    """Whether a level's per-round throughput rises over the best level's rounds, with their noise.

    Per round, the shortfall from `best median x (1 + min_gain)`, relative to the best median, is
    judged by `noise.judge` with the best level's relative spread as the noise floor. `rising` when
    even the median plus the spread clears the mark, `flat` when the median minus the spread
    still misses it, `undecided` otherwise, until `final`: then the median alone decides (a gain
    the rounds cannot show is not worth more users).
    """
    best = median(best_qps)
    if not level_qps or not best or best <= 0:
        return UNDECIDED if not final else FLAT
    mark = best * (1 + min_gain)
    judgement = judge([(mark - q) / best for q in level_qps], noise=iqr(best_qps) / best)
    if judgement.verdict == FAIL:
        return FLAT
    if judgement.median + judgement.spread < 0:
        return RISING
    if final:
        return RISING if judgement.verdict == PASS else FLAT
    return UNDECIDED


def generator_saturated(max_process_cpu: float, threshold: float = 0.85) -> bool:
    """Whether one load-generator process used (nearly) a whole core, so its numbers are its own ceiling."""
    return max_process_cpu >= threshold
