"""Memory growth: least-squares slope in MB/min, r², and the leak rule, on synthetic series."""
from __future__ import annotations

import random

import pytest

from pytest_mldeploy.checks.profiling.recommend import MIB, memory_growth


def _series(seconds: int, start_mb: float, mb_per_s: float, noise_mb: float = 0.0, seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    times = [1000.0 + t for t in range(seconds)]
    memory = [(start_mb + mb_per_s * t + rng.uniform(-noise_mb, noise_mb)) * MIB for t in range(seconds)]
    return times, memory


def test_steady_growth_is_a_leak() -> None:
    growth = memory_growth(*_series(20, 200, mb_per_s=1.0, noise_mb=0.5))
    assert growth.slope_mb_per_min == pytest.approx(60, rel=0.05)
    assert growth.r2 > 0.95
    assert growth.leak
    assert "probable leak" in growth.reason


def test_flat_memory_is_not_a_leak() -> None:
    growth = memory_growth(*_series(20, 300, mb_per_s=0.0))
    assert growth.slope_mb_per_min == pytest.approx(0, abs=1e-9)
    assert growth.r2 == 0.0
    assert not growth.leak


def test_noise_without_trend_is_not_a_leak() -> None:
    growth = memory_growth(*_series(30, 300, mb_per_s=0.0, noise_mb=20))
    assert growth.r2 < 0.8
    assert not growth.leak


def test_slow_steady_growth_below_both_thresholds_is_not_a_leak() -> None:
    # 0.1 MB/s = 6 MB/min: under 10 MB/min and under 5 % of a 1000 MB peak per minute
    growth = memory_growth(*_series(20, 1000, mb_per_s=0.1))
    assert growth.r2 > 0.99
    assert not growth.leak


def test_small_service_growing_five_percent_a_minute_is_a_leak() -> None:
    # 0.1 MB/s = 6 MB/min on a 50 MB service: 12 % of the peak per minute
    growth = memory_growth(*_series(20, 50, mb_per_s=0.1))
    assert growth.leak


def test_shrinking_memory_is_not_a_leak() -> None:
    assert not memory_growth(*_series(20, 500, mb_per_s=-2.0)).leak


def test_too_few_samples_gives_no_verdict() -> None:
    growth = memory_growth(*_series(3, 100, mb_per_s=10))
    assert not growth.leak
    assert "too few samples" in growth.reason


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError):
        memory_growth([1.0, 2.0], [1.0])
