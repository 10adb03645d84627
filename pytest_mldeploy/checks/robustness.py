"""The robustness check: bad requests get a clear 4xx, never a 5xx, and the service stays up.

Two families of requests are sent. Requests the service's own input schema rejects are made by
mutating a valid request (its documented example, or the smallest one the schema allows) one
place at a time: null, a wrong type, a missing required key, an array one item too long or too
short, an extra level of nesting, an empty array; only mutations the schema really rejects are
kept. Malformed requests are the same for every service: not JSON, truncated JSON, an empty body,
a non-JSON content type, JSON nested 100,000 deep, numbers too big for any float, invalid UTF-8
and a body over the deployment's `max_body_bytes`.

With a schema, each must be answered 4xx with a JSON `{"message": ...}`. A script without a
schema (`run(raw)`) owns its parsing, so its only contract is to stay up: a 5xx is a warning.
Either way, no answer at all or a GET / other than 200 afterwards fails the check.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import requests

from pytest_mldeploy.checks.azure_contract import azure_bad_request_answer, runs_azure_server
from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.failure_report import death_problem, death_report, failure_report, service_death, service_log_tail
from pytest_mldeploy.checks.published_contract import Contract, json_path, schema_error, strict_json, validator

NAME = "robustness"

NESTING_DEPTH = 100_000
HUGE_DIGITS = 5_000
"""Digits of the huge integer literal: past Python's 4,300-digit int parsing limit."""
MAX_OVERSIZE_PROBE = 64 * 1024 * 1024
"""The oversize probe is skipped when `max_body_bytes` is larger than this (too slow to send)."""
MAX_SCHEMA_PROBES = 40


@dataclass
class Probe:
    """One bad request and what makes it bad."""

    label: str
    body: bytes
    content_type: Optional[str] = "application/json"
    rejected_by_schema: bool = False
    #: The parameter this probe spoils, when the server passes that parameter to run() unchecked.
    unchecked: Optional[str] = None


# --------------------------------------------------------------------------------------------
# Requests the schema rejects
# --------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _replace(instance: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(instance)
    node = copied
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copied


def _remove_key(instance: Any, path: tuple, key: str) -> Any:
    copied = copy.deepcopy(instance)
    node = copied
    for part in path:
        node = node[part]
    del node[key]
    return copied


def _wrong_types(value: Any) -> list[Any]:
    kind = _kind(value)
    candidates = {"number": "not a number", "string": 12345, "boolean": "true", "array": "not an array", "object": ["not", "an", "object"]}
    out = [candidates[kind]] if kind in candidates else []
    if kind != "object":
        out.append({"unexpected": "object"})
    return out


def _nodes(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every place in a JSON value; arrays are entered through their first item (the rest share its shape)."""
    yield path, value
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _nodes(sub, path + (key,))
    elif isinstance(value, list) and value:
        yield from _nodes(value[0], path + (0,))


def mutations(instance: Any) -> Iterator[tuple[str, Any]]:
    """(label, mutated request) pairs, one change each, most informative first."""
    yield "null instead of the request object", None
    for path, value in _nodes(instance):
        where = json_path(path)
        if isinstance(value, dict):
            for key in value:
                yield f"{json_path(path + (key,))} missing", _remove_key(instance, path, key)
        if isinstance(value, list):
            if value:
                yield f"{where}: empty array", _replace(instance, path, [])
                yield f"{where}: {len(value) + 1} items instead of {len(value)} (wrong width)", _replace(instance, path, value + [copy.deepcopy(value[-1])])
                if len(value) > 1:
                    yield f"{where}: {len(value) - 1} items instead of {len(value)} (wrong width)", _replace(instance, path, value[:-1])
                yield f"{where}: an extra level of nesting", _replace(instance, path, [[copy.deepcopy(item)] for item in value])
        if path:
            yield f"{where}: null instead of {_a(_kind(value))}", _replace(instance, path, None)
            for wrong in _wrong_types(value):
                yield f"{where}: {_a(_kind(wrong))} instead of {_a(_kind(value))}", _replace(instance, path, wrong)


def base_request(contract: Contract, seed: Optional[int]) -> Any:
    """A request the schema accepts: the documented example when it matches, else the smallest one."""
    if contract.has_example and schema_error(contract.example, contract.input) is None:
        return contract.example
    from pytest_mldeploy.checks.strategies import smallest_request

    return smallest_request(contract.input or {}, seed)


def schema_probes(contract: Contract, seed: Optional[int]) -> list[Probe]:
    """Requests one change away from a valid one that the service's input schema rejects."""
    if contract.input is None:
        return []
    is_valid = validator(contract.input).is_valid
    probes: list[Probe] = []
    seen: set[bytes] = set()
    base = base_request(contract, seed)
    for label, mutated in mutations(base):
        body = json.dumps(mutated).encode("utf-8")
        if body in seen or is_valid(mutated):
            continue
        seen.add(body)
        probes.append(Probe(label, body, rejected_by_schema=True, unchecked=_spoiled_unchecked(base, mutated, contract.unchecked)))
        if len(probes) >= MAX_SCHEMA_PROBES:
            break
    return probes


def _spoiled_unchecked(base: Any, mutated: Any, unchecked: frozenset) -> Optional[str]:
    """The unchecked parameter a mutation changed, when it changed nothing else."""
    if not unchecked or not isinstance(base, dict) or not isinstance(mutated, dict):
        return None
    missing = object()
    changed = {key for key in base.keys() | mutated.keys() if base.get(key, missing) != mutated.get(key, missing)}
    return next(iter(changed)) if len(changed) == 1 and changed <= unchecked else None


# --------------------------------------------------------------------------------------------
# Malformed requests
# --------------------------------------------------------------------------------------------


def _first_number_replaced(instance: Any, literal: str) -> bytes:
    """`instance` as JSON with its first number written as `literal` (or `literal` alone)."""
    for path, value in _nodes(instance):
        if _kind(value) == "number":
            marker = "__mldeploy_number__"
            text = json.dumps(_replace(instance, path, marker))
            return text.replace(json.dumps(marker), literal, 1).encode("utf-8")
    return f"[{literal}]".encode("utf-8")


def malformed_probes(example: Any, max_body_bytes: Optional[int]) -> tuple[list[Probe], list[str]]:
    """Requests no JSON schema can accept, and notes on probes left out."""
    valid = json.dumps(example).encode("utf-8") if example is not None else b'{"data": [[1.0, 2.0, 3.0]]}'
    probes = [
        Probe("not JSON", b"this is not JSON"),
        Probe("truncated JSON", valid[: max(1, len(valid) // 2)]),
        Probe("empty body", b""),
        Probe("a non-JSON content type (application/xml)", b"<data><row>1.0</row></data>", "application/xml"),
        Probe(f"JSON nested {NESTING_DEPTH:,} arrays deep", b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH),
        Probe(f"a {HUGE_DIGITS:,}-digit integer", _first_number_replaced(example, "1" + "0" * (HUGE_DIGITS - 1))),
        Probe("a number beyond float64 (1e999999)", _first_number_replaced(example, "1e999999")),
        Probe("invalid UTF-8", b'{"data": "\xff\xfe\xfd"}'),
    ]
    notes: list[str] = []
    if max_body_bytes and max_body_bytes <= MAX_OVERSIZE_PROBE:
        body = b'{"data": "' + b"0" * (max_body_bytes + 1) + b'"}'
        probes.append(Probe(f"a body of {len(body):,} bytes (max_body_bytes is {max_body_bytes:,})", body))
    elif max_body_bytes:
        notes.append(f"oversize probe skipped: max_body_bytes ({max_body_bytes:,}) is over {MAX_OVERSIZE_PROBE:,} bytes")
    else:
        notes.append("oversize probe skipped: the deployment sets no max_body_bytes")
    return probes, notes


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def error_body_problem(response: requests.Response) -> Optional[str]:
    """Why a 4xx body is not a JSON object with a string `message`, or None."""
    try:
        body = strict_json(response.content)
    except ValueError:
        return "its body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return 'its body is not a JSON object with a "message" string'
    return None


@dataclass
class _Finding:
    probe: Probe
    problem: str
    response: Optional[requests.Response] = None
    error: Optional[BaseException] = None


@check(order=40, requires_contract=True)
def check_robustness(ctx: CheckContext) -> CheckResult:
    """Schema-rejected and malformed requests get a 4xx with a JSON message (5xx is a warning without a schema); GET / stays 200."""
    contract = ctx.contract
    strict = contract.input is not None
    example = contract.example if contract.has_example else None
    probes, notes = malformed_probes(example, getattr(ctx.deployment, "max_body_bytes", None))
    probes = schema_probes(contract, ctx.seed) + probes

    failures: list[_Finding] = []
    warnings: list[str] = []
    azure_server = runs_azure_server(ctx.deployment)
    azure_answers = 0
    dead: Optional[_Finding] = None
    died: Optional[str] = None
    for probe in probes:
        try:
            response = ctx.client.score_raw(probe.body, content_type=probe.content_type)
        except requests.RequestException as exc:
            died = service_death(ctx.service, exc)
            if died is None and ctx.client.health_ok():
                # The server dropped this one connection (e.g. refused the upload early) but lives on.
                warnings.append(f"{probe.label}: the connection closed without an answer ({type(exc).__name__})")
                continue
            dead = _Finding(probe, f"got no answer ({type(exc).__name__}) and the service stopped answering GET /", error=exc)
            break
        status = response.status_code
        azure = azure_server and strict and not probe.unchecked and azure_bad_request_answer(
            status, response.content, probe.rejected_by_schema)
        if azure:
            azure_answers += 1
            warnings.append(f"{probe.label}: answered {status}: {azure}")
        elif status >= 500:
            if strict:
                failures.append(_Finding(probe, f"answered {status}", response))
            else:
                warnings.append(f"{probe.label}: answered {status} (run() without a schema must handle malformed input itself)")
        elif strict and status < 400 and probe.unchecked:
            warnings.append(f"{probe.label}: answered {status}: run() accepted a value its schema rejects "
                            f"('{probe.unchecked}' is declared with convert_to_provided_type=False, so neither this "
                            f"server nor Azure's checks it; run() must)")
        elif strict and status < 400:
            failures.append(_Finding(probe, f"answered {status}, accepting a request its schema rejects" if probe.rejected_by_schema else f"answered {status}", response))
        elif strict and (problem := error_body_problem(response)):
            failures.append(_Finding(probe, f"answered {status} but {problem}", response))

    figures = {"requests": len(probes), "failed": len(failures) + (dead is not None), "warnings": len(warnings)}
    others = [f"  - {f.probe.label}: {f.problem}" for f in failures]
    unhealthy_after = dead is None and not ctx.client.health_ok()
    if unhealthy_after:
        died = service_death(ctx.service)
    if died:
        during = dead.probe.label if dead is not None else "after the bad requests were answered"
        error = dead.error if dead is not None else None
        notes_out = [f"{len(others)} bad request(s) failed before it died:\n" + "\n".join(others)] if others else []
        report = death_report(NAME, died, service=ctx.service, error=error, body_dir=ctx.report_dir, during=during,
                              notes=notes_out)
        summary = death_problem(died, getattr(error, "request", None), during) + "; it stopped answering GET /"
        return CheckResult(NAME, Outcome.FAILED, summary, report, warnings=warnings + notes, figures=figures, died=died)
    if unhealthy_after:
        health = _health_response(ctx)
        problem = f"GET / does not answer 200 after the bad requests ({health})"
        report = f"[{NAME}] {problem}\n\nexpected: the service stays alive\n\nservice log (last lines):\n{service_log_tail(ctx.service)}"
        return CheckResult(NAME, Outcome.FAILED, problem, report, warnings=warnings, figures=figures)
    if dead is not None or failures:
        first = dead or failures[0]
        expected = "a 4xx with a JSON {\"message\": ...} body, never a 5xx" if strict else "an answer of any kind, with the service staying up"
        problem = f"POST {ctx.client.scoring_url} with {first.probe.label}: {first.problem}"
        others = [f"  - {f.probe.label}: {f.problem}" for f in failures if f is not first]
        notes_out = [f"{len(others)} more bad request(s) failed:\n" + "\n".join(others)] if others else []
        report = failure_report(NAME, problem, expected, response=first.response, error=first.error, service=ctx.service,
                                body_dir=ctx.report_dir, request_title="failing request", notes=notes_out)
        summary = problem if not others else f"{problem} (and {len(others)} more)"
        return CheckResult(NAME, Outcome.FAILED, summary, report, warnings=warnings + notes, figures=figures)
    kind = "answered 4xx with a JSON message" if strict else "left the service up (free-form input: 5xx answers are warnings)"
    if azure_answers:
        kind = f"answered 4xx with a JSON message or, {azure_answers} of them, as Azure's server documents (warnings)"
    summary = f"{len(probes)} bad requests {kind}; GET / still answers 200"
    return CheckResult(NAME, Outcome.PASSED, summary, warnings=warnings + notes, figures=figures)


def _health_response(ctx: CheckContext) -> str:
    try:
        return f"answered {ctx.client.health().status_code}"
    except requests.RequestException as exc:
        return f"no answer: {type(exc).__name__}"
