"""The `profile` check of `pytest --mldeploy`: profile the running service and hold it to its gates.

Passes when every gate in `gates:` holds; fails with each broken gate's measured figure beside
its limit (`latency p95 412.3 ms > gate 200 ms`), when no request succeeded under load, or when
the profile could not run. A gate or a verification the rounds cannot decide (inconclusive), a
failed verification, a capped or floor CPU figure and a probable leak are warnings
(`CheckResult.warnings`), not failures. It skips, with the reason, when there is nothing to send
(no `profile.requests` and no swagger example). The figures (Azure's field names) and the report
paths go into `CheckResult.figures` for the run's summary table.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.failure_report import failure_report
from pytest_mldeploy.errors import MldeployError

NAME = "profile"


def summarize(result) -> str:  # type: ignore[no-untyped-def]
    rec, steady = result.recommendation, result.steady
    return (
        f"recommend {rec.cpu:g} cores{' (a floor)' if rec.cpu_floor else ''}, {rec.memory_gb:g} GB ({result.verification.verdict}); "
        f"{steady.qps:.1f} req/s at {result.concurrency} concurrent, p95 {steady.latency_p95_ms:.1f} ms, "
        f"success {100 * steady.success_rate:.2f} %; report {result.html_path}"
    )


def _replay_request(ctx: CheckContext, body: Optional[bytes], content_type: str = "application/json") -> Optional[requests.PreparedRequest]:
    if body is None:
        return None
    headers = {"Content-Type": content_type}
    if ctx.service.keys:
        headers["Authorization"] = f"Bearer {ctx.service.keys[0]}"
    return requests.Request("POST", ctx.service.scoring_uri, data=body, headers=headers).prepare()


@check(order=90)
def check_profile(ctx: CheckContext) -> CheckResult:
    """Profile `ctx.service` under load, recommend CPU and memory, verify them, and apply the gates."""
    from pytest_mldeploy.checks.profiling.profiler import profile_service
    from pytest_mldeploy.checks.profiling.report import figures_of
    from pytest_mldeploy.checks.profiling.workload import NoWorkload

    out_dir = Path(ctx.report_dir) if ctx.report_dir else Path(tempfile.mkdtemp(prefix=f"mldeploy-profile-{ctx.deployment.name}-"))
    try:
        result = profile_service(ctx.project, ctx.deployment, ctx.service, out_dir, target=ctx.target)
    except NoWorkload as exc:
        return CheckResult(NAME, Outcome.SKIPPED, f"nothing to send: {exc}", str(exc))
    except MldeployError as exc:
        problem = f"the profile could not run: {exc}"
        return CheckResult(NAME, Outcome.FAILED, problem.splitlines()[0], failure_report(NAME, problem, "a completed load profile", service=ctx.service))
    figures = {**figures_of(result), "report": str(result.html_path), "json": str(result.json_path)}
    warnings = list(result.warnings)
    problems = [g.message for g in result.failed_gates]
    if result.steady.success == 0:
        problems.insert(0, f"no request succeeded under load ({result.steady.total} sent, {result.steady.failures} failed)")
    if not problems:
        return CheckResult(NAME, Outcome.PASSED, summarize(result), warnings=warnings, figures=figures)
    errors = "; ".join(f"{count} x {kind}" for kind, count in list(result.steady.errors.items())[:5])
    notes = [
        "measured: " + summarize(result),
        *(["errors under load: " + errors] if errors else []),
        f"profile: {result.html_path} and {result.json_path}",
    ]
    report = failure_report(
        NAME,
        "; ".join(problems),
        "every gate in mldeploy.yaml's gates: holds under load",
        request=_replay_request(ctx, result.sample_body, result.sample_content_type),
        service=ctx.service,
        body_dir=out_dir,
        request_title="one request of the workload",
        notes=notes,
    )
    return CheckResult(NAME, Outcome.FAILED, "; ".join(problems), report, warnings=warnings, figures=figures)
