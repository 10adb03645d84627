"""The sweep's levels, its stopping rule, and the level the steady phase keeps."""
from __future__ import annotations

import pytest

from pytest_mldeploy.checks.profiling.stats import LoadStats
from pytest_mldeploy.checks.profiling.sweep import choose_level, concurrency_levels, generator_saturated, next_decision


def step(concurrency: int, qps: float, p95: float = 10.0, success_rate: float = 1.0, total: int = 500) -> LoadStats:
    return LoadStats(concurrency, 3.0, total, int(total * success_rate), qps, success_rate, p95 / 2, p95 / 2, p95, p95, p95, p95)


@pytest.mark.parametrize("top, levels", [(1, [1]), (2, [1, 2]), (32, [1, 2, 4, 8, 16, 32]), (12, [1, 2, 4, 8, 12])])
def test_levels_double_up_to_the_maximum(top: int, levels: list[int]) -> None:
    assert concurrency_levels(top) == levels


def test_levels_refuse_zero() -> None:
    with pytest.raises(ValueError):
        concurrency_levels(0)


def test_keeps_going_while_throughput_rises() -> None:
    assert not next_decision([step(1, 100), step(2, 190)]).stop


def test_stops_when_gain_is_below_five_percent() -> None:
    decision = next_decision([step(1, 100), step(2, 190), step(4, 195)])
    assert decision.stop
    assert "stopped rising at concurrency 4" in decision.reason


def test_compares_with_the_best_level_not_just_the_previous() -> None:
    # 4 dipped; 8 is 4.9 % above the best (2): stop
    assert next_decision([step(1, 100), step(2, 200), step(4, 150), step(8, 209.8)]).stop


def test_stops_when_latency_objective_breaks() -> None:
    decision = next_decision([step(1, 100, p95=20), step(2, 190, p95=60)], objective_ms=50)
    assert decision.stop and "broke the objective 50 ms" in decision.reason


def test_stops_when_requests_fail() -> None:
    decision = next_decision([step(1, 100), step(2, 300, success_rate=0.9)])
    assert decision.stop and "failed" in decision.reason


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
