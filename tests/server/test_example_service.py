"""The sklearn-diabetes example's unmodified score.py behind the real server: Azure's routes and contract."""
from __future__ import annotations

import json

import jsonschema
import pytest
import requests
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator

TWO_ROWS = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}


@pytest.fixture(scope="module")
def server(module_servers, module_app, example_dir):
    return module_servers(module_app(example_dir / "score.py"), env={"MLDEPLOY_MAX_BODY_BYTES": "4096"})


def test_health_is_html_healthy(server) -> None:
    response = server.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "Healthy"


def test_score_predicts_and_carries_azure_headers(server) -> None:
    response = server.post("/score", json=TWO_ROWS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    predictions = response.json()
    assert len(predictions) == 2 and all(isinstance(p, float) for p in predictions)
    assert predictions[0] != predictions[1]
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert float(response.headers["x-ms-run-fn-exec-ms"]) >= 0
    assert response.headers["x-ms-server-version"].startswith("pytest-mldeploy/")
    assert response.headers["x-request-id"] == response.headers["x-ms-request-id"]
    assert len(response.headers["x-request-id"]) == 36


def test_sample_requests_all_score(server, example_dir) -> None:
    lines = [line for line in (example_dir / "sample_requests.txt").read_text().splitlines() if line.strip()]
    for line in lines:
        response = server.post("/score", data=line, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, (line, response.text)
        assert len(response.json()) == len(json.loads(line)["data"])


def test_client_request_id_is_echoed(server) -> None:
    response = server.post("/score", json=TWO_ROWS, headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-ms-request-id"] == "abc-123"
    response = server.post("/score", json=TWO_ROWS, headers={"x-ms-client-request-id": "client-7"})
    assert response.headers["x-ms-client-request-id"] == "client-7"
    assert response.headers["x-ms-request-id"] == "client-7"


def test_overlong_request_id_is_431(server) -> None:
    response = server.post("/score", json=TWO_ROWS, headers={"x-request-id": "x" * 101})
    assert response.status_code == 431
    assert "must not exceed 100 characters" in response.json()["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "POST body could not be decoded as JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"", "POST body is empty. Expecting a JSON dictionary."),
        (b"[1, 2]", "POST body should be a JSON dictionary."),
        (b'{"rows": [[1]]}', "A value is not provided for the 'data' parameter."),
        (b'{"data": [[NaN, 1, 2, 3, 4, 5, 6, 7, 8, 9]]}', "POST body could not be decoded as JSON: NaN is not a JSON number"),
        (b'{"data": [[1e999999, 1, 2, 3, 4, 5, 6, 7, 8, 9]]}',
         "POST body could not be decoded as JSON: the number 1e999999 is beyond the range of a 64-bit float"),
        (b"[" * 3_000, "POST body could not be decoded as JSON: it is nested too deeply"),
    ],
)
def test_undecodable_or_incomplete_body_is_400(server, body: bytes, message: str) -> None:
    response = server.post("/score", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"message": message}
    assert response.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize(
    "data, fragment",
    [
        # The server validates against the ServiceInput it publishes: a JSON pointer and the reason.
        ([[1, 2, 3]], "/data/0 must have exactly 10 items, not 3"),
        ([], "/data must have at least 1 item, not 0"),
        ([[]], "/data/0 must have exactly 10 items, not 0"),
        ([["a"] * 10], "/data/0/0 must be a number, not a string"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "/data/0 must be an array, not an integer"),
        ("text", "/data must be an array, not a string"),
        ([[None, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]], "/data/0/0 must be a number, not null"),
        ([[False, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]], "/data/0/0 must be a number, not a boolean"),
    ],
)
def test_schema_violations_are_400_not_500(server, data: object, fragment: str) -> None:
    response = server.post("/score", json={"data": data})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert message.startswith("Invalid value for the 'data' parameter: ")
    assert fragment in message


def test_non_json_content_type_is_415(server) -> None:
    response = server.post("/score", data=json.dumps(TWO_ROWS), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json() == {"message": "Expects Content-Type to be application/json"}


def test_get_score_without_data_is_400_like_azure(server) -> None:
    response = server.get("/score")
    assert response.status_code == 400
    assert response.json() == {"message": "A value is not provided for the 'data' parameter."}


def test_get_score_reads_parameters_from_the_query(server) -> None:
    response = server.get("/score", params={"data": json.dumps(TWO_ROWS["data"])})
    assert response.status_code == 200
    assert len(response.json()) == 2


def test_unknown_path_is_404_and_wrong_method_405(server) -> None:
    response = server.get("/nope")
    assert response.status_code == 404
    assert "not found" in response.json()["message"]
    assert requests.put(server.url + "/score", json=TWO_ROWS, timeout=10).status_code == 405


def test_options_score_is_200_without_cors_headers(server) -> None:
    response = requests.options(server.url + "/score", headers={"Origin": "https://example.org",
                                                                "Access-Control-Request-Method": "POST"}, timeout=10)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_body_past_the_limit_is_413_before_reading(server) -> None:
    big = json.dumps({"data": [[0.5] * 10] * 400})
    response = server.post("/score", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MLDEPLOY_MAX_BODY_BYTES" in response.json()["message"]
    assert response.headers["connection"] == "close"


def test_chunked_body_past_the_limit_is_413(server) -> None:
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = server.post("/score", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def _swagger(server, version: str | None) -> dict:
    response = server.get("/swagger.json", params={"version": version} if version else None)
    assert response.status_code == 200, response.text
    return response.json()


def test_swagger2_is_valid_and_precise(server) -> None:
    doc = _swagger(server, None)
    OpenAPIV2SpecValidator(doc).validate()
    assert doc["swagger"] == "2.0"
    assert doc["info"]["title"] == "ML service"
    assert set(doc["paths"]) == {"/", "/score", "/swagger.json"}
    body = doc["definitions"]["ServiceInput"]
    assert body["required"] == ["data"]
    outer = body["properties"]["data"]
    assert outer["format"] == "numpy.ndarray"
    assert outer["minItems"] == 1
    assert outer["items"]["minItems"] == outer["items"]["maxItems"] == 10
    assert body["example"] == {"data": [[0.1, 1.2, 2.3, 3.4, 4.5, 5.6, 6.7, 7.8, 8.9, 9.0]]}
    assert doc["definitions"]["ServiceOutput"]["example"] == [4429.929236457418]
    assert doc["definitions"]["ErrorResponse"]["properties"]["message"]["type"] == "string"


def test_openapi3_is_valid_and_matches(server) -> None:
    doc = _swagger(server, "3")
    OpenAPIV30SpecValidator(doc).validate()
    assert doc["openapi"] == "3.0.3"
    schemas = doc["components"]["schemas"]
    assert schemas["ServiceInput"] == _swagger(server, "2")["definitions"]["ServiceInput"]
    assert doc["paths"]["/score"]["post"]["requestBody"]["required"] is True


def test_unknown_swagger_version_is_404(server) -> None:
    response = server.get("/swagger.json", params={"version": "4"})
    assert response.status_code == 404
    assert "Supported versions: 2, 3" in response.json()["message"]


def test_schema_valid_requests_are_accepted_and_invalid_rejected(server) -> None:
    """The swagger body schema agrees with the server: its example passes, near-misses fail both."""
    body_schema = _swagger(server, None)["definitions"]["ServiceInput"]
    validator = jsonschema.Draft4Validator(body_schema)
    example = body_schema["example"]
    validator.validate(example)
    assert server.post("/score", json=example).status_code == 200
    assert server.post("/score", json={"data": example["data"] * 3}).status_code == 200
    for bad in ({"data": []}, {"data": [[1.0] * 9]}, {"data": [[1.0] * 11]}, {}):
        assert not validator.is_valid(bad)
        assert server.post("/score", json=bad).status_code == 400
