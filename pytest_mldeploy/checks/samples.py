"""The samples check: every request in the deployment's requests file is answered well.

`profile.requests` in mldeploy.yaml names a file of real request bodies, one JSON body per line,
which the profiler replays under load. Before that, each line must get a 200 with a strict-JSON
body (matching `ServiceOutput` when the service declares one): a file the service rejects would
only measure the speed of error answers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.report import death_problem, death_report, failure_report, service_death
from pytest_mldeploy.checks.schema import body_problem, expected_answer, read_contract

NAME = "samples"


def request_lines(path: Path) -> list[tuple[int, bytes]]:
    """(line number, body) for each non-blank line of a requests file."""
    return [(number, line.strip()) for number, line in enumerate(path.read_bytes().splitlines(), 1) if line.strip()]


def _requests_file(ctx: CheckContext) -> Optional[Path]:
    profile = getattr(ctx.deployment, "profile", None)
    path = getattr(profile, "requests", None)
    return Path(path) if path else None


def check_samples(ctx: CheckContext) -> CheckResult:
    """Each line of `profile.requests` gets a 200 with strict JSON (matching ServiceOutput when declared)."""
    path = _requests_file(ctx)
    if path is None:
        return CheckResult(NAME, Outcome.SKIPPED, "skipped: the deployment names no requests file (profile.requests in mldeploy.yaml)")
    if not path.is_file():
        summary = f"profile.requests: {path} does not exist; create it (one JSON request body per line) or remove the key"
        return CheckResult(NAME, Outcome.FAILED, summary, f"[{NAME}] {summary}")
    lines = request_lines(path)
    if not lines:
        return CheckResult(NAME, Outcome.SKIPPED, f"skipped: {path} holds no requests")

    warnings: list[str] = []
    try:
        output = read_contract(ctx.client).output
    except (requests.RequestException, ValueError) as exc:
        output = None
        warnings.append(f"answers were not checked against ServiceOutput: the swagger document could not be read ({exc})")

    failed: list[tuple[int, str, Optional[requests.Response], Optional[BaseException]]] = []
    for index, (number, body) in enumerate(lines):
        try:
            response = ctx.client.score_raw(body)
        except requests.RequestException as exc:
            died = service_death(ctx.service, exc)
            if died:
                return _died(ctx, path, number, died, exc, answered=index, total=len(lines), failed=failed, warnings=warnings)
            failed.append((number, f"got no answer ({type(exc).__name__})", None, exc))
            continue
        problem = body_problem(response, output)
        if problem:
            failed.append((number, problem, response, None))

    figures = {"requests": len(lines), "failed": len(failed)}
    if not failed:
        return CheckResult(NAME, Outcome.PASSED, f"all {len(lines)} requests in {path.name} were answered {expected_answer(output)}",
                           warnings=warnings, figures=figures)
    number, problem, response, error = failed[0]
    headline = f"{path.name} line {number}: POST {ctx.client.scoring_url} {problem}"
    others = [f"  - line {n}: {p}" for n, p, _, _ in failed[1:]]
    notes = [f"{len(failed)} of {len(lines)} requests in {path} failed" + (":\n" + "\n".join(others[:20]) if others else "")]
    report = failure_report(NAME, headline, expected_answer(output), response=response, error=error, service=ctx.service,
                            body_dir=ctx.report_dir, request_title=f"failing request ({path}:{number})", notes=notes)
    return CheckResult(NAME, Outcome.FAILED, f"{headline} ({len(failed)} of {len(lines)} failed)", report,
                       warnings=warnings, figures=figures)


def _died(
    ctx: CheckContext, path: Path, number: int, died: str, error: BaseException, *,
    answered: int, total: int, failed: list, warnings: list[str],
) -> CheckResult:
    """The service died answering line `number`: say so first; the lines after it were not sent."""
    rest = total - answered - 1
    notes = [f"{answered} of the {total} requests in {path} {'was' if answered == 1 else 'were'} sent before it"
             + (f"; {rest} after it {'was' if rest == 1 else 'were'} not sent" if rest else "")]
    if failed:
        notes.append("lines that failed before it died:\n" + "\n".join(f"  - line {n}: {p}" for n, p, _, _ in failed[:20]))
    report = death_report(NAME, died, service=ctx.service, error=error, body_dir=ctx.report_dir, during=f"{path.name} line {number}",
                          request_title=f"the request it was answering ({path}:{number})", notes=notes)
    summary = death_problem(died, getattr(error, "request", None), f"{path.name} line {number}")
    figures = {"requests": answered + 1, "failed": len(failed) + 1}
    return CheckResult(NAME, Outcome.FAILED, summary, report, warnings=warnings, figures=figures, died=died)
