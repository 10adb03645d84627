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


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_what_the_schema_cannot_say_is_still_a_client_error() -> None:
    """A float32 input past float32's range passes the published schema; deserialisation refuses it."""
    import numpy as np
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.schema_decorators import input_schema

    from pytest_mldeploy.server import schema

    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]], dtype="float32")))
    def run(data):
        return data

    run_schema = schema.analyse(run)
    body = schema.input_schema_for(run_schema, run)
    assert validation.compile_schema(validation.restrict(body)[0]).is_valid({"data": [[1e39, 1.0]]})
    with pytest.raises(schema.InputRejected, match="beyond the range of float32"):
        schema.deserialise(run_schema, {"data": [[1e39, 1.0]]}, {"data"})


def test_narrow_integer_dtypes_publish_their_range() -> None:
    import numpy as np
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.schema_decorators import input_schema

    from pytest_mldeploy.server import schema

    @input_schema("pixels", NumpyParameterType(np.array([[0, 255]], dtype="uint8")))
    @input_schema("ids", NumpyParameterType(np.array([1, 2], dtype="int64")))
    def run(pixels, ids):
        return pixels

    run_schema = schema.analyse(run)
    body = schema.input_schema_for(run_schema, run)
    leaf = body["properties"]["pixels"]["items"]["items"]
    assert (leaf["minimum"], leaf["maximum"]) == (0, 255)
    assert "maximum" not in body["properties"]["ids"]["items"]  # 64-bit ranges are left out on purpose
    violation = validation.compile_schema(body).first_violation({"pixels": [[0, 256]], "ids": [1]})
    assert str(violation) == "/pixels/0/1 must be <= 255, not 256"
    schema.deserialise(run_schema, {"pixels": [[0, 255]], "ids": [1]}, {"pixels", "ids"})
