"""Recommendation math: percentile, margin, rounding up, minimums, raising, and the hold rule."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mldeploy.checks.profiling.recommend import GIB, holds, raised, recommend, round_up
from pytest_mldeploy.checks.profiling.stats import LoadStats


@pytest.mark.parametrize(
    "value, expected",
    [(0.31, 0.4), (0.3, 0.3), (0.30000000000000004, 0.3), (0.0, 0.0), (1.0, 1.0), (1.01, 1.1), (2.449, 2.5)],
)
def test_round_up_to_a_tenth(value: float, expected: float) -> None:
    assert round_up(value) == expected


@given(st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_round_up_never_rounds_down_and_adds_less_than_a_step(value: float) -> None:
    rounded = round_up(value)
    assert rounded >= value - 1e-6
    assert rounded - value < 0.1 + 1e-6
    assert math.isclose(rounded * 10, round(rounded * 10), abs_tol=1e-6)


def test_cpu_is_p90_plus_margin_rounded_up() -> None:
    # p90 of 0.0..1.0 in tenths (11 values, linear interpolation) is 0.9; x1.15 = 1.035 -> 1.1
    cpu = [i / 10 for i in range(11)]
    rec = recommend(cpu, [0.5 * GIB] * 11, margin=0.15)
    assert rec.cpu_p90 == pytest.approx(0.9)
    assert rec.cpu == 1.1
    assert rec.cpu_max == 1.0


def test_cpu_ignores_a_single_spike_above_the_90th_percentile() -> None:
    cpu = [0.2] * 19 + [1.9]
    rec = recommend(cpu, [GIB] * 20, margin=0.15)
    assert rec.cpu == 0.3  # p90 0.2 x 1.15 = 0.23 -> 0.3, not sized for the 1.9 spike


def test_memory_is_peak_plus_margin_rounded_up() -> None:
    memory = [0.40 * GIB, 0.52 * GIB, 0.45 * GIB]
    rec = recommend([0.5, 0.5, 0.5], memory, margin=0.15)
    assert rec.memory_peak_gb == pytest.approx(0.52)
    assert rec.memory_gb == 0.6  # 0.598 -> 0.6


def test_margin_zero_keeps_the_measurement() -> None:
    rec = recommend([0.5] * 10, [0.5 * GIB] * 10, margin=0.0)
    assert (rec.cpu, rec.memory_gb) == (0.5, 0.5)


def test_minimums_apply_to_an_idle_service() -> None:
    rec = recommend([0.001] * 10, [10 * 1024**2] * 10, margin=0.15, min_cpu=0.25, min_memory_gb=0.5)
    assert rec.cpu == 0.3  # min_cpu 0.25 rounded up to the 0.1 grid
    assert rec.memory_gb == 0.5


def test_no_samples_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no resource samples"):
        recommend([], [], margin=0.15)


def test_raised_adds_half_the_cpu_and_a_quarter_of_the_memory() -> None:
    first = recommend([0.4] * 10, [0.8 * GIB] * 10, margin=0.0)
    bigger = raised(first)
    assert bigger.cpu == 0.6
    assert bigger.memory_gb == 1.0
    assert "raised" in bigger.basis


def _stats(qps: float, p95: float, success_rate: float = 1.0, total: int = 1000) -> LoadStats:
    return LoadStats(4, 10.0, total, int(total * success_rate), qps, success_rate, p95 / 2, p95 / 2, p95 * 0.9, p95, p95 * 1.2, p95 * 2)


def test_holds_when_throughput_and_latency_stay() -> None:
    assert holds(_stats(100, 10), _stats(95, 10.5)) == []


def test_throughput_below_ninety_percent_does_not_hold() -> None:
    problems = holds(_stats(100, 10), _stats(85, 10))
    assert len(problems) == 1 and "throughput 85.0 req/s < 90% of 100.0" in problems[0]


def test_p95_above_110_percent_does_not_hold_unless_within_the_objective() -> None:
    assert "latency p95 12.0 ms" in holds(_stats(100, 10), _stats(100, 12))[0]
    assert holds(_stats(100, 10), _stats(100, 12), objective_ms=50) == []
    assert holds(_stats(100, 10), _stats(100, 60), objective_ms=50) != []


def test_new_errors_do_not_hold() -> None:
    assert any("error rate" in p for p in holds(_stats(100, 10), _stats(100, 10, success_rate=0.9)))


def test_nothing_completed_does_not_hold() -> None:
    assert holds(_stats(100, 10), _stats(0, float("nan"), total=0)) == ["no request completed under the recommended limits"]
