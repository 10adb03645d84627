"""When the steady phase's CPU and memory estimates count as settled (pure functions)."""
from __future__ import annotations

import numpy as np

from pytest_mldeploy.checks.profiling.recommend import GIB, MIB, recommend
from pytest_mldeploy.checks.profiling.steady import MIN_SAMPLES, assess, p90_interval

SETTINGS = dict(margin=0.15, min_cpu=0.1, min_memory_gb=0.1, remaining_s=12.0, cpu_cap=2.0)


def _steady_cpu(n: int, level: float = 0.4, jitter: float = 0.01, seed: int = 1) -> list[float]:
    return list(level + jitter * np.random.default_rng(seed).standard_normal(n))


def test_steady_use_settles_and_agrees_with_the_recommendation() -> None:
    t = list(range(8))
    cpu, memory = _steady_cpu(8), [150 * MIB] * 8
    stability = assess(t, cpu, memory, **SETTINGS)
    assert stability.stable and stability.cpu_stable and stability.memory_stable
    made = recommend(cpu, memory)
    assert stability.cpu_low <= made.cpu <= stability.cpu_high
    assert stability.memory_gb == made.memory_gb == stability.memory_projected_gb
    assert "settled" in stability.reason and "cores" in stability.confidence


def test_too_few_samples_settle_nothing() -> None:
    stability = assess(list(range(MIN_SAMPLES - 1)), _steady_cpu(MIN_SAMPLES - 1), [150 * MIB] * (MIN_SAMPLES - 1), **SETTINGS)
    assert not stability.stable and f"of the {MIN_SAMPLES} samples needed" in stability.reason


def test_scattered_cpu_is_still_moving() -> None:
    # a shared runner: some seconds the service got a whole core, some a tenth of one
    cpu = [0.1, 0.9, 0.2, 0.8, 0.15, 0.95, 0.3, 0.7]
    stability = assess(list(range(8)), cpu, [150 * MIB] * 8, **SETTINGS)
    assert not stability.cpu_stable and stability.memory_stable and not stability.stable
    assert stability.cpu_high - stability.cpu_low > 0.1 and "still moving" in stability.reason


def test_a_wide_interval_is_not_settled_even_when_it_rounds_to_neighbouring_steps() -> None:
    cpu = [0.30, 0.26, 0.33, 0.29, 0.36, 0.28, 0.31, 0.27]
    stability = assess(list(range(8)), cpu, [150 * MIB] * 8, **SETTINGS)
    # within one rounding step (0.4-0.5), but the p90 interval (0.30-0.36) is wider than 15 % of 0.36
    assert (stability.cpu_low, stability.cpu_high) == (0.4, 0.5)
    assert stability.cpu_p90_high - stability.cpu_p90_low > 0.15 * stability.cpu_p90_high
    assert not stability.cpu_stable and not stability.stable


def test_cpu_at_the_host_cap_cannot_move_further() -> None:
    cpu = [1.9, 2.0, 1.7, 2.0, 1.95, 1.8, 2.0, 1.85]
    stability = assess(list(range(8)), cpu, [150 * MIB] * 8, **SETTINGS)
    assert stability.cpu_low == stability.cpu_high == 2.0 and stability.cpu_stable


def test_a_leak_keeps_the_phase_going() -> None:
    t = list(range(8))
    memory = [150 * MIB + 8 * MIB * i for i in t]  # 8 MB/s, steady: the leaky test project's rate
    stability = assess(t, _steady_cpu(8), memory, **SETTINGS)
    assert not stability.memory_stable and not stability.stable and "climbing" in stability.reason


def test_unsteady_growth_that_would_cross_a_rounding_step_keeps_the_phase_going() -> None:
    # +1 MB/s with ±3 MB of scatter: no clear leak (r² < 0.8), but 12 s more of it moves 0.2 GB to 0.3 GB
    t = list(range(8))
    memory = [0.160 * GIB + 1.0 * MIB * i + (3 * MIB if i % 2 else -3 * MIB) for i in t]
    stability = assess(t, _steady_cpu(8), memory, **SETTINGS)
    assert not stability.memory_stable and "would move it from 0.2 to 0.3 GB" in stability.reason
    assert (stability.memory_gb, stability.memory_projected_gb) == (0.2, 0.3)


def test_the_interval_is_repeatable_and_brackets_the_p90() -> None:
    cpu = _steady_cpu(12, jitter=0.05)
    low, high = p90_interval(cpu)
    assert (low, high) == p90_interval(cpu)  # seeded
    assert low <= float(np.percentile(cpu, 90)) <= high
