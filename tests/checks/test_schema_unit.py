"""Swagger definitions to JSON Schema, strict JSON and body judgement (pure; no server)."""
from __future__ import annotations

import pytest
import requests

from pytest_mldeploy.checks.published_contract import (
    NotStrictJSON,
    body_problem,
    definition_schema,
    input_schema,
    is_free_form,
    output_schema,
    schema_error,
    strict_json,
)

# What Azure ML serves for the diabetes script (see /work/shared/reference/azureml-inference-server.md).
AML_SWAGGER = {
    "swagger": "2.0",
    "definitions": {
        "ServiceInput": {"type": "object",
                         "properties": {"data": {"type": "array", "format": "numpy.ndarray",
                                                 "items": {"type": "array", "items": {"type": "number", "format": "double"}}}},
                         "example": {"data": [[0.1, 1.2]]}},
        "ServiceOutput": {"type": "array", "format": "numpy.ndarray", "items": {"type": "number", "format": "double"},
                          "example": [4429.9]},
        "Wrapper": {"type": "object", "properties": {"inner": {"$ref": "#/definitions/ServiceOutput"}}},
        "Loop": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Loop"}}},
    },
}


def test_swagger_only_keywords_are_dropped_and_refs_inlined():
    assert input_schema(AML_SWAGGER) == {
        "type": "object", "properties": {"data": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}
    assert definition_schema(AML_SWAGGER, "Wrapper")["properties"]["inner"] == {"type": "array", "items": {"type": "number"}}
    assert definition_schema(AML_SWAGGER, "Missing") is None
    with pytest.raises(ValueError, match="refers to itself"):
        definition_schema(AML_SWAGGER, "Loop")


def test_openapi3_nullable_becomes_a_null_type():
    doc = {"components": {"schemas": {"ServiceOutput": {"type": "number", "nullable": True}}}}
    assert output_schema(doc) == {"type": ["number", "null"]}


def test_free_form_input_has_no_schema():
    assert is_free_form(None) and is_free_form({}) and is_free_form({"type": "object"}) and is_free_form({"type": "string"})
    assert not is_free_form({"type": "object", "properties": {"a": {}}})
    assert not is_free_form({"type": "object", "additionalProperties": False})
    assert input_schema({"swagger": "2.0", "definitions": {"ServiceInput": {"type": "object", "example": "x"}}}) is None


def test_strict_json_rejects_nan_infinity_and_deep_nesting():
    assert strict_json(b'{"a": [1.5]}') == {"a": [1.5]}
    for bad in (b"[NaN]", b"[Infinity]", b"[-Infinity]"):
        with pytest.raises(NotStrictJSON):
            strict_json(bad)
    with pytest.raises(ValueError, match="nests too deeply"):
        strict_json(b"[" * 100_000 + b"]" * 100_000)


def test_schema_error_points_at_the_place():
    assert schema_error({"data": [[1, "x"]]}, input_schema(AML_SWAGGER)) == "data[0][1]: 'x' is not of type 'number'"
    assert schema_error({"data": [[1.0]]}, input_schema(AML_SWAGGER)) is None
    assert schema_error("anything", None) is None


def _answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return response


def test_body_problem_judges_status_json_and_schema():
    output = output_schema(AML_SWAGGER)
    assert body_problem(_answer(200, b"[1.0, 2.0]"), output) is None
    assert body_problem(_answer(500, b"[1.0]"), output) == "answered 500"
    assert "not valid JSON" in body_problem(_answer(200, b"[NaN]"), output)
    assert "does not match ServiceOutput" in body_problem(_answer(200, b'{"result": 1}'), output)
    assert body_problem(_answer(200, b'{"result": 1}'), None) is None
