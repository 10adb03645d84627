"""What the server reads from a request's head (in one pass over its headers), and the request ids
it makes up when a client sends none (Azure answers every request with one).
"""
from __future__ import annotations

import os


_REQUEST_HEADERS = {
    b"content-length": "content_length",
    b"authorization": "authorization",
    b"x-request-id": "request_id",
    b"x-ms-request-id": "legacy_id",
    b"x-ms-client-request-id": "client_id",
    b"origin": "origin",
    b"traceid": "trace_id",
    b"access-control-request-method": "preflight_method",
    b"access-control-request-headers": "preflight_headers",
}


class RequestHead:
    """The few header values the server itself reads, found in one pass."""

    __slots__ = ("request_id", "legacy_id", "client_id", "origin", "authorization", "content_length",
                 "trace_id", "preflight_headers", "preflight_method")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.request_id = self.legacy_id = self.client_id = b""
        self.origin = self.authorization = self.content_length = self.trace_id = None
        self.preflight_headers = self.preflight_method = None
        for name, value in headers:
            attribute = _REQUEST_HEADERS.get(name)
            if attribute is not None:
                setattr(self, attribute, value)


class RandomPool:
    """Random bytes drawn from os.urandom 4 KiB at a time: one system call per 256 request ids, not one each.

    Emptied in a forked child, so two workers never hand out the same ids.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.clear)

    def clear(self) -> None:
        self._bytes, self._at = b"", 0

    def take(self, count: int) -> bytes:
        at = self._at
        if at + count > len(self._bytes):
            self._bytes, at = os.urandom(self.SIZE), 0
        self._at = at + count
        return self._bytes[at:at + count]


_random = RandomPool()


def new_request_id() -> bytes:
    """A random (version 4) UUID as ASCII bytes, as `str(uuid.uuid4()).encode()` gives but without its system call."""
    raw = bytearray(_random.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}".encode()
