"""The base of every `mldeploy.yaml` section model, and how their validation errors read.

Models forbid unknown keys; a pydantic `ValidationError` on one of them (or on an Azure file's
model, which follows the same rules) becomes one line per problem, `FILE: key.path: problem`, with
the key the user probably meant when a key is unknown, so a user sees what to fix and never a traceback.
"""
from __future__ import annotations

import difflib
from typing import Annotated, Any, Dict, List, Sequence, Set, Tuple, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from pytest_mldeploy.errors import ConfigError


class StrictModel(BaseModel):
    """Every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _scalar_to_str(value: Any) -> Any:
    """YAML reads `1.9.1` as text but `1`, `1.5` and `true` as numbers/booleans; tags and the like are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


#: A value the user means as text, whatever YAML made of it.
Text = Annotated[str, BeforeValidator(_scalar_to_str)]


def show_value(value: Any) -> str:
    """A value as a problem line shows it: short, and in YAML's words (`true`, `a mapping`, `nothing`)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "path_type": "expected a path",
}


def format_errors(exc: ValidationError, shown: str, model: type, prefix: Tuple[Any, ...] = ()) -> str:
    """One `FILE: key.path: problem` line per pydantic error of `model` read from the file `shown`."""
    lines: List[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind, ctx = err["type"], err.get("ctx") or {}
        if kind == "extra_forbidden":
            problem = "unknown key" + suggest(str(loc[-1]), keys_at(model, loc[:-1]))
        elif kind == "missing":
            problem = "required key is missing"
        elif kind in _EXPECTED:
            problem = f"{_EXPECTED[kind]}, got {show_value(err.get('input'))}"
        elif kind == "greater_than":
            problem = f"must be greater than {show_value(ctx.get('gt'))}, got {show_value(err.get('input'))}"
        elif kind == "greater_than_equal":
            problem = f"must be at least {show_value(ctx.get('ge'))}, got {show_value(err.get('input'))}"
        elif kind in ("less_than_equal", "less_than"):
            problem = f"must be at most {show_value(ctx.get('le', ctx.get('lt')))}, got {show_value(err.get('input'))}"
        elif kind == "value_error":
            problem = str(ctx.get("error") or err["msg"])
        else:
            msg = err["msg"]
            problem = msg[:1].lower() + msg[1:]
        path = _loc_text(prefix + loc)
        lines.append(f"{shown}: {path}: {problem}" if path else f"{shown}: {problem}")
    return "\n".join(dict.fromkeys(lines))


def check_keys(data: Dict[str, Any], model: type, shown: str, where: str, exclude: Set[str]) -> None:
    """Refuse keys of `data` (at `where` in `shown`) that `model` does not have, as `format_errors` words them."""
    known = [k for k in keys_at(model, ()) if k not in exclude]
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            "\n".join(f"{shown}: {where}.{k}: unknown key{suggest(str(k), known)}" for k in unknown)
        )


def suggest(key: str, known: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for a near miss, else the keys there are."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(sorted(known))})" if known else ""


def _loc_text(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def keys_at(model: Any, loc: Sequence[Any]) -> List[str]:
    """The keys the pydantic model at `loc` (inside `model`) accepts, aliases as written in the file."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_key = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in by_key:
                return []
            current = by_key[part].annotation
        elif get_origin(current) in (list, tuple, List) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) in (dict, Dict):
            current = get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [(f.alias or n) for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that holds the keys."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union:
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), members[0])
        else:
            return tp
