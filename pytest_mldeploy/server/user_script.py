"""Loads the entry script and turns an HTTP request into run()'s arguments, as Azure ML does.

Three ways to call run(), chosen from how it is declared (Azure's rules):
- `@rawhttp`: run(AMLRequest) for GET and POST;
- inference_schema decorators: the JSON body's keys become run()'s parameters; the body is first
  validated against the `ServiceInput` schema the service publishes (validation.py), then each
  parameter is deserialised with its declared type (a missing key, a schema violation or a value
  the type rejects is a 400);
- neither: run(body as str) for POST, run(JSON string of the query) for GET.
With no entry script at all (`MLDEPLOY_SCORER`), one of the server's built-in scorers (nocode/)
serves the model: it publishes its `ServiceInput`, and requests are validated against it the same way.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
from types import ModuleType
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qsl

from . import amlhttp, nocode, schema, shims, strict_json, validation
from .contract import APP_ROOT_VAR, ENTRY_SCRIPT_VAR, MODEL_DIR_VAR, SOURCE_DIRECTORY_VAR
from .schema import UNCHECKED
from .settings import Settings

log = logging.getLogger("mldeploy.server")

MODE_RAWHTTP = "rawhttp"
MODE_SCHEMA = "schema"
MODE_STRING = "string"
MODE_BUILTIN = "builtin"


class ScriptError(RuntimeError):
    """The entry script cannot be served as it is; the message says why and what to change."""


class BadRequest(Exception):
    """A client error for a /score request: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UserScript:
    """The loaded entry script: its init(), its run(), and how requests map onto run()."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.module: Optional[ModuleType] = None
        self.init_fn: Callable[[], Any] = lambda: None
        self.run_fn: Callable[..., Any] = lambda data: None
        self.mode = MODE_STRING
        self.first_param = "data"
        self.run_schema = schema.RunSchema(parameters=[])
        self._call: Callable[..., Any] = self.run_fn
        self._input_schema: dict[str, Any] = {}
        self._input_schema_error: Optional[BaseException] = None
        self._validator: Optional[validation.Validator] = None
        self.scorer: Optional[nocode.Scorer] = None

    # ---- start-up ------------------------------------------------------------------------------

    def load(self) -> None:
        """Prepare the process like an Azure ML image, import the script and check run()'s declaration."""
        settings = self.settings
        if settings.scorer_spec:
            self._load_builtin()
            return
        path = settings.entry_script
        if not path.is_file():
            raise ScriptError(
                f"entry script {path} does not exist ({ENTRY_SCRIPT_VAR} is relative to "
                f"{SOURCE_DIRECTORY_VAR}={settings.source_dir}); fix those settings"
            )
        os.chdir(settings.source_dir.parent)
        if str(settings.source_dir) not in sys.path:
            sys.path.insert(0, str(settings.source_dir))
        os.environ.setdefault(APP_ROOT_VAR, str(settings.app_root))
        if settings.model_dir:
            os.environ[MODEL_DIR_VAR] = settings.model_dir
        shims.install()

        spec = importlib.util.spec_from_file_location("entry_module", path)
        if spec is None or spec.loader is None:
            raise ScriptError(f"entry script {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules["entry_module"] = module
        try:
            spec.loader.exec_module(module)
        except (ImportError, AttributeError) as exc:
            _raise_with_known_fix(exc)
            raise
        self.module = module

        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScriptError(f"entry script {path} does not define a {name}() function; add one")
        driver = getattr(module, "driver_module", None)
        self.run_fn = driver.run if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)) else module.run
        self.init_fn = module.init
        self._analyse(path)

    def _analyse(self, path: Any) -> None:
        run = self.run_fn
        try:
            params = list(inspect.signature(run).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ScriptError(f"{path}: run() has no readable signature ({exc})") from None
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise ScriptError(f"{path}: run() cannot accept positional-only arguments, *args, or **kwargs")
        body_params = [p for p in params if p.name != schema.REQUEST_HEADERS]
        if not body_params:
            raise ScriptError(f"{path}: run() needs an argument for the input data (besides request_headers)")
        self.first_param = body_params[0].name
        rawhttp = bool(getattr(run, amlhttp.RAWHTTP_ATTR, False)) or bool(amlhttp._rawHttpRequested)
        decorated = schema.is_schema_decorated(run)
        if rawhttp and decorated:
            raise ScriptError(
                f"{path}: run() cannot be decorated with both @rawhttp and @input_schema/@output_schema; "
                f"remove one (with @rawhttp run() gets the whole request and parses it itself)"
            )
        self.run_schema = schema.analyse(run)
        if rawhttp:
            self.mode = MODE_RAWHTTP
            self._call = run
        elif decorated:
            self.mode = MODE_SCHEMA
            self._call = self.run_schema.target or run
        else:
            self.mode = MODE_STRING
            self._call = run
        if self.mode == MODE_SCHEMA:
            self._prepare_input_schema()

    def _prepare_input_schema(self) -> None:
        """Build the published ServiceInput once, and compile the validator from that same dict."""
        try:
            body = schema.input_schema_for(self.run_schema, self.run_fn)
        except Exception as exc:  # inference_schema cannot describe a sample: /swagger.json will say so
            log.warning("run()'s input schema cannot be generated (requests are not validated against it): %s", exc)
            self._input_schema_error = exc
            return
        body, dropped = validation.restrict(body)
        if dropped:
            log.warning("ServiceInput keywords left out of the swagger document because the server does not "
                        "enforce them: %s", ", ".join(dropped))
        self._input_schema = _mark_unchecked(body, self.run_schema)
        self._validator = validation.compile_schema(_enforced_part(body, self.run_schema))

    def _load_builtin(self) -> None:
        """No entry script: one of the server's own scorers serves the model (nocode/)."""
        settings = self.settings
        os.chdir(settings.app_root)
        os.environ.setdefault(APP_ROOT_VAR, str(settings.app_root))
        if settings.model_dir:
            os.environ[MODEL_DIR_VAR] = settings.model_dir
        try:
            self.scorer = nocode.load_scorer(settings.app_root, str(settings.scorer_spec))
        except nocode.ScorerError as exc:
            raise ScriptError(str(exc)) from None
        self.mode = MODE_BUILTIN
        self.first_param = "prepared"
        self.init_fn = self._init_builtin
        self._call = self.scorer.predict

    def _init_builtin(self) -> None:
        """Load the model, then publish and compile its input schema (the same validator as for scripts)."""
        scorer = self.scorer
        assert scorer is not None
        try:
            scorer.init()
        except nocode.ScorerError as exc:
            raise ScriptError(str(exc)) from None
        body, dropped = validation.restrict(scorer.input_schema())
        if dropped:
            log.warning("ServiceInput keywords left out because the server does not enforce them: %s", ", ".join(dropped))
        self._input_schema = body
        self._validator = validation.compile_schema(body)
        log.info("serving %s with the built-in scorer (no entry script)", scorer.describe())

    @property
    def label(self) -> str:
        """What is served, for start-up messages: the entry script, or the built-in scorer's description."""
        if self.settings.scorer_spec:
            return f"the model described by {self.settings.scorer_spec} (built-in scorer)"
        return str(self.settings.entry_script)

    def init(self) -> None:
        """Call the script's init() (a well-known import failure gets its fix in the message)."""
        try:
            self.init_fn()
        except (ImportError, AttributeError) as exc:
            _raise_with_known_fix(exc)
            raise

    # ---- per request ---------------------------------------------------------------------------

    def arguments(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        scheme: str = "http",
        client: Optional[str] = None,
    ) -> dict[str, Any]:
        """run()'s keyword arguments for this request; BadRequest for client errors.

        `headers` are the raw ASGI (name, value) byte pairs.
        """
        raw_headers = list(headers)
        if self.mode == MODE_RAWHTTP:
            request = amlhttp.AMLRequest(
                method, path, query, _decoded(raw_headers), body, scheme=scheme, remote_addr=client
            )
            kwargs: dict[str, Any] = {self.first_param: request}
        elif method == "GET":
            parsed = _query_values(query, strict=self.mode in (MODE_SCHEMA, MODE_BUILTIN))
            if self.mode == MODE_BUILTIN:
                kwargs = self._builtin_values(parsed)
            else:
                kwargs = self._schema_values(parsed) if self.mode == MODE_SCHEMA else {self.first_param: _dumps(parsed)}
        elif method == "POST":
            kwargs = self._post_values(raw_headers, body)
        else:
            raise BadRequest(405, "Method not allowed")
        if self.run_schema.wants_headers:
            kwargs[schema.REQUEST_HEADERS] = _header_dict(raw_headers)
        return kwargs

    def _post_values(self, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
        if self.mode == MODE_STRING:
            try:
                return {self.first_param: body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise BadRequest(400, f"Input cannot be decoded as UTF-8: {exc}") from None
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"").decode("latin-1")
        if not amlhttp.is_json_mimetype(content_type.split(";", 1)[0].strip().lower()):
            raise BadRequest(415, "Expects Content-Type to be application/json")
        try:
            parsed = strict_json.loads(body)
        except ValueError as exc:
            if body:
                raise BadRequest(400, f"POST body could not be decoded as JSON: {exc}") from None
            raise BadRequest(400, "POST body is empty. Expecting a JSON dictionary.") from None
        except RecursionError:
            raise BadRequest(400, "POST body could not be decoded as JSON: it is nested too deeply") from None
        if not isinstance(parsed, dict):
            raise BadRequest(400, "POST body should be a JSON dictionary.")
        if self.mode == MODE_BUILTIN:
            return self._builtin_values(parsed)
        return self._schema_values(parsed)

    def _builtin_values(self, body: dict[str, Any]) -> dict[str, Any]:
        """Other accepted formats rewritten, the published schema enforced, the model's input made."""
        scorer = self.scorer
        assert scorer is not None
        try:
            body = scorer.translate(body)
            violation = self._validator.first_violation(body) if self._validator is not None else None
            if violation is not None:
                raise BadRequest(400, _violation_message(violation))
            return {self.first_param: scorer.prepare(body)}
        except nocode.InputRejected as exc:
            raise BadRequest(400, str(exc)) from None

    def _schema_values(self, body: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        provided = set()
        for parameter in self.run_schema.parameters:
            if parameter.name in body:
                values[parameter.name] = body[parameter.name]
                provided.add(parameter.name)
            elif (parameter.default is not inspect.Parameter.empty
                  and parameter.name not in self.run_schema.unusable_defaults):
                values[parameter.name] = parameter.default
            else:
                raise BadRequest(400, f"A value is not provided for the {parameter.name!r} parameter.")
        if self._validator is not None:
            violation = self._validator.first_violation(body)
            if violation is not None:
                raise BadRequest(400, _violation_message(violation))
        try:
            return schema.deserialise(self.run_schema, values, provided)
        except schema.InputRejected as exc:
            raise BadRequest(400, str(exc)) from None

    def call(self, kwargs: dict[str, Any]) -> Any:
        """Call run() (undecorated when only inference_schema wraps it) with prepared arguments."""
        return self._call(**kwargs)

    # ---- swagger -------------------------------------------------------------------------------

    def input_schema(self) -> dict[str, Any]:
        """The request body's JSON schema (free-form unless run() declares one)."""
        if self.mode == MODE_BUILTIN:
            return self._input_schema
        if self.mode != MODE_SCHEMA:
            return {}
        if self._input_schema_error is not None:
            raise self._input_schema_error
        return self._input_schema

    def output_schema(self) -> dict[str, Any]:
        """The response body's JSON schema (free-form unless run() declares one)."""
        if self.mode == MODE_BUILTIN and self.scorer is not None:
            return self.scorer.output_schema()
        if self.mode != MODE_SCHEMA:
            return {}
        return schema.output_schema_for(self.run_schema, self.run_fn)

    def supported_versions(self) -> list[str]:
        """Swagger versions run()'s declared types fit."""
        if self.mode != MODE_SCHEMA:
            return ["2.0", "3.0", "3.1"]
        return schema.supported_versions(self.run_schema, self.run_fn)


def _query_values(query: bytes, strict: bool = True) -> dict[str, Any]:
    """Query arguments as run() inputs: each value parsed as JSON when it is, repeated keys as lists (Azure).

    The same JSON rules and nesting limit as a POST body (`strict`: no NaN/Infinity, which then stay
    strings); JSON nested past the limit is a 400, not a RecursionError blamed on the script.
    """
    grouped: dict[str, list[Any]] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        try:
            parsed: Any = strict_json.loads(value) if strict else json.loads(value)
        except ValueError:
            parsed = value
        except RecursionError:
            raise BadRequest(400, f"The query value of {key!r} could not be decoded as JSON: it is nested too deeply") from None
        grouped.setdefault(key, []).append(parsed)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except RecursionError:
        raise BadRequest(400, "The query could not be decoded as JSON: it is nested too deeply") from None


def _raw_params(run_schema: schema.RunSchema) -> list[str]:
    return [name for name, declared in run_schema.params.items() if not declared.convert]


def _mark_unchecked(body: dict[str, Any], run_schema: schema.RunSchema) -> dict[str, Any]:
    """The published body schema, with `x-mldeploy-unchecked: true` on each parameter the server passes on raw.

    The checks read the mark: a bad value there that run() tolerates is the script's choice, not a
    request the server wrongly accepted.
    """
    raw = _raw_params(run_schema)
    if not raw:
        return body
    properties = {name: ({**sub, UNCHECKED: True} if name in raw else sub) for name, sub in body.get("properties", {}).items()}
    return {**body, "properties": properties}


def _enforced_part(body: dict[str, Any], run_schema: schema.RunSchema) -> dict[str, Any]:
    """The published body schema, less the parameters declared with `convert_to_provided_type=False`.

    Those reach run() raw, as on Azure: run() owns their checking, and the robustness check holds it
    to the published schema (a script that trusts them fails it, as it would fail in production).
    """
    raw = _raw_params(run_schema)
    if not raw:
        return body
    properties = {name: ({} if name in raw else sub) for name, sub in body.get("properties", {}).items()}
    return {**body, "properties": properties}


def _violation_message(violation: validation.Violation) -> str:
    """`Invalid value for the 'data' parameter: /data/0 must have exactly 10 items, not 3`."""
    parts = violation.pointer.split("/")
    if len(parts) > 1 and parts[1]:
        name = parts[1].replace("~1", "/").replace("~0", "~")
        return f"Invalid value for the {name!r} parameter: {violation}"
    return f"Invalid request body: {violation}"


def _raise_with_known_fix(exc: BaseException) -> None:
    """Re-raise `exc` with its known fix in the message (chained to it), when it has one."""
    fixed = shims.with_known_fix(exc)
    if fixed is not None:
        raise fixed from exc


def _decoded(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(_title(name.decode("latin-1")), value.decode("latin-1")) for name, value in headers]


def _title(name: str) -> str:
    """`content-type` -> `Content-Type`, the spelling Flask/werkzeug give header names."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _header_dict(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers as Azure passes them to run(request_headers=...): a dict with werkzeug's name spelling."""
    result: dict[str, str] = {}
    for name, value in _decoded(headers):
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result
