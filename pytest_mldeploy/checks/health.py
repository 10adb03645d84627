"""The health check: the service reached Healthy and `GET /` answers 200.

It runs first because every other check needs a live service; its report carries the state, the
reason the target recorded and the service's log tail, which is where a failed `init()` shows.
"""
from __future__ import annotations

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.report import failure_report

NAME = "health"
EXPECTED = "GET / answers 200 (the service reached Healthy)"


def check_health(ctx: CheckContext) -> CheckResult:
    """GET / answers 200."""
    refresh = getattr(ctx.service, "refresh_state", None)
    state = refresh() if callable(refresh) else getattr(ctx.service, "state", None)
    reason = getattr(ctx.service, "reason", None)
    try:
        response = ctx.client.health()
    except requests.RequestException as exc:
        problem = f"GET {ctx.client.url('/')} got no answer ({type(exc).__name__})"
        if state is not None:
            problem += f"; the service is {state}" + (f": {reason}" if reason else "")
        report = failure_report(NAME, problem, EXPECTED, error=exc, service=ctx.service,
                                body_dir=ctx.report_dir, request_title="request")
        return CheckResult(NAME, Outcome.FAILED, problem, report)
    if response.status_code != 200:
        problem = f"GET {ctx.client.url('/')} answered {response.status_code}"
        if state is not None:
            problem += f"; the service is {state}" + (f": {reason}" if reason else "")
        report = failure_report(NAME, problem, EXPECTED, response=response, service=ctx.service,
                                body_dir=ctx.report_dir, request_title="request")
        return CheckResult(NAME, Outcome.FAILED, problem, report)
    return CheckResult(NAME, Outcome.PASSED, f"GET / answered 200 ({state or 'Healthy'})")
