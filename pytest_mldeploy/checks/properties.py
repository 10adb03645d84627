"""The properties check: every request the service's own input schema accepts is answered well.

Hypothesis draws request bodies from `definitions.ServiceInput` as the service serves it
(hypothesis-jsonschema), sends each one, and asks for a 200 with a strict-JSON body matching
`ServiceOutput`. When one fails, Hypothesis shrinks it to the smallest failing request, which
the report shows with the answer, the log tail and a `curl` line.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Optional

import requests

from pytest_mldeploy.checks.azure_contract import azure_nan_answer, runs_azure_server, tightened_input_schema
from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.failure_report import death_problem, death_report, failure_report, service_death
from pytest_mldeploy.checks.published_contract import body_problem, expected_answer

NAME = "properties"


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


@check(order=30, requires_contract=True)
def check_properties(ctx: CheckContext) -> CheckResult:
    """Hypothesis-generated schema-valid requests all get a 200 with a strict-JSON body matching ServiceOutput."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    from pytest_mldeploy.checks.strategies import hypothesis_settings, request_strategy

    contract = ctx.contract
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

