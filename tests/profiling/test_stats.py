"""Load figures from request records: completion-time windows, percentiles, per-second throughput."""
from __future__ import annotations

import math

import pytest

from pytest_mldeploy.checks.profiling.stats import RequestRecord, percentile, summarize


def test_percentile_interpolates_linearly() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == 95
    assert math.isnan(percentile([], 95))


def test_window_counts_requests_by_completion_time() -> None:
    records = [
        RequestRecord(start=99.0, latency_ms=1500, ok=True),  # ends 100.5: inside
        RequestRecord(start=100.2, latency_ms=100, ok=True),  # ends 100.3: inside
        RequestRecord(start=101.5, latency_ms=1000, ok=False, status=500),  # ends 102.5: inside
        RequestRecord(start=103.5, latency_ms=1000, ok=True),  # ends 104.5: after the window
        RequestRecord(start=98.0, latency_ms=1000, ok=True),  # ends 99.0: before the window
    ]
    stats = summarize(records, 100.0, 104.0, concurrency=2, errors={"500: boom": 1})
    assert stats.total == 3
    assert stats.success == 2
    assert stats.qps == pytest.approx(0.75)
    assert stats.error_rate == pytest.approx(1 / 3)
    assert stats.latency_max_ms == 1500
    assert stats.per_second_qps == [2.0, 0.0, 1.0, 0.0]
    assert stats.errors == {"500: boom": 1}


def test_empty_window_has_no_latency() -> None:
    stats = summarize([], 0.0, 2.0, concurrency=1)
    assert stats.total == 0 and stats.qps == 0
    assert math.isnan(stats.latency_p95_ms)
    assert stats.error_rate == 0.0


def test_rounds_are_whole_wall_clock_slices_counted_by_start_without_their_first_tenth() -> None:
    from pytest_mldeploy.checks.profiling.stats import split_rounds

    records = [
        RequestRecord(start=100.05, latency_ms=5, ok=True),  # in round 50's guard (first 0.2 s): not counted
        RequestRecord(start=100.5, latency_ms=900, ok=True),  # round 50 even if it ends in round 51
        RequestRecord(start=101.3, latency_ms=10, ok=False, target=1),
        RequestRecord(start=101.6, latency_ms=30, ok=True, target=1),
        RequestRecord(start=103.9, latency_ms=1, ok=True),  # round 51 is cut by the window's end: no round
    ]
    rounds = split_rounds(records, 99.7, 103.5, 2.0, concurrency=2, alternating=True)
    # only whole rounds inside the window: [100, 102) is round 50; [98, 100) and [102, 104) are cut
    assert [(r.index, r.target, r.start, r.end) for r in rounds] == [(50, 0, 100.0, 102.0)]
    rounds = split_rounds(records, 100.0, 104.0, 1.0, concurrency=2, alternating=True)
    assert [(r.index, r.target, r.stats.total) for r in rounds] == [(100, 0, 1), (101, 1, 2), (102, 0, 0), (103, 1, 1)]
    assert rounds[1].stats.success == 1 and rounds[1].stats.qps == pytest.approx(2 / 0.9)
    assert rounds[0].stats.latency_p95_ms == 900
    assert [r.target for r in split_rounds(records, 100.0, 104.0, 1.0, concurrency=2)] == [0, 0, 0, 0]
