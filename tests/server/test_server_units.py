"""Pure logic of the server modules: settings, model paths, request/response objects, schema bounds, runner."""
from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator

from pytest_mldeploy.server import models, schema, swagger, validation
from pytest_mldeploy.server.amlhttp import AMLRequest, AMLResponse
from pytest_mldeploy.server.runner import RunThread, ScoringTimeout
from pytest_mldeploy.server.settings import SettingsError, load_settings


def test_settings_defaults_and_env(tmp_path: Path) -> None:
    s = load_settings({"AML_APP_ROOT": str(tmp_path)})
    assert s.port == 5001 and s.host == "127.0.0.1" and s.workers == 1
    assert s.entry_script == tmp_path / "score.py"
    assert s.max_body_bytes == 10 * 1024 * 1024 and s.timeout_ms == 3_600_000
    s = load_settings({"AML_APP_ROOT": str(tmp_path), "AZUREML_SOURCE_DIRECTORY": "src",
                       "AZUREML_ENTRY_SCRIPT": "a/b.py", "SERVICE_PATH_PREFIX": "/x/y/",
                       "CORS_ORIGINS": "https://a, https://b", "MLDEPLOY_AUTH_KEYS": "k1,k2"})
    assert s.entry_script == tmp_path / "src" / "a" / "b.py"
    assert s.path_prefix == "/x/y"
    assert s.cors_origins == ("https://a", "https://b")
    assert s.auth_keys == ("k1", "k2")


def test_environment_wins_over_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"SCORING_TIMEOUT_MS": 1000, "SERVICE_NAME": "from-file",
                                                      "CORS_ORIGINS": ["https://c"]}))
    s = load_settings({"AML_APP_ROOT": str(tmp_path), "SERVICE_NAME": "from-env"})
    assert s.timeout_ms == 1000 and s.service_name == "from-env" and s.cors_origins == ("https://c",)


@pytest.mark.parametrize("key", ["SCORING_TIMEOUT_MS", "WORKER_COUNT", "MLDEPLOY_PORT", "MLDEPLOY_MAX_BODY_BYTES"])
def test_bad_numbers_name_the_setting(tmp_path: Path, key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load_settings({"AML_APP_ROOT": str(tmp_path), key: "ten"})


def test_get_model_path_picks_latest_and_names_missing(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "azureml-models"
    for version in ("1", "2", "10"):
        (root / "m" / version).mkdir(parents=True)
        (root / "m" / version / "model.pkl").write_text(version)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root / "m" / "1"))
    assert models.get_model_path("m") == str(root / "m" / "10" / "model.pkl")
    assert models.get_model_path("m", 2) == str(root / "m" / "2" / "model.pkl")
    with pytest.raises(models.ModelNotFoundError, match=r"'m' version 3 .*versions there: 1, 2, 10"):
        models.get_model_path("m", 3)
    with pytest.raises(models.ModelNotFoundError, match=r"'other' is not in .*models there: m"):
        models.get_model_path("other")


def test_aml_request_behaves_like_werkzeug() -> None:
    request = AMLRequest("post", "/score", b"a=1&a=2&b=x%20y",
                         [("Content-Type", "application/json; charset=utf-8"), ("X-Two", "1"), ("x-two", "2")],
                         b'{"k": [1]}')
    assert request.method == "POST"
    assert request.args.get("a") == "1" and request.args.getlist("a") == ["1", "2"]
    assert request.args.get("a", type=int) == 1 and request.args.get("b") == "x y"
    assert request.headers["content-type"].startswith("application/json")
    assert request.headers.get("X-TWO") == "1, 2"
    assert request.full_path == "/score?a=1&a=2&b=x y"
    assert request.get_json() == {"k": [1]} and request.json == {"k": [1]}
    assert request.get_data() == b'{"k": [1]}' and request.get_data(as_text=True) == '{"k": [1]}'
    plain = AMLRequest("GET", "/score", b"", [], b"text")
    assert plain.json is None and plain.get_json(force=True, silent=True) is None
    with pytest.raises(ValueError):
        plain.get_json(force=True)


def test_aml_response_like_azure() -> None:
    response = AMLResponse({"a": 1}, 202, {"X-Multi": "a, b"}, json_str=True)
    assert response.status_code == 202 and json.loads(response.body) == {"a": 1}
    assert response.content_type == "application/json"
    assert [v for k, v in response.headers if k == "X-Multi"] == ["a", "b"]
    assert AMLResponse(None, 200).body == b"{}"
    raw = AMLResponse(b"\x00\x01", 200, {"Content-Type": "image/png"})
    assert raw.body == b"\x00\x01" and raw.content_type == "image/png"
    assert AMLResponse("hi", 200).content_type.startswith("text/html")


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])))
@input_schema("flat", NumpyParameterType(np.array([1, 2]), enforce_shape=True))
@output_schema(NumpyParameterType(np.array([1.0])))
def _decorated(data, flat=None, request_headers=None):
    return data


def test_analyse_finds_types_and_the_undecorated_function() -> None:
    run_schema = schema.analyse(_decorated)
    assert [p.name for p in run_schema.parameters] == ["data", "flat"]
    assert set(run_schema.params) == {"data", "flat"}
    # flat's default (None) is rejected by its own NumpyParameterType, so the client must send it.
    assert run_schema.required == ["data", "flat"]
    assert run_schema.wants_headers and run_schema.decorated
    assert run_schema.target is not _decorated and run_schema.target.__name__ == "_decorated"
    values = schema.deserialise(run_schema, {"data": [[1, 2, 3]], "flat": [1]}, {"data", "flat"})
    assert isinstance(values["data"], np.ndarray) and values["data"].shape == (1, 3)
    with pytest.raises(schema.InputRejected, match="'data'"):
        schema.deserialise(run_schema, {"data": [[1, 2]]}, {"data"})


def test_tightened_schema_agrees_with_deserialisation() -> None:
    run_schema = schema.analyse(_decorated)
    body = schema.input_schema_for(run_schema, _decorated)
    assert "request_headers" not in body["properties"]
    validator = jsonschema.Draft4Validator(body)
    cases = [{"data": [[1, 2, 3]], "flat": [3]}, {"data": [[1, 2, 3]] * 5, "flat": []}, {"data": [[1, 2, 3]]},
             {"data": [], "flat": [1]}, {"data": [[1, 2]], "flat": [1]}, {"data": [[1, 2, 3, 4]], "flat": [1]},
             {"flat": [1]}]
    # The server accepts what its own validator (compiled from the published schema) accepts and
    # inference_schema then deserialises: the published schema must say exactly that.
    served = validation.compile_schema(validation.restrict(body)[0])
    for case in cases:
        accepted = all(name in case for name in run_schema.required) and served.is_valid(case)
        if accepted:
            try:
                schema.deserialise(run_schema, copy.deepcopy(case), set(case))
            except schema.InputRejected:
                accepted = False
        assert validator.is_valid(case) == accepted, case
    assert not validator.is_valid({"data": []}) and not validator.is_valid({"data": [[1, 2]]})
    # An empty batch is a client error for numpy inputs, one-dimensional ones too.
    assert not validator.is_valid({"data": [[1, 2, 3]], "flat": []})


def test_swagger_documents_validate() -> None:
    body = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"], "example": {"x": 1}}
    kwargs = dict(title="t", service_version="1", prefix="/p", input_schema=body, output_schema={},
                  supported=["2.0", "3.0"])
    OpenAPIV2SpecValidator(swagger.build("2", **kwargs)).validate()
    OpenAPIV30SpecValidator(swagger.build("3", **kwargs)).validate()
    with pytest.raises(swagger.SwaggerVersionError, match="version=3"):
        swagger.build("2", **dict(kwargs, supported=["3.0"]))


def test_run_thread_times_out_and_interrupts() -> None:
    state = {"spins": 0, "finished": False}

    def spin() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state["spins"] += 1
            time.sleep(0.001)
        state["finished"] = True

    async def scenario() -> tuple[str, float]:
        runner = RunThread()
        with pytest.raises(ScoringTimeout, match="Scoring timeout after 100 ms"):
            await runner.call(spin, 100)
        value, elapsed = await runner.call(lambda: "next", 5000)
        return value, elapsed

    value, elapsed = asyncio.run(scenario())
    assert value == "next" and elapsed >= 0
    assert not state["finished"]


def test_run_thread_passes_exceptions_back() -> None:
    async def scenario() -> None:
        runner = RunThread()
        with pytest.raises(KeyError, match="boom"):
            await runner.call(lambda: {}["boom"], 1000)

    asyncio.run(scenario())
