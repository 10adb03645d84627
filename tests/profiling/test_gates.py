"""Gates: each set limit checked against the profile's figures, with the measured value beside the limit."""
from __future__ import annotations

from pytest_mldeploy.checks.profiling.gates import evaluate_gates
from pytest_mldeploy.core.config import Gates

FIGURES = {
    "latencyPercentile95InMs": 412.34,
    "latencyPercentile99InMs": 640.0,
    "measuredQueriesPerSecond": 85.2,
    "errorRate": 0.021,
    "requestedMemoryInGb": 1.3,
    "requestedCpu": 0.6,
}


def test_unset_gates_are_not_checked() -> None:
    assert evaluate_gates(Gates(), FIGURES) == []


def test_latency_gate_fails_with_measured_beside_limit() -> None:
    [result] = evaluate_gates(Gates(latency_p95_ms=200), FIGURES)
    assert not result.passed
    assert result.message == "latency p95 412.3 ms > gate 200 ms"
    assert result.measured == 412.34


def test_every_gate_kind() -> None:
    gates = Gates(latency_p95_ms=500, latency_p99_ms=600, min_qps=100, max_error_rate=0.05, memory_gb=1.0, cpu=1)
    results = {r.gate: r for r in evaluate_gates(gates, FIGURES)}
    assert results["latency_p95_ms"].passed and results["latency_p95_ms"].message == "latency p95 412.3 ms <= gate 500 ms"
    assert not results["latency_p99_ms"].passed
    assert results["min_qps"].message == "throughput 85.2 req/s < gate 100 req/s"
    assert results["max_error_rate"].passed and results["max_error_rate"].message == "error rate 2.10% <= gate 5.00%"
    assert results["memory_gb"].message == "recommended memory 1.3 GB > gate 1 GB"
    assert results["cpu"].passed


def test_throughput_gate_passes_at_the_limit() -> None:
    [result] = evaluate_gates({"min_qps": 85.2}, FIGURES)
    assert result.passed


def test_unmeasured_figure_fails_its_gate() -> None:
    [result] = evaluate_gates(Gates(latency_p99_ms=100), {"latencyPercentile99InMs": float("nan")})
    assert not result.passed
    assert result.message == "latency p99 not measured (gate 100 ms)"
