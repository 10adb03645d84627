"""A synthetic, fully populated ProfileResult for report tests (no service needed)."""
from __future__ import annotations

import pytest

from pytest_mldeploy.checks.profiling.gates import evaluate_gates
from pytest_mldeploy.checks.profiling.noise import compare_rounds
from pytest_mldeploy.checks.profiling.result import Attempt, ProfileResult, Verification
from pytest_mldeploy.checks.profiling.recommend import memory_growth, recommend
from pytest_mldeploy.checks.profiling.report import figures_of
from pytest_mldeploy.checks.profiling.sampling import Sample
from pytest_mldeploy.checks.profiling.stats import LoadStats, Round
from pytest_mldeploy.checks.profiling.steady import assess


def _stats(concurrency: int, qps: float, p95: float) -> LoadStats:
    return LoadStats(concurrency, 3.0, int(qps * 3), int(qps * 3), qps, 1.0, p95 / 2, p95 / 2, p95 * 0.9, p95, p95 * 1.3, p95 * 2,
                     [qps] * 3)  # fmt: skip


@pytest.fixture
def profile_result() -> ProfileResult:
    t0 = 1_700_000_000.0
    samples = [Sample(t0 + i, 0.3 + 0.05 * (i % 3), (200 + i) * 1024**2) for i in range(30)]
    steady_window = (t0 + 12, t0 + 29)
    window = [s for s in samples if steady_window[0] <= s.t <= steady_window[1]]
    rec = recommend([s.cpu for s in window], [s.memory for s in window])
    sweep = [_stats(1, 400, 3.0), _stats(2, 700, 4.0), _stats(4, 720, 8.0)]
    # the verification alternated 2-s rounds: even ones the running service, odd ones the limits tried
    rounds = [Round(k, k % 2, t0 + 40 + 2 * k, t0 + 42 + 2 * k, _stats(2, 690 if k % 2 == 0 else 680, 4.2 if k % 2 == 0 else 4.4)) for k in range(6)]
    comparison = compare_rounds(rounds)
    steady_rounds = [Round(k, 0, t0 + 12 + 2 * k, t0 + 14 + 2 * k, _stats(2, 690, 4.2)) for k in range(8)]
    result = ProfileResult(
        deployment="diabetes", target="docker", service="service 'diabetes' (docker, container abc)",
        workload="sample_requests.txt (10 request bodies)", settings={"duration_s": 17},
        current_cpu=1.0, current_memory_gb=1.0, sweep=sweep, sweep_reason="throughput stopped rising at concurrency 4",
        concurrency=2, concurrency_reason="concurrency 2 reached 700.0 req/s", steady=_stats(2, 690.5, 4.2),
        samples=samples, phases=[("sweep 1", t0, t0 + 3), ("steady", *steady_window)],
        recommendation=rec, initial_recommendation=rec,
        verification=Verification("verified", "held", [Attempt(
            rec.cpu, rec.memory_gb, _stats(2, 680, 4.4), [], rec.cpu, rec.memory_gb, verdict="held", method="in place",
            reference=_stats(2, 690, 4.2), rounds=rounds, comparison=comparison,
        )]),
        gate_rounds=steady_rounds + [r for r in rounds if r.target == 0], host_cores=2.0,
        growth=memory_growth([s.t for s in window], [s.memory for s in window]), gates=[], warnings=["a warning <b>escaped</b>"],
        load_processes=1, generator_cpu=0.4, started_at=t0, elapsed_s=45.0, sample_body=b'{"data": [[1]]}',
        stability=assess([s.t for s in window], [s.cpu for s in window], [s.memory for s in window], margin=0.15, min_cpu=0.1,
                         min_memory_gb=0.1, remaining_s=3.0, cpu_cap=2.0),
    )  # fmt: skip
    result.gates = evaluate_gates({"latency_p95_ms": 200, "min_qps": 1000}, figures_of(result), [r.stats for r in result.gate_rounds])
    return result
