"""Does the candidate's answer depend on its input at all?

A candidate that answers every distinct request with the same body, while the baseline's answers
vary over the same requests, is not a model (Azure's safe-rollout sample ships a `green` that
answers `[0.5, 0.5]` whatever it is sent). Judged over the requests both sides answered 2xx,
including the seeded variants of the sample and example requests (`requests.derived_variants`),
so one sample request is enough to tell: variants are sent for this gate only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_mldeploy.compare.answers import Answer
from pytest_mldeploy.compare.requests import CompareRequest

#: Fewer distinct requests than this say nothing about whether answers vary.
MIN_INPUTS = 3


@dataclass
class Sensitivity:
    """How many distinct answers each side gave to how many distinct requests."""

    inputs: int
    baseline_distinct: int
    candidate_distinct: int
    constant_answer: Any = None
    fail_on_constant: bool = True
    #: How many of the `inputs` are derived variants of sample or example requests.
    derived: int = 0

    @property
    def constant(self) -> bool:
        """The candidate is constant where the baseline is not."""
        return self.inputs >= MIN_INPUTS and self.candidate_distinct == 1 and self.baseline_distinct > 1

    @property
    def passed(self) -> bool:
        return not (self.constant and self.fail_on_constant)

    def message(self) -> str:
        if self.inputs < MIN_INPUTS:
            return f"only {self.inputs} distinct request(s) answered 2xx by both: too few to judge"
        over = f"{self.inputs} distinct requests" + (f" ({self.derived} of them derived from the sample/example requests)"
                                                     if self.derived else "")
        if self.constant:
            return (f"the candidate answers {json.dumps(self.constant_answer)[:120]} to all {over}, "
                    f"whatever they hold; the baseline gave {self.baseline_distinct} different answers")
        return f"{self.candidate_distinct} distinct candidate answers and {self.baseline_distinct} baseline answers over {over}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "constant": self.constant, "inputs": self.inputs, "derived": self.derived,
            "baselineDistinct": self.baseline_distinct, "candidateDistinct": self.candidate_distinct,
            "constantAnswer": self.constant_answer if self.constant else None, "message": self.message(),
        }  # fmt: skip


def _key(answer: Answer) -> str:
    return json.dumps(answer.body, sort_keys=True) if answer.is_json else str(answer.body)


def judge_sensitivity(pairs: list[tuple[CompareRequest, Answer, Answer]], fail_on_constant: bool = True) -> Sensitivity:
    """Count distinct answers per side over the distinct requests both answered 2xx."""
    answered = [(r, a, b) for r, a, b in pairs if _ok(a) and _ok(b)]
    inputs = {(r.body, r.content_type) for r, _a, _b in answered}
    derived = len({(r.body, r.content_type) for r, _a, _b in answered if r.kind == "derived"})
    baseline = {_key(a) for _r, a, _b in answered}
    candidate = {_key(b) for _r, _a, b in answered}
    constant = answered[0][2].body if len(candidate) == 1 else None
    return Sensitivity(len(inputs), len(baseline), len(candidate), constant, fail_on_constant, derived)


def _ok(answer: Answer) -> bool:
    return answer.status is not None and 200 <= answer.status < 300
