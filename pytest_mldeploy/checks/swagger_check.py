"""The swagger check: the served Swagger 2.0 and OpenAPI 3 documents are valid, and the documented
example request is answered as documented (a 200 with a strict-JSON body matching ServiceOutput).
"""
from __future__ import annotations

import json
from typing import Any, Optional

import requests

from pytest_mldeploy.checks.base import CheckContext, CheckResult, Outcome
from pytest_mldeploy.checks.check_registry import check
from pytest_mldeploy.checks.failure_report import failure_report
from pytest_mldeploy.checks.published_contract import (
    body_problem, definition_example, expected_answer, input_schema, output_schema, schema_error, strict_json,
)

NAME = "swagger"


def _spec_problem(response: requests.Response, version: int) -> tuple[Optional[str], Optional[dict]]:
    """Why the swagger document of `version` is not served valid, or (None, document)."""
    # openapi-spec-validator takes half a second to import: only a run of this check pays for it.
    from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate

    if response.status_code != 200:
        return f"GET {response.request.url} answered {response.status_code}", None
    try:
        document = strict_json(response.content)
    except ValueError as exc:
        return f"GET {response.request.url} is not valid JSON: {exc}", None
    if not isinstance(document, dict):
        return f"GET {response.request.url} is a JSON {type(document).__name__}, not a swagger object", None
    if version == 2:
        if document.get("swagger") != "2.0":
            return f"GET {response.request.url} has swagger={document.get('swagger')!r}, expected '2.0'", None
        cls: Any = OpenAPIV2SpecValidator
    else:
        served = str(document.get("openapi", ""))
        if not served.startswith("3."):
            return f"GET {response.request.url} has openapi={served or None!r}, expected 3.x", None
        cls = OpenAPIV31SpecValidator if served.startswith("3.1") else OpenAPIV30SpecValidator
    try:
        validate(document, cls=cls)
    except Exception as exc:  # openapi-spec-validator raises its own tree of validation errors
        label = "Swagger 2.0" if version == 2 else f"OpenAPI {document.get('openapi')}"
        return f"GET {response.request.url} is not valid {label}: {exc}", None
    return None, document


@check(order=20)
def check_swagger(ctx: CheckContext) -> CheckResult:
    """Swagger 2.0 and OpenAPI 3 documents are valid, and the documented example is answered as documented."""
    documents: dict[int, dict] = {}
    for version in (2, 3):
        try:
            response = ctx.swagger_response() if version == 2 else ctx.client.swagger_response(version)
        except requests.RequestException as exc:
            report = failure_report(
                NAME, f"the swagger document (version {version}) could not be fetched",
                "200 with a valid swagger document", error=exc, service=ctx.service, body_dir=ctx.report_dir,
                request_title="request",
            )
            return CheckResult(NAME, Outcome.FAILED, f"no answer from the swagger route: {exc}", report)
        problem, document = _spec_problem(response, version)
        if problem:
            expected = "a valid Swagger 2.0 document" if version == 2 else "a valid OpenAPI 3 document"
            report = failure_report(NAME, problem, expected, response=response, service=ctx.service,
                                    body_dir=ctx.report_dir, request_title="request")
            return CheckResult(NAME, Outcome.FAILED, problem.splitlines()[0], report)
        documents[version] = document  # type: ignore[assignment]

    swagger = documents[2]
    try:
        inputs, output = input_schema(swagger), output_schema(swagger)
    except ValueError as exc:
        return CheckResult(NAME, Outcome.FAILED, str(exc), f"[{NAME}] {exc}")
    has_example, example = definition_example(swagger, "ServiceInput")
    if not has_example:
        why = (
            "the input is free-form (run() has no @input_schema), so there is no documented example to send"
            if inputs is None
            else "ServiceInput documents no example"
        )
        summary = f"Swagger 2.0 and OpenAPI 3 documents are valid; example request skipped: {why}"
        return CheckResult(NAME, Outcome.PASSED, summary, warnings=[] if inputs is None else [why])

    example_error = schema_error(example, inputs)
    if example_error:
        problem = f"the documented example does not match ServiceInput: {example_error}"
        report = f"[{NAME}] {problem}\n\nexpected: definitions.ServiceInput.example to match ServiceInput"
        return CheckResult(NAME, Outcome.FAILED, problem, report)

    body = json.dumps(example).encode("utf-8")
    try:
        response = ctx.client.score_raw(body)
    except requests.RequestException as exc:
        report = failure_report(NAME, "the documented example request got no answer", expected_answer(output),
                                error=exc, service=ctx.service, body_dir=ctx.report_dir, request_title="example request")
        return CheckResult(NAME, Outcome.FAILED, f"the documented example got no answer: {exc}", report)
    problem = body_problem(response, output)
    if problem:
        problem = f"POST {ctx.client.scoring_url} with the documented example {problem}"
        report = failure_report(NAME, problem, expected_answer(output), response=response, service=ctx.service,
                                body_dir=ctx.report_dir, request_title="example request (definitions.ServiceInput.example)")
        return CheckResult(NAME, Outcome.FAILED, problem, report)
    return CheckResult(
        NAME, Outcome.PASSED,
        "Swagger 2.0 and OpenAPI 3 documents are valid; the documented example is answered 200 "
        + ("matching ServiceOutput" if output is not None else "with strict JSON (no ServiceOutput declared)"),
    )
