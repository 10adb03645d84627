"""The server's own ServiceInput validator: agrees with jsonschema (draft 4) and names the first violation."""
from __future__ import annotations

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mldeploy.server import validation

NUMPY_2D = {"type": "array", "format": "numpy.ndarray", "minItems": 1,
            "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number", "format": "double"}}}
RECORDS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["name", "age"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": -128, "maximum": 127}}}}
NESTED = {"type": "object", "required": ["Inputs", "GlobalParameters"], "properties": {
    "Inputs": {"type": "object", "required": ["input1", "input3"], "properties": {
        "input1": NUMPY_2D, "input2": RECORDS, "input3": {"type": "number"}}},
    "GlobalParameters": {"type": "number"},
    "free": {},
    "flag": {"type": "boolean"},
    "kind": {"type": "string", "enum": ["a", "b"], "minLength": 1, "maxLength": 3},
    "nullable": {"type": "integer", "nullable": True},
}}
SCHEMAS = [NUMPY_2D, RECORDS, NESTED, {"type": "object", "additionalProperties": {"type": "integer"}}]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, 0.0, -2.0]) | st.text(max_size=4) | st.sampled_from(["a", "b", "name", "age"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["name", "age", "input1", "input2", "input3", "Inputs", "GlobalParameters",
                                       "flag", "kind", "z"]), children, max_size=5),
    max_leaves=25,
)


def _draft4(schema: dict) -> jsonschema.Draft4Validator:
    # `nullable` is OpenAPI's: as jsonschema reads it, a type list with null.
    def convert(node):
        if isinstance(node, dict):
            out = {k: convert(v) for k, v in node.items() if k != "nullable"}
            if node.get("nullable") is True:
                out["type"] = [node["type"], "null"]
            return out
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node
    return jsonschema.Draft4Validator(convert(schema))


@pytest.mark.parametrize("schema", SCHEMAS, ids=["numpy", "records", "nested", "additional"])
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values)
def test_agrees_with_jsonschema_draft4(schema: dict, value) -> None:
    ours = validation.compile_schema(schema).first_violation(value)
    theirs = list(_draft4(schema).iter_errors(value))
    assert (ours is None) == (not theirs), (value, ours, [e.message for e in theirs])


@pytest.mark.parametrize("value, pointer, reason", [
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1}}, "/GlobalParameters", "is required but missing"),
    ({"Inputs": {"input1": [[1, 2, False]], "input3": 1}, "GlobalParameters": 1},
     "/Inputs/input1/0/2", "must be a number, not a boolean"),
    ({"Inputs": {"input1": [], "input3": 1}, "GlobalParameters": 1}, "/Inputs/input1", "must have at least 1 item, not 0"),
    ({"Inputs": {"input1": [[1, 2, 3], [1, 2]], "input3": 1}, "GlobalParameters": 1},
     "/Inputs/input1/1", "must have exactly 3 items, not 2"),
    ({"Inputs": {"input1": [[[1], 2, 3]], "input3": 1}, "GlobalParameters": 1},
     "/Inputs/input1/0/0", "must be a number, not an array"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1, "input2": [{"name": "x"}]}, "GlobalParameters": 1},
     "/Inputs/input2/0/age", "is required but missing"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1, "input2": [{"name": "x", "age": None}]}, "GlobalParameters": 1},
     "/Inputs/input2/0/age", "must be an integer, not null"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1, "input2": [{"name": "x", "age": 1.0}]}, "GlobalParameters": 1},
     "/Inputs/input2/0/age", "must be an integer, not a number"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1, "input2": [{"name": "x", "age": 300}]}, "GlobalParameters": 1},
     "/Inputs/input2/0/age", "must be <= 127, not 300"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1, "input2": [{"name": "x", "age": 3, "z": 1}]},
      "GlobalParameters": 1}, "/Inputs/input2/0/z", "is not an allowed property (allowed: 'name', 'age')"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": True}, "GlobalParameters": 1},
     "/Inputs/input3", "must be a number, not a boolean"),
    ({"Inputs": {"input1": [[1, 2, 3]], "input3": 1}, "GlobalParameters": 1, "kind": "c"},
     "/kind", "must be one of 'a', 'b', not 'c'"),
])
def test_first_violation_is_a_pointer_and_a_reason(value, pointer: str, reason: str) -> None:
    assert validation.compile_schema(NESTED).first_violation(value) == validation.Violation(pointer, reason)


def test_pointer_escapes_and_free_form_values() -> None:
    schema = {"type": "object", "properties": {"a/b~c": {"type": "integer"}, "free": {}}}
    violation = validation.compile_schema(schema).first_violation({"a/b~c": "x", "free": [[[{"any": None}]]]})
    assert violation == validation.Violation("/a~1b~0c", "must be an integer, not a string")
    assert str(violation) == "/a~1b~0c must be an integer, not a string"
    assert validation.compile_schema({}).first_violation(object()) is None
    assert validation.compile_schema({"nullable": True, "type": "number"}).is_valid(None)


def test_restrict_keeps_what_is_enforced_and_drops_the_rest() -> None:
    schema = {"type": "object", "required": [], "example": {"x": 1}, "properties": {
        "x": {"type": "string", "pattern": "^a", "format": "date-time", "x-note": 1},
        "y": {"type": "array", "items": [{"type": "integer"}]}}}
    kept, dropped = validation.restrict(schema)
    assert kept == {"type": "object", "example": {"x": 1}, "properties": {
        "x": {"type": "string", "format": "date-time", "x-note": 1}, "y": {"type": "array"}}}
    assert dropped == ["/properties/x/pattern", "/properties/y/items (a list of schemas)"]
    validation.compile_schema(kept)
    with pytest.raises(validation.SchemaUnsupported, match="pattern"):
        validation.compile_schema(schema)


def test_the_server_imports_no_validation_library() -> None:
    """The image carries only the server's own small dependency set: no jsonschema, pydantic or core."""
    import subprocess
    import sys

    code = ("import sys; import pytest_mldeploy.server.app, pytest_mldeploy.server.user_script; "
            "loaded = [m for m in ('jsonschema', 'pydantic', 'pytest_mldeploy.core', 'hypothesis') if m in sys.modules]; "
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
