"""Recommendation math: percentile, margin, rounding up, minimums, raising, the host's CPU cap and the floor."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mldeploy.checks.profiling.recommend import GIB, fit_to_host, raised, recommend, round_down, round_up


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


def test_cpu_never_exceeds_the_cores_of_the_host_and_says_it_is_a_floor() -> None:
    # A service that kept both cores of a 2-core host busy: p90 1.95 x 1.15 would ask for 2.3 cores.
    first = fit_to_host(recommend([1.95] * 10, [0.2 * GIB] * 10), host_cores=2)
    assert first.cpu == 2.0 and first.cpu_cap == 2.0
    assert first.cpu_floor
    assert "all 2 cores of this host" in first.cpu_note and "a floor, not a size" in first.cpu_note
    assert "capped at 2 cores" in first.cpu_note


def test_a_service_far_from_the_cores_is_neither_capped_nor_a_floor() -> None:
    first = fit_to_host(recommend([0.5] * 10, [0.2 * GIB] * 10), host_cores=2)
    assert (first.cpu, first.cpu_floor, first.cpu_note) == (0.6, False, "")


def test_using_its_whole_cpu_limit_is_a_floor_without_a_cap() -> None:
    first = fit_to_host(recommend([0.97] * 10, [0.2 * GIB] * 10), host_cores=4, limit_cores=1)
    assert first.cpu == 1.2 and first.cpu_floor and "its 1-core limit" in first.cpu_note
    assert "capped" not in first.cpu_note


def test_raising_stays_within_the_cap() -> None:
    first = fit_to_host(recommend([1.5] * 10, [0.2 * GIB] * 10, margin=0.0), host_cores=2)
    assert first.cpu == 1.5
    assert raised(first).cpu == 2.0  # 2.25 capped
    assert raised(raised(first)).cpu == 2.0


def test_unknown_host_cores_leave_the_recommendation_alone() -> None:
    first = recommend([3.0] * 10, [0.2 * GIB] * 10)
    assert fit_to_host(first, None) == first


def test_round_down_to_a_tenth() -> None:
    assert [round_down(v) for v in (2.0, 2.05, 1.99, 0.30000000000000004)] == [2.0, 2.0, 1.9, 0.3]
