"""A small compiled validator for the JSON Schema subset the server publishes as `ServiceInput`.

The server validates each request body against the very schema it serves in `/swagger.json`, so
what the document promises and what the server accepts cannot drift apart: `restrict()` keeps the
keywords this module enforces (and drops, with a note, any it does not), the server publishes the
result, and `compile_schema()` turns that same dict into a checker. jsonschema is not used: the
server keeps its tiny dependency set, and a checker compiled to closures costs a few microseconds
per request.

Semantics are JSON Schema draft 4 (what Swagger 2.0 speaks, and what the checks validate with):
`integer` is a JSON number without a fraction written as an integer (`1`, not `1.0`), booleans are
never numbers, `nullable: true` (OpenAPI 3) also admits null. `format` and the other annotations
are not checked. Every failure names the first violation in document order, as a JSON pointer
(RFC 6901) and a reason.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

#: Keywords that constrain a value and are enforced here.
ENFORCED = frozenset({
    "type", "nullable", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "minLength", "maxLength",
})
#: Keywords that describe a value without constraining it (kept in the document, not checked).
ANNOTATIONS = frozenset({
    "format", "example", "examples", "description", "title", "default", "readOnly", "writeOnly", "xml",
    "externalDocs", "deprecated", "discriminator",
})

_KINDS = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
          bool: "a boolean", type(None): "null"}
_ACCEPTED = {
    "object": (dict,), "array": (list,), "string": (str,), "number": (int, float), "integer": (int,),
    "boolean": (bool,), "null": (type(None),),
}
_NAMES = {"object": "an object", "array": "an array", "string": "a string", "number": "a number",
          "integer": "an integer", "boolean": "a boolean", "null": "null"}


class Violation(NamedTuple):
    """The first place a value breaks the schema: a JSON pointer and why."""

    pointer: str
    reason: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'} {self.reason}"


class SchemaUnsupported(ValueError):
    """The schema uses a keyword this validator does not enforce (run `restrict()` first)."""


class _Invalid(Exception):
    """Raised inside a compiled check; the path is collected (innermost first) while it unwinds."""

    __slots__ = ("reason", "path")

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[Any] = []


Check = Callable[[Any], None]


def restrict(schema: Any) -> tuple[Any, list[str]]:
    """`schema` keeping only enforced keywords and annotations; also the dropped keywords' locations.

    Publish the returned schema and compile it: then the document says exactly what is enforced.
    """
    dropped: list[str] = []
    return _restrict(schema, "", dropped), dropped


def _restrict(node: Any, where: str, dropped: list[str]) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _restrict(sub, f"{where}/properties/{_escape(name)}", dropped)
                        for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _restrict(value, f"{where}/{key}", dropped)
        elif key == "items" and not isinstance(value, dict):
            dropped.append(f"{where}/items (a list of schemas)")
        elif key == "required" and isinstance(value, list) and not value:
            continue  # draft 4 wants at least one name; an empty list means nothing
        elif key in ENFORCED or key in ANNOTATIONS or key.startswith("x-"):
            out[key] = value
        else:
            dropped.append(f"{where}/{key}")
    return out


def compile_schema(schema: Any) -> "Validator":
    """A validator for `schema` (a dict in the subset above); SchemaUnsupported for anything else."""
    return Validator(schema)


class Validator:
    """`first_violation(value)` is None when `value` matches the schema, else where and why it does not."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._check = _compile(schema, "")

    def first_violation(self, value: Any) -> Optional[Violation]:
        """The first violation in document order (properties as declared, array items by index), or None."""
        if self._check is None:
            return None
        try:
            self._check(value)
        except _Invalid as invalid:
            return Violation("".join(f"/{_escape(str(part))}" for part in reversed(invalid.path)), invalid.reason)
        return None

    def is_valid(self, value: Any) -> bool:
        """True when `value` matches the schema."""
        return self.first_violation(value) is None


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def kind_of(value: Any) -> str:
    """`a number`, `an array`, ... for a parsed JSON value."""
    return _KINDS.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else kind_of(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- compilation -----------------------------------------------------------------------------------


def _compile(node: Any, where: str) -> Optional[Check]:
    """A check for `node`, or None when `node` accepts every value."""
    if node is True or node == {}:
        return None
    if node is False:
        def never(value: Any) -> None:
            raise _Invalid("is not allowed here")
        return never
    if not isinstance(node, dict):
        raise SchemaUnsupported(f"{where or '/'}: a schema must be an object, not {type(node).__name__}")
    unknown = [k for k in node if k not in ENFORCED and k not in ANNOTATIONS and not k.startswith("x-")]
    if unknown:
        raise SchemaUnsupported(f"{where or '/'}: keyword(s) {', '.join(sorted(unknown))} are not enforced")

    steps: list[Check] = []
    # A plain "array"/"object" node checks its own type inside the container check (one call less per row).
    container = node.get("type") if node.get("type") in ("array", "object") and node.get("nullable") is not True else None
    type_check = _type_check(node, where)
    if type_check is not None:
        steps.append(type_check)
    if "enum" in node:
        steps.append(_enum_check(node["enum"]))
    steps.extend(_number_checks(node))
    steps.extend(_string_checks(node))
    array_check = _array_check(node, where, strict=container == "array")
    if array_check is not None:
        steps.append(array_check)
    object_check = _object_check(node, where, strict=container == "object")
    if object_check is not None:
        steps.append(object_check)
    if container is not None and len(steps) == 2 and steps[0] is type_check:
        steps.pop(0)
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    if type_check is not None and node.get("nullable") is True:
        # A null that passed the type check satisfies the node: the other keywords are about non-null values.
        first, rest = steps[0], steps[1:]

        def nullable_all(value: Any) -> None:
            first(value)
            if value is not None:
                for step in rest:
                    step(value)
        return nullable_all

    def check_all(value: Any) -> None:
        for step in steps:
            step(value)
    return check_all


def _type_check(node: dict, where: str) -> Optional[Check]:
    declared = node.get("type")
    if declared is None:
        return None
    names = [declared] if isinstance(declared, str) else list(declared)
    if node.get("nullable") is True and "null" not in names:
        names.append("null")
    unknown = [n for n in names if n not in _ACCEPTED]
    if unknown:
        raise SchemaUnsupported(f"{where or '/'}: unknown type(s) {unknown}")
    accepted = frozenset(t for name in names for t in _ACCEPTED[name])
    expected = " or ".join(_NAMES[n] for n in names)

    def check_type(value: Any) -> None:
        # type() is exact: bool is not accepted as int/float, and an int-valued float is not an integer.
        if type(value) not in accepted:
            raise _Invalid(f"must be {expected}, not {kind_of(value)}")
    return check_type


def _enum_check(allowed: list) -> Check:
    # JSON equality: 1 == 1.0, but True is not 1.
    keys = [(type(v) is bool, v) for v in allowed]
    shown = ", ".join(_short(v) for v in allowed[:5]) + (", ..." if len(allowed) > 5 else "")

    def check_enum(value: Any) -> None:
        if (type(value) is bool, value) not in keys:
            raise _Invalid(f"must be one of {shown}, not {_short(value)}")
    return check_enum


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _number_checks(node: dict) -> list[Check]:
    checks: list[Check] = []
    if "minimum" in node:
        low, exclusive = node["minimum"], node.get("exclusiveMinimum") is True

        def check_minimum(value: Any) -> None:
            if _is_number(value) and (value <= low if exclusive else value < low):
                raise _Invalid(f"must be {'>' if exclusive else '>='} {low}, not {value!r}")
        checks.append(check_minimum)
    if "maximum" in node:
        high, exclusive = node["maximum"], node.get("exclusiveMaximum") is True

        def check_maximum(value: Any) -> None:
            if _is_number(value) and (value >= high if exclusive else value > high):
                raise _Invalid(f"must be {'<' if exclusive else '<='} {high}, not {value!r}")
        checks.append(check_maximum)
    return checks


def _string_checks(node: dict) -> list[Check]:
    checks: list[Check] = []
    if "minLength" in node:
        shortest = int(node["minLength"])

        def check_min_length(value: Any) -> None:
            if type(value) is str and len(value) < shortest:
                raise _Invalid(f"must have at least {shortest} character(s), not {len(value)}")
        checks.append(check_min_length)
    if "maxLength" in node:
        longest = int(node["maxLength"])

        def check_max_length(value: Any) -> None:
            if type(value) is str and len(value) > longest:
                raise _Invalid(f"must have at most {longest} character(s), not {len(value)}")
        checks.append(check_max_length)
    return checks


def _array_check(node: dict, where: str, strict: bool = False) -> Optional[Check]:
    """Items, sizes; with `strict` also the type (a non-list is then a violation, not a pass)."""
    if not {"items", "minItems", "maxItems"} & node.keys():
        return None
    min_items = int(node.get("minItems", 0))
    max_items = int(node["maxItems"]) if "maxItems" in node else None
    items = node.get("items")
    item_check = _compile(items, f"{where}/items") if items is not None else None
    leaf_types = _plain_leaf_types(items)

    def sized(count: int) -> str:
        if count < min_items:
            wanted = f"exactly {min_items}" if max_items == min_items else f"at least {min_items}"
        else:
            wanted = f"exactly {max_items}" if max_items == min_items else f"at most {max_items}"
        return f"must have {wanted} item{'s' if (max_items or min_items) != 1 else ''}, not {count}"

    def check_array(value: Any) -> None:
        if type(value) is not list:
            if strict:
                raise _Invalid(f"must be an array, not {kind_of(value)}")
            return
        count = len(value)
        if count < min_items or (max_items is not None and count > max_items):
            raise _Invalid(sized(count))
        if leaf_types is not None:
            # The common numeric row: one set lookup per item, no call.
            for item in value:
                if type(item) not in leaf_types:
                    break
            else:
                return
        if item_check is not None:
            index = 0
            try:
                for index, item in enumerate(value):  # noqa: B007 (index is read in the except clause)
                    item_check(item)
            except _Invalid as invalid:
                invalid.path.append(index)
                raise
    return check_array


def _plain_leaf_types(items: Any) -> Optional[frozenset]:
    """The accepted Python types when `items` checks nothing but a type (then a row needs no calls)."""
    if not isinstance(items, dict) or "type" not in items:
        return None
    if any(k in ENFORCED for k in items if k not in ("type", "nullable")):
        return None
    declared = items["type"]
    names = [declared] if isinstance(declared, str) else list(declared)
    if items.get("nullable") is True:
        names.append("null")
    if any(n not in _ACCEPTED for n in names):
        return None
    return frozenset(t for name in names for t in _ACCEPTED[name])


def _object_check(node: dict, where: str, strict: bool = False) -> Optional[Check]:
    """Required, extra and declared properties; with `strict` also the type."""
    properties = node.get("properties") or {}
    required = list(node.get("required") or [])
    additional = node.get("additionalProperties", True)
    if not properties and not required and additional in (True, {}):
        return None
    compiled = [(name, check) for name, sub in properties.items()
                if (check := _compile(sub, f"{where}/properties/{_escape(name)}")) is not None]
    extra_check: Optional[Check] = None
    forbid_extra = additional is False
    if isinstance(additional, dict) and additional:
        extra_check = _compile(additional, f"{where}/additionalProperties")
    known = frozenset(properties)
    listed = ", ".join(repr(name) for name in properties) or "none"

    def check_object(value: Any) -> None:
        if type(value) is not dict:
            if strict:
                raise _Invalid(f"must be an object, not {kind_of(value)}")
            return
        for name in required:
            if name not in value:
                invalid = _Invalid("is required but missing")
                invalid.path.append(name)
                raise invalid
        if forbid_extra or extra_check is not None:
            for name, sub in value.items():
                if name in known:
                    continue
                if forbid_extra:
                    invalid = _Invalid(f"is not an allowed property (allowed: {listed})")
                    invalid.path.append(name)
                    raise invalid
                try:
                    extra_check(sub)  # type: ignore[misc]
                except _Invalid as invalid:
                    invalid.path.append(name)
                    raise
        for name, check in compiled:
            if name in value:
                try:
                    check(value[name])
                except _Invalid as invalid:
                    invalid.path.append(name)
                    raise
    return check_object
