"""The health check: the service reached Healthy and `GET /` answers 200.

It runs first because every other check needs a live service; its report carries the state, the
reason the target recorded and the service's log tail, which is where a failed `init()` shows.
"""
from __future__ import annotations

from typing import Optional

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.failure_report import death_problem, failure_report, service_death

NAME = "health"
EXPECTED = "GET / answers 200 (the service reached Healthy)"


@check(order=10)
def check_health(ctx: CheckContext) -> CheckResult:
    """GET / answers 200."""
    state = ctx.service.refresh_state()
    reason = ctx.service.reason
    response: Optional[requests.Response] = None
    error: Optional[requests.RequestException] = None
    try:
        response = ctx.client.health()
    except requests.RequestException as exc:
        error = exc
    if response is None or response.status_code != 200:
        answer = f"got no answer ({type(error).__name__})" if response is None else f"answered {response.status_code}"
        died = service_death(ctx.service, error) if response is None else None
        if died:
            problem = f"{death_problem(died)}; GET {ctx.client.url('/')} {answer}, the service is Failed"
        else:
            problem = f"GET {ctx.client.url('/')} {answer}"
            problem += f"; the service is {state}" + (f": {reason}" if reason else "")
        report = failure_report(NAME, problem, EXPECTED, response=response, error=error, service=ctx.service,
                                body_dir=ctx.report_dir, request_title="request")
        return CheckResult(NAME, Outcome.FAILED, problem, report, died=died)
    return CheckResult(NAME, Outcome.PASSED, f"GET / answered 200 ({state})")
