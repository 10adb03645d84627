"""The samples check: every request in the deployment's requests file is answered well.

`profile.requests` in mldeploy.yaml names the real requests the profiler replays under load: a
file with one JSON body per line, a folder of files (one multipart upload each) or a `.http` file.
Before that, each must get a 200 with a strict-JSON body (matching `ServiceOutput` when the
service declares one): requests the service rejects would only measure the speed of error answers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.failure_report import death_problem, death_report, failure_report, service_death
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.published_contract import body_problem, expected_answer
from pytest_mldeploy.errors import ConfigError

JSON_TYPE = "application/json"

NAME = "samples"


def request_lines(path: Path) -> list[tuple[int, bytes]]:
    """(line number, body) for each non-blank line of a requests file."""
    return [(number, line.strip()) for number, line in enumerate(path.read_bytes().splitlines(), 1) if line.strip()]


def sample_requests(path: Path) -> list[tuple[str, str, bytes, str]]:
    """(label, place, body, content type) for each request `path` holds, as the profiler sends them.

    The label names the request in a summary (`requests.txt line 3`), the place in a report
    (`requests.txt:3`). Raises `ConfigError` when a folder or `.http` file cannot be read.
    """
    if not (path.is_dir() or path.suffix.lower() == ".http"):
        return [(f"{path.name} line {n}", f"{path}:{n}", body, JSON_TYPE) for n, body in request_lines(path)]
    from pytest_mldeploy.checks.profiling.workload import folder_files, iter_requests

    try:
        bodies = list(iter_requests(path))
    except ConfigError as exc:
        if "holds no request bodies" in str(exc):
            return []
        raise
    if path.is_dir():
        names = [file.name for file in folder_files(path)]
        return [(f"{path.name}/{name}", str(path / name), body, kind) for name, (body, kind) in zip(names, bodies)]
    return [(f"{path.name} request {i}", f"{path} request {i}", body, kind) for i, (body, kind) in enumerate(bodies, 1)]


def _within(path: Path, label: str) -> str:
    """A request's label without the file's name, for a list under that file (`line 3`, `a.png`)."""
    return label[len(path.name):].lstrip(" /") if label.startswith(path.name) else label


def _requests_file(ctx: CheckContext) -> Optional[Path]:
    profile = getattr(ctx.deployment, "profile", None)
    path = getattr(profile, "requests", None)
    return Path(path) if path else None


@check(order=50)
def check_samples(ctx: CheckContext) -> CheckResult:
    """Each request of `profile.requests` gets a 200 with strict JSON (matching ServiceOutput when declared)."""
    path = _requests_file(ctx)
    if path is None:
        return CheckResult(NAME, Outcome.SKIPPED, "skipped: the deployment names no requests file (profile.requests in mldeploy.yaml)")
    if not path.exists():
        summary = f"profile.requests: {path} does not exist; create it (one JSON request body per line) or remove the key"
        return CheckResult(NAME, Outcome.FAILED, summary, f"[{NAME}] {summary}")
    try:
        lines = sample_requests(path)
    except ConfigError as exc:
        return CheckResult(NAME, Outcome.FAILED, str(exc), f"[{NAME}] {exc}")
    if not lines:
        return CheckResult(NAME, Outcome.SKIPPED, f"skipped: {path} holds no requests")

    warnings: list[str] = []
    try:
        output = ctx.contract.output
    except (requests.RequestException, ValueError) as exc:
        output = None
        warnings.append(f"answers were not checked against ServiceOutput: the swagger document could not be read ({exc})")

    failed: list[tuple[tuple[str, str], str, Optional[requests.Response], Optional[BaseException]]] = []
    for index, (label, place, body, content_type) in enumerate(lines):
        try:
            response = ctx.client.score_raw(body, content_type=content_type)
        except requests.RequestException as exc:
            died = service_death(ctx.service, exc)
            if died:
                return _died(ctx, path, (label, place), died, exc, answered=index, total=len(lines), failed=failed, warnings=warnings)
            failed.append(((label, place), f"got no answer ({type(exc).__name__})", None, exc))
            continue
        problem = body_problem(response, output)
        if problem:
            failed.append(((label, place), problem, response, None))

    figures = {"requests": len(lines), "failed": len(failed)}
    if not failed:
        return CheckResult(NAME, Outcome.PASSED, f"all {len(lines)} requests in {path.name} were answered {expected_answer(output)}",
                           warnings=warnings, figures=figures)
    (label, place), problem, response, error = failed[0]
    headline = f"{label}: POST {ctx.client.scoring_url} {problem}"
    others = [f"  - {_within(path, where[0])}: {p}" for where, p, _, _ in failed[1:]]
    notes = [f"{len(failed)} of {len(lines)} requests in {path} failed" + (":\n" + "\n".join(others[:20]) if others else "")]
    report = failure_report(NAME, headline, expected_answer(output), response=response, error=error, service=ctx.service,
                            body_dir=ctx.report_dir, request_title=f"failing request ({place})", notes=notes)
    return CheckResult(NAME, Outcome.FAILED, f"{headline} ({len(failed)} of {len(lines)} failed)", report,
                       warnings=warnings, figures=figures)


def _died(
    ctx: CheckContext, path: Path, where: tuple[str, str], died: str, error: BaseException, *,
    answered: int, total: int, failed: list, warnings: list[str],
) -> CheckResult:
    """The service died answering the request `where` (label, place): say so first; the ones after it were not sent."""
    label, place = where
    rest = total - answered - 1
    notes = [f"{answered} of the {total} requests in {path} {'was' if answered == 1 else 'were'} sent before it"
             + (f"; {rest} after it {'was' if rest == 1 else 'were'} not sent" if rest else "")]
    if failed:
        notes.append("requests that failed before it died:\n" + "\n".join(f"  - {_within(path, w[0])}: {p}" for w, p, _, _ in failed[:20]))
    report = death_report(NAME, died, service=ctx.service, error=error, body_dir=ctx.report_dir, during=label,
                          request_title=f"the request it was answering ({place})", notes=notes)
    summary = death_problem(died, getattr(error, "request", None), label)
    figures = {"requests": answered + 1, "failed": len(failed) + 1}
    return CheckResult(NAME, Outcome.FAILED, summary, report, warnings=warnings, figures=figures, died=died)
