"""`mldeploy parity`: our server and Azure's azmlinfsrv, side by side on the same deployment.

Both servers are deployed on the same target from the same deployment; the same requests go to
each: the deployment's sample requests (`profile.requests`), a seeded set of schema-valid
requests drawn by Hypothesis from the `ServiceInput` our server publishes (the properties check's
strategy), and the robustness check's schema-rejected and malformed probes, plus `GET /`,
`GET /score` and an unknown path. Every difference in status, body (JSON-equal with a float
tolerance) and the headers clients read (`content-type`, `x-ms-run-function-failed`, presence of
`x-ms-request-id`) is matched against the documented known differences (`parity_known.KNOWN`);
any other difference is unknown and fails the comparison.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from pytest_mldeploy.checks.parity_known import Answer, Difference, ParityRequest, match
from pytest_mldeploy.checks.published_contract import read_contract
from pytest_mldeploy.checks.robustness import malformed_probes, schema_probes
from pytest_mldeploy.checks.samples import sample_requests
from pytest_mldeploy.checks.strategies import generated_bodies
from pytest_mldeploy.client import ScoringClient
from pytest_mldeploy.server.contract import HEALTH_ROUTE, SCORE_ROUTE

#: Relative tolerance when two JSON numbers are compared (the same model, two processes).
FLOAT_RTOL = 1e-9
#: Headers a client reads, compared between the servers.
COMPARED_HEADERS = ("content-type", "x-ms-run-function-failed")
#: Headers whose presence (not value: ids are per request) is compared.
PRESENT_HEADERS = ("x-ms-request-id",)


@dataclass
class ParityReport:
    """The outcome of one comparison."""

    deployment: str
    sent: int
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unknown(self) -> list[Difference]:
        return [d for d in self.differences if d.known is None]

    @property
    def passed(self) -> bool:
        return not self.unknown


# ---- requests ---------------------------------------------------------------------------------


def build_requests(client: ScoringClient, deployment: Any, *, examples: int, seed: Optional[int]) -> tuple[list[ParityRequest], list[str]]:
    """The requests both servers get, built from our server's published contract; and notes."""
    contract = read_contract(client)
    notes: list[str] = []
    out: list[ParityRequest] = [
        ParityRequest("route", f"GET {HEALTH_ROUTE}", method="GET", path=HEALTH_ROUTE, content_type=None),
        ParityRequest("route", f"GET {SCORE_ROUTE} without parameters", method="GET", content_type=None),
        ParityRequest("route", "GET /an-unknown-path", method="GET", path="/an-unknown-path", content_type=None),
    ]
    path = getattr(getattr(deployment, "profile", None), "requests", None)
    if path is not None and Path(path).exists():
        out += [ParityRequest("sample", label, body, content_type)
                for label, _place, body, content_type in sample_requests(Path(path))]
    else:
        notes.append("no sample requests: the deployment names no existing profile.requests")
    if contract.input is not None and examples > 0:
        for index, body in enumerate(generated_bodies(contract.input, examples, seed), 1):
            out.append(ParityRequest("generated", f"generated request {index}", json.dumps(body).encode("utf-8")))
    for probe in schema_probes(contract, seed):
        out.append(ParityRequest("schema-rejected", probe.label, probe.body, probe.content_type))
    example = contract.example if contract.has_example else None
    malformed, skipped = malformed_probes(example, getattr(deployment, "max_body_bytes", None))
    notes += skipped
    out += [ParityRequest("malformed", probe.label, probe.body, probe.content_type) for probe in malformed]
    return out, notes


def send(client: ScoringClient, request: ParityRequest) -> Answer:
    """Send one request; a dropped connection is an answer too (status None)."""
    headers = {"Content-Type": request.content_type} if request.content_type else {}
    try:
        response = client.request(request.method, client.url(request.path), body=request.body, headers=headers)
    except requests.RequestException as exc:
        return Answer(None, error=type(exc).__name__)
    kept = tuple((name, response.headers[name]) for name in COMPARED_HEADERS + PRESENT_HEADERS if name in response.headers)
    return Answer(response.status_code, response.content, kept)


# ---- comparison -------------------------------------------------------------------------------


def json_equal(a: Any, b: Any, rtol: float = FLOAT_RTOL) -> bool:
    """JSON values equal, numbers within `rtol` (NaN equals NaN: both servers said the same)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k], rtol) for k in a)
    return a == b


def _bodies_equal(ours: bytes, azure: bytes) -> bool:
    if ours == azure:
        return True
    try:
        return json_equal(json.loads(ours), json.loads(azure))  # lenient: Azure's body may hold NaN
    except (ValueError, RecursionError):
        return False


def compare(request: ParityRequest, ours: Answer, azure: Answer) -> Optional[Difference]:
    """The difference between the two answers, or None when a client could not tell them apart."""
    aspects: list[str] = []
    if ours.status != azure.status:
        aspects.append("status")
    elif not _bodies_equal(ours.body, azure.body):
        aspects.append("body")
    for name in COMPARED_HEADERS:
        if _normal(ours.header(name)) != _normal(azure.header(name)):
            aspects.append(f"header {name}")
    for name in PRESENT_HEADERS:
        if (ours.header(name) is None) != (azure.header(name) is None):
            aspects.append(f"header {name} presence")
    if not aspects:
        return None
    difference = Difference(request, aspects, ours, azure)
    difference.known = match(difference)
    return difference


def _normal(value: Optional[str]) -> Optional[str]:
    return None if value is None else value.replace(" ", "").lower()


def compare_services(ours: ScoringClient, azure: ScoringClient, deployment: Any, *, examples: int = 20,
                     seed: Optional[int] = 0) -> ParityReport:
    """Send the same requests to two running services and classify every difference."""
    requests_, notes = build_requests(ours, deployment, examples=examples, seed=seed)
    report = ParityReport(getattr(deployment, "name", "?"), len(requests_), notes=notes)
    for request in requests_:
        difference = compare(request, send(ours, request), send(azure, request))
        if difference is not None:
            report.differences.append(difference)
    return report


def run_parity(deployment: Any, project: Any, target: Any, *, registry: Any = None, examples: int = 20,
               seed: Optional[int] = 0, progress: Callable[[str], None] = lambda _m: None) -> ParityReport:
    """Deploy `deployment` with our server and with Azure's on `target`, compare them, delete both."""
    services = []
    try:
        for server in ("mldeploy", "azureml"):
            progress(f"deploying {deployment.name} with server: {server} on the {target.name} target")
            variant = deployment.model_copy(update={"server": server})
            services.append(target.deploy(variant, project, registry=registry, name=f"{deployment.name}-{server}"))
        progress("sending the same requests to both")
        return compare_services(ScoringClient.from_service(services[0]), ScoringClient.from_service(services[1]),
                                deployment, examples=examples, seed=seed)
    finally:
        for service in services:
            service.delete()


def format_report(report: ParityReport) -> str:
    """The comparison as text: one block per difference, known ones with their doc reference."""
    lines = [f"parity of {report.deployment}: {report.sent} requests sent to both servers (ours | Azure's azmlinfsrv); "
             f"{len(report.differences)} differ, {len(report.unknown)} unknown"]
    for difference in report.differences:
        verdict = f"known: {difference.known.id} ({difference.known.doc})" if difference.known else "UNKNOWN difference"
        lines.append(f"- [{difference.request.kind}] {difference.request.method} {difference.request.path} "
                     f"{difference.request.label}: {', '.join(difference.aspects)} — {verdict}")
        lines.append(f"    ours:  {difference.ours.shown()}  {dict(difference.ours.headers)}")
        lines.append(f"    azure: {difference.azure.shown()}  {dict(difference.azure.headers)}")
    lines += [f"note: {note}" for note in report.notes]
    lines.append("PASSED: only documented differences" if report.passed
                 else f"FAILED: {len(report.unknown)} undocumented difference(s); fix the server or document them in "
                      "pytest_mldeploy/checks/parity_known.py and docs/server.md")
    return "\n".join(lines)
