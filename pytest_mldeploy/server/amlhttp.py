"""`AMLRequest`, `AMLResponse` and `@rawhttp`: what `azureml.contrib.services` gives an entry script.

Azure ML hands a `@rawhttp` run() a Flask/werkzeug request; scripts use a small part of it
(`method`, `headers`, `args`, `get_data()`, `data`, `json`, `get_json()`, `path`, `full_path`,
`form` and `files` for uploads). `AMLRequest` offers that part over the raw ASGI request, and
`AMLResponse` carries a status, headers and a body back, with Azure's constructor signature.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar, Union
from urllib.parse import parse_qsl, unquote

from .form_data import FileStorage, Headers, MultiDict, parse_multipart

__all__ = ["AMLRequest", "AMLResponse", "FileStorage", "Headers", "MultiDict", "rawhttp", "is_json_mimetype"]

#: Set by `@rawhttp`, as in azureml-contrib-services (the server also reads the function attribute).
_rawHttpRequested = False

RAWHTTP_ATTR = "__mldeploy_rawhttp__"

F = TypeVar("F", bound=Callable[..., Any])


def rawhttp(func: F) -> F:
    """Mark run() as taking the whole HTTP request (an `AMLRequest`) instead of parsed JSON."""
    global _rawHttpRequested
    _rawHttpRequested = True
    try:
        setattr(func, RAWHTTP_ATTR, True)
    except (AttributeError, TypeError):
        pass
    return func


class AMLRequest:
    """The HTTP request as a `@rawhttp` run() sees it."""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        scheme: str = "http",
        host: str = "localhost",
        remote_addr: Optional[str] = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        self.headers = Headers(headers)
        self.scheme = scheme
        self.host = self.headers.get("host", host)
        self.remote_addr = remote_addr
        self._body = body
        self._json_cache: Any = _UNSET
        self._multipart: Optional[tuple[MultiDict, MultiDict]] = None
        self.args = MultiDict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))

    @property
    def full_path(self) -> str:
        """Path and query string, always with the `?` (as werkzeug gives it)."""
        return f"{self.path}?{unquote(self.query_string.decode('latin-1'))}"

    @property
    def url(self) -> str:
        """The full URL the client asked for."""
        query = f"?{self.query_string.decode('latin-1')}" if self.query_string else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"

    @property
    def base_url(self) -> str:
        """The URL without the query string."""
        return f"{self.scheme}://{self.host}{self.path}"

    @property
    def content_type(self) -> Optional[str]:
        """The Content-Type header as sent."""
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str:
        """The Content-Type without parameters, lower-cased."""
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> Optional[int]:
        """The Content-Length header as a number, when sent."""
        return self.headers.get("content-length", type=int)

    @property
    def is_json(self) -> bool:
        """True for `application/json` and `application/*+json` bodies."""
        return is_json_mimetype(self.mimetype)

    @property
    def data(self) -> bytes:
        """The raw body."""
        return self._body

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Union[bytes, str]:
        """The raw body, as bytes or (with `as_text`) as UTF-8 text."""
        return self._body.decode("utf-8", "replace") if as_text else self._body

    @property
    def form(self) -> MultiDict:
        """Fields of an `application/x-www-form-urlencoded` body, or the non-file parts of a multipart one."""
        if self.mimetype == "multipart/form-data":
            return self._parsed_multipart()[0]
        if self.mimetype != "application/x-www-form-urlencoded":
            return MultiDict(())
        return MultiDict(parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True))

    @property
    def files(self) -> MultiDict:
        """Uploaded files of a `multipart/form-data` body: field name -> `FileStorage` (empty otherwise)."""
        if self.mimetype != "multipart/form-data":
            return MultiDict(())
        return self._parsed_multipart()[1]

    def _parsed_multipart(self) -> tuple[MultiDict, MultiDict]:
        if self._multipart is None:
            fields, files = parse_multipart(self._body, self.content_type or "")
            self._multipart = MultiDict(fields), MultiDict(files)
        return self._multipart

    @property
    def values(self) -> MultiDict:
        """Query arguments and form fields together."""
        return MultiDict(list(self.args._pairs) + list(self.form._pairs))

    @property
    def json(self) -> Any:
        """The body parsed as JSON when the Content-Type says JSON, else None."""
        return self.get_json(silent=True)

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body parsed as JSON; None when it is not JSON-typed (unless `force`), or unparsable and `silent`.

        Raises ValueError for an unparsable body otherwise.
        """
        if not (force or self.is_json):
            return None
        if self._json_cache is not _UNSET:
            return self._json_cache
        try:
            value = json.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise
        if cache:
            self._json_cache = value
        return value

    def __repr__(self) -> str:
        return f"<AMLRequest {self.method} {self.full_path!r}>"


class AMLResponse:
    """What a `@rawhttp` run() may return: body, status and headers (Azure's constructor)."""

    def __init__(
        self,
        message: Any,
        status_code: int = 200,
        response_headers: Optional[Mapping[str, str]] = None,
        json_str: bool = False,
        run_function_failed: bool = False,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.status_code = int(status_code)
        content_type = "text/html; charset=utf-8"
        if message is None:
            body: bytes = b"{}"
            content_type = "application/json"
        elif json_str:
            body = json.dumps(message).encode("utf-8")
            content_type = "application/json"
        elif isinstance(message, (bytes, bytearray, memoryview)):
            body = bytes(message)
        else:
            body = str(message).encode("utf-8")
        self.body = body
        self.run_function_failed = bool(run_function_failed)
        self.headers: list[tuple[str, str]] = []
        extra = dict(response_headers or {})
        extra.update(headers or {})
        if not any(name.lower() == "content-type" for name in extra):
            self.headers.append(("content-type", content_type))
        for name, value in extra.items():
            # Azure splits comma-separated values into repeated headers.
            for part in str(value).split(","):
                self.headers.append((str(name), part.strip()))

    @property
    def data(self) -> bytes:
        """The body as bytes."""
        return self.body

    def get_data(self, as_text: bool = False) -> Union[bytes, str]:
        """The body, as bytes or UTF-8 text."""
        return self.body.decode("utf-8", "replace") if as_text else self.body

    @property
    def content_type(self) -> Optional[str]:
        """The Content-Type the response will carry."""
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None

    def __repr__(self) -> str:
        return f"<AMLResponse {self.status_code} {len(self.body)} bytes>"


def is_json_mimetype(mimetype: str) -> bool:
    """True for `application/json` and `application/*+json`."""
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


class _Unset:
    pass


_UNSET = _Unset()
