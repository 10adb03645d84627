"""What inference_schema's decorators declare about run(), read without calling the decorated function.

The server deserialises each parameter itself with the declared parameter type (so input the schema
rejects is a 400, not the 500 Azure gives when the decorator fails inside run()), then calls the
undecorated function. It also derives the swagger schema, tightened with what the parameter types
really enforce (`required`, `minItems`/`maxItems` for the dimensions `enforce_shape` checks).
inference_schema is imported only when the entry script has loaded it.
"""
from __future__ import annotations

import copy
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

REQUEST_HEADERS = "request_headers"
_DECORATORS_MODULE = "inference_schema.schema_decorators"


class InputRejected(ValueError):
    """A parameter's value is not what its input_schema declares (a client error)."""


@dataclass(frozen=True)
class ParamSchema:
    """One `@input_schema(name, type, convert_to_provided_type, optional)`."""

    name: str
    param_type: Any
    convert: bool = True
    optional: bool = False


@dataclass
class RunSchema:
    """run() as the server calls it: its body parameters, their declared types and the function to call."""

    parameters: list[inspect.Parameter]
    params: dict[str, ParamSchema] = field(default_factory=dict)
    target: Optional[Callable[..., Any]] = None
    decorated: bool = False
    wants_headers: bool = False
    #: Parameters whose default value their own @input_schema rejects: the client must send them.
    unusable_defaults: frozenset = frozenset()

    @property
    def required(self) -> list[str]:
        """Body keys the client must send (a request without one of them is a 400)."""
        return [p.name for p in self.parameters
                if p.default is inspect.Parameter.empty or p.name in self.unusable_defaults]


def is_schema_decorated(run: Callable[..., Any]) -> bool:
    """True when inference_schema's @input_schema or @output_schema decorates run()."""
    schema_util = sys.modules.get("inference_schema.schema_util")
    return bool(schema_util and schema_util.is_schema_decorated(run))


def analyse(run: Callable[..., Any]) -> RunSchema:
    """Read run()'s signature and its inference_schema decorators."""
    parameters = list(inspect.signature(run).parameters.values())
    wants_headers = any(p.name == REQUEST_HEADERS for p in parameters)
    body_params = [p for p in parameters if p.name != REQUEST_HEADERS]
    target, params = _unwrap(run)
    result = RunSchema(
        parameters=body_params,
        params=params,
        target=target,
        decorated=is_schema_decorated(run),
        wants_headers=wants_headers,
    )
    result.unusable_defaults = frozenset(
        p.name for p in body_params
        if p.default is not inspect.Parameter.empty and p.name in params and not _default_ok(result, p)
    )
    return result


def _default_ok(run_schema: RunSchema, parameter: inspect.Parameter) -> bool:
    """Whether the decorator would accept the parameter's default (Azure passes defaults through it)."""
    try:
        deserialise(run_schema, {parameter.name: copy.deepcopy(parameter.default)}, {parameter.name})
    except InputRejected:
        return False
    return True


def _unwrap(run: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, ParamSchema]]:
    """The function to call with deserialised values, and every @input_schema declaration.

    The function is the outermost layer that is not an inference_schema wrapper: the undecorated run()
    in the usual case, or another decorator (whose inner inference_schema layers then see values that
    are already of their type and leave them as they are).
    """
    params: dict[str, ParamSchema] = {}
    current: Any = run
    target: Optional[Callable[..., Any]] = None
    while hasattr(current, "_self_wrapper") and hasattr(current, "__wrapped__"):
        wrapper = current._self_wrapper
        if getattr(wrapper, "__module__", None) != _DECORATORS_MODULE:
            target = target or current
        else:
            cells = dict(zip(wrapper.__code__.co_freevars, (c.cell_contents for c in wrapper.__closure__ or ())))
            if "param_name" in cells and "param_type" in cells:
                name = cells["param_name"]
                params.setdefault(
                    name,
                    ParamSchema(name, cells["param_type"], bool(cells.get("convert_to_provided_type", True)),
                                bool(cells.get("optional", False))),
                )
        current = current.__wrapped__
    return target or current, params


def deserialise(schema: RunSchema, values: dict[str, Any], provided: set[str]) -> dict[str, Any]:
    """Convert each value to its declared type the way the decorator would; InputRejected when it cannot."""
    from inference_schema.schema_decorators import _deserialize_input_argument

    for name, declared in schema.params.items():
        if name not in values or not declared.convert:
            continue
        value = values[name]
        if declared.optional and not value:
            continue
        try:
            values[name] = _deserialize_input_argument(value, declared.param_type, name)
        except Exception as exc:  # inference_schema raises bare Exception, ValueError, TypeError, ...
            if name not in provided:
                raise RuntimeError(
                    f"run(): the default value of parameter {name!r} is rejected by its @input_schema: {exc}"
                ) from exc
            raise InputRejected(f"Invalid value for the {name!r} parameter: {exc}") from None
        _reject_missing_numbers(name, values[name])
    return values


def _reject_missing_numbers(name: str, value: Any) -> None:
    """A numeric numpy input holding NaN: in strict JSON that can only come from a `null` the schema does not allow."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, numpy.ndarray) or value.dtype.kind not in "fc":
        return
    if not numpy.isfinite(value).all():
        raise InputRejected(f"Invalid value for the {name!r} parameter: null where the schema declares a number")


# ---- swagger schemas -------------------------------------------------------------------------------


def input_schema_for(schema: RunSchema, run: Callable[..., Any]) -> dict[str, Any]:
    """The body's JSON schema: an object with one property per parameter, `required`, and an example."""
    declared: dict[str, Any] = {}
    if schema.decorated:
        from inference_schema.schema_util import get_input_schema

        declared = copy.deepcopy(get_input_schema(run))
    declared_props = declared.get("properties", {})
    declared_example = declared.get("example", {})
    properties: dict[str, Any] = {}
    example: dict[str, Any] = {}
    for parameter in schema.parameters:
        prop = copy.deepcopy(declared_props.get(parameter.name, {}))
        if parameter.name in schema.params:
            tighten(prop, schema.params[parameter.name].param_type)
        properties[parameter.name] = prop
        if parameter.name in schema.params and parameter.name in declared_example:
            example[parameter.name] = declared_example[parameter.name]
    body: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.required:
        body["required"] = schema.required
    if example:
        body["example"] = example
    return body


def output_schema_for(schema: RunSchema, run: Callable[..., Any]) -> dict[str, Any]:
    """run()'s declared output schema (with its example), or a free-form schema."""
    if not schema.decorated:
        return {}
    from inference_schema.schema_util import get_output_schema

    declared = copy.deepcopy(get_output_schema(run))
    return {} if declared == {"type": "object"} else declared


def supported_versions(schema: RunSchema, run: Callable[..., Any]) -> list[str]:
    """Swagger versions the declared types can be written in (inference_schema's answer)."""
    if not schema.decorated:
        return ["2.0", "3.0", "3.1"]
    from inference_schema.schema_util import get_supported_versions

    return list(get_supported_versions(run))


def tighten(node: dict[str, Any], param_type: Any) -> None:
    """Add to `node` the bounds `param_type.deserialize_input` enforces, so schema-valid input is accepted."""
    kind = type(param_type).__name__
    if kind == "NumpyParameterType":
        _tighten_numpy(node, param_type)
    elif kind == "StandardPythonParameterType":
        for key, nested in getattr(param_type, "sample_data_type_map", {}).items():
            child = node.get("properties", {}).get(key)
            if isinstance(child, dict):
                tighten(child, nested)
        nested_list = getattr(param_type, "sample_data_type_list", [])
        if nested_list and isinstance(node.get("items"), dict):
            tighten(node["items"], nested_list[0])


def _tighten_numpy(node: dict[str, Any], param_type: Any) -> None:
    sample = param_type.sample_input
    shape = tuple(sample.shape)
    current: Any = node
    if getattr(param_type, "enforce_shape", True):
        for dim, size in enumerate(shape):
            if not isinstance(current, dict) or current.get("type") != "array":
                break
            if dim == 0:
                if len(shape) >= 2:
                    # np.array([]) has one dimension, so enforce_shape rejects an empty outer array.
                    current["minItems"] = 1
            else:
                current["minItems"] = current["maxItems"] = int(size)
            current = current.get("items")
    else:
        for _ in shape:
            if not isinstance(current, dict) or current.get("type") != "array":
                break
            current = current.get("items")
    names = sample.dtype.names
    if names and isinstance(current, dict) and current.get("type") == "object":
        # Structured rows are read column by column: every field must be present.
        current["required"] = list(names)
