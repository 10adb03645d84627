"""`AMLRequest`, `AMLResponse` and `@rawhttp`: what `azureml.contrib.services` gives an entry script.

Azure ML hands a `@rawhttp` run() a Flask/werkzeug request; scripts use a small part of it
(`method`, `headers`, `args`, `get_data()`, `data`, `json`, `get_json()`, `path`, `full_path`).
`AMLRequest` offers that part over the raw ASGI request, and `AMLResponse` carries a status, headers
and a body back, with Azure's constructor signature.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, TypeVar, Union
from urllib.parse import parse_qsl, unquote

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


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers (werkzeug's `EnvironHeaders` subset)."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = list(items)
        self._index: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            self._index[key] = f"{self._index[key]}, {value}" if key in self._index else value

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get(self, name: str, default: Any = None, type: Optional[Callable[[str], Any]] = None) -> Any:  # noqa: A002
        """The header's value (comma-joined when repeated), converted by `type` when given."""
        value = self._index.get(name.lower())
        if value is None:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (TypeError, ValueError):
            return default

    def getlist(self, name: str) -> list[str]:
        """Every value of a repeated header, in order."""
        key = name.lower()
        return [value for header, value in self._items if header.lower() == key]

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        """The headers as (name, value) pairs, as received."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class MultiDict(Mapping[str, str]):
    """Query arguments: `get` gives the first value, `getlist` all of them (werkzeug's `MultiDict` subset)."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._first: dict[str, str] = {}
        for key, value in self._pairs:
            self._first.setdefault(key, value)

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def get(self, key: str, default: Any = None, type: Optional[Callable[[str], Any]] = None) -> Any:  # noqa: A002
        """The first value of `key`, converted by `type` when given (`default` when conversion fails)."""
        if key not in self._first:
            return default
        if type is None:
            return self._first[key]
        try:
            return type(self._first[key])
        except (TypeError, ValueError):
            return default

    def getlist(self, key: str) -> list[str]:
        """Every value of `key`, in order."""
        return [value for name, value in self._pairs if name == key]

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        """First values (`flat`) or lists of all values per key."""
        if flat:
            return dict(self._first)
        return {key: self.getlist(key) for key in self._first}

    def __repr__(self) -> str:
        return f"MultiDict({self._pairs!r})"


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
        """Fields of an `application/x-www-form-urlencoded` body (empty for other bodies)."""
        if self.mimetype != "application/x-www-form-urlencoded":
            return MultiDict(())
        return MultiDict(parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True))

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
