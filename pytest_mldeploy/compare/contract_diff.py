"""The two served Swagger documents compared as an API: what would break a client of the baseline.

The input (`definitions.ServiceInput`) and the output (`definitions.ServiceOutput`) are turned
into plain JSON Schemas (`checks/schema.py`) and walked side by side. Breaking:
- an input parameter removed (reported as *renamed* when an added one has the same schema),
  or a new required one;
- an input narrowed: a type that accepts fewer kinds of value (number -> integer), a larger
  `minimum`/`minItems`/`minLength`, a smaller `maximum`/`maxItems`/`maxLength`, fewer `enum`
  values, or `additionalProperties` closed;
- the output's type (at any depth) changed, or an output property removed.
Additions (new optional parameters, widened bounds, new output properties) are listed, never failed;
so is a schema where the baseline declared none (its `run()` took any JSON and parsed it itself):
the answers gate, which sends the baseline's requests to both, shows what the schema refuses.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from pytest_mldeploy.checks.published_contract import input_schema, output_schema

#: Bounds where the candidate may not ask for more (larger lower bounds narrow) ...
_LOWER = ("minimum", "exclusiveMinimum", "minItems", "minLength", "minProperties")
#: ... or for less (smaller upper bounds narrow).
_UPPER = ("maximum", "exclusiveMaximum", "maxItems", "maxLength", "maxProperties")
#: A `number` accepts every integer too: integer -> number widens, number -> integer narrows.
_ACCEPTS = {"number": {"integer", "number"}}


@dataclass
class ContractDiff:
    """Breaking changes and additions, each one line naming where (`input.data[]`) and what."""

    breaking: list[str] = field(default_factory=list)
    additions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.breaking

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "breaking": self.breaking, "additions": self.additions, "notes": self.notes}


def _types(schema: dict) -> Optional[set[str]]:
    kind = schema.get("type")
    if kind is None:
        return None
    kinds = {kind} if isinstance(kind, str) else set(kind)
    return set().union(*(_ACCEPTS.get(k, {k}) for k in kinds))


def _shown(kind: Any) -> str:
    return kind if isinstance(kind, str) else "/".join(kind) if isinstance(kind, list) else "any"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def diff_input(old: Optional[dict], new: Optional[dict], where: str, out: ContractDiff) -> None:
    """Record how `new` accepts less (breaking) or more (addition) than `old` at `where`."""
    if not old and not new:
        return
    if not old:
        out.additions.append(f"{where}: the candidate declares a schema where the baseline accepted anything "
                             "(a request the baseline answered and the candidate refuses shows under answers)")
        return
    if not new:
        out.additions.append(f"{where}: the candidate accepts anything (no schema) where the baseline declared one")
        return
    old_types, new_types = _types(old), _types(new)
    if old_types is not None and (new_types is not None and not old_types <= new_types):
        out.breaking.append(f"{where}: type narrowed from {_shown(old.get('type'))} to {_shown(new.get('type'))}")
        return
    if old_types is not None and new_types is not None and new_types - old_types:
        out.additions.append(f"{where}: type widened from {_shown(old.get('type'))} to {_shown(new.get('type'))}")
    _bounds(old, new, where, out)
    _properties(old, new, where, out)
    if isinstance(old.get("items"), dict) or isinstance(new.get("items"), dict):
        diff_input(old.get("items") or {}, new.get("items") or {}, f"{where}[]", out)


def _bounds(old: dict, new: dict, where: str, out: ContractDiff) -> None:
    for key in _LOWER + _UPPER:
        a, b = old.get(key), new.get(key)
        if isinstance(a, bool) or isinstance(b, bool) or a == b:
            continue
        lower = key in _LOWER
        if a is None:
            out.breaking.append(f"{where}: new bound {key} {b}")
        elif b is None:
            out.additions.append(f"{where}: bound {key} {a} removed")
        elif (b > a) if lower else (b < a):
            out.breaking.append(f"{where}: {key} narrowed from {a} to {b}")
        else:
            out.additions.append(f"{where}: {key} widened from {a} to {b}")
    if "enum" in old or "enum" in new:
        a, b = old.get("enum"), new.get("enum")
        if b is not None and (a is None or any(v not in b for v in a)):
            lost = [v for v in (a or []) if v not in b]
            out.breaking.append(f"{where}: enum narrowed" + (f" (no longer {lost})" if lost else f" to {b}"))
        elif a is not None and (b is None or any(v not in a for v in b)):
            out.additions.append(f"{where}: enum widened")
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties", True) is False:
        out.breaking.append(f"{where}: additionalProperties closed (other keys are now refused)")


def _properties(old: dict, new: dict, where: str, out: ContractDiff) -> None:
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    old_required, new_required = set(old.get("required") or ()), set(new.get("required") or ())
    removed = [name for name in old_props if name not in new_props]
    added = [name for name in new_props if name not in old_props]
    for name in removed:
        twin = next((a for a in added if _same(old_props[name], new_props[a])), None)
        if twin is not None:
            added.remove(twin)
            out.breaking.append(f"{where}.{name}: parameter renamed to {twin!r}")
        else:
            out.breaking.append(f"{where}.{name}: parameter removed")
    for name in added:
        if name in new_required:
            out.breaking.append(f"{where}.{name}: new required parameter")
        else:
            out.additions.append(f"{where}.{name}: new optional parameter")
    for name in old_props:
        if name in new_props:
            if name in new_required and name not in old_required:
                out.breaking.append(f"{where}.{name}: now required")
            diff_input(old_props[name], new_props[name], f"{where}.{name}", out)


def diff_output(old: Optional[dict], new: Optional[dict], where: str, out: ContractDiff) -> None:
    """Record a changed output type (breaking), removed properties (breaking) and added ones."""
    if not old or not new:
        if old and not new:
            out.notes.append(f"{where}: the candidate no longer documents its output")
        elif new and not old:
            out.additions.append(f"{where}: the candidate documents its output")
        return
    if old.get("type") != new.get("type") and old.get("type") is not None:
        out.breaking.append(f"{where}: output type changed from {_shown(old.get('type'))} to {_shown(new.get('type'))}")
        return
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    for name in old_props:
        if name not in new_props:
            out.breaking.append(f"{where}.{name}: output property removed")
        else:
            diff_output(old_props[name], new_props[name], f"{where}.{name}", out)
    out.additions += [f"{where}.{name}: new output property" for name in new_props if name not in old_props]
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        diff_output(old["items"], new["items"], f"{where}[]", out)


def diff_contracts(baseline: Optional[dict], candidate: Optional[dict]) -> ContractDiff:
    """Compare two Swagger 2.0 (or OpenAPI 3) documents; None stands for a side that serves none."""
    out = ContractDiff()
    if baseline is None or candidate is None:
        missing = "baseline" if baseline is None else "candidate"
        if candidate is None and baseline is not None:
            out.breaking.append("the candidate serves no swagger document; the baseline does")
        else:
            out.notes.append(f"the {missing} serves no swagger document: the contract cannot be compared")
        return out
    diff_input(input_schema(baseline), input_schema(candidate), "input", out)  # None: free-form input
    diff_output(output_schema(baseline), output_schema(candidate), "output", out)
    return out
