"""Failure reports: pretty, truncated bodies and the sections a person needs (pure; no server)."""
from __future__ import annotations

import json

import requests

from pytest_mldeploy.checks.failure_report import MAX_BODY_LINES, MAX_ITEMS, failure_report, pretty_body, pretty_json, service_log_tail


def _response(status: int, body: bytes, request: requests.PreparedRequest, headers: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = "Internal Server Error" if status == 500 else "OK"
    response._content = body
    response.headers.update(headers)
    response.request = request
    return response


class _Service:
    def __init__(self, text: str) -> None:
        self.text = text
        self.asked = None

    def logs(self, tail=None):
        self.asked = tail
        return "\n".join(self.text.splitlines()[-tail:])


def test_matrix_rows_stay_on_one_line():
    text = pretty_json({"data": [[1.0, 2.0], [3.0, 4.0]]})
    assert text.splitlines() == ['{', '  "data": [', '    [1.0, 2.0],', '    [3.0, 4.0]', '  ]', '}']


def test_long_arrays_and_strings_are_cut_and_say_so():
    text = pretty_json({"data": list(range(100)), "s": "x" * 1000})
    assert f"... ({100 - MAX_ITEMS} more items)" in text
    assert "more chars" in text and "x" * 1000 not in text
    many_rows = pretty_json([[i] for i in range(500)])
    assert len(many_rows.splitlines()) <= MAX_BODY_LINES + 1


def test_non_json_bodies_show_raw_and_nan_bodies_still_show():
    assert pretty_body(b"") == "(empty body)"
    assert pretty_body(b"[NaN]") == "[NaN]"
    assert "more bytes" in pretty_body(b"x" * 5000)
    assert "\\xff" in pretty_body(b"\xff\xfe")


def test_failure_report_has_every_section():
    request = requests.Request("POST", "http://127.0.0.1:5001/score", data=json.dumps({"data": [[1e7]]}).encode(),
                               headers={"Content-Type": "application/json", "Authorization": "Bearer secret"}).prepare()
    response = _response(500, b'{"message": "An unexpected error occurred in scoring script."}', request,
                         {"Content-Type": "application/json", "x-ms-run-function-failed": "True", "Server": "uvicorn"})
    service = _Service("\n".join(f"log line {i}" for i in range(100)))
    report = failure_report("properties", "POST /score answered 500", "200 with a strict-JSON body",
                            response=response, service=service)
    assert report.startswith("[properties] POST /score answered 500")
    assert "expected: 200 with a strict-JSON body" in report
    assert "minimal failing request:" in report and "[10000000.0]" in report
    assert "received:\n    500 Internal Server Error" in report
    assert "x-ms-run-function-failed: True" in report and "uvicorn" not in report
    assert "log line 99" in report and "log line 79" not in report and service.asked == 20
    assert "curl -sS -i -X POST" in report and "secret" not in report
    assert "export MLDEPLOY_KEY=" in report


def test_report_without_answer_names_the_error():
    request = requests.Request("POST", "http://127.0.0.1:9/score", data=b"{}").prepare()
    error = requests.ConnectionError("connection refused", request=request)
    report = failure_report("robustness", "no answer", "an answer", error=error)
    assert "received no response:\n    ConnectionError: connection refused" in report
    assert "http://127.0.0.1:9/score" in report


def test_log_tail_survives_a_broken_service():
    class Broken:
        def logs(self, tail=None):
            raise RuntimeError("container gone")

    assert "container gone" in service_log_tail(Broken())
    assert service_log_tail(_Service("")) == "(the service log is empty)"


def test_a_death_report_names_the_death_first_then_the_log_then_the_request():
    from pytest_mldeploy.checks.failure_report import death_report

    request = requests.Request("POST", "http://127.0.0.1:5001/score", data=b'{"data": [[3000.0]]}',
                               headers={"Content-Type": "application/json"}).prepare()
    error = requests.ConnectionError("Connection aborted.", request=request)
    service = _Service("ready\ndying by kill")
    report = death_report("samples", "the server was killed by SIGKILL (exit code -9) after a healthy start",
                          service=service, error=error, during="requests.txt line 3")
    lines = report.splitlines()
    assert lines[0] == ("[samples] the service died while answering POST http://127.0.0.1:5001/score (requests.txt line 3): "
                        "the server was killed by SIGKILL (exit code -9) after a healthy start")
    assert report.index("service log") < report.index("the request it was answering") < report.index("reproduce with")
    assert "    dying by kill" in report and "received no response" in report
    assert "minimal failing request" not in report


def test_the_checks_cell_counts_as_pytest_does():
    from pytest_mldeploy.summary import checks_cell

    entry = {"checks": {"health": "passed", "swagger": "passed", "properties": "skipped", "robustness": "failed", "samples": "passed"},
             "warnings": {"robustness": 7, "samples": 0}}
    assert checks_cell(entry) == "3/5 passed (failed: robustness), 1 skipped, 7 warnings (robustness)"
    assert checks_cell({"checks": {"health": "passed"}, "warnings": {"health": 1}}) == "1/1 passed, 1 warning (health)"
