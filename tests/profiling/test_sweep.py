"""The sweep's levels, its stopping rules (a gain judged against the rounds' noise), and the level the steady phase keeps."""
from __future__ import annotations

import pytest

from pytest_mldeploy.checks.profiling.stats import LoadStats
from pytest_mldeploy.checks.profiling.sweep import (
    FLAT,
    RISING,
    UNDECIDED,
    choose_level,
    concurrency_levels,
    gain_verdict,
    generator_saturated,
    past_the_limits,
)


def step(concurrency: int, qps: float, p95: float = 10.0, success_rate: float = 1.0, total: int = 500) -> LoadStats:
    return LoadStats(concurrency, 3.0, total, int(total * success_rate), qps, success_rate, p95 / 2, p95 / 2, p95, p95, p95, p95)


@pytest.mark.parametrize("top, levels", [(1, [1]), (2, [1, 2]), (32, [1, 2, 4, 8, 16, 32]), (12, [1, 2, 4, 8, 12])])
def test_levels_double_up_to_the_maximum(top: int, levels: list[int]) -> None:
    assert concurrency_levels(top) == levels


def test_levels_refuse_zero() -> None:
    with pytest.raises(ValueError):
        concurrency_levels(0)


BEST = [500.0, 520.0, 480.0, 510.0]


def test_a_clear_rise_goes_on_at_once() -> None:
    assert gain_verdict([1000, 1010, 990, 1005], BEST, final=False) == RISING


def test_a_clear_plateau_stops_at_once() -> None:
    assert gain_verdict([500, 490, 510, 505], BEST, final=False) == FLAT


def test_rounds_too_scattered_to_say_are_measured_further_then_the_median_decides() -> None:
    scattered = [540, 490, 560, 505]  # median 522.5 vs the 5 % mark 530: short of it, but within the spread
    assert gain_verdict(scattered, BEST, final=False) == UNDECIDED
    assert gain_verdict(scattered, BEST, final=True) == FLAT
    assert gain_verdict([560, 500, 600, 540], BEST, final=True) == RISING  # median 550 clears the mark


def test_a_burst_that_slows_one_best_round_does_not_make_a_flat_level_rise() -> None:
    # the best level's rounds scatter (a burst hit one): a level a little above its median is not clearly higher
    assert gain_verdict([560, 555, 565, 550], [500, 540, 300, 520], final=False) == UNDECIDED


def test_stops_when_latency_objective_breaks() -> None:
    assert "broke the objective 50 ms" in past_the_limits(step(2, 190, p95=60), objective_ms=50)
    assert past_the_limits(step(2, 190, p95=40), objective_ms=50) == ""


def test_stops_when_requests_fail_or_none_complete() -> None:
    assert "failed" in past_the_limits(step(2, 300, success_rate=0.9))
    assert "no request completed" in past_the_limits(step(2, 0, total=0))


def test_chooses_the_lowest_level_at_the_best_throughput() -> None:
    steps = [step(1, 100), step(2, 190), step(4, 195)]
    assert choose_level(steps)[0] == 2


def test_chooses_the_last_level_within_the_objective() -> None:
    steps = [step(1, 100, p95=20), step(2, 190, p95=40), step(4, 260, p95=80)]
    assert choose_level(steps, objective_ms=50)[0] == 2


def test_chooses_one_when_nothing_meets_the_objective() -> None:
    level, reason = choose_level([step(1, 10, p95=900)], objective_ms=50)
    assert level == 1 and "no level met the latency objective" in reason


def test_generator_saturation_threshold() -> None:
    assert generator_saturated(0.95) and not generator_saturated(0.5)
