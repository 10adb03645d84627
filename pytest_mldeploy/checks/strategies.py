"""Hypothesis strategies for request bodies a service's input schema accepts.

The properties check draws from them, the robustness check takes its smallest valid request from
them, and `mldeploy parity` sends the same seeded bodies to two servers. Importing this module
imports Hypothesis (a third of a second): the checks import it when they run, not when they register.
"""
from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable, Optional

from hypothesis import HealthCheck, Verbosity, find, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from hypothesis_jsonschema import from_schema

from pytest_mldeploy.checks.published_contract import validator

MAX_ITEMS = 10
"""Arrays the schema leaves unbounded get at most this many items: enough to find row-count bugs."""
MAX_LENGTH = 40
"""Strings the schema leaves unbounded get at most this many characters."""
NUMBER_BOUND = 1e9
"""Numbers the schema leaves unbounded are drawn from [-1e9, 1e9].

Near float64's limits a linear model overflows to infinity, which says nothing about the
service; a schema that declares `minimum`/`maximum` is tested over exactly its own range.
"""

_DRAFT4 = "http://json-schema.org/draft-04/schema#"


def _types(node: dict) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return set(declared)
    return set()


_NAME_MAPS = ("properties", "patternProperties", "definitions")
_VALUES = ("enum", "const", "default")


def _bound(node: Any) -> Any:
    if isinstance(node, list):
        return [_bound(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _bound(sub) for name, sub in value.items()}
        elif key in _VALUES:
            out[key] = value
        else:
            out[key] = _bound(value)
    types = _types(node)
    if "array" in types or "items" in node:
        out["maxItems"] = _capped(node.get("maxItems"), int(node.get("minItems", 0)), MAX_ITEMS)
    if "string" in types:
        out["maxLength"] = _capped(node.get("maxLength"), int(node.get("minLength", 0)), MAX_LENGTH)
    if types & {"number", "integer"}:
        if "minimum" not in node:
            out["minimum"] = -NUMBER_BOUND
        if "maximum" not in node:
            out["maximum"] = NUMBER_BOUND
    return out


def _capped(declared: Any, floor: int, cap: int) -> int:
    """The size limit to generate with: `cap`, but never below the declared minimum nor above the declared maximum."""
    limit = max(cap, floor)
    return limit if declared is None else min(int(declared), limit)


def generation_schema(schema: dict) -> dict:
    """`schema` with sane sizes added where it sets none (see MAX_ITEMS, MAX_LENGTH, NUMBER_BOUND)."""
    bounded = _bound(copy.deepcopy(schema))
    bounded.setdefault("$schema", _DRAFT4)
    return bounded


_DELEGATED = {
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "enum", "const",
    "dependencies", "patternProperties", "propertyNames", "minProperties", "maxProperties", "contains",
}


def _structural(node: Any) -> SearchStrategy[Any]:
    """Objects and arrays built with Hypothesis' own collections; leaves from hypothesis-jsonschema.

    hypothesis-jsonschema 0.23's object strategy relies on a Hypothesis internal (`many.more()`)
    that Hypothesis 6.170 removed, so objects with fixed properties and plain arrays are drawn
    here; an object then carries only its declared properties (never extra keys), required ones
    always. Anything using combinators goes to `from_schema` whole.
    """
    if not isinstance(node, dict) or node.keys() & _DELEGATED:
        return _leaf(node)
    types = _types(node)
    if len(types) > 1:
        return st.one_of([_structural({**node, "type": t}) for t in sorted(types)])
    properties = node.get("properties")
    if (types == {"object"} or (not types and isinstance(properties, dict))) and isinstance(properties or {}, dict):
        properties = properties or {}
        required = [name for name in node.get("required", []) if name in properties]
        if len(required) != len(set(node.get("required", []))):
            return _leaf(node)
        return st.fixed_dictionaries(
            {name: _structural(properties[name]) for name in required},
            optional={name: _structural(sub) for name, sub in properties.items() if name not in required},
        )
    items = node.get("items", {})
    if types == {"array"} and isinstance(items, dict):
        return st.lists(
            _structural(items),
            min_size=int(node.get("minItems", 0)),
            max_size=int(node["maxItems"]) if "maxItems" in node else None,
            unique_by=(lambda value: json.dumps(value, sort_keys=True)) if node.get("uniqueItems") else None,
        )
    return _leaf(node)


def _leaf(node: Any) -> SearchStrategy[Any]:
    if isinstance(node, dict):
        node = {**node, "$schema": _DRAFT4}
    return from_schema(node, allow_x00=False)


def request_strategy(schema: dict) -> SearchStrategy[Any]:
    """Request bodies matching `schema` (finite numbers, bounded sizes); each is checked against it."""
    bounded = generation_schema(schema)
    is_valid = validator(schema).is_valid
    return _structural(bounded).filter(is_valid)


def hypothesis_settings(examples: int, seed: Optional[int]) -> tuple[settings, Optional[random.Random]]:
    """Settings for a run against a live service: no deadline, no database, reproducible."""
    chosen = settings(
        max_examples=max(1, examples),
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    return chosen, (random.Random(seed) if seed is not None else None)


def smallest_request(schema: dict, seed: Optional[int]) -> Any:
    """The smallest body `schema` accepts, as Hypothesis shrinks it (reproducible for a seed)."""
    chosen, rng = hypothesis_settings(50, seed)
    return find(request_strategy(schema), lambda _: True, settings=chosen, random=rng)


def generated_bodies(schema: dict, count: int, seed: Optional[int]) -> list[Any]:
    """Up to `count` distinct schema-valid request bodies, reproducible for a seed."""
    drawn: list[Any] = []
    chosen, _rng = hypothesis_settings(count, seed)

    def collect(body: Any) -> None:
        drawn.append(body)

    test: Callable[[], None] = chosen(given(request_strategy(schema))(collect))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    test()
    unique: dict[str, Any] = {}
    for body in drawn:
        unique.setdefault(json.dumps(body, sort_keys=True), body)
    return list(unique.values())[:count]
