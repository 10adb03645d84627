"""The properties check: every request the service's own input schema accepts is answered well.

Hypothesis draws request bodies from `definitions.ServiceInput` as the service serves it
(hypothesis-jsonschema), sends each one, and asks for a 200 with a strict-JSON body matching
`ServiceOutput`. When one fails, Hypothesis shrinks it to the smallest failing request, which
the report shows with the answer, the log tail and a `curl` line.
"""
from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Optional

import requests
from hypothesis import HealthCheck, Verbosity, find, settings
from hypothesis.errors import NoSuchExample
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from hypothesis_jsonschema import from_schema

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.failure_report import death_problem, death_report, failure_report, service_death
from pytest_mldeploy.checks.azure_contract import azure_nan_answer, runs_azure_server, tightened_input_schema
from pytest_mldeploy.checks.schema import body_problem, expected_answer, read_contract, unreadable_contract, validator

NAME = "properties"

MAX_ITEMS = 10
"""Arrays the schema leaves unbounded get at most this many items: enough to find row-count bugs."""
MAX_LENGTH = 40
"""Strings the schema leaves unbounded get at most this many characters."""
NUMBER_BOUND = 1e9
"""Numbers the schema leaves unbounded are drawn from [-1e9, 1e9].

Near float64's limits a linear model overflows to infinity, which says nothing about the
service; a schema that declares `minimum`/`maximum` is tested over exactly its own range.
"""

_DRAFT4 = "http://json-schema.org/draft-04/schema#"


def _types(node: dict) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    return set()


_NAME_MAPS = ("properties", "patternProperties", "definitions")
_VALUES = ("enum", "const", "default")


def _bound(node: Any) -> Any:
    if isinstance(node, list):
        return [_bound(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _bound(sub) for name, sub in value.items()}
        elif key in _VALUES:
            out[key] = value
        else:
            out[key] = _bound(value)
    types = _types(node)
    if "array" in types or "items" in node:
        out["maxItems"] = _capped(node.get("maxItems"), int(node.get("minItems", 0)), MAX_ITEMS)
    if "string" in types:
        out["maxLength"] = _capped(node.get("maxLength"), int(node.get("minLength", 0)), MAX_LENGTH)
    if types & {"number", "integer"}:
        if "minimum" not in node:
            out["minimum"] = -NUMBER_BOUND
        if "maximum" not in node:
            out["maximum"] = NUMBER_BOUND
    return out


def _capped(declared: Any, floor: int, cap: int) -> int:
    """The size limit to generate with: `cap`, but never below the declared minimum nor above the declared maximum."""
    limit = max(cap, floor)
    return limit if declared is None else min(int(declared), limit)


def generation_schema(schema: dict) -> dict:
    """`schema` with sane sizes added where it sets none (see MAX_ITEMS, MAX_LENGTH, NUMBER_BOUND)."""
    bounded = _bound(copy.deepcopy(schema))
    bounded.setdefault("$schema", _DRAFT4)
    return bounded


_DELEGATED = {
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "enum", "const",
    "dependencies", "patternProperties", "propertyNames", "minProperties", "maxProperties", "contains",
}


def _structural(node: Any) -> SearchStrategy[Any]:
    """Objects and arrays built with Hypothesis' own collections; leaves from hypothesis-jsonschema.

    hypothesis-jsonschema 0.23's object strategy relies on a Hypothesis internal (`many.more()`)
    that Hypothesis 6.170 removed, so objects with fixed properties and plain arrays are drawn
    here; an object then carries only its declared properties (never extra keys), required ones
    always. Anything using combinators goes to `from_schema` whole.
    """
    if not isinstance(node, dict) or node.keys() & _DELEGATED:
        return _leaf(node)
    types = _types(node)
    if len(types) > 1:
        return st.one_of([_structural({**node, "type": t}) for t in sorted(types)])
    properties = node.get("properties")
    if (types == {"object"} or (not types and isinstance(properties, dict))) and isinstance(properties or {}, dict):
        properties = properties or {}
        required = [name for name in node.get("required", []) if name in properties]
        if len(required) != len(set(node.get("required", []))):
            return _leaf(node)
        return st.fixed_dictionaries(
            {name: _structural(properties[name]) for name in required},
            optional={name: _structural(sub) for name, sub in properties.items() if name not in required},
        )
    items = node.get("items", {})
    if types == {"array"} and isinstance(items, dict):
        return st.lists(
            _structural(items),
            min_size=int(node.get("minItems", 0)),
            max_size=int(node["maxItems"]) if "maxItems" in node else None,
            unique_by=(lambda value: json.dumps(value, sort_keys=True)) if node.get("uniqueItems") else None,
        )
    return _leaf(node)


def _leaf(node: Any) -> SearchStrategy[Any]:
    if isinstance(node, dict):
        node = {**node, "$schema": _DRAFT4}
    return from_schema(node, allow_x00=False)


def request_strategy(schema: dict) -> SearchStrategy[Any]:
    """Request bodies matching `schema` (finite numbers, bounded sizes); each is checked against it."""
    bounded = generation_schema(schema)
    is_valid = validator(schema).is_valid
    return _structural(bounded).filter(is_valid)


def hypothesis_settings(examples: int, seed: Optional[int]) -> tuple[settings, Optional[random.Random]]:
    """Settings for a run against a live service: no deadline, no database, reproducible."""
    chosen = settings(
        max_examples=max(1, examples),
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    return chosen, (random.Random(seed) if seed is not None else None)


@dataclass
class _Failure:
    problem: str
    response: Optional[requests.Response] = None
    error: Optional[BaseException] = None


class _ServiceDied(BaseException):
    """Stops Hypothesis at once: every request to a dead service fails, so shrinking would only mislead.

    A BaseException, so Hypothesis does not take it for a failing example to shrink.
    """

    def __init__(self, reason: str, error: BaseException) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def check_properties(ctx: CheckContext) -> CheckResult:
    """Hypothesis-generated schema-valid requests all get a 200 with a strict-JSON body matching ServiceOutput."""
    try:
        contract = read_contract(ctx.client)
    except (requests.RequestException, ValueError) as exc:
        return unreadable_contract(NAME, ctx.client, exc)
    if contract.input is None:
        return CheckResult(
            NAME, Outcome.SKIPPED,
            "skipped: the service declares no input schema (run() has no @input_schema), so there is nothing to generate requests from",
        )

    failures: dict[bytes, _Failure] = {}
    sent = 0
    warnings: list[str] = []
    azure_server = runs_azure_server(ctx.deployment)
    # Azure's server publishes a looser ServiceInput than it accepts: draw from it as ours tightens it.
    drawn_from = (azure_server and tightened_input_schema(contract.document)) or contract.input

    def fails(request_body: Any) -> bool:
        nonlocal sent
        body = json.dumps(request_body).encode("utf-8")
        sent += 1
        try:
            response = ctx.client.score_raw(body)
        except requests.RequestException as exc:
            died = service_death(ctx.service, exc)
            if died:
                raise _ServiceDied(died, exc) from None
            failures[body] = _Failure(f"got no answer ({type(exc).__name__})", error=exc)
            return True
        problem = body_problem(response, contract.output)
        azure = problem and azure_server and azure_nan_answer(response.status_code, response.content)
        if azure:
            if azure not in warnings:
                warnings.append(azure)
            return False
        if problem:
            failures[body] = _Failure(problem, response=response)
            return True
        return False

    chosen, rng = hypothesis_settings(ctx.examples, ctx.seed)
    started = time.perf_counter()
    minimal: Any = None
    found = False
    try:
        minimal = find(request_strategy(drawn_from), fails, settings=chosen, random=rng)
        found = True
    except NoSuchExample:
        pass
    except _ServiceDied as death:
        return _died(ctx, death, sent, time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    figures = {"requests": sent, "examples_per_s": round(sent / elapsed, 1) if elapsed > 0 else None}

    if not found:
        if failures:  # a failure that did not reproduce: still a failure, shown as seen
            return _failed(ctx, next(iter(failures.values())), contract.output, sent, figures, flaky=True)
        return CheckResult(
            NAME, Outcome.PASSED,
            f"{sent} generated requests matching ServiceInput were all answered {expected_answer(contract.output)}",
            figures=figures, warnings=warnings,
        )
    # Send the minimal request once more, so the log tail ends with its own traceback.
    key = json.dumps(minimal).encode("utf-8")
    first_seen = failures.get(key) or next(reversed(failures.values()))
    try:
        reproduced = fails(minimal)
    except _ServiceDied as death:
        return _died(ctx, death, sent, time.perf_counter() - started)
    failure = failures[key] if reproduced else first_seen
    return _failed(ctx, failure, contract.output, sent, figures, flaky=not reproduced)


def _died(ctx: CheckContext, death: _ServiceDied, sent: int, elapsed: float) -> CheckResult:
    """The service died answering a generated request: say so, with that request (not a shrunk one)."""
    note = f"Hypothesis had sent {sent} requests; the service died answering the last one, so it was not shrunk."
    report = death_report(NAME, death.reason, service=ctx.service, error=death.error, body_dir=ctx.report_dir, notes=[note])
    figures = {"requests": sent, "examples_per_s": round(sent / elapsed, 1) if elapsed > 0 else None}
    problem = death_problem(death.reason, getattr(death.error, "request", None))
    return CheckResult(NAME, Outcome.FAILED, problem, report, figures=figures, died=death.reason)


def _failed(
    ctx: CheckContext, failure: _Failure, output: Optional[dict], sent: int, figures: dict, flaky: bool
) -> CheckResult:
    problem = f"POST {ctx.client.scoring_url} {failure.problem} for a request ServiceInput accepts"
    note = (
        f"Hypothesis sent {sent} requests; the one above is the smallest that failed."
        if not flaky
        else f"Hypothesis sent {sent} requests; this one failed, then passed when sent again (flaky)."
    )
    report = failure_report(
        NAME, problem, expected_answer(output), response=failure.response, error=failure.error,
        service=ctx.service, body_dir=ctx.report_dir, notes=[note],
    )
    return CheckResult(NAME, Outcome.FAILED, problem, report, figures=figures)

