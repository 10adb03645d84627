"""What the profiler sends: the requests `profile.requests` names, or the swagger example without one.

`profile.requests` may name
- a file with one JSON request body per line (Azure ML's profiling dataset format; blank lines
  are skipped), each sent as `application/json`;
- a folder: each regular file in it (sorted by name, hidden files skipped) is one
  `multipart/form-data` request carrying that file as the form field `file`, as
  `requests.post(uri, files={"file": open(path, "rb")})` sends it, for `@rawhttp` scripts that read
  `request.files`;
- a `.http` file (the format of VS Code's REST Client and JetBrains' HTTP client): requests
  separated by `###` lines, each a request line (`POST /score`), headers, a blank line and the
  body, where a body line `< ./path` is replaced by that file's bytes. Any body and content type
  can be written so, multipart forms with other field names or several files included.

Without `profile.requests`, the service's own `GET /swagger.json` example
(`definitions.ServiceInput.example`) is the only request; with neither there is nothing to send
and `NoWorkload` says what to set (the `profile` check then skips).

`iter_requests(path)` yields `(body bytes, content type)` per request: the one reader of the
format, for any check that replays the same requests.
"""
from __future__ import annotations

import base64
import json
import mimetypes
import re
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

from pytest_mldeploy.errors import ConfigError

JSON_TYPE = "application/json"
#: The form field a folder's files are sent as.
FOLDER_FIELD = "file"
#: Headers of a `.http` request the profiler sets itself (the key, the length, the host).
_OWN_HEADERS = {"authorization", "content-length", "host"}
_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(\S+)(\s+HTTP/\S+)?\s*$", re.IGNORECASE)

#: One request: its body and its Content-Type.
Request = tuple[bytes, str]


class NoWorkload(ConfigError):
    """Nothing to send: no `profile.requests` and no swagger example. The profile skips with this reason."""


def iter_requests(path: Path, where: str = "profile.requests") -> Iterator[Request]:
    """Yield `(body, content type)` for every request `path` holds (a lines file, a folder or a `.http` file).

    Raises `ConfigError` naming `where`, the path and the fix when it cannot be read or holds none.
    """
    path = Path(path)
    if path.is_dir():
        yield from _require(_folder_requests(path, where), where, path, "put the files to send in it, one per request")
    elif path.suffix.lower() == ".http":
        yield from _require(_http_requests(path, where), where, path, "write requests like `POST /score`, headers, a blank line, the body, separated by ###")
    else:
        raw = _read(path, where, "point it at a file with one request body per line")
        yield from _require(((line.strip(), JSON_TYPE) for line in raw.splitlines() if line.strip()), where, path, "write one JSON request body per line")


def _require(requests: Iterator[Request], where: str, path: Path, fix: str) -> Iterator[Request]:
    count = 0
    for request in requests:
        count += 1
        yield request
    if count == 0:
        raise ConfigError(f"{where}: {path} holds no request bodies; {fix}")


def _read(path: Path, where: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {path} cannot be read ({exc.strerror}); {fix}") from None


def multipart(fields: list[tuple[str, str, bytes, str]], boundary: Optional[str] = None) -> Request:
    """A `multipart/form-data` body of file fields `(name, filename, content, content type)`, and its Content-Type."""
    boundary = boundary or f"mldeploy-{uuid.uuid4().hex}"
    parts = []
    for name, filename, content, content_type in fields:
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode("utf-8") + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
    return body, f"multipart/form-data; boundary={boundary}"


def folder_files(folder: Path) -> list[Path]:
    """The files of a requests folder that become requests, in the order they are sent."""
    return [path for path in sorted(folder.iterdir()) if not path.name.startswith(".") and path.is_file()]


def _folder_requests(folder: Path, where: str) -> Iterator[Request]:
    for path in folder_files(folder):
        content = _read(path, where, "make the files in the folder readable")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        yield multipart([(FOLDER_FIELD, path.name, content, content_type)])


def _http_requests(path: Path, where: str) -> Iterator[Request]:
    text = _read(path, where, "point it at a readable .http file").decode("utf-8", errors="surrogateescape")
    for number, block in enumerate(re.split(r"^###.*$", text, flags=re.MULTILINE), start=1):
        request = _http_request(block, path, where, number)
        if request is not None:
            yield request


def _http_request(block: str, path: Path, where: str, number: int) -> Optional[Request]:
    """One `###`-separated block of a `.http` file; None when it holds only comments and blank lines."""
    lines = block.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith(("#", "//"))):
        lines.pop(0)
    if not lines:
        return None
    match = _REQUEST_LINE.match(lines.pop(0).strip())
    if not match or match.group(1).upper() != "POST":
        raise ConfigError(f"{where}: {path}: request {number} does not start with `POST /score`; the profile sends POST requests to the scoring route")
    headers: dict[str, str] = {}
    while lines and lines[0].strip():
        name, sep, value = lines.pop(0).partition(":")
        if not sep:
            raise ConfigError(f"{where}: {path}: request {number}: header line {name.strip()!r} has no `:`; put a blank line before the body")
        headers[name.strip().lower()] = value.strip()
    body_lines = lines[1:] if lines else []
    while body_lines and not body_lines[-1].strip():
        body_lines.pop()
    content_type = headers.get("content-type", JSON_TYPE)
    newline = b"\r\n" if content_type.lower().startswith("multipart/") else b"\n"
    chunks: list[bytes] = []
    for line in body_lines:
        if line.startswith("< "):
            included = (path.parent / line[2:].strip()).resolve()
            chunks.append(_read(included, where, f"fix the `< {line[2:].strip()}` line of request {number} in {path}"))
        else:
            chunks.append(line.encode("utf-8", errors="surrogateescape"))
    body = newline.join(chunks)
    if content_type.lower().startswith("multipart/") and body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # the closing boundary line ends with CRLF, as clients send it
    if not body:
        raise ConfigError(f"{where}: {path}: request {number} has no body; put the body after a blank line below the headers")
    return body, content_type


def read_request_file(path: Path, where: str = "profile.requests") -> list[Request]:
    """Every request `path` holds (see `iter_requests`), or a `ConfigError` naming the file and the fix."""
    return list(iter_requests(path, where))


def swagger_example(swagger: Any) -> Optional[bytes]:
    """The `ServiceInput` example of a Swagger 2 (or OpenAPI 3) document as a JSON body, None when absent."""
    if not isinstance(swagger, dict):
        return None
    definitions = swagger.get("definitions") or (swagger.get("components") or {}).get("schemas") or {}
    service_input = definitions.get("ServiceInput") if isinstance(definitions, dict) else None
    if not isinstance(service_input, dict) or "example" not in service_input:
        return None
    return json.dumps(service_input["example"]).encode("utf-8")


def workload_bodies(deployment: Any, swagger: Any, config_hint: str = "mldeploy.yaml") -> tuple[list[Request], str]:
    """The requests to replay and where they came from (for the report)."""
    path = getattr(getattr(deployment, "profile", None), "requests", None)
    name = getattr(deployment, "name", "?")
    if path:
        requests = read_request_file(Path(path), f"{config_hint}: deployments.{name}.profile.requests")
        kinds = sorted({content_type.split(";")[0] for _, content_type in requests})
        return requests, f"{path} ({len(requests)} request bodies, {', '.join(kinds)})"
    example = swagger_example(swagger)
    if example is None:
        raise NoWorkload(
            f"{config_hint}: deployments.{name}.profile.requests: not set, and the service's /swagger.json has no "
            "ServiceInput example to replay; set profile.requests to a file with one request body per line, a folder "
            "of files to send as multipart forms, or a .http file (or declare an input_schema in the entry script)"
        )
    return [(example, JSON_TYPE)], "the swagger example (definitions.ServiceInput.example; set profile.requests for real traffic)"


def write_bodies(requests: list[Request], path: Path) -> Path:
    """Write the requests as JSON (`[{"body": base64, "contentType": ...}]`) for the Locust process to read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [{"body": base64.b64encode(body).decode("ascii"), "contentType": content_type} for body, content_type in requests]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
