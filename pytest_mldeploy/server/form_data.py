"""werkzeug's request data structures (`Headers`, `MultiDict`, `FileStorage`) and the
`multipart/form-data` parser behind `AMLRequest.form` and `.files` (standard library only).
"""
from __future__ import annotations

import email.message
import email.utils
import io
import os
import shutil
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional, Union


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
