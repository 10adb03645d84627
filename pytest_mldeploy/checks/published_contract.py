"""What a service's swagger document promises, as the checks read it, and answers judged by it.

A service documents its contract in `GET /swagger.json`: `definitions.ServiceInput` (the request
body, with an `example`) and `definitions.ServiceOutput` (the 200 body). The helpers here turn
those Swagger 2.0 definitions into plain JSON Schemas (references inlined, Swagger-only keywords
dropped) and judge a response body by them, strictly: `NaN` and `Infinity` are not JSON. The
swagger check (`swagger_check.py`) holds the document itself to Swagger 2.0 and OpenAPI 3.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import jsonschema
import requests

from pytest_mldeploy.checks.failure_report import failure_report, is_scoring_timeout, response_message
from pytest_mldeploy.server.schema import UNCHECKED

if TYPE_CHECKING:
    from pytest_mldeploy.client import ScoringClient

#: Formats both jsonschema and hypothesis-jsonschema understand; Swagger's `double`, `int64` or
#: inference_schema's `numpy.ndarray` say nothing a JSON Schema validator can check.
_JSON_SCHEMA_FORMATS = {"date-time", "date", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}
MAX_ERROR_CHARS = 160
"""jsonschema quotes the offending value in its message; a 10,000-row body must not fill the summary."""
_SWAGGER_ONLY = {"example", "examples", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "deprecated"}


class NotStrictJSON(ValueError):
    """A body that only parses as JSON with Python's extensions (`NaN`, `Infinity`, `-Infinity`)."""


def _reject_constant(name: str) -> Any:
    raise NotStrictJSON(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def strict_json(body: bytes | str) -> Any:
    """Parse `body` as RFC 8259 JSON; raises `ValueError` (or `NotStrictJSON`) when it is not."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("the JSON nests too deeply to parse") from exc


# --------------------------------------------------------------------------------------------
# From Swagger definitions to JSON Schemas
# --------------------------------------------------------------------------------------------


def _definitions(document: dict) -> dict:
    if "definitions" in document:
        return document.get("definitions") or {}
    return (document.get("components") or {}).get("schemas") or {}


def _ref_name(ref: str) -> Optional[str]:
    for prefix in ("#/definitions/", "#/components/schemas/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return None


def _to_json_schema(node: Any, definitions: dict, seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = _ref_name(ref)
        if name is None or name not in definitions:
            raise ValueError(f"swagger.json: {ref} does not name a definition")
        if name in seen:
            raise ValueError(f"swagger.json: {ref} refers to itself; recursive schemas are not supported")
        return _to_json_schema(definitions[name], definitions, seen + (name,))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SWAGGER_ONLY or key.startswith("x-") or key == "nullable":
            continue
        if key == "format" and value not in _JSON_SCHEMA_FORMATS:
            continue
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {name: _to_json_schema(sub, definitions, seen) for name, sub in value.items()}
        else:
            out[key] = _to_json_schema(value, definitions, seen)
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def definition_schema(document: dict, name: str) -> Optional[dict]:
    """`definitions[name]` of a swagger (or OpenAPI 3) document as a self-contained JSON Schema, or None."""
    definitions = _definitions(document)
    if name not in definitions:
        return None
    return _to_json_schema(copy.deepcopy(definitions[name]), definitions, (name,))


def definition_example(document: dict, name: str) -> tuple[bool, Any]:
    """`(True, example)` when `definitions[name]` documents an example, else `(False, None)`."""
    definition = _definitions(document).get(name)
    if isinstance(definition, dict) and "example" in definition:
        return True, definition["example"]
    return False, None


def is_free_form(schema: Optional[dict]) -> bool:
    """True when a schema constrains nothing a request could get wrong (no schema decorators on run())."""
    if not schema:
        return True
    meaningful = {k for k in schema if k not in ("title", "description", "type", "additionalProperties")}
    if meaningful:
        return False
    return schema.get("type") in (None, "object", "string") and schema.get("additionalProperties", True) is not False


def input_schema(document: dict) -> Optional[dict]:
    """The JSON Schema a request body must match, or None for free-form input."""
    schema = definition_schema(document, "ServiceInput")
    return None if is_free_form(schema) else schema


def output_schema(document: dict) -> Optional[dict]:
    """The JSON Schema a 200 body must match, or None when the service does not declare one."""
    schema = definition_schema(document, "ServiceOutput")
    return None if is_free_form(schema) and not (schema or {}).get("type") else schema


def validator(schema: dict) -> jsonschema.protocols.Validator:
    """A validator for a converted Swagger schema (Swagger 2.0 speaks JSON Schema draft 4)."""
    return jsonschema.Draft4Validator(schema)


def schema_error(instance: Any, schema: Optional[dict]) -> Optional[str]:
    """Why `instance` does not match `schema` (the most relevant error, with its path), or None."""
    if schema is None:
        return None
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(instance))
    if error is None:
        return None
    message = error.message if len(error.message) <= MAX_ERROR_CHARS else error.message[: MAX_ERROR_CHARS - 3] + "..."
    return f"{json_path(error.absolute_path)}: {message}"


def json_path(path: Any) -> str:
    """`data[0][3]` for the path ('data', 0, 3); `the body` for the root."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the body"


def body_problem(response: requests.Response, output: Optional[dict]) -> Optional[str]:
    """Why a scoring answer is not a 200 with a strict-JSON body matching `output`, or None when it is."""
    if response.status_code != 200:
        if is_scoring_timeout(response):
            return f"hung: run() did not return within the scoring timeout (answered {response.status_code} {response_message(response)})"
        return f"answered {response.status_code}"
    try:
        body = strict_json(response.content)
    except ValueError as exc:
        return f"answered 200 with a body that is not valid JSON: {exc}"
    error = schema_error(body, output)
    if error:
        return f"answered 200 with a body that does not match ServiceOutput: {error}"
    return None


@dataclass
class Contract:
    """What a service's swagger document promises: the request and answer schemas and the example."""

    document: dict
    input: Optional[dict]
    output: Optional[dict]
    has_example: bool
    example: Any
    #: Top-level parameters the server passes to run() unchecked (convert_to_provided_type=False).
    unchecked: frozenset = frozenset()


def read_contract(client: "ScoringClient") -> Contract:
    """Fetch and convert the service's Swagger 2.0 document (a check reads `CheckContext.contract` instead).

    Raises `requests.RequestException` when it is not served and `ValueError` when it cannot be
    read as swagger (the swagger check says why in detail).
    """
    return contract_of(client.swagger_response(), client.swagger_url)


def contract_of(response: requests.Response, url: str) -> Contract:
    """The contract in an answer to `GET url` (the Swagger 2.0 document); raises as `read_contract` does."""
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"GET {url} is not a swagger object")
    has_example, example = definition_example(document, "ServiceInput")
    return Contract(document, input_schema(document), output_schema(document), has_example, example,
                    unchecked_parameters(document))


def unchecked_parameters(document: dict) -> frozenset:
    """The ServiceInput properties the server marks as passed to run() unchecked."""
    raw = ((document.get("definitions") or {}).get("ServiceInput") or {}).get("properties") or {}
    return frozenset(name for name, sub in raw.items() if isinstance(sub, dict) and sub.get(UNCHECKED) is True)


def expected_answer(output: Optional[dict]) -> str:
    return "200 with a strict-JSON body" + (" matching ServiceOutput" if output is not None else "")
