"""The raw ASGI application: routes, Azure's headers and error bodies, auth, CORS, body limit, readiness.

Kept free of frameworks on purpose: per request it only scans the headers once, reads the body,
prepares run()'s arguments, calls run() (on the run thread, see runner.py) and writes JSON.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
import time
import traceback
from typing import Awaitable, Callable, Optional

from pytest_mldeploy._version import __version__

from . import admission, amlhttp, swagger
from .contract import HEALTH_ROUTE, MAX_BODY_BYTES_VAR, SCORE_ROUTE, SWAGGER_ROUTE
from .readiness import SharedReadiness
from .request_head import RequestHead, new_request_id
from .runner import RunThread, ScoringInterrupted, ScoringTimeout, WorkerStuck
from .settings import Settings
from .user_script import BadRequest, ScriptError, UserScript

log = logging.getLogger("mldeploy.server")

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

SERVER_VERSION = f"pytest-mldeploy/{__version__}"
ID_LIMIT = 100
INIT_FAILED_EXIT_CODE = 3
#: A worker whose run thread is stuck exits with this code; the supervisor then starts a new one.
STUCK_EXIT_CODE = 75
#: How long a stuck worker keeps answering 503 before it exits.
STUCK_EXIT_DELAY_S = 1.0
#: How often a worker's event loop records that it runs (see SharedReadiness).
HEARTBEAT_INTERVAL_S = 1.0

MSG_SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
MSG_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
MSG_NOT_READY = "The service is starting: init() has not finished yet. Retry shortly."
MSG_UNAUTHORIZED = "Unauthorized: send the header 'Authorization: Bearer <key>' with one of the service's keys."
MSG_OUTPUT_NOT_JSON = ("The scoring script's output cannot be sent as JSON: run() returned {kind} ({reason}). "
                       "Check the logs for more info.")

#: run()'s output as strict JSON; made once (json.dumps with allow_nan=False builds an encoder per call).
_STRICT_ENCODER = json.JSONEncoder(allow_nan=False)

_JSON = (b"content-type", b"application/json")
_HTML = (b"content-type", b"text/html; charset=utf-8")
_SERVER = (b"x-ms-server-version", SERVER_VERSION.encode())
_FAILED = {False: (b"x-ms-run-function-failed", b"False"), True: (b"x-ms-run-function-failed", b"True")}
_CLOSE = (b"connection", b"close")
_ALLOWED_METHODS = b"GET, HEAD, POST, OPTIONS"
_ALLOW_SCORE = (b"allow", b"GET, POST, OPTIONS")
_ALLOW_HEALTH = (b"allow", b"GET, HEAD, OPTIONS")
_ALLOW_SWAGGER = (b"allow", b"GET, OPTIONS")


class ScoringApp:
    """The ASGI app for one entry script. Lifespan start-up loads the script and runs init() on a thread."""

    def __init__(self, settings: Settings, public_url: Optional[str] = None,
                 readiness: Optional[SharedReadiness] = None, worker_index: int = 0,
                 restart_reason: Optional[str] = None) -> None:
        self.settings = settings
        #: Why GET / answers 503 although init() is done (a stuck run thread); None while healthy.
        self.unhealthy: Optional[str] = None
        #: Why this worker was started again (shown in the 503 until its init() is done).
        self._restart_reason = restart_reason
        self._readiness = readiness
        self._worker_index = worker_index
        self._initialised = False
        self.public_url = public_url or f"http://{settings.host}:{settings.port}"
        self.script = UserScript(settings)
        self.ready = False
        self.runner: Optional[RunThread] = None
        self._keys = [key.encode() for key in settings.auth_keys]
        self._cors_any = "*" in settings.cors_origins
        self._cors = {origin.encode() for origin in settings.cors_origins}
        self._swagger_cache: dict[str, bytes] = {}
        self._timeout_ms = settings.timeout_ms
        self._gate = admission.gate_for(settings)
        if self._gate is not None:
            self._gate.reset(worker_index)

    # ---- lifespan ------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Start the run thread and, on another thread, load the script and call init()."""
        if not self.settings.run_inline:
            self.runner = RunThread(stuck_grace_s=self.settings.stuck_grace_ms / 1000, on_stuck=self._stuck)
        if self._readiness is not None:
            self._heartbeat()
        threading.Thread(target=self._initialise, name="mldeploy-init", daemon=True).start()

    def _initialise(self) -> None:
        started = time.perf_counter()
        try:
            self.script.load()
            self.script.init()
        except ScriptError as exc:
            self._fail(f"cannot serve {self.script.label}: {exc}")
        except BaseException:
            self._fail(f"init() of {self.script.label} failed (or importing it did):\n{traceback.format_exc()}")
        else:
            elapsed = (time.perf_counter() - started) * 1000
            self._initialised = True
            if self._readiness is not None:
                self._readiness.mark(self._worker_index)
            self._refresh_ready()
            log.info("init() done in %.0f ms; ready on %s (run() %s)", elapsed, self.public_url,
                     "called inline" if self.settings.run_inline else "on the run thread")

    def _refresh_ready(self) -> bool:
        """Ready once this worker's init() is done and, with several workers, every worker's is."""
        if not self.ready and self._initialised:
            self.ready = self._readiness is None or self._readiness.all_ready()
        return self.ready

    def _fail(self, message: str) -> None:
        log.error("%s\nexiting with code %d", message.rstrip(), INIT_FAILED_EXIT_CODE)
        for handler in logging.getLogger().handlers + log.handlers:
            handler.flush()
        os._exit(INIT_FAILED_EXIT_CODE)

    # ---- routing -------------------------------------------------------------------------------

    async def _http(self, scope: dict, receive: Receive, send: Send) -> None:
        request = RequestHead(scope["headers"])
        base = self._base_headers(request)
        if base is None:
            await self._send(send, 431, _message(
                f"x-request-id, x-ms-request-id and x-ms-client-request-id must not exceed {ID_LIMIT} characters"),
                [_JSON, _SERVER])
            return
        path, method = scope["path"], scope["method"]
        if path == SCORE_ROUTE:
            gate = self._gate
            if gate is None:
                await self._score_route(scope, receive, send, request, base, method)
            elif not gate.enter(self._worker_index):
                await self._send(send, 429, _message(gate.message), base + [_JSON, _FAILED[False]])
            else:
                try:
                    await self._score_route(scope, receive, send, request, base, method)
                finally:
                    gate.leave(self._worker_index)
        elif path == HEALTH_ROUTE:
            if method in ("GET", "HEAD"):
                if self.unhealthy is not None:
                    await self._send(send, 503, _message(self.unhealthy), base + [_JSON])
                elif self.ready or self._refresh_ready():
                    await self._send(send, 200, b"" if method == "HEAD" else b"Healthy", base + [_HTML])
                else:
                    await self._send(send, 503, _message(self._not_ready_message()), base + [_JSON])
            elif method == "OPTIONS":
                await self._options(send, request, base)
            else:
                await self._method_not_allowed(send, base, _ALLOW_HEALTH)
        elif path == SWAGGER_ROUTE:
            # Open without a key, as on Azure: the document describes the API, it grants nothing.
            if method == "OPTIONS":
                await self._options(send, request, base)
            elif method != "GET":
                await self._method_not_allowed(send, base, _ALLOW_SWAGGER)
            elif not (self.ready or self._refresh_ready()):
                await self._send(send, 503, _message(self._not_ready_message()), base + [_JSON])
            else:
                await self._swagger(scope, send, base)
        else:
            await self._send(send, 404, _message(MSG_NOT_FOUND), base + [_JSON])

    async def _score_route(self, scope: dict, receive: Receive, send: Send, request: RequestHead,
                           base: list, method: str) -> None:
        if method == "OPTIONS":
            await self._options(send, request, base)
            return
        if method not in ("GET", "POST"):
            await self._method_not_allowed(send, base + [_FAILED[False]], _ALLOW_SCORE)
            return
        if self.unhealthy is not None:
            await self._send(send, 503, _message(self.unhealthy), base + [_JSON, _FAILED[False]])
            return
        if not (self.ready or self._refresh_ready()):
            await self._send(send, 503, _message(self._not_ready_message()), base + [_JSON, _FAILED[False]])
            return
        if not self._authorised(request):
            await self._unauthorised(send, base)
            return
        body = await self._read_body(receive, request)
        if body is None:
            await self._send(send, 413, _message(
                f"Request body is larger than the service's limit of {self.settings.max_body_bytes} bytes "
                f"({MAX_BODY_BYTES_VAR})"), base + [_JSON, _FAILED[False], _CLOSE])
            return
        await self._score(scope, send, base, method, body)

    # ---- /score --------------------------------------------------------------------------------

    async def _score(self, scope: dict, send: Send, base: list, method: str, body: bytes) -> None:
        script = self.script
        try:
            kwargs = script.arguments(method, scope["path"], scope["query_string"], scope["headers"], body,
                                      scope.get("scheme", "http"), _client(scope))
        except BadRequest as exc:
            await self._send(send, exc.status, _message(exc.message), base + [_JSON, _FAILED[False]])
            return
        except Exception:
            log.error("preparing run()'s arguments failed:\n%s", traceback.format_exc())
            await self._send(send, 500, _message(MSG_SCRIPT_ERROR), base + [_JSON, _FAILED[True]])
            return

        try:
            if self.runner is None:
                started = time.perf_counter()
                output = script.call(kwargs)
                elapsed_ms = (time.perf_counter() - started) * 1000
            else:
                output, elapsed_ms = await self.runner.call(lambda: script.call(kwargs), self._timeout_ms)
        except (ScoringTimeout, ScoringInterrupted) as exc:
            self._log_timeout(getattr(exc, "stack", ""))
            await self._send(send, 500, _message(f"Scoring timeout after {self._timeout_ms} ms"),
                             base + [_JSON, _FAILED[True]])
            return
        except WorkerStuck:
            await self._send(send, 503, _message(self.unhealthy or MSG_NOT_READY), base + [_JSON, _FAILED[False]])
            return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error("run() raised:\n%s", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            await self._send(send, 500, _message(MSG_SCRIPT_ERROR), base + [_JSON, _FAILED[True]])
            return

        exec_ms = (b"x-ms-run-fn-exec-ms", f"{elapsed_ms:.3f}".encode())
        if isinstance(output, amlhttp.AMLResponse):
            failed = output.run_function_failed or output.status_code >= 500
            headers = base + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in output.headers]
            await self._send(send, output.status_code, output.body, headers + [_FAILED[failed], exec_ms])
            return
        try:
            payload = _STRICT_ENCODER.encode(output).encode("utf-8")
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            await self._output_not_json(send, base + [exec_ms], output, exc)
            return
        await self._send(send, 200, payload, base + [_JSON, _FAILED[False], exec_ms])

    async def _read_body(self, receive: Receive, request: RequestHead) -> Optional[bytes]:
        """The whole body, or None past the limit (refused on Content-Length before reading any of it)."""
        limit = self.settings.max_body_bytes
        if request.content_length is not None:
            try:
                if int(request.content_length) > limit:
                    return None
            except ValueError:
                pass
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            return body if len(body) <= limit else None
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # ---- swagger, auth, CORS -------------------------------------------------------------------

    async def _swagger(self, scope: dict, send: Send, base: list) -> None:
        version = "2"
        for key, value in _query_pairs(scope["query_string"]):
            if key == "version":
                version = value
        version = {"2.0": "2", "3.0": "3", "3.0.3": "3"}.get(version, version)
        if version not in self._swagger_cache:
            try:
                document = swagger.build(
                    version,
                    title=self.settings.service_name,
                    service_version=self.settings.service_version,
                    prefix=self.settings.path_prefix,
                    input_schema=self.script.input_schema(),
                    output_schema=self.script.output_schema(),
                    supported=self.script.supported_versions(),
                )
            except swagger.SwaggerVersionError as exc:
                await self._send(send, 404, _message(str(exc)), base + [_JSON])
                return
            self._swagger_cache[version] = json.dumps(document, indent=2).encode("utf-8")
        await self._send(send, 200, self._swagger_cache[version], base + [_JSON])

    def _authorised(self, request: RequestHead) -> bool:
        """`Authorization: Bearer <key>` with one of the keys; the scheme is case-insensitive (RFC 9110)."""
        if not self._keys:
            return True
        scheme, _, token = (request.authorization or b"").strip().partition(b" ")
        token = token.strip()
        matched = False
        for key in self._keys:  # every key is compared, so the time taken does not tell which one matched
            matched |= hmac.compare_digest(token, key)
        return matched and scheme.lower() == b"bearer"

    async def _unauthorised(self, send: Send, base: list) -> None:
        await self._send(send, 401, _message(MSG_UNAUTHORIZED), base + [_JSON, (b"www-authenticate", b"Bearer")])

    async def _options(self, send: Send, request: RequestHead, base: list) -> None:
        headers = base + [_HTML, _FAILED[False]]
        if request.preflight_method is not None and self._origin_allowed(request.origin):
            headers.append((b"access-control-allow-methods", _ALLOWED_METHODS))
            if request.preflight_headers:
                headers.append((b"access-control-allow-headers", request.preflight_headers))
            headers.append((b"access-control-max-age", b"600"))
        await self._send(send, 200, b"", headers)

    def _origin_allowed(self, origin: Optional[bytes]) -> bool:
        return origin is not None and (self._cors_any or origin in self._cors)

    # ---- protocol details, output errors, stuck run thread --------------------------------------

    async def _method_not_allowed(self, send: Send, headers: list, allow: tuple[bytes, bytes]) -> None:
        await self._send(send, 405, _message("Method not allowed"), headers + [_JSON, allow])

    async def _output_not_json(self, send: Send, headers: list, output: object, exc: BaseException) -> None:
        """500 for a run() result JSON cannot carry (NaN, Infinity, numpy arrays, bytes): the script's fault."""
        reason = f"{type(exc).__name__}: {exc}"
        kind = f"a {type(output).__name__}"
        log.error("run() returned a value that is not strict JSON (%s); type %s", reason, type(output).__name__)
        message = MSG_OUTPUT_NOT_JSON.format(kind=kind, reason=reason[:200])
        await self._send(send, 500, _message(message), headers + [_JSON, _FAILED[True]])

    def _not_ready_message(self) -> str:
        if self._restart_reason:
            return f"The service is restarting ({self._restart_reason}): init() has not finished yet. Retry shortly."
        return MSG_NOT_READY

    def _log_timeout(self, stack: str) -> None:
        """Log the timeout with where run() was at the deadline: the stack a hang report shows."""
        log.error("hang: run() did not return within SCORING_TIMEOUT_MS=%d; the run() thread was at:\n%s",
                  self._timeout_ms, stack.rstrip() or "  (run() had not started: the calls before it took the time)")

    def _stuck(self, stack: str) -> None:
        """The run thread ignored its interruption: answer 503 on every route, log the stack, then exit.

        The worker cannot get the thread back (code outside Python does not see the interruption),
        so it exits with STUCK_EXIT_CODE and the supervisor starts a new one, as gunicorn replaces a
        worker past its timeout.
        """
        grace_ms = self.settings.stuck_grace_ms
        self.unhealthy = (f"Unhealthy: run() is stuck: still running {grace_ms} ms after SCORING_TIMEOUT_MS="
                          f"{self._timeout_ms} (blocked outside Python, so it cannot be interrupted); "
                          f"this worker is being replaced")
        log.error("hang: run() is stuck %d ms after SCORING_TIMEOUT_MS=%d and cannot be interrupted; "
                  "GET / answers 503 and worker %d (pid %d) exits with code %d to be replaced. "
                  "Stack of the stuck run() thread:\n%s", grace_ms, self._timeout_ms, self._worker_index,
                  os.getpid(), STUCK_EXIT_CODE, stack.rstrip() or "  (no Python frame)")
        asyncio.get_running_loop().call_later(STUCK_EXIT_DELAY_S, self._exit_stuck)

    def _heartbeat(self) -> None:
        """Beat once a second while the event loop runs; a frozen loop (run() holding the GIL in C) stops it."""
        assert self._readiness is not None
        self._readiness.beat(self._worker_index)
        asyncio.get_running_loop().call_later(HEARTBEAT_INTERVAL_S, self._heartbeat)

    def _exit_stuck(self) -> None:
        for handler in logging.getLogger().handlers + log.handlers:
            handler.flush()
        os._exit(STUCK_EXIT_CODE)

    # ---- responses -----------------------------------------------------------------------------

    def _base_headers(self, request: RequestHead) -> Optional[list[tuple[bytes, bytes]]]:
        """Azure's request-id headers (None when an id is too long: 431), server version, CORS."""
        request_id = request.request_id or new_request_id()
        legacy, client = request.legacy_id, request.client_id
        if legacy:
            client = client or legacy
        else:
            legacy = client or request_id
        if len(request_id) > ID_LIMIT or len(legacy) > ID_LIMIT or len(client) > ID_LIMIT:
            return None
        headers = [(b"x-ms-request-id", legacy), (b"x-request-id", request_id), _SERVER]
        if client:
            headers.append((b"x-ms-client-request-id", client))
        if request.trace_id is not None:
            headers.append((b"traceid", request.trace_id))
        if self._cors and request.origin is not None and self._origin_allowed(request.origin):
            headers.append((b"access-control-allow-origin", b"*" if self._cors_any else request.origin))
            headers.append((b"vary", b"Origin"))
        return headers

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode("utf-8")


def _client(scope: dict) -> Optional[str]:
    client = scope.get("client")
    return client[0] if client else None


def _query_pairs(query: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query.decode("latin-1"), keep_blank_values=True)
