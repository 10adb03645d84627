"""The text a person reads when a check fails: what was expected, what was sent, what came back.

A report reads like a good pytest failure: the check and the problem first, then the minimal
failing request (pretty JSON, truncated so a 10,000-row payload still fits a screen), the status,
the headers that matter and the body received, the service's log tail and a `curl` line that
replays the request. When the service died (exit code, signal, OOM kill), the death comes first:
a dead server's "no answer" is its consequence, not the finding.
"""
from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import requests

from pytest_mldeploy.client import KEY_ENV_VAR, curl_for

if TYPE_CHECKING:
    from pytest_mldeploy.core.service import Service

LOG_TAIL_LINES = 20
MAX_BODY_LINES = 40
MAX_ITEMS = 12
MAX_STRING = 200
MAX_RAW_BYTES = 600

RELEVANT_HEADERS = (
    "content-type",
    "content-length",
    "x-ms-run-function-failed",
    "x-ms-run-fn-exec-ms",
    "x-ms-request-id",
    "x-request-id",
    "retry-after",
    "www-authenticate",
)


def _truncate_value(value: Any) -> Any:
    """A copy of a JSON value with long arrays, objects and strings cut, marking what was cut."""
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + f"... ({len(value) - MAX_STRING} more chars)"
    if isinstance(value, list):
        head = [_truncate_value(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            head.append(_Elided(len(value) - MAX_ITEMS, "items"))
        return head
    if isinstance(value, dict):
        items = list(value.items())
        out = {k: _truncate_value(v) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = _Elided(len(items) - MAX_ITEMS, "keys")
        return out
    return value


class _Elided:
    def __init__(self, count: int, what: str) -> None:
        self.text = f"... ({count} more {what})"


def _render(value: Any, indent: int = 0) -> str:
    """Pretty JSON that keeps arrays of scalars on one line, so a matrix reads as rows."""
    pad = "  " * indent
    if isinstance(value, _Elided):
        return value.text
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(v, (list, dict)) for v in value):
            return "[" + ", ".join(_render(v) for v in value) + "]"
        inner = ",\n".join("  " * (indent + 1) + _render(v, indent + 1) for v in value)
        return "[\n" + inner + "\n" + pad + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(
            "  " * (indent + 1) + json.dumps(k) + ": " + _render(v, indent + 1) for k, v in value.items()
        )
        return "{\n" + inner + "\n" + pad + "}"
    return json.dumps(value, allow_nan=True)


def pretty_json(value: Any) -> str:
    """`value` as indented JSON, truncated to a readable size (cut parts say how much was cut)."""
    lines = _render(_truncate_value(value)).splitlines()
    if len(lines) > MAX_BODY_LINES:
        lines = lines[:MAX_BODY_LINES] + [f"... ({len(lines) - MAX_BODY_LINES} more lines)"]
    return "\n".join(lines)


def pretty_body(body: Optional[bytes]) -> str:
    """A request or response body for a report: pretty JSON when it parses, else the raw bytes cut short."""
    if body is None:
        return "(no body)"
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not body:
        return "(empty body)"
    try:
        return pretty_json(json.loads(body))
    except (ValueError, RecursionError):
        pass
    shown = body[:MAX_RAW_BYTES]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = repr(shown)
    if len(body) > MAX_RAW_BYTES:
        text += f"... ({len(body) - MAX_RAW_BYTES} more bytes, {len(body)} in all)"
    return text


def describe_request(request: requests.PreparedRequest) -> str:
    """The method, URL and (pretty) body of a request."""
    body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
    content_type = request.headers.get("Content-Type")
    head = f"{request.method} {request.url}" + (f"  (Content-Type: {content_type})" if content_type else "")
    return head + "\n" + pretty_body(body)


def describe_response(response: requests.Response) -> str:
    """The status line, the headers worth reading and the (pretty) body of a response."""
    lines = [f"{response.status_code} {response.reason or ''}".rstrip()]
    for name in RELEVANT_HEADERS:
        if name in response.headers:
            lines.append(f"{name}: {response.headers[name]}")
    lines.append(pretty_body(response.content))
    return "\n".join(lines)


def service_log_tail(service: Optional["Service"], lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of the service log, or why they could not be read."""
    if service is None:
        return "(no service)"
    try:
        logs = service.logs(tail=lines)
    except Exception as exc:  # a dead container or process must not hide the check's own failure
        return f"(could not read the service log: {exc})"
    if isinstance(logs, bytes):
        logs = logs.decode("utf-8", "replace")
    if isinstance(logs, (list, tuple)):
        logs = "\n".join(str(line).rstrip("\n") for line in logs)
    text = "\n".join(str(logs).splitlines()[-lines:])
    return text or "(the service log is empty)"


#: The server logs a hang as `mldeploy-server: ERROR: hang: ...` followed by the indented stack, or
#: (a worker frozen holding the GIL) by faulthandler's dump of every thread.
_HANG_MARKER = "ERROR: hang: "
_HANG_BLOCK_LINE = re.compile(r"^(\s|Thread 0x|Current thread 0x|$)")
HANG_LOG_LINES = 400


def hang_stack(service: "Service", wait_s: float = 2.0) -> Optional[str]:
    """The stack of the last hung run() the service logged (its `hang:` line and the frames under it).

    Waits up to `wait_s` for it: a container's log can lag the answer a little.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            logs = service.logs(tail=HANG_LOG_LINES)
        except Exception:
            return None
        if isinstance(logs, bytes):
            logs = logs.decode("utf-8", "replace")
        lines = str(logs).splitlines()
        starts = [i for i, line in enumerate(lines) if _HANG_MARKER in line]
        if starts:
            block = [lines[starts[-1]]]
            for line in lines[starts[-1] + 1:]:
                if not _HANG_BLOCK_LINE.match(line):
                    break
                block.append(line)
            return "\n".join(block).rstrip()
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def response_message(response: requests.Response) -> str:
    """The `message` of a JSON error body, or "" when it has none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def is_scoring_timeout(response: requests.Response) -> bool:
    """True for the server's answer to a run() past SCORING_TIMEOUT_MS (500 `Scoring timeout after N ms`, as on Azure)."""
    return response.status_code == 500 and response_message(response).startswith("Scoring timeout after ")


def _section(title: str, text: str) -> str:
    return f"{title}:\n{textwrap.indent(text, '    ', lambda _line: True)}"


def failure_report(
    check: str,
    problem: str,
    expected: str,
    *,
    request: Optional[requests.PreparedRequest] = None,
    response: Optional[requests.Response] = None,
    error: Optional[BaseException] = None,
    service: Optional["Service"] = None,
    body_dir: Optional[Path] = None,
    request_title: str = "minimal failing request",
    notes: Optional[list[str]] = None,
) -> str:
    """The report of a failed check.

    `request` defaults to the one `response` (or a `requests` exception in `error`) carries;
    `service` provides the log tail; `body_dir` is where a large or binary body for the `curl`
    line is written.
    """
    if request is None and response is not None:
        request = response.request
    if request is None and error is not None:
        request = getattr(error, "request", None)
    sections = [f"[{check}] {problem}", f"expected: {expected}"]
    if request is not None:
        sections.append(_section(request_title, describe_request(request)))
    if response is not None:
        sections.append(_section("received", describe_response(response)))
    elif error is not None:
        sections.append(_section("received no response", f"{type(error).__name__}: {error}"))
    for note in notes or ():
        sections.append(note)
    if response is not None and service is not None and is_scoring_timeout(response):
        sections.append(_section("hang: stack of the run() thread at the scoring timeout (from the service log)",
                                 hang_stack(service) or "(not found in the service log)"))
    elif error is not None and service is not None:
        stack = hang_stack(service, wait_s=0)  # no answer: a worker frozen in run() was killed and replaced
        if stack:
            sections.append(_section("hang: the service logged a stuck run() (from the service log)", stack))
    if service is not None:
        sections.append(_section(f"service log (last {LOG_TAIL_LINES} lines)", service_log_tail(service)))
    if request is not None:
        sections.append(_reproduce(request, body_dir, "reproduce with"))
    return "\n\n".join(sections)


DIED_EXPECTED = "the service stays up and answers every request"


def service_death(service: Optional["Service"], error: Optional[BaseException] = None) -> Optional[str]:
    """Why the service is dead (exit code, signal, OOM with the limit), or None while it lives.

    Asked when a request got no answer; a timeout (the server is slow, not gone) is not asked about.
    """
    if service is None or isinstance(error, requests.Timeout):
        return None
    death = getattr(service, "death", None)
    return death() if callable(death) else None


def death_problem(reason: str, request: Optional[requests.PreparedRequest] = None, during: str = "") -> str:
    """`the service died while answering POST .../score: the server was killed by SIGKILL (exit code -9) ...`."""
    headline = reason.splitlines()[0] if reason.strip() else "it ended"
    if request is not None:
        during = f"while answering {request.method} {request.url}" + (f" ({during})" if during else "")
    return "the service died" + (f" {during}" if during else "") + f": {headline}"


def death_report(
    check: str,
    reason: str,
    *,
    service: Optional["Service"],
    request: Optional[requests.PreparedRequest] = None,
    error: Optional[BaseException] = None,
    body_dir: Optional[Path] = None,
    during: str = "",
    request_title: str = "the request it was answering",
    notes: Optional[list[str]] = None,
) -> str:
    """The report of a check during which the service died: the death, the log tail, then the request."""
    if request is None and error is not None:
        request = getattr(error, "request", None)
    sections = [f"[{check}] {death_problem(reason, request, during)}", f"expected: {DIED_EXPECTED}"]
    details = "\n".join(reason.splitlines()[1:]).strip()
    if details:
        sections.append(details)
    sections.append(_section(f"service log (last {LOG_TAIL_LINES} lines)", service_log_tail(service)))
    if request is not None:
        sections.append(_section(request_title, describe_request(request)))
    if error is not None:
        sections.append(_section("received no response", f"{type(error).__name__}: {error}"))
    for note in notes or ():
        sections.append(note)
    if request is not None:
        sections.append(_reproduce(request, body_dir, "reproduce with (against a service started again, e.g. `mldeploy serve`)"))
    return "\n\n".join(sections)


def _reproduce(request: Any, body_dir: Optional[Path], title: str) -> str:
    """The section with the curl line that sends `request` again (the key read from the environment)."""
    curl = curl_for(request, body_dir)
    if "Authorization" in request.headers:
        curl = f"export {KEY_ENV_VAR}=<the service key>\n" + curl
    return _section(title, curl)
