"""`AMLRequest`, `AMLResponse` and `@rawhttp`: what `azureml.contrib.services` gives an entry script.

Azure ML hands a `@rawhttp` run() a Flask/werkzeug request; scripts use a small part of it
(`method`, `headers`, `args`, `get_data()`, `data`, `json`, `get_json()`, `path`, `full_path`,
`form` and `files` for uploads). `AMLRequest` offers that part over the raw ASGI request, and
`AMLResponse` carries a status, headers and a body back, with Azure's constructor signature.
"""
from __future__ import annotations

import email.message
import email.utils
import io
import json
import os
import shutil
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional, TypeVar, Union
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


class MultiDict(Mapping[str, Any]):
    """Query arguments, form fields or files: `get` gives the first value, `getlist` all of them (werkzeug's subset)."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self._pairs = list(pairs)
        self._first: dict[str, Any] = {}
        for key, value in self._pairs:
            self._first.setdefault(key, value)

    def __getitem__(self, key: str) -> Any:
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

    def getlist(self, key: str) -> list[Any]:
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


class FileStorage:
    """One uploaded file, as werkzeug's `FileStorage`: `filename`, `name`, `content_type`, `read()`, `save()`, `stream`.

    Other file methods (`seek`, `tell`, `readline`, ...) go to `stream`, so `PIL.Image.open(file)`
    and `Image.open(file.stream)` both work.
    """

    def __init__(self, data: bytes, filename: Optional[str], name: Optional[str],
                 content_type: Optional[str] = None, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.stream: IO[bytes] = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.headers = Headers(headers)
        self.content_type = content_type or self.headers.get("content-type") or "application/octet-stream"

    @property
    def mimetype(self) -> str:
        """The Content-Type without parameters, lower-cased."""
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int:
        """The file's size in bytes."""
        return len(self.stream.getbuffer())  # type: ignore[attr-defined]

    def read(self, size: int = -1) -> bytes:
        """Bytes from the current position (all of the rest by default)."""
        return self.stream.read(size)

    def save(self, dst: Union[str, "os.PathLike[str]", IO[bytes]], buffer_size: int = 16384) -> None:
        """Write the file (from the current position) to a path or a binary file object."""
        if isinstance(dst, (str, os.PathLike)):
            with open(dst, "wb") as target:
                shutil.copyfileobj(self.stream, target, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def close(self) -> None:
        """Release the buffer."""
        self.stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.stream)

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


def parse_multipart(body: bytes, content_type: str) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]]:
    """The text fields and files of a `multipart/form-data` body (RFC 7578), in order.

    A part with a `filename` parameter is a file, as werkzeug decides. Malformed input yields what
    could be read (werkzeug is as lenient): no boundary, no parts.
    """
    boundary = _header_param(f"Content-Type: {content_type}", "content-type", "boundary")
    if not boundary:
        return [], []
    delimiter = b"--" + boundary.encode("latin-1")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    chunks = body.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        newline = chunk.find(b"\n")
        if newline < 0:
            continue
        part = chunk[newline + 1:]  # past the rest of the delimiter line (transport padding, CRLF)
        if part.startswith((b"\r\n", b"\n")):
            head, data = b"", part[2:] if part.startswith(b"\r\n") else part[1:]  # a part without headers
        else:
            head, found, data = part.partition(b"\r\n\r\n" if b"\r\n\r\n" in part else b"\n\n")
            if not found:
                continue  # headers never end: not a part
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        header_text = head.decode("utf-8", "replace")
        message = _headers_message(header_text)
        name = message.get_param("name", header="content-disposition")
        filename = message.get_filename()
        field = _param_text(name) or ""
        headers = [(key, str(value)) for key, value in message.items()]
        if filename is not None:
            files.append((field, FileStorage(data, filename, field, message.get("content-type"), headers)))
        else:
            charset = message.get_content_charset() or "utf-8"
            try:
                text = data.decode(charset, "replace")
            except LookupError:
                text = data.decode("utf-8", "replace")
            fields.append((field, text))
    return fields, files


def _headers_message(header_text: str) -> email.message.Message:
    from email.parser import HeaderParser

    return HeaderParser().parsestr(header_text.strip() + "\n\n", headersonly=True)


def _header_param(header_line: str, header: str, param: str) -> Optional[str]:
    value = _headers_message(header_line).get_param(param, header=header)
    return _param_text(value)


def _param_text(value: Any) -> Optional[str]:
    """A header parameter as text (RFC 2231 `filename*=` values come as a (charset, lang, text) triple)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return email.utils.collapse_rfc2231_value(value)
    return str(value)


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
