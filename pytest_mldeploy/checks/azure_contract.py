"""Azure's inference server (`server: azureml`) judged by its own documented contract.

The checks hold our server to the strict contract it publishes. Azure's azmlinfsrv publishes a
looser `ServiceInput` (no `required`, no inner widths, no `minItems`) and answers 500 to input
inference_schema rejects inside run(), and 200 with NaN; those documented answers
(shared/reference/azureml-inference-server.md, docs/server.md) are warnings, not the deployment's failure.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Optional

from pytest_mldeploy.checks.published_contract import _definitions, _to_json_schema



AZURE_MESSAGES = ("An unexpected error occurred in scoring script. Check the logs for more info.",
                  "An unexpected internal error occurred. Check the logs for more info.")


def runs_azure_server(deployment: object) -> bool:
    """Whether the deployment under check runs Azure's azmlinfsrv (`server: azureml`)."""
    return getattr(deployment, "server", None) == "azureml"


def azure_bad_request_answer(status: int, body: bytes, rejected_by_schema: bool) -> Optional[str]:
    """Why this answer to a bad request is Azure's documented behaviour (a warning, not a failure), or None."""
    text = body.decode("utf-8", "replace")
    if status == 500 and any(message in text for message in AZURE_MESSAGES):
        return ("Azure's inference server (server: azureml) answers 500 to input inference_schema or its JSON "
                "reader rejects inside run(), as documented (docs/server.md#parity-with-azures-server, "
                "schema-400-vs-500/json-decode-400-vs-500); our server answers 4xx")
    if status < 400 and rejected_by_schema:
        return ("Azure's inference server (server: azureml) passes this schema-rejected value to the model, as "
                "documented (docs/server.md#parity-with-azures-server, schema-400-vs-200); our server answers 400")
    return None


def azure_nan_answer(status: int, body: bytes) -> Optional[str]:
    """Why a 200 with NaN/Infinity is Azure's documented behaviour (still worth fixing in run()), or None."""
    if status == 200 and re.search(rb"\bNaN\b|-?Infinity", body):
        return ("run() returned NaN/Infinity and Azure's inference server (server: azureml) sends it as a 200 with an "
                "invalid JSON body, as documented (nan-output-500-vs-200); clients' JSON parsers will reject it")
    return None



def tightened_input_schema(document: dict) -> Optional[dict]:
    """Azure's `ServiceInput` tightened from its own example as our server tightens it (JSON Schema), or None.

    Every property of the example is required; a `numpy.ndarray` property has at least one row and
    the example's width in every inner dimension; a `pandas.DataFrame` records list has at least one
    row with every column. Requests valid against this are ones inference_schema accepts, so the
    properties check draws only those from Azure's server.
    """
    definitions = _definitions(document)
    raw = definitions.get("ServiceInput")
    if not isinstance(raw, dict) or not isinstance(raw.get("properties"), dict):
        return None
    node = copy.deepcopy(raw)
    example = node.get("example") if isinstance(node.get("example"), dict) else {}
    node["required"] = sorted(name for name in node["properties"] if name in example) or node.get("required")
    if not node["required"]:
        node.pop("required")
    for name, sub in node["properties"].items():
        if not isinstance(sub, dict):
            continue
        if sub.get("format") == "numpy.ndarray":
            _fix_widths(sub, example.get(name))
        elif sub.get("format") == "pandas.DataFrame" and isinstance(sub.get("items"), dict):
            sub.setdefault("minItems", 1)
            columns = sub["items"].get("properties")
            if isinstance(columns, dict) and columns:
                sub["items"]["required"] = sorted(columns)
    return _to_json_schema(node, definitions, ("ServiceInput",))


def _fix_widths(node: dict, value: Any) -> None:
    node.setdefault("minItems", 1)
    depth_node, depth_value = node.get("items"), value[0] if isinstance(value, list) and value else None
    while isinstance(depth_node, dict) and depth_node.get("type") == "array" and isinstance(depth_value, list):
        depth_node["minItems"] = depth_node["maxItems"] = len(depth_value)
        depth_node, depth_value = depth_node.get("items"), depth_value[0] if depth_value else None
