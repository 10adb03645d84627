"""Request generation for the properties check and bad requests for robustness (pure; no server)."""
from __future__ import annotations

import json

from hypothesis import find

from pytest_mldeploy.checks.strategies import MAX_ITEMS, NUMBER_BOUND, generation_schema, hypothesis_settings, request_strategy
from pytest_mldeploy.checks.robustness import malformed_probes, mutations, schema_probes
from pytest_mldeploy.checks.published_contract import Contract, validator

DIABETES = {
    "type": "object",
    "properties": {"data": {"type": "array", "minItems": 1,
                            "items": {"type": "array", "minItems": 10, "maxItems": 10, "items": {"type": "number"}}}},
    "required": ["data"],
    "additionalProperties": False,
}
SETTINGS, RNG = hypothesis_settings(100, None)


def test_generation_schema_bounds_what_the_schema_leaves_open():
    bounded = generation_schema(DIABETES)
    data = bounded["properties"]["data"]
    assert data["maxItems"] == MAX_ITEMS and data["minItems"] == 1
    assert data["items"]["maxItems"] == 10
    assert data["items"]["items"] == {"type": "number", "minimum": -NUMBER_BOUND, "maximum": NUMBER_BOUND}
    assert generation_schema({"type": "array", "minItems": 50})["maxItems"] == 50
    assert generation_schema({"type": "number", "minimum": 0})["minimum"] == 0


def test_generated_requests_match_the_schema_and_shrink():
    strategy = request_strategy(DIABETES)
    big = find(strategy, lambda r: any(v > 1e6 for row in r["data"] for v in row), settings=SETTINGS)
    assert validator(DIABETES).is_valid(big)
    assert sum(1 for row in big["data"] for v in row if v != 0) == 1 and len(big["data"]) == 1
    rows = find(strategy, lambda r: len(r["data"]) > 3, settings=SETTINGS)
    assert len(rows["data"]) == 4


def test_optional_properties_may_be_absent_required_never():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}
    smallest = find(request_strategy(schema), lambda _: True, settings=SETTINGS)
    assert smallest == {"a": 0}


def test_mutations_are_one_change_each():
    labels = dict(mutations({"data": [[1.0, 2.0]]}))
    assert labels["data missing"] == {}
    assert labels["data[0]: 3 items instead of 2 (wrong width)"] == {"data": [[1.0, 2.0, 2.0]]}
    assert labels["data: an extra level of nesting"] == {"data": [[[1.0, 2.0]]]}
    assert labels["data[0][0]: a string instead of a number"] == {"data": [["not a number", 2.0]]}
    assert labels["data: empty array"] == {"data": []}
    assert labels["data: an object instead of an array"] == {"data": {"unexpected": "object"}}
    assert labels["null instead of the request object"] is None


def test_schema_probes_keep_only_what_the_schema_rejects():
    example = {"data": [[float(i) for i in range(10)]]}
    probes = schema_probes(Contract({}, DIABETES, None, True, example), seed=None)
    is_valid = validator(DIABETES).is_valid
    assert probes and all(not is_valid(json.loads(p.body)) for p in probes)
    labels = [p.label for p in probes]
    assert "data missing" in labels and "data: empty array" in labels
    assert any("wrong width" in label for label in labels)
    loose = {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}
    loose_labels = [p.label for p in schema_probes(Contract({}, loose, None, True, example), seed=None)]
    assert not any("wrong width" in label for label in loose_labels)
    assert schema_probes(Contract({}, None, None, False, None), seed=None) == []


def test_malformed_probes_cover_the_parser_traps():
    probes, notes = malformed_probes({"data": [[1.5, 2.0]]}, max_body_bytes=1000)
    by_label = {p.label: p for p in probes}
    assert by_label["empty body"].body == b""
    assert by_label["truncated JSON"].body == json.dumps({"data": [[1.5, 2.0]]}).encode()[:11]
    huge = next(p for p in probes if "digit integer" in p.label)
    assert huge.body.startswith(b'{"data": [[1000') and huge.body.endswith(b", 2.0]]}")
    assert next(p for p in probes if "beyond float64" in p.label).body == b'{"data": [[1e999999, 2.0]]}'
    oversize = next(p for p in probes if "max_body_bytes" in p.label)
    assert len(oversize.body) > 1000
    assert not notes
    _, notes = malformed_probes(None, max_body_bytes=None)
    assert notes == ["oversize probe skipped: the deployment sets no max_body_bytes"]
