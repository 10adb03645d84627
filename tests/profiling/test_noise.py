"""Telling a regression from noise: the three-way judgement over rounds, the closed loop's
comparison of alternating rounds, and gates judged against the rounds' spread (all pure)."""
from __future__ import annotations

import math

import pytest

from pytest_mldeploy.checks.profiling.gates import evaluate_gates
from pytest_mldeploy.checks.profiling.noise import FAIL, INCONCLUSIVE, PASS, compare_rounds, iqr, judge
from pytest_mldeploy.checks.profiling.stats import LoadStats, Round


def _stats(qps: float, p95: float, success_rate: float = 1.0, total: int = 1000) -> LoadStats:
    return LoadStats(4, 2.0, total, int(total * success_rate), qps, success_rate, p95 / 2, p95 / 2, p95 * 0.9, p95, p95 * 1.2, p95 * 2)


def _alternating(reference: list[tuple[float, float]], candidate: list[tuple[float, float]], **kw: float) -> list[Round]:
    """Rounds 0, 1, 2, ...: even ones the reference's (qps, p95), odd ones the candidate's."""
    rounds = []
    for i, ((qa, pa), (qb, pb)) in enumerate(zip(reference, candidate)):
        rounds.append(Round(2 * i, 0, 4.0 * i, 4.0 * i + 2, _stats(qa, pa)))
        rounds.append(Round(2 * i + 1, 1, 4.0 * i + 2, 4.0 * i + 4, _stats(qb, pb, **kw)))
    return rounds


def test_judge_passes_within_the_tolerance_fails_beyond_the_spread_and_is_inconclusive_between() -> None:
    assert judge([-1.0, 0.0, -0.5]).verdict == PASS
    assert judge([10.0, 11.0, 12.0]).verdict == FAIL  # median 11, IQR 1: clearly past
    assert judge([0.5, 10.0, -3.0, 20.0]).verdict == INCONCLUSIVE  # median 5.25 but IQR 12.9
    assert judge([3.0, 3.0, 3.0], noise=5.0).verdict == INCONCLUSIVE  # the reference itself moves by 5
    assert judge([3.0, 3.0, 3.0], tolerance=3.0).verdict == PASS


def test_judge_of_nothing_is_inconclusive_and_unmeasured_rounds_count_as_worst() -> None:
    assert judge([]).verdict == INCONCLUSIVE
    assert judge([math.inf, math.inf, math.nan]).verdict == FAIL


def test_iqr() -> None:
    assert iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0)
    assert iqr([7.0]) == 0.0 and iqr([]) == 0.0


def test_limits_that_keep_throughput_and_latency_hold() -> None:
    comparison = compare_rounds(_alternating([(100, 10)] * 5, [(96, 10.5)] * 5))
    assert comparison.verdict == PASS and comparison.problems == [] and comparison.pairs == 5
    assert "median of 5 round pairs: 96.0 vs 100.0 req/s" in comparison.figures


def test_starved_limits_clearly_do_not_hold() -> None:
    # A quarter of the throughput in every pair, whatever the noise: a regression, not noise.
    reference = [(100, 10), (60, 18), (110, 9), (95, 11), (70, 15)]
    candidate = [(25, 80), (16, 120), (27, 75), (24, 85), (18, 110)]
    comparison = compare_rounds(_alternating(reference, candidate))
    assert comparison.verdict == FAIL
    assert comparison.judgements["throughput"].verdict == FAIL and comparison.judgements["latency"].verdict == FAIL
    assert any(p.startswith("throughput clearly below 90% of the reference") for p in comparison.problems)


def test_a_noisy_machine_gives_inconclusive_not_did_not_hold() -> None:
    # Another job steals the CPU in some rounds of each: the candidate is below 90 % in the median
    # pair, but by less than the rounds scatter.
    reference = [(100, 10), (50, 25), (100, 10), (95, 11), (45, 30)]
    candidate = [(85, 12), (40, 28), (55, 20), (80, 13), (48, 26)]
    comparison = compare_rounds(_alternating(reference, candidate))
    assert comparison.verdict == INCONCLUSIVE, comparison.problems
    assert all("within the noise" in p for p in comparison.problems)


def test_p95_a_few_milliseconds_above_is_jitter_not_a_regression() -> None:
    # 1.0 -> 3.0 ms triples p95, but 2 ms of scheduling jitter is not a regression.
    assert compare_rounds(_alternating([(1000, 1.0)] * 4, [(1000, 3.0)] * 4)).verdict == PASS
    assert compare_rounds(_alternating([(1000, 10.0)] * 4, [(1000, 20.0)] * 4)).verdict == FAIL


def test_latency_within_the_objective_holds() -> None:
    rounds = _alternating([(100, 10)] * 4, [(100, 30)] * 4)
    assert compare_rounds(rounds).verdict == FAIL
    assert compare_rounds(rounds, objective_ms=50).verdict == PASS
    assert compare_rounds(_alternating([(100, 10)] * 4, [(100, 90)] * 4), objective_ms=50).verdict == FAIL


def test_new_errors_do_not_hold() -> None:
    comparison = compare_rounds(_alternating([(100, 10)] * 4, [(100, 10)] * 4, success_rate=0.8))
    assert comparison.verdict == FAIL and any("error rate" in p for p in comparison.problems)


def test_a_candidate_that_answers_nothing_does_not_hold() -> None:
    rounds = _alternating([(100, 10)] * 3, [(0, math.nan)] * 3, total=0)
    assert compare_rounds(rounds).verdict == FAIL


def test_no_pairs_is_inconclusive() -> None:
    assert compare_rounds([]).verdict == INCONCLUSIVE


def _rounds(*p95s: float) -> list[LoadStats]:
    return [_stats(100, p) for p in p95s]


def test_gate_clearly_above_fails_with_the_rounds_in_the_message() -> None:
    [gate] = evaluate_gates({"latency_p95_ms": 50}, {"latencyPercentile95InMs": 152.0}, _rounds(151, 152, 153, 152))
    assert gate.verdict == FAIL and not gate.passed
    assert gate.message.startswith("latency p95 152.0 ms > gate 50 ms (4 of 4 rounds past the gate, median round 152.0 ms")


def test_gate_broken_by_a_burst_of_noise_is_inconclusive_not_failed() -> None:
    # Two rounds of ten hit a burst on the machine: the pooled p95 is past the gate, most rounds are not.
    rounds = _rounds(6, 6, 7, 400, 6, 350, 6, 7, 6, 6)
    [gate] = evaluate_gates({"latency_p95_ms": 200}, {"latencyPercentile95InMs": 230.0}, rounds)
    assert gate.verdict == INCONCLUSIVE and gate.passed and gate.inconclusive
    assert "within the noise of the rounds (2 of 10 rounds past the gate" in gate.message
    assert gate.status == "inconclusive"


def test_gate_below_its_limit_passes_whatever_the_rounds() -> None:
    [gate] = evaluate_gates({"latency_p95_ms": 200}, {"latencyPercentile95InMs": 5.6}, _rounds(5, 500))
    assert gate.verdict == PASS and gate.status == "passed"


def test_throughput_gate_is_judged_over_rounds_too() -> None:
    rounds = [_stats(q, 5) for q in (90, 95, 40, 92, 91)]
    [gate] = evaluate_gates({"min_qps": 100}, {"measuredQueriesPerSecond": 81.6}, rounds)
    assert gate.verdict == FAIL and "5 of 5 rounds past the gate" in gate.message
    [gate] = evaluate_gates({"min_qps": 100}, {"measuredQueriesPerSecond": 96.0}, [_stats(q, 5) for q in (120, 60, 118, 70, 121)])
    assert gate.verdict == INCONCLUSIVE


def test_gates_without_rounds_compare_plainly() -> None:
    [gate] = evaluate_gates({"latency_p95_ms": 200}, {"latencyPercentile95InMs": 230.0})
    assert gate.verdict == FAIL
    [gate] = evaluate_gates({"memory_gb": 1}, {"requestedMemoryInGb": 1.3}, _rounds(1, 2, 3))
    assert gate.verdict == FAIL and gate.message == "recommended memory 1.3 GB > gate 1 GB"


def test_a_failed_gate_stays_failed_only_when_a_later_load_fails_it_too() -> None:
    from pytest_mldeploy.checks.profiling.gates import confirm_gates, stats_figures

    gates = {"latency_p95_ms": 50, "max_error_rate": 0.01}
    first = evaluate_gates(gates, {"latencyPercentile95InMs": 152.0, "errorRate": 0.2}, _rounds(151, 152, 153))
    assert [g.verdict for g in first] == [FAIL, FAIL]
    slow_again = evaluate_gates(gates, stats_figures(_stats(10, 151)), _rounds(150, 151, 152))
    confirmed = confirm_gates(first, slow_again)
    assert [g.verdict for g in confirmed] == [FAIL, FAIL]
    assert "confirmed by a later load: latency p95 151.0 ms > gate 50 ms" in confirmed[0].message
    # the first stretch was a burst on the machine: the later one meets the gate
    quiet_again = evaluate_gates(gates, stats_figures(_stats(100, 6)), _rounds(6, 6, 7))
    unconfirmed = confirm_gates(first, quiet_again)
    assert [g.verdict for g in unconfirmed] == [INCONCLUSIVE, FAIL]  # the error-rate gate is not judged on rounds
    assert unconfirmed[0].passed and "a later load did not confirm it (latency p95 6.0 ms <= gate 50 ms)" in unconfirmed[0].message
