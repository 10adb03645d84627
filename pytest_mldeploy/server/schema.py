"""What inference_schema's decorators declare about run(), read without calling the decorated function.

The server deserialises each parameter itself with the declared parameter type (so input the schema
rejects is a 400, not the 500 Azure gives when the decorator fails inside run()), then calls the
undecorated function. It also derives the swagger schema, tightened with what the parameter types
and the code behind them need (`required`, non-empty batches, the sample's inner widths, narrow
integer ranges, pandas columns); the server publishes that schema and enforces it (validation.py).
inference_schema is imported only when the entry script has loaded it.
"""
from __future__ import annotations

import copy
import functools
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

REQUEST_HEADERS = "request_headers"
#: Marks, in the served ServiceInput, a parameter declared with convert_to_provided_type=False:
#: the server passes it to run() as sent, unchecked (as Azure's server does).
UNCHECKED = "x-mldeploy-unchecked"
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

    @functools.cached_property
    def deserialiser(self) -> Callable[[Any], Any]:
        """The value as the decorator would pass it to run() (made once: it is called per request)."""
        fast = _plain_numpy_deserialiser(self.param_type)
        if fast is not None:
            return fast
        from inference_schema.schema_decorators import _deserialize_input_argument

        return functools.partial(_deserialize_input_argument, param_type=self.param_type, param_name=self.name)


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
    for name, declared in schema.params.items():
        if name not in values or not declared.convert:
            continue
        value = values[name]
        if declared.optional and not value:
            continue
        try:
            values[name] = declared.deserialiser(value)
        except Exception as exc:  # inference_schema raises bare Exception, ValueError, TypeError, ...
            if name not in provided:
                raise RuntimeError(
                    f"run(): the default value of parameter {name!r} is rejected by its @input_schema: {exc}"
                ) from exc
            raise InputRejected(f"Invalid value for the {name!r} parameter: {exc}") from None
        _reject_missing_numbers(name, values[name])
    return values


def _plain_numpy_deserialiser(param_type: Any) -> Optional[Callable[[Any], Any]]:
    """`NumpyParameterType.deserialize_input` for a plain dtype, without its pass over every row.

    That pass only converts date and time strings (and the fields of structured dtypes); for any
    other dtype it returns each row unchanged, yet costs ~1.5 µs per row. Subclasses, structured,
    datetime64 and timedelta64 dtypes keep inference_schema's own code (None here).
    """
    module = sys.modules.get("inference_schema.parameter_types.numpy_parameter_type")
    if module is None or type(param_type) is not module.NumpyParameterType:
        return None
    numpy = sys.modules["numpy"]
    sample = param_type.sample_input
    dtype = sample.dtype
    if dtype.names is not None or dtype.kind in "mM":
        return None
    typed = param_type.enforce_column_type
    expected_shape = sample.shape if param_type.enforce_shape else None

    def deserialise_plain_numpy(value: Any) -> Any:
        # inference_schema's _deserialize_input_argument and NumpyParameterType.deserialize_input, same messages.
        if isinstance(value, numpy.ndarray):
            return value
        if not isinstance(value, list):
            raise ValueError("Invalid input format: expected an array of items.")
        array = numpy.array(value, dtype=dtype) if typed else numpy.array(value)
        if expected_shape is not None:
            shape = array.shape
            if len(shape) != len(expected_shape):
                raise ValueError(
                    "Invalid input array: an array with {0} dimensions is expected; "
                    "input has {1} [shape {2}]".format(len(expected_shape), len(shape), shape))
            for dim in range(1, len(expected_shape)):
                if shape[dim] != expected_shape[dim]:
                    raise ValueError(
                        "Invalid input array: array has size {0} on dimension #{1}, "
                        "while expected value is {2}".format(shape[dim], dim, expected_shape[dim]))
        return array

    return deserialise_plain_numpy


def _reject_missing_numbers(name: str, value: Any) -> None:
    """A numeric numpy input holding NaN or infinity: a number past the dtype's range (e.g. 1e39 as float32)."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, numpy.ndarray) or value.dtype.kind not in "fc":
        return
    if not numpy.isfinite(value).all():
        raise InputRejected(f"Invalid value for the {name!r} parameter: a number is beyond the range of {value.dtype}")


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
    """Add to `node` the bounds that `param_type` and the code behind it need, so schema-valid input is accepted.

    The server enforces the published schema (validation.py), so each bound added here is also a
    400 for input that would otherwise reach run() and fail there (or be silently truncated).
    """
    kind = type(param_type).__name__
    if kind == "NumpyParameterType":
        _tighten_numpy(node, param_type)
    elif kind == "PandasParameterType":
        _tighten_pandas(node, param_type)
    elif kind == "StandardPythonParameterType":
        for key, nested in getattr(param_type, "sample_data_type_map", {}).items():
            child = node.get("properties", {}).get(key)
            if isinstance(child, dict):
                tighten(child, nested)
        nested_list = getattr(param_type, "sample_data_type_list", [])
        if nested_list and isinstance(node.get("items"), dict):
            tighten(node["items"], nested_list[0])


def _tighten_numpy(node: dict[str, Any], param_type: Any) -> None:
    """Every dimension but the batch is the sample's; the batch is not empty; leaves fit the dtype.

    inference_schema checks the inner dimensions only with `enforce_shape`; without it a wrong width
    or an extra level of nesting reaches run() (a 500 on Azure), and ragged rows fail in np.array.
    JSON Schema cannot say "rows of equal length", so the sample's widths are published and enforced
    either way: the one shape every numpy model accepts.
    """
    sample = param_type.sample_input
    current: Any = node
    for dim, size in enumerate(sample.shape):
        if not isinstance(current, dict) or current.get("type") != "array":
            return
        if dim == 0:
            current["minItems"] = 1
        else:
            current["minItems"] = current["maxItems"] = int(size)
        current = current.get("items")
    if isinstance(current, dict):
        _tighten_dtype(current, sample.dtype)


def _tighten_dtype(node: dict[str, Any], dtype: Any) -> None:
    """Bounds a JSON value needs to convert to `dtype`: fields of structured rows, narrow integer ranges."""
    names = dtype.names
    if names:
        if node.get("type") == "object":
            # Structured rows are read column by column: every field must be present.
            node["required"] = list(names)
            for name in names:
                child = node.get("properties", {}).get(name)
                if isinstance(child, dict):
                    _tighten_dtype(child, dtype[name])
        return
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        current: Any = node
        for size in shape:
            if not isinstance(current, dict) or current.get("type") != "array":
                return
            current["minItems"] = current["maxItems"] = int(size)
            current = current.get("items")
        if isinstance(current, dict):
            _tighten_dtype(current, base)
        return
    _integer_range(node, dtype)


def _integer_range(node: dict[str, Any], dtype: Any) -> None:
    """`minimum`/`maximum` for integer dtypes narrower than 64 bits (numpy refuses values outside them).

    64-bit ranges are left out: published, they would make the properties check draw numbers near
    9.2e18 that overflow ordinary models; numpy refuses the rare larger literal with a 400 anyway.
    """
    if node.get("type") != "integer" or getattr(dtype, "kind", "") not in "iu" or dtype.itemsize >= 8:
        return
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return
    try:
        info = numpy.iinfo(dtype)
    except (TypeError, ValueError):  # an extension dtype numpy does not know (e.g. pandas' Int8)
        return
    node["minimum"], node["maximum"] = int(info.min), int(info.max)


def _tighten_pandas(node: dict[str, Any], param_type: Any) -> None:
    """A frame has at least one row; `records` rows carry exactly the sample's columns with `enforce_shape`; `values` rows the sample's width.

    Columns already are `required` (inference_schema) and typed without null, so a missing column or
    a null no longer reaches the model as NaN. Orients other than `records` and `values` are left as
    inference_schema describes them.
    """
    orient = getattr(param_type, "orient", "records")
    sample = param_type.sample_input
    if orient not in ("records", "values") or node.get("type") != "array":
        return
    node["minItems"] = 1
    rows = node.get("items")
    if not isinstance(rows, dict):
        return
    enforce_shape = getattr(param_type, "enforce_shape", True)
    if orient == "records" and rows.get("type") == "object":
        if enforce_shape:
            rows["additionalProperties"] = False
        if getattr(param_type, "enforce_column_type", True):
            for column, dtype in sample.dtypes.items():
                child = rows.get("properties", {}).get(str(column))
                if isinstance(child, dict):
                    _integer_range(child, dtype)
    elif orient == "values" and rows.get("type") == "array":
        # Ragged rows cannot make a frame: the sample's width, as for numpy.
        rows["minItems"] = rows["maxItems"] = int(sample.shape[1])
