"""A bounded fuzz campaign against a live scoring service of example_projects/sklearn-diabetes.

Schemathesis (as a library) draws requests from the service's own swagger.json, in positive and
negative mode, and a hand-made set sends what a generator does not: broken JSON, bad UTF-8, deep
nesting, huge numbers, oversized bodies, odd methods and paths. Each answer must come from a
service that stays up, with no 5xx that is the server's own fault, and the service's memory must
stay flat.

A 500 can be the entry script's, not the server's: schemathesis draws numbers up to +-1.8e308, the
diabetes Ridge model overflows them to inf, and a `run()` output that is not strict JSON is answered
500 with `x-ms-run-function-failed: True` and a message saying it is the script's output (issue #9;
Azure says "internal error"). Such answers carry `x-ms-run-fn-exec-ms` (run() returned) and the
service log says "not strict JSON"; a `run()` that raised answers with `x-ms-run-function-failed:
True` too. Both are counted as the script's, and the log must account for every one of them; any
other 5xx is the server's.
"""
from __future__ import annotations

import http.client
import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import psutil
import pytest
import requests
import yaml

from pytest_mldeploy.core.config import load_project
from pytest_mldeploy.core.targets import get_target

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_projects" / "sklearn-diabetes"
ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.01]
MAX_BODY = 1 << 20
EXAMPLES_PER_MODE = 150
CAMPAIGN_BUDGET_S = 45.0
# Flat memory: what the service may grow by over the campaign, after a warm-up. Allocator arenas and
# caches settle within a few MB; a leak of even 1 KB per request would show as more than this.
MEMORY_SLACK_BYTES = 24 * 1024 * 1024
MSG_OUTPUT_NOT_JSON = "The scoring script's output cannot be sent as JSON: "


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example deployed on the process target (a real server process), with a 1 MiB body limit."""
    project_dir = tmp_path_factory.mktemp("fuzz") / "sklearn-diabetes"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__", "mldeploy-report"))
    config = project_dir / "mldeploy.yaml"
    data = yaml.safe_load(config.read_text())
    data["deployments"]["diabetes"]["max_body_bytes"] = MAX_BODY
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    project = load_project(config)
    service = get_target("process", notice=None).deploy(project.deployment("diabetes"), project)
    try:
        yield service
    finally:
        service.delete()


def service_rss(service: Any) -> int:
    """Resident memory of the server process and its workers, in bytes."""
    root = psutil.Process(service.pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def score_ok(service: Any) -> bool:
    """The service answers a valid request with 200 and a prediction."""
    try:
        answer = requests.post(service.scoring_uri, json={"data": [ROW]}, timeout=10)
    except requests.RequestException:
        return False
    return answer.status_code == 200 and isinstance(answer.json(), list)


def warm_up(service: Any, rounds: int = 50) -> None:
    for _ in range(rounds):
        assert score_ok(service)


def whose(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """'ok' (< 500), 'script-raised', 'script-output' (run() returned non-JSON) or 'server' for one answer."""
    if status < 500:
        return "ok"
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    if "x-ms-run-fn-exec-ms" in lowered and isinstance(message, str) and message.startswith(MSG_OUTPUT_NOT_JSON):
        return "script-output"
    if lowered.get("x-ms-run-function-failed") == "True":
        return "script-raised"
    return "server"


class Attribution:
    """Counts the script's 500s so they can be checked against the service log afterwards."""

    def __init__(self) -> None:
        self.script: Dict[str, int] = {"script-raised": 0, "script-output": 0}

    def judge(self, status: int, headers: Mapping[str, str], body: bytes) -> Tuple[bool, str]:
        verdict = whose(status, headers, body)
        if verdict in self.script:
            self.script[verdict] += 1
        return verdict != "server", verdict

    def check_log(self, log: str) -> Optional[str]:
        """A problem when the log does not account for every 500 we put on the script, else None."""
        logged = {"script-raised": log.count("run() raised") + log.count("preparing run()'s arguments failed"),
                  "script-output": log.count("not strict JSON")}
        for kind, count in self.script.items():
            if logged[kind] < count:
                return f"{count} answers looked like {kind} but the service log has only {logged[kind]} such lines"
        return None


def test_schemathesis_campaign_holds(live_service: Any, reliability_counter: Any) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    warm_up(live_service)
    before = service_rss(live_service)
    schema = schemathesis.openapi.from_url(live_service.swagger_uri)
    base_url = live_service.base_url
    attribution = Attribution()
    deadline = time.monotonic() + CAMPAIGN_BUDGET_S

    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        kind = f"schemathesis {mode.value}"

        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=False)
        @given(case=schema.as_strategy(generation_mode=mode))
        def attempt(case: Any) -> None:
            if time.monotonic() > deadline:
                return
            try:
                response = case.call(base_url=base_url, timeout=15)
            except requests.RequestException as exc:
                reliability_counter.add(kind, held=False, detail=f"{case.operation.label}: no answer: {exc}")
                return
            headers = {k: v[0] for k, v in response.headers.items() if v}
            held, verdict = attribution.judge(response.status_code, headers, response.content)
            reliability_counter.add(kind, held=held, detail=(
                f"{case.operation.label} -> {response.status_code} {response.content[:200]!r}; "
                f"reproduce: {case.as_curl_command()}"))

        attempt()

    after = service_rss(live_service)
    stayed_up = live_service.refresh_state().value == "Healthy" and score_ok(live_service)
    reliability_counter.add("service stays up", held=stayed_up, detail="the service is no longer healthy")
    grew = after - before
    reliability_counter.add("memory flat", held=grew <= MEMORY_SLACK_BYTES,
                            detail=f"RSS grew {grew / 2**20:.1f} MiB ({before / 2**20:.1f} -> {after / 2**20:.1f} MiB)")
    reliability_counter.note("memory flat", f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    problem = attribution.check_log(live_service.logs())
    reliability_counter.add("script 500s accounted for in the log", held=problem is None, detail=problem or "")
    for verdict, count in attribution.script.items():
        reliability_counter.note("script 500s accounted for in the log", f"{count} answers were the script's 500 ({verdict})")

    tried = sum(reliability_counter.counts(k)["tried"] for k in ("schemathesis positive", "schemathesis negative"))
    assert tried >= 50, f"only {tried} requests fit in the {CAMPAIGN_BUDGET_S:.0f} s budget"
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, json.dumps(failures, indent=1)


def _raw(service: Any, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    """One request exactly as written (no URL normalisation, no added encoding)."""
    host, port = service.base_url.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if body or method in ("POST", "PUT", "PATCH"):
            sent.setdefault("Content-Length", str(len(body)))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


ROWS = json.dumps({"data": [ROW]})
MALFORMED: Dict[str, Tuple[str, str, bytes, Dict[str, str]]] = {
    "empty body": ("POST", "/score", b"", {}),
    "truncated JSON": ("POST", "/score", ROWS[:-3].encode(), {}),
    "JSON null": ("POST", "/score", b"null", {}),
    "JSON list": ("POST", "/score", b"[]", {}),
    "JSON string": ("POST", "/score", b'"data"', {}),
    "data not a list": ("POST", "/score", b'{"data": "x"}', {}),
    "wrong row width": ("POST", "/score", b'{"data": [[1, 2]]}', {}),
    "strings for numbers": ("POST", "/score", json.dumps({"data": [["a"] * 10]}).encode(), {}),
    "nulls for numbers": ("POST", "/score", json.dumps({"data": [[None] * 10]}).encode(), {}),
    "booleans for numbers": ("POST", "/score", json.dumps({"data": [[True] * 10]}).encode(), {}),
    "NaN literal": ("POST", "/score", ('{"data": [[' + ", ".join(["NaN"] * 10) + "]]}").encode(), {}),
    "Infinity literal": ("POST", "/score", ('{"data": [[' + ", ".join(["-Infinity"] * 10) + "]]}").encode(), {}),
    "1e999 overflows": ("POST", "/score", ('{"data": [[' + ", ".join(["1e999"] * 10) + "]]}").encode(), {}),
    "5000-digit integer": ("POST", "/score", ('{"data": [[1' + "0" * 5000 + ", 1, 1, 1, 1, 1, 1, 1, 1, 1]]}").encode(), {}),
    "deep nesting 100k": ("POST", "/score", b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}),
    "invalid UTF-8": ("POST", "/score", b'{"data": "\xff\xfe"}', {}),
    "UTF-16 body": ("POST", "/score", ROWS.encode("utf-16"), {}),
    "UTF-8 BOM": ("POST", "/score", b"\xef\xbb\xbf" + ROWS.encode(), {}),
    "NUL bytes": ("POST", "/score", b'{"data": [[\x00]]}', {}),
    "duplicate keys": ("POST", "/score", b'{"data": [[1,1,1,1,1,1,1,1,1,1]], "data": 5}', {}),
    "extra keys": ("POST", "/score", json.dumps({"data": [ROW], "evil": {"__class__": 1}}).encode(), {}),
    "10000 rows": ("POST", "/score", json.dumps({"data": [ROW] * 10_000}).encode(), {}),
    "text/plain": ("POST", "/score", ROWS.encode(), {"Content-Type": "text/plain"}),
    "form-encoded": ("POST", "/score", b"data=1&data=2", {"Content-Type": "application/x-www-form-urlencoded"}),
    "gzip claimed, plain sent": ("POST", "/score", ROWS.encode(), {"Content-Encoding": "gzip"}),
    "over the body limit": ("POST", "/score", b"[" + b"0," * (MAX_BODY // 2 + 10) + b"0]", {}),
    "PUT /score": ("PUT", "/score", ROWS.encode(), {}),
    "DELETE /score": ("DELETE", "/score", b"", {}),
    "PATCH /score": ("PATCH", "/score", ROWS.encode(), {}),
    "GET /score": ("GET", "/score", b"", {}),
    "dot-dot path": ("GET", "/../../../../etc/passwd", b"", {}),
    "encoded dot-dot path": ("GET", "/%2e%2e/%2e%2e/etc/passwd", b"", {}),
    "score then dot-dot": ("GET", "/score/../swagger.json", b"", {}),
    "double slash": ("GET", "//score", b"", {}),
    "8 KB path": ("GET", "/" + "a" * 8192, b"", {}),
    "bad percent-escapes in query": ("POST", "/score?data=%ff%fe%&x=%zz", ROWS.encode(), {}),
    "unknown route": ("POST", "/predict", ROWS.encode(), {}),
}


def test_malformed_requests_hold(live_service: Any, reliability_counter: Any) -> None:
    attribution = Attribution()
    for name, (method, path, body, headers) in MALFORMED.items():
        try:
            status, answer_headers, answer = _raw(live_service, method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            if name == "over the body limit" and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                # Refused on Content-Length before the body was read: the server closed while we still sent.
                reliability_counter.add("malformed", held=True)
                continue
            reliability_counter.add("malformed", held=False, detail=f"{name}: no answer: {exc!r}")
            continue
        held, verdict = attribution.judge(status, answer_headers, answer)
        if name == "over the body limit":
            held = held and status == 413
        reliability_counter.add("malformed", held=held, detail=f"{name}: {method} {path[:60]} -> {status} {verdict} {answer[:200]!r}")
        reliability_counter.note("malformed", f"{name}: {status}{'' if verdict == 'ok' else ' (' + verdict + ')'}")
    reliability_counter.add("service stays up", held=score_ok(live_service), detail="no valid answer after the malformed set")
    problem = attribution.check_log(live_service.logs())
    reliability_counter.add("script 500s accounted for in the log", held=problem is None, detail=problem or "")
    failures = {k: v["failures"] for k, v in reliability_counter.kinds.items() if v["failed"]}
    assert not failures, json.dumps(failures, indent=1)
