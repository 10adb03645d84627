"""Each built-in check against a real scoring server: passing on the example, failing with a useful report on broken scripts."""
from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path

import pytest

from pytest_mldeploy.checks import all_checks
from pytest_mldeploy.checks.base import Outcome
from pytest_mldeploy.checks.health import check_health
from pytest_mldeploy.checks.properties import check_properties
from pytest_mldeploy.checks.robustness import check_robustness
from pytest_mldeploy.checks.samples import check_samples
from pytest_mldeploy.checks.swagger_check import check_swagger

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
PROJECTS = REPO / "tests" / "projects"

pytestmark = pytest.mark.slow


def _request_in(report: str, title: str = "minimal failing request") -> dict:
    """The JSON request body a report shows under `title`."""
    section = report.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0]
    body = "\n".join(line[4:] for line in section.splitlines()[1:])
    return json.loads(body)


def _curl_line(report: str) -> list[str]:
    line = next(line.strip() for line in report.splitlines() if line.strip().startswith("curl "))
    return shlex.split(line)


# ---------------------------------------------------------------------------------------------
# The example project passes everything
# ---------------------------------------------------------------------------------------------


def test_every_builtin_check_passes_on_the_example(live_context):
    ctx = live_context(EXAMPLE)
    # the load profile has its own tests (tests/profiling)
    results = {name: check(ctx) for name, check in all_checks().items() if name != "profile"}
    for name, result in results.items():
        assert result.outcome is Outcome.PASSED, f"{name}: {result.summary}\n{result.report}"
    assert results["properties"].figures["requests"] >= ctx.examples
    assert results["properties"].figures["examples_per_s"] > 0
    assert results["robustness"].figures["requests"] > 10 and not results["robustness"].warnings
    assert "all 10 requests" in results["samples"].summary
    assert "matching ServiceOutput" in results["swagger"].summary


def test_health_fails_with_the_log_when_the_server_died(live_context):
    ctx = live_context(PROJECTS / "broken-raises", fresh=True)
    os.killpg(ctx.service.pid, signal.SIGKILL)
    ctx.service.process.wait()
    result = check_health(ctx)
    assert result.outcome is Outcome.FAILED
    assert "got no answer" in result.summary and "Failed" in result.summary
    assert "service log (last 20 lines)" in result.report
    assert "reproduce with" in result.report and "-X GET" in result.report


# ---------------------------------------------------------------------------------------------
# Broken scripts fail the check that should catch them, with the evidence
# ---------------------------------------------------------------------------------------------


def test_properties_shrinks_a_500_to_the_minimal_request(live_context):
    ctx = live_context(PROJECTS / "broken-raises", fresh=True)
    result = check_properties(ctx)
    assert result.outcome is Outcome.FAILED, result.summary
    assert "answered 500 for a request ServiceInput accepts" in result.summary
    request = _request_in(result.report)
    rows = request["data"]
    assert len(rows) == 1 and len(rows[0]) == 10
    assert sum(1 for v in rows[0] if v > 1e6) == 1 and sum(1 for v in rows[0] if v != 0) == 1
    assert "received:\n    500" in result.report
    assert "beyond the range the model was trained on" in result.report  # from the service log tail
    argv = _curl_line(result.report)
    assert argv[argv.index("-X") + 1] == "POST" and argv[argv.index("-X") + 2] == ctx.client.scoring_url
    assert json.loads(argv[argv.index("--data-binary") + 1]) == request
    assert result.figures["requests"] > 1
    # The service still answers its example and bad requests: only properties catches this bug.
    assert check_swagger(ctx).outcome is Outcome.PASSED
    assert check_samples(ctx).outcome is Outcome.PASSED


def test_output_not_matching_serviceoutput_fails_swagger_properties_and_samples(live_context):
    ctx = live_context(PROJECTS / "broken-output")
    swagger = check_swagger(ctx)
    assert swagger.outcome is Outcome.FAILED
    assert "does not match ServiceOutput" in swagger.summary
    assert "example request (definitions.ServiceInput.example)" in swagger.report
    assert '"predictions"' in swagger.report

    properties = check_properties(ctx)
    assert properties.outcome is Outcome.FAILED and "does not match ServiceOutput" in properties.summary
    minimal = _request_in(properties.report)
    assert minimal == {"data": [[0.0] * 10]}

    samples = check_samples(ctx)
    assert samples.outcome is Outcome.FAILED
    assert samples.summary.startswith("sample_requests.txt line 1:") and "(3 of 3 failed)" in samples.summary
    assert "- line 2:" in samples.report and "- line 3:" in samples.report


def test_nan_in_the_answer_fails_swagger_properties_and_samples(live_context):
    """Azure ML sends NaN as `[NaN]` with a 200 (the checks reject that body: see the schema unit tests);
    our server refuses to send it and answers 500. Either way the checks fail with the evidence."""
    ctx = live_context(PROJECTS / "broken-nan")
    swagger = check_swagger(ctx)
    assert swagger.outcome is Outcome.FAILED
    assert "with the documented example answered" in swagger.summary
    assert "NaN" in swagger.report or "not strict JSON" in swagger.report
    properties = check_properties(ctx)
    assert properties.outcome is Outcome.FAILED
    assert _request_in(properties.report) == {"data": [[0.0] * 10]}
    assert check_samples(ctx).outcome is Outcome.FAILED


def test_schema_rejected_input_reaching_run_fails_robustness(live_context):
    ctx = live_context(PROJECTS / "broken-unconverted")
    assert check_swagger(ctx).outcome is Outcome.PASSED
    result = check_robustness(ctx)
    assert result.outcome is Outcome.FAILED
    assert ": answered 500" in result.summary
    assert "more bad request(s) failed" in result.report
    assert "data[0]: 11 items instead of 10 (wrong width): answered 500" in result.report
    assert "data[0][0]: a string instead of a number: answered 500" in result.report
    assert "received:\n    500" in result.report
    assert "Traceback" in result.report or "Error" in result.report.split("service log", 1)[1]
    argv = _curl_line(result.report)
    assert argv[argv.index("-X") + 2] == ctx.client.scoring_url


def test_free_form_script_skips_what_needs_a_schema_and_warns_on_5xx(live_context):
    ctx = live_context(PROJECTS / "broken-rawjson")
    swagger = check_swagger(ctx)
    assert swagger.outcome is Outcome.PASSED and "example request skipped" in swagger.summary
    assert "free-form" in swagger.summary

    properties = check_properties(ctx)
    assert properties.outcome is Outcome.SKIPPED and "no input schema" in properties.summary

    robustness = check_robustness(ctx)
    assert robustness.outcome is Outcome.PASSED, robustness.report
    assert any(w.startswith("not JSON: answered 500") for w in robustness.warnings), robustness.warnings
    assert any(w.startswith("empty body: answered 500") for w in robustness.warnings)
    assert check_samples(ctx).outcome is Outcome.PASSED


def test_a_request_that_kills_the_server_fails_robustness(live_context):
    ctx = live_context(PROJECTS / "broken-crash")
    result = check_robustness(ctx)
    assert result.outcome is Outcome.FAILED
    assert "stopped answering GET /" in result.summary
    assert "received no response" in result.report
    assert "unparseable request: exiting" in result.report  # the service's own last words
    assert "curl " in result.report


def test_samples_skips_without_a_requests_file(live_context):
    ctx = live_context(EXAMPLE)
    deployment = ctx.deployment.model_copy(update={"profile": ctx.deployment.profile.model_copy(update={"requests": None})})
    ctx.deployment = deployment
    result = check_samples(ctx)
    assert result.outcome is Outcome.SKIPPED and "profile.requests" in result.summary


def test_unchecked_parameter_tolerated_by_run_is_a_warning_not_a_failure(live_context):
    ctx = live_context(PROJECTS / "correct-globalparams")
    swagger = ctx.client.swagger()
    assert swagger["definitions"]["ServiceInput"]["properties"]["GlobalParameters"]["x-mldeploy-unchecked"] is True
    assert check_swagger(ctx).outcome is Outcome.PASSED
    result = check_robustness(ctx)
    assert result.outcome is Outcome.PASSED, result.report
    assert any("GlobalParameters" in w and "convert_to_provided_type=False" in w and ": answered 200" in w
               for w in result.warnings), result.warnings
    assert check_properties(ctx).outcome is Outcome.PASSED


MULTIPART = Path(__file__).resolve().parents[1] / "profiling" / "projects" / "multipart"


@pytest.mark.parametrize("requests_path, first", [("images", "images/"), ("requests.http", "requests.http request 1")])
def test_samples_sends_a_folder_or_http_file_as_the_profile_does(live_context, requests_path: str, first: str) -> None:
    import dataclasses

    ctx = live_context(MULTIPART)
    deployment = ctx.deployment.model_copy(update={"profile": ctx.deployment.profile.model_copy(update={"requests": MULTIPART / requests_path})})
    result = check_samples(dataclasses.replace(ctx, deployment=deployment))
    # The script answers 400 unless request.files holds a file: each request arrived as a multipart upload.
    assert result.outcome is Outcome.PASSED, result.report
    assert result.figures["requests"] == 2 and f"in {requests_path} were answered" in result.summary


def test_samples_names_the_folder_file_that_failed(live_context, tmp_path: Path) -> None:
    import dataclasses

    ctx = live_context(MULTIPART)
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG")
    (folder / "b.txt").write_bytes(b"")
    deployment = ctx.deployment.model_copy(update={"profile": ctx.deployment.profile.model_copy(update={"requests": folder})})
    result = check_samples(dataclasses.replace(ctx, deployment=deployment))
    assert result.outcome is Outcome.PASSED, result.report  # empty files still arrive as files
    assert result.figures["requests"] == 2
