"""Telling a regression from noise: judge rounds of a measurement against the spread they show.

CI runners are shared: another job's burst can halve a service's throughput for a few seconds.
One long measurement cannot tell that from a slow service; several short rounds can, because
noise moves some rounds and not others while a real regression moves them all. Every judgement
here takes, per round (or per pair of alternating rounds), an *excess* over what is allowed
(positive = worse), and decides:

- **pass** when the median excess is within the tolerance;
- **fail** when the median excess minus the spread still exceeds the tolerance, the spread being
  the larger of the excesses' interquartile range and a noise floor the caller measured (e.g.
  the reference rounds' own spread): the regression is larger than the noise;
- **inconclusive** otherwise: the figures are reported as a warning, never as a failure.

All pure functions (docs/profiling.md, "Noise").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np

from pytest_mldeploy.checks.profiling.stats import LoadStats, Round

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
#: Under the recommended limits, throughput must stay at this share of the reference's ...
QPS_HOLD = 0.90
#: ... and p95 within this factor of it, plus this much (scheduling jitter of a few ms is not a regression) ...
P95_HOLD = 1.10
P95_SLACK_MS = 2.0
#: ... and the error rate within this many points of it.
ERROR_SLACK = 0.01
#: Stands in for a figure a round could not measure (no request completed): as bad as it gets.
UNMEASURED = 1e9


@dataclass(frozen=True)
class Judgement:
    """A three-way verdict over rounds, with the figures it rests on."""

    verdict: str
    median: float
    spread: float
    rounds: int
    tolerance: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def iqr(values: Sequence[float]) -> float:
    """Interquartile range (linear interpolation); 0 for fewer than two values."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return 0.0
    q1, q3 = np.percentile(np.asarray(finite, dtype=float), [25, 75])
    return float(q3 - q1)


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float))) if len(values) else math.nan


def judge(excess: Sequence[float], *, tolerance: float = 0.0, noise: float = 0.0) -> Judgement:
    """pass / fail / inconclusive for per-round `excess` values (see the module doc)."""
    values = [UNMEASURED if not math.isfinite(v) else float(v) for v in excess]
    if not values:
        return Judgement(INCONCLUSIVE, math.nan, math.nan, 0, tolerance)
    mid = median(values)
    spread = max(iqr(values), max(noise, 0.0) if math.isfinite(noise) else 0.0)
    if mid <= tolerance:
        verdict = PASS
    elif mid - spread > tolerance:
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    return Judgement(verdict, mid, spread, len(values), tolerance)


def combine(verdicts: Sequence[str]) -> str:
    """fail if any fails, else inconclusive if any is, else pass."""
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return PASS


def _relative_iqr(values: Sequence[float]) -> float:
    mid = median(values)
    return iqr(values) / mid if mid and math.isfinite(mid) else 0.0


def _p95(stats: LoadStats) -> float:
    return stats.latency_p95_ms if stats.total and math.isfinite(stats.latency_p95_ms) else math.inf


@dataclass
class Comparison:
    """The recommended limits (candidate) against the reference, over pairs of alternating rounds."""

    verdict: str  # pass (held), fail (did not hold) or inconclusive
    pairs: int
    judgements: dict[str, Judgement]
    problems: list[str]
    figures: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "pairs": self.pairs, "problems": self.problems, "figures": self.figures,
            "judgements": {k: j.to_dict() for k, j in self.judgements.items()},
        }  # fmt: skip


def pairs_of(rounds: Sequence[Round]) -> list[tuple[LoadStats, LoadStats]]:
    """(reference, candidate) pairs: the k-th round of target 0 with the k-th round of target 1."""
    reference = [r.stats for r in sorted(rounds, key=lambda r: r.index) if r.target == 0]
    candidate = [r.stats for r in sorted(rounds, key=lambda r: r.index) if r.target == 1]
    return [(a, b) for a, b in zip(reference, candidate) if a.total > 0]


def compare_rounds(rounds: Sequence[Round], objective_ms: Optional[float] = None) -> Comparison:
    """Did the candidate (target 1) hold the load as well as the reference (target 0)?

    Per pair: throughput ratio against `QPS_HOLD` (noise floor: the reference rounds' relative
    spread), p95 against `P95_HOLD` x the reference's + `P95_SLACK_MS` or within the latency
    objective when one is set (noise floor: the reference rounds' p95 spread), and the error rate
    against the reference's + `ERROR_SLACK`.
    """
    pairs = pairs_of(rounds)
    if not pairs:
        return Comparison(INCONCLUSIVE, 0, {}, ["no pair of rounds was measured (the reference answered nothing)"], "no rounds")
    ref_qps = [a.qps for a, _ in pairs]
    ref_p95 = [_p95(a) for a, _ in pairs]
    qps = judge([QPS_HOLD - b.qps / a.qps for a, b in pairs], noise=_relative_iqr(ref_qps))
    latency_excess = []
    for a, b in pairs:
        excess = _p95(b) - (P95_HOLD * _p95(a) + P95_SLACK_MS)
        if objective_ms is not None:
            excess = min(excess, _p95(b) - objective_ms)
        latency_excess.append(excess)
    latency = judge(latency_excess, noise=iqr(ref_p95))
    errors = judge([b.error_rate - a.error_rate - ERROR_SLACK for a, b in pairs])
    judgements = {"throughput": qps, "latency": latency, "errors": errors}
    cand_qps = median([b.qps for _, b in pairs])
    cand_p95 = median([_p95(b) for _, b in pairs])
    ref_qps_mid, ref_p95_mid = median(ref_qps), median(ref_p95)
    figures = (
        f"median of {len(pairs)} round pairs: {cand_qps:.1f} vs {ref_qps_mid:.1f} req/s, "
        f"p95 {_ms(cand_p95)} vs {_ms(ref_p95_mid)} ms (limits vs reference)"
    )
    problems = []
    for name, j in judgements.items():
        if j.verdict == PASS:
            continue
        how = "clearly" if j.verdict == FAIL else "within the noise,"
        if name == "throughput":
            problems.append(
                f"throughput {how} below {QPS_HOLD:.0%} of the reference: {cand_qps:.1f} vs {ref_qps_mid:.1f} req/s "
                f"(shortfall {j.median:+.0%} of the reference past the {QPS_HOLD:.0%} mark, rounds' spread {j.spread:.0%})"
            )
        elif name == "latency":
            objective = f" or the objective {objective_ms:g} ms" if objective_ms is not None else ""
            problems.append(
                f"latency p95 {how} above {P95_HOLD:.0%} of the reference{objective}: {_ms(cand_p95)} vs {_ms(ref_p95_mid)} ms "
                f"(excess {_ms(j.median)} ms, rounds' spread {_ms(j.spread)} ms)"
            )
        else:
            problems.append(
                f"error rate {how} above the reference's: {median([b.error_rate for _, b in pairs]):.2%} vs "
                f"{median([a.error_rate for a, _ in pairs]):.2%}"
            )
    return Comparison(combine([j.verdict for j in judgements.values()]), len(pairs), judgements, problems, figures)


def _ms(value: float) -> str:
    return "n/a" if not math.isfinite(value) or value >= UNMEASURED else f"{value:.1f}"
