"""The server's behaviour with other entry scripts and settings: errors, timeout, readiness, auth, CORS,
raw strings, @rawhttp, several models, failing start-ups, typed parameters, prefix, config.json, workers."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


# ---- a script without schema: run() gets the raw body ---------------------------------------------


@pytest.fixture(scope="module")
def plain(module_servers, module_app):
    app = module_app("plain.py")
    return module_servers(app, env={"SCORING_TIMEOUT_MS": "500"})


def test_raw_body_reaches_run_as_a_string(plain) -> None:
    response = plain.post("/score", data="hello, not JSON", headers={"X-Test-Trace": "t-1"})
    assert response.status_code == 200
    body = response.json()
    assert body["received"] == "hello, not JSON"
    assert body["type"] == "str"
    assert body["trace"] == "t-1"


def test_working_directory_is_the_parent_of_the_source_directory(plain) -> None:
    cwd = Path(plain.post("/score", data="x").json()["cwd"])
    assert (cwd / "src" / "score.py").is_file()


def test_get_passes_the_query_as_a_json_string(plain) -> None:
    response = plain.get("/score", params={"a": "1", "b": "[1,2]", "c": "word"})
    assert response.status_code == 200
    assert json.loads(response.json()["received"]) == {"a": 1, "b": [1, 2], "c": "word"}


def test_nan_in_the_output_is_500_not_invalid_json(plain) -> None:
    response = plain.post("/score", data="nan")
    assert response.status_code == 500
    assert response.json() == {"message": (
        "The scoring script's output cannot be sent as JSON: run() returned a list "
        "(ValueError: Out of range float values are not JSON compliant). Check the logs for more info.")}
    # The script's output is at fault, and the header says so (issue #9).
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert "not strict JSON" in plain.log()


def test_numpy_float64_output_is_fine_but_an_array_is_500(plain) -> None:
    response = plain.post("/score", data="numpy-float")
    assert response.status_code == 200 and response.json() == 2.5
    response = plain.post("/score", data="numpy-array")
    assert response.status_code == 500
    assert response.json()["message"].startswith(
        "The scoring script's output cannot be sent as JSON: run() returned a dict (TypeError: Object of type ndarray")
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_run_raising_is_500_with_traceback_in_the_log(plain) -> None:
    response = plain.post("/score", data="raise")
    assert response.status_code == 500
    assert response.json() == {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
    assert response.headers["x-ms-run-function-failed"] == "True"
    log = plain.log()
    assert "Traceback" in log and "ValueError: run() was told to fail" in log


def test_timeout_is_500_and_the_run_is_interrupted(plain, tmp_path) -> None:
    response = plain.post("/score", data="spin")
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 500 ms"}
    assert response.headers["x-ms-run-function-failed"] == "True"
    # The interrupted run() does not go on: the next request is served normally.
    follow_up = plain.post("/score", data="after")
    assert follow_up.status_code == 200
    assert follow_up.json()["received"] == "after"


# ---- long runs, readiness -------------------------------------------------------------------------


def test_health_answers_while_run_is_busy(start_server, script_app) -> None:
    app = script_app("plain.py")
    server = start_server(app)
    results: list[requests.Response] = []
    worker = threading.Thread(target=lambda: results.append(server.post("/score", data="hold")))
    worker.start()
    try:
        _wait_for(app.root / "started")
        health = server.get("/", timeout=10)
        assert health.status_code == 200
        assert not (app.root / "finished").exists()
    finally:
        (app.root / "release").write_text("1")
        worker.join(30)
    assert results and results[0].json() == "released"


def test_503_until_init_is_done(start_server, script_app) -> None:
    app = script_app("gated_init.py")
    server = start_server(app, wait=False)
    deadline = time.monotonic() + 30
    while True:
        try:
            health = server.get("/", timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
    assert health.status_code == 503
    assert "init()" in health.json()["message"]
    score = server.post("/score", data="x")
    assert score.status_code == 503
    assert "listening on" in server.log()
    (app.root / "release").write_text("1")
    deadline = time.monotonic() + 30
    while server.get("/").status_code != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert server.post("/score", data="x").json() == "ok"
    assert "init() done in" in server.log()


def test_failing_init_exits_non_zero_with_traceback(start_server, script_app) -> None:
    server = start_server(script_app("failing_init.py"), wait=False)
    code = server.wait_exit(60)
    assert code != 0
    log = server.log()
    assert "Traceback" in log
    assert "RuntimeError: model store unreachable from init()" in log


def test_rawhttp_with_input_schema_is_refused(start_server, script_app) -> None:
    server = start_server(script_app("rawhttp_with_schema.py"), wait=False)
    assert server.wait_exit(60) != 0
    assert "cannot be decorated with both @rawhttp and @input_schema" in server.log()


def test_missing_entry_script_is_refused(start_server, script_app) -> None:
    app = script_app("plain.py")
    server = start_server(app, env={"AZUREML_ENTRY_SCRIPT": "nope.py"}, wait=False)
    assert server.wait_exit(60) != 0
    assert "nope.py does not exist" in server.log()


# ---- auth and CORS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(module_servers, module_app):
    return module_servers(module_app("plain.py"), env={
        "MLDEPLOY_AUTH_KEYS": "primary-key,secondary-key",
        "CORS_ORIGINS": "https://allowed.example, https://other.example",
    })


def test_auth_needs_a_bearer_key_on_score_only(guarded) -> None:
    assert guarded.get("/").status_code == 200
    response = guarded.post("/score", data="x")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["message"]
    wrong = guarded.post("/score", data="x", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for key in ("primary-key", "secondary-key"):
        ok = guarded.post("/score", data="x", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    # As on Azure, the swagger document needs no key (issue #9); with one it is served too.
    assert guarded.get("/swagger.json").status_code == 200
    assert guarded.get("/swagger.json", headers={"Authorization": "Bearer primary-key"}).status_code == 200


def test_cors_preflight_and_allow_origin(guarded) -> None:
    preflight = requests.options(guarded.url + "/score", timeout=10, headers={
        "Origin": "https://allowed.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://allowed.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"

    scored = guarded.post("/score", data="x", headers={"Authorization": "Bearer primary-key",
                                                      "Origin": "https://other.example"})
    assert scored.headers["access-control-allow-origin"] == "https://other.example"

    stranger = requests.options(guarded.url + "/score", timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert stranger.status_code == 200
    assert "access-control-allow-origin" not in stranger.headers


def test_cors_wildcard(start_server, script_app) -> None:
    server = start_server(script_app("plain.py"), env={"CORS_ORIGINS": "*"})
    response = server.post("/score", data="x", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"


# ---- @rawhttp -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(module_servers, module_app):
    return module_servers(module_app("raw_http.py"))


def test_rawhttp_get_sees_args_path_and_headers(raw) -> None:
    response = raw.get("/score", params={"name": "ada", "n": "2"}, headers={"Accept": "text/plain"})
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "raw"
    body = response.json()
    assert body["args"] == {"name": "ada", "n": "2"}
    assert body["name"] == "ada"
    assert body["path"] == "/score"
    assert body["full_path"] == "/score?name=ada&n=2"
    assert body["accept"] == "text/plain"


def test_rawhttp_binary_body_round_trips(raw) -> None:
    payload = bytes(range(256))
    response = raw.post("/score", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == bytes(reversed(payload))


def test_rawhttp_json_value_and_error_status(raw) -> None:
    response = raw.post("/score", json={"a": [1, 2]})
    assert response.status_code == 200
    assert response.json() == {"json": {"a": [1, 2]}, "same": True, "length": len(json.dumps({"a": [1, 2]}))}
    failed = raw.post("/score", params={"fail": "1"}, json={})
    assert failed.status_code == 503
    assert failed.text == "model exploded"
    assert failed.headers["x-ms-run-function-failed"] == "True"


def test_rawhttp_swagger_is_free_form(raw) -> None:
    doc = raw.get("/swagger.json").json()
    OpenAPIV2SpecValidator(doc).validate()
    assert doc["definitions"]["ServiceInput"] == {}
    assert "example" not in doc["definitions"]["ServiceInput"]


# ---- several models -------------------------------------------------------------------------------


def test_multi_model_script_finds_models(start_server, script_app, example_dir, tmp_path) -> None:
    app = script_app("multi_model.py")
    labels_v1 = tmp_path / "v1" / "labels"
    labels_v1.mkdir(parents=True)
    (labels_v1 / "names.txt").write_text("old")
    labels_v2 = tmp_path / "v2" / "labels"
    labels_v2.mkdir(parents=True)
    (labels_v2 / "names.txt").write_text("low high")
    app.add_model("labels", 1, labels_v1)
    app.add_model("labels", 2, labels_v2)
    app.add_model("labels", 10, labels_v1)
    app.env["AZUREML_MODEL_DIR"] = str(app.root / "azureml-models")
    server = start_server(app)
    body = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]})
    response = server.post("/score", data=body)
    assert response.status_code == 200, server.log()
    result = response.json()
    assert len(result["predictions"]) == 1
    assert result["labels"] == ["low", "high"]
    assert result["latest_labels"] == "10"
    assert "no_such_model" in result["missing"] and "sklearn_regression_model" in result["missing"]


# ---- typed parameters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def typed(module_servers, module_app):
    return module_servers(module_app("typed.py"))


def test_typed_parameters_are_deserialised(typed) -> None:
    response = typed.post("/score", json={"features": {"rows": [[1, 2, 3], [4, 5, 6]], "scale": 2},
                                          "tags": ["x"]})
    assert response.status_code == 200, typed.log()
    assert response.json() == {"sum": 42.0, "top": 3, "tags": ["x"]}


@pytest.mark.parametrize("body, fragment", [
    ({"features": {"rows": [[1, 2]], "scale": 1}, "tags": []}, "'features'"),
    ({"features": {"rows": [[1, 2, 3]], "scale": 1}, "tags": "x"}, "'tags'"),
    ({"features": {"rows": [[1, 2, 3]], "scale": 1}, "tags": [], "top": "3"}, "'top'"),
    ({"features": [1], "tags": []}, "'features'"),
    ({"tags": []}, "A value is not provided for the 'features' parameter."),
])
def test_typed_parameter_violations_are_400(typed, body, fragment) -> None:
    response = typed.post("/score", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_typed_swagger_marks_required_and_bounds(typed) -> None:
    doc = typed.get("/swagger.json", params={"version": "3"}).json()
    OpenAPIV30SpecValidator(doc).validate()
    body = doc["components"]["schemas"]["ServiceInput"]
    assert body["required"] == ["features", "tags"]
    rows = body["properties"]["features"]["properties"]["rows"]
    assert rows["minItems"] == 1 and rows["items"]["maxItems"] == 3
    assert body["example"]["top"] == 2


# ---- settings -------------------------------------------------------------------------------------


def test_prefix_title_and_config_json(start_server, example_app) -> None:
    # As Azure's server: the prefix is where a front end serves the routes, so the routes stay put
    # and only the paths the swagger document lists carry it.
    (example_app.root / "config.json").write_text(json.dumps({
        "SERVICE_NAME": "diabetes", "SERVICE_VERSION": "7", "SERVICE_PATH_PREFIX": "api/v1/"}))
    server = start_server(example_app)
    assert server.get("/api/v1/").status_code == 404
    assert server.post("/score", json={"data": [[1] * 10]}).status_code == 200
    doc = server.get("/swagger.json").json()
    assert doc["info"]["title"] == "diabetes" and doc["info"]["version"] == "7"
    assert sorted(doc["paths"]) == ["/api/v1/", "/api/v1/score", "/api/v1/swagger.json"]


def test_two_workers_serve_and_stop(start_server, example_app) -> None:
    server = start_server(example_app, args=["--workers", "2"])
    for _ in range(20):
        assert server.post("/score", json={"data": [[1] * 10]}).status_code == 200
    assert "with 2 worker(s)" in server.log()
    server.stop()
    assert server.process.returncode == 0


def test_two_workers_exit_non_zero_when_init_fails(start_server, script_app) -> None:
    server = start_server(script_app("failing_init.py"), args=["--workers", "2"], wait=False)
    assert server.wait_exit(60) != 0
    assert "model store unreachable" in server.log()
