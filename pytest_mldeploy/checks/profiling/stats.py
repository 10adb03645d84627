"""Load-test arithmetic: what a list of timed requests says about throughput, latency and errors.

Everything here is pure: the load generator hands back one record per request and these
functions turn a time window of them into the figures a profile reports.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class RequestRecord:
    """One request the load generator sent: when it started (epoch s), how long it took, whether it
    succeeded, and which service it went to (0: the one profiled, 1: the other one of alternating rounds)."""

    start: float
    latency_ms: float
    ok: bool
    status: int = 0
    target: int = 0

    @property
    def end(self) -> float:
        return self.start + self.latency_ms / 1000.0


@dataclass
class LoadStats:
    """Throughput, latency and errors of the requests that completed inside one time window."""

    concurrency: int
    window_s: float
    total: int
    success: int
    qps: float
    success_rate: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    per_second_qps: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return self.total - self.success

    @property
    def error_rate(self) -> float:
        return 1.0 - self.success_rate if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = self.failures
        data["error_rate"] = self.error_rate
        return data


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between ranks; NaN for no values."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summarize(
    records: Iterable[RequestRecord],
    start: float,
    end: float,
    concurrency: int,
    errors: Optional[dict[str, int]] = None,
) -> LoadStats:
    """Figures of the requests that completed in [start, end).

    Counting by completion time keeps the window exact whatever was in flight at its edges;
    latency percentiles include failed requests (a timeout is a slow answer too).
    """
    window = max(end - start, 1e-9)
    inside = [r for r in records if start <= r.end < end]
    buckets = [0] * int(math.floor(window))  # whole seconds only: a partial last second would read low
    for r in inside:
        second = int(r.end - start)
        if second < len(buckets):
            buckets[second] += 1
    return _figures(inside, window, concurrency, [float(b) for b in buckets], errors)


def _figures(
    inside: Sequence[RequestRecord], window: float, concurrency: int, per_second: list[float], errors: Optional[dict[str, int]]
) -> LoadStats:
    latencies = [r.latency_ms for r in inside]
    success = sum(r.ok for r in inside)
    return LoadStats(
        concurrency=concurrency,
        window_s=window,
        total=len(inside),
        success=success,
        qps=len(inside) / window,
        success_rate=(success / len(inside)) if inside else 0.0,
        latency_avg_ms=float(np.mean(latencies)) if latencies else math.nan,
        latency_p50_ms=percentile(latencies, 50),
        latency_p90_ms=percentile(latencies, 90),
        latency_p95_ms=percentile(latencies, 95),
        latency_p99_ms=percentile(latencies, 99),
        latency_max_ms=max(latencies) if latencies else math.nan,
        per_second_qps=per_second,
        errors=dict(errors or {}),
    )


@dataclass
class Round:
    """One round of an alternating (or a split) load: which service it loaded, when, and its figures."""

    index: int
    target: int
    start: float
    end: float
    stats: LoadStats

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "index": self.index, "target": self.target, "start": self.start, "end": self.end, "total": s.total,
            "qps": s.qps, "latencyP50Ms": s.latency_p50_ms, "latencyP95Ms": s.latency_p95_ms, "latencyP99Ms": s.latency_p99_ms, "errorRate": s.error_rate,
        }  # fmt: skip


#: The first share of every round is not measured: users still finish the previous round's requests.
ROUND_GUARD = 0.1


def split_rounds(
    records: Sequence[RequestRecord], start: float, end: float, round_s: float, concurrency: int, *, alternating: bool = False
) -> list[Round]:
    """The whole rounds of `round_s` seconds inside [start, end), with the figures of the requests
    *started* in each, less its first `ROUND_GUARD` share.

    Rounds are aligned to the wall clock: round k spans [k·round_s, (k+1)·round_s). An alternating
    load (the locustfile's `MLDEPLOY_LOAD_ALTERNATE`) sends even rounds to target 0 and odd ones to
    target 1, so a round's target is k mod 2 there, and 0 otherwise.
    """
    if round_s <= 0:
        raise ValueError(f"round_s must be positive, got {round_s}")
    first, last = math.ceil(start / round_s - 1e-9), math.floor(end / round_s + 1e-9)
    by_round: dict[int, list[RequestRecord]] = {k: [] for k in range(first, last)}
    guard = ROUND_GUARD * round_s
    for r in records:
        k = int(r.start // round_s)
        if k in by_round and r.start - k * round_s >= guard:
            by_round[k].append(r)
    return [
        Round(k, (k % 2) if alternating else 0, k * round_s, (k + 1) * round_s, _figures(inside, round_s - guard, concurrency, [], None))
        for k, inside in sorted(by_round.items())
    ]
