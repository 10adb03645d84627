"""Docker stats frames -> CPU cores and working set, for cgroup v1 and v2 frames."""
from __future__ import annotations

import pytest

from pytest_mldeploy.checks.profiling.sampling import docker_cpu_cores, docker_working_set, sample_from_docker_stats

V1_FRAME = {
    "cpu_stats": {"cpu_usage": {"total_usage": 3_500_000_000, "percpu_usage": [1, 1]}, "system_cpu_usage": 20_000_000_000},
    "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 18_000_000_000},
    "memory_stats": {"usage": 300 * 1024**2, "stats": {"total_inactive_file": 100 * 1024**2, "cache": 120 * 1024**2}},
}
V2_FRAME = {
    "cpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 14_000_000_000, "online_cpus": 4},
    "precpu_stats": {"cpu_usage": {"total_usage": 500_000_000}, "system_cpu_usage": 10_000_000_000, "online_cpus": 4},
    "memory_stats": {"usage": 50 * 1024**2, "stats": {"inactive_file": 8 * 1024**2}},
}


def test_cgroup_v1_cpu_in_cores() -> None:
    # 1.5e9 ns of the container over 2e9 ns of all CPUs' time, times 2 CPUs (from percpu_usage) = 1.5 cores
    assert docker_cpu_cores(V1_FRAME) == pytest.approx(1.5)


def test_cgroup_v2_cpu_in_cores_with_online_cpus() -> None:
    assert docker_cpu_cores(V2_FRAME) == pytest.approx(0.5)


def test_working_set_subtracts_inactive_file_cache() -> None:
    assert docker_working_set(V1_FRAME) == 200 * 1024**2
    assert docker_working_set(V2_FRAME) == 42 * 1024**2


def test_first_frame_without_previous_reading_is_no_sample() -> None:
    first = {**V1_FRAME, "precpu_stats": {"cpu_usage": {"total_usage": 0}}}
    assert sample_from_docker_stats(first) is None


def test_sample_carries_time_cpu_memory() -> None:
    sample = sample_from_docker_stats(V2_FRAME, now=123.0)
    assert sample is not None
    assert (sample.t, sample.cpu, sample.memory) == (123.0, pytest.approx(0.5), 42 * 1024**2)


def test_frame_of_a_stopped_container_is_no_sample() -> None:
    assert sample_from_docker_stats({"cpu_stats": {}, "precpu_stats": {}, "memory_stats": {}}) is None
