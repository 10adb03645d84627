"""Do both sides answer the same requests the same way?

Per request: the status codes must be equal. When both answer 200 with JSON, the answers are
compared row by row (the elements of two equally long top-level lists, a batch's rows; else the
whole answer is one row), leaf by leaf:
- numbers agree when |a - b| <= atol + rtol * |baseline| (NaN agrees with NaN only);
- a row whose leaves are all strings, booleans or integers looks like a label or class: it
  *flips* when the two differ at all;
- other leaves (and the rows' shapes) must be equal.
A row's *score* is how many times the tolerance its worst leaf is off (infinite for a flipped
label, a changed shape or a NaN against a number); the report's worst rows are the highest
scoring rows of the sample requests, then of the examples and generated requests, baseline and
candidate side by side, each with a curl line for both sides.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import requests

from pytest_mldeploy.client import ScoringClient, curl_command
from pytest_mldeploy.compare.requests import CompareRequest, input_rows
from pytest_mldeploy.core.compare_spec import AnswersSpec

#: Which rows a report shows first among equally different ones.
_KIND_ORDER = {"sample": 0, "example": 1, "generated": 2}
#: How much of a body a report shows.
SHOWN_CHARS = 300
#: Upper edges of the difference histogram, in multiples of the tolerance (0: identical; past 1: differs).
HISTOGRAM_EDGES = (0.0, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e6, math.inf)


@dataclass(frozen=True)
class Answer:
    """What one side answered to one request: status (None: no answer), the parsed JSON body (or the text)."""

    status: Optional[int]
    body: Any = None
    is_json: bool = False
    error: Optional[str] = None
    ms: float = 0.0

    def shown(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        text = json.dumps(self.body) if self.is_json else str(self.body)
        return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def send(client: ScoringClient, request: CompareRequest) -> Answer:
    """POST the request to the side's scoring route; a dropped connection is an answer too."""
    started = time.perf_counter()
    try:
        response = client.score_raw(request.body, request.content_type)
    except requests.RequestException as exc:
        return Answer(None, error=type(exc).__name__)
    ms = (time.perf_counter() - started) * 1000
    try:
        return Answer(response.status_code, json.loads(response.content), True, ms=ms)
    except (ValueError, RecursionError):
        return Answer(response.status_code, response.content.decode("utf-8", "replace"), False, ms=ms)


@dataclass
class RowDiff:
    """One row of one request's answer, both sides' values and how far apart they are."""

    request: str
    kind: str
    row: Optional[int]
    baseline: Any
    candidate: Any
    label_like: bool
    max_abs: float
    max_rel: float
    score: float
    input: Any = None
    curl: dict[str, str] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return self.score > 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request, "kind": self.kind, "row": self.row, "input": self.input,
            "baseline": self.baseline, "candidate": self.candidate, "labelLike": self.label_like,
            "maxAbs": self.max_abs, "maxRel": self.max_rel, "score": self.score,
            "curl": self.curl,
        }  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, path + (i,))] or [(path, [])]
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in _leaves(value[k], path + (k,))] or [(path, {})]
    return [(path, value)]


def _label_like(leaves: list[tuple[tuple, Any]]) -> bool:
    return bool(leaves) and all(isinstance(v, (str, bool)) or (isinstance(v, int)) for _p, v in leaves)


def compare_values(baseline: Any, candidate: Any, spec: AnswersSpec) -> tuple[bool, float, float, float]:
    """(label_like, max |a-b|, max relative difference, score) of two JSON values (see the module doc)."""
    a_leaves, b_leaves = _leaves(baseline), _leaves(candidate)
    label_like = _label_like(a_leaves) and _label_like(b_leaves)
    if [p for p, _ in a_leaves] != [p for p, _ in b_leaves]:
        return label_like, math.inf, math.inf, math.inf
    max_abs = max_rel = score = 0.0
    for (_p, a), (_q, b) in zip(a_leaves, b_leaves):
        if label_like or not (_is_number(a) or _is_number(b)):
            if a != b:
                return label_like, math.inf, math.inf, math.inf
            continue
        try:
            x, y = float(a), float(b)  # numbers, or the "NaN" strings some servers write
        except (TypeError, ValueError):
            return label_like, math.inf, math.inf, math.inf
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return label_like, math.inf, math.inf, math.inf
            continue
        if x == y:
            continue
        diff = abs(x - y)
        allowed = spec.atol + spec.rtol * abs(x)
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / abs(x) if x else math.inf)
        score = max(score, diff / allowed if allowed else math.inf)
    return label_like, max_abs, max_rel, score


NO_REQUESTS = ("no request was sent to both, so no answer was compared: pass --requests FILE (e.g. Azure's "
               "sample-request.json), set profile.requests in mldeploy.yaml (for v2 files: beside online_deployment), "
               "or declare an input schema (inference_schema decorators) in the entry script")


@dataclass
class AnswersResult:
    """Every request's status pair and every row's difference, and the gate over them."""

    spec: AnswersSpec
    sent: int = 0
    status_mismatches: list[dict[str, Any]] = field(default_factory=list)
    rows: list[RowDiff] = field(default_factory=list)
    #: Both sides' answers per request, in request order (for the sensitivity check and the report).
    pairs: list[tuple[CompareRequest, Answer, Answer]] = field(default_factory=list)

    @property
    def numeric_rows(self) -> list[RowDiff]:
        return [r for r in self.rows if not r.label_like]

    @property
    def label_rows(self) -> list[RowDiff]:
        return [r for r in self.rows if r.label_like]

    @property
    def mismatch_share(self) -> float:
        rows = self.numeric_rows
        return sum(r.differs for r in rows) / len(rows) if rows else 0.0

    @property
    def flip_share(self) -> float:
        rows = self.label_rows
        return sum(r.differs for r in rows) / len(rows) if rows else 0.0

    def worst(self) -> list[RowDiff]:
        """The differing rows, the most different first within each kind of request: the sample
        requests (real traffic) before the swagger examples and the generated ones (arbitrary inputs)."""
        def rank(row: RowDiff) -> tuple[int, float]:
            return _KIND_ORDER.get(row.kind, len(_KIND_ORDER)), -row.score

        return sorted((r for r in self.rows if r.differs), key=rank)[: self.spec.worst_rows]

    def problems(self) -> list[str]:
        if self.sent == 0:  # a gate that compared nothing must not let the candidate through
            return [NO_REQUESTS]
        out = []
        if self.status_mismatches:
            first = self.status_mismatches[0]
            out.append(f"{len(self.status_mismatches)} of {self.sent} requests got another status "
                       f"(first: {first['request']}: baseline {first['baseline']}, candidate {first['candidate']})")
        if self.mismatch_share > self.spec.max_mismatch_share:
            out.append(f"{sum(r.differs for r in self.numeric_rows)} of {len(self.numeric_rows)} answer rows "
                       f"({self.mismatch_share:.0%}) differ beyond atol {self.spec.atol:g} + rtol {self.spec.rtol:g} "
                       f"(allowed: {self.spec.max_mismatch_share:.0%})")
        if self.flip_share > self.spec.max_label_flip_share:
            out.append(f"{sum(r.differs for r in self.label_rows)} of {len(self.label_rows)} label answers "
                       f"({self.flip_share:.0%}) flipped (allowed: {self.spec.max_label_flip_share:.0%})")
        return out

    @property
    def passed(self) -> bool:
        return not self.problems()

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "problems": self.problems(), "sent": self.sent,
            "tolerance": {"atol": self.spec.atol, "rtol": self.spec.rtol},
            "rows": len(self.numeric_rows), "mismatchedRows": sum(r.differs for r in self.numeric_rows),
            "mismatchShare": self.mismatch_share, "maxMismatchShare": self.spec.max_mismatch_share,
            "labelRows": len(self.label_rows), "flippedLabels": sum(r.differs for r in self.label_rows),
            "flipShare": self.flip_share, "maxLabelFlipShare": self.spec.max_label_flip_share,
            "statusMismatches": self.status_mismatches,
            "worstRows": [r.to_dict() for r in self.worst()],
            "scoreHistogram": score_histogram(self.rows),
        }  # fmt: skip


def score_histogram(rows: list[RowDiff]) -> list[dict[str, Any]]:
    """How many rows' scores fall at or under each of `HISTOGRAM_EDGES` (and over the one before):
    the answer difference distribution the HTML report plots, small whatever the number of rows."""
    counts = [0] * len(HISTOGRAM_EDGES)
    for row in rows:
        index = next((i for i, edge in enumerate(HISTOGRAM_EDGES) if row.score <= edge), len(HISTOGRAM_EDGES) - 1)
        counts[index] += 1
    return [{"upTo": edge, "rows": n} for edge, n in zip(HISTOGRAM_EDGES, counts)]


def _curls(request: CompareRequest, baseline: ScoringClient, candidate: ScoringClient) -> dict[str, str]:
    out = {}
    for role, client in (("baseline", baseline), ("candidate", candidate)):
        headers = {"Content-Type": request.content_type}
        if client.key:
            headers["Authorization"] = "Bearer (key)"  # curl_command writes $MLDEPLOY_KEY, never the key
        out[role] = curl_command("POST", client.scoring_url, request.body, headers)
    return out


def row_diffs(request: CompareRequest, a: Answer, b: Answer, spec: AnswersSpec) -> list[RowDiff]:
    """The rows of two 200 JSON answers to `request`, each compared (see the module doc)."""
    split = isinstance(a.body, list) and isinstance(b.body, list) and len(a.body) == len(b.body) and len(a.body) > 0
    pairs = list(zip(a.body, b.body)) if split else [(a.body, b.body)]
    inputs = input_rows(request.json_body(), len(pairs)) if split else None
    out = []
    for index, (x, y) in enumerate(pairs):
        label_like, max_abs, max_rel, score = compare_values(x, y, spec)
        out.append(RowDiff(request.label, request.kind, index if split else None, x, y, label_like, max_abs, max_rel, score,
                           input=inputs[index] if inputs is not None else None))
    return out


def compare_answers(requests_: list[CompareRequest], baseline: ScoringClient, candidate: ScoringClient,
                    spec: AnswersSpec) -> AnswersResult:
    """Send every request to both sides (baseline first, then candidate) and compare the answers."""
    result = AnswersResult(spec)
    for request in requests_:
        a, b = send(baseline, request), send(candidate, request)
        result.sent += 1
        result.pairs.append((request, a, b))
        if a.status != b.status:
            result.status_mismatches.append({
                "request": request.label, "kind": request.kind, "baseline": a.status, "candidate": b.status,
                "baselineBody": a.shown(), "candidateBody": b.shown(), "curl": _curls(request, baseline, candidate),
            })  # fmt: skip
            continue
        if a.status != 200 or not (a.is_json and b.is_json):
            continue
        rows = row_diffs(request, a, b, spec)
        if any(r.differs for r in rows):
            curls = _curls(request, baseline, candidate)
            for row in rows:
                row.curl = curls
        result.rows += rows
    return result
