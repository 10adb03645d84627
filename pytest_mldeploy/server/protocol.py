"""The HTTP/1.1 connection: uvicorn's httptools protocol with limits on the request head.

uvicorn's httptools protocol limits neither the request line nor the headers (its
`h11_max_incomplete_event_size` applies to h11 only; httptools has no setting), and a head that
never completes keeps its connection forever. httptools also concatenates a header value chunk by
chunk, so one 64 MiB header costs seconds of CPU and its size in memory before any route, key check
or body limit is reached. This subclass counts the head's bytes as they arrive and refuses early:

- request target over `max_request_line_bytes` → **414**, header block over `max_header_bytes` → **431**
  (JSON `{"message": ...}`, `Connection: close`), at most one read buffer past the limit;
- a head not complete `header_timeout_s` after it started (or a new connection that sends nothing
  for that long) → **408** and close (just close when nothing arrived).
Parse errors (conflicting `Content-Length`/`Transfer-Encoding`, obs-fold, bad bytes) stay
httptools' strict 400 and close.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .settings import Settings


#: How long a refused connection is read (and its data dropped) before it is closed.
LINGER_S = 2.0


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _ResponseWriter:
    """The transport as uvicorn's request cycle sees it: a response's head is held and written together
    with the body's first bytes, so a whole response leaves in one write (one send() system call and one
    TCP segment instead of two). Anything else goes straight to the transport.

    One per connection (responses on a connection are written one after the other); the protocol
    calls `flush()` when a response is complete (a HEAD answer has no body to carry its head).
    """

    __slots__ = ("transport", "held", "head_next")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.held: Optional[bytes] = None
        self.head_next = True

    def write(self, data: bytes) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.writelines((held, data))
        elif self.head_next and data != _CONTINUE:
            self.head_next = False
            self.held = data
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Write a held head now; the next write starts a new response."""
        held = self.held
        self.held = None
        self.head_next = True
        if held is not None:
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head that is over a limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a timeout on each request head.

    Limits are class attributes; `limited_protocol(settings)` makes a subclass holding a server's own.
    """

    max_request_line_bytes: int = 8190
    max_header_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0
    server_version: bytes = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = False
        self._head_bytes = 0
        self._read_bytes = 0
        self._message_completed = False
        self._refusal: Optional[tuple[int, str]] = None
        self._linger: Optional[asyncio.TimerHandle] = None
        self._refused = False
        self._writer = _ResponseWriter(transport)
        # Also bounds how long a new connection may stay silent (uvicorn has no timeout for that).
        self._head_timer: Optional[asyncio.TimerHandle] = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_head_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, plus the refusal of an over-limit head and the byte count.
        if self._refused:
            return  # refused: the rest of what the client sends is read and dropped
        self._unset_keepalive_if_required()
        was_in_head = self._in_head
        self._message_completed = False
        self._read_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            self.logger.warning("Invalid HTTP request received.")
            self._cancel_head_timer()
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if not self._in_head:
            return
        if was_in_head or not self._message_completed:
            # Every byte of this read belongs to the head (no earlier message ended inside it).
            self._head_bytes += len(data)
        else:
            # A pipelined message ended in this read: count what is known of the new head.
            self._head_bytes = self._known_head_bytes()
        if self._head_bytes > self.max_request_line_bytes + self.max_header_bytes:
            self._refuse(*self._header_refusal())
            return
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    # ---- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_request_line_bytes:
            self._refusal = (414, f"The request target is longer than the service's limit of "
                                  f"{self.max_request_line_bytes} bytes (MLDEPLOY_MAX_REQUEST_LINE_BYTES)")
            raise _HeadRefused()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._cancel_head_timer()
        # Counting the headers costs a little; only a head that may be over the limit is counted.
        if (self._head_bytes + self._read_bytes > self.max_header_bytes
                and self._known_head_bytes() - len(self.url) > self.max_header_bytes):
            self._refusal = self._header_refusal()
            raise _HeadRefused()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._writer  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._message_completed = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._writer.flush()
        super().on_response_complete()

    # ---- refusals ------------------------------------------------------------------------------

    def _known_head_bytes(self) -> int:
        # Each header line is "name: value\r\n": 4 bytes besides the name and value.
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _header_refusal(self) -> tuple[int, str]:
        return 431, (f"The request headers are larger than the service's limit of {self.max_header_bytes} bytes "
                     f"(MLDEPLOY_MAX_HEADER_BYTES)")

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(408, f"The request headers did not arrive within {self.header_timeout_s:g} s "
                              f"(MLDEPLOY_HEADER_TIMEOUT_MS)")
        elif self.cycle is None:
            self.transport.close()  # a connection that never sent a byte

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON message and close the connection (the head is never parsed further)."""
        self._cancel_head_timer()
        self._in_head = False
        self._refused = True
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head went over the limit while the request before it is being answered:
            # an answer now would come first. Read no more, and close after that response.
            self.cycle.keep_alive = False
            self.transport.pause_reading()
            return
        body = json.dumps({"message": message}).encode("utf-8")
        head = [STATUS_LINE[status], b"content-type: application/json\r\n",
                b"content-length: ", str(len(body)).encode("ascii"), b"\r\n", b"connection: close\r\n"]
        if self.server_version:
            head += [b"x-ms-server-version: ", self.server_version, b"\r\n"]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # A lingering close, as nginx does: closing with unread data would send a reset that can
        # destroy the answer before the client reads it. Half-close, drop what still arrives, and
        # close when the client does or LINGER_S later.
        self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_S, self.transport.close)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def limited_protocol(settings: Settings, server_version: str = "") -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` with this server's head limits and timeout."""
    attributes: dict[str, Any] = {
        "max_request_line_bytes": settings.max_request_line_bytes,
        "max_header_bytes": settings.max_header_bytes,
        "header_timeout_s": settings.header_timeout_ms / 1000,
        "server_version": server_version.encode("latin-1"),
    }
    return type("ServerHttpToolsProtocol", (LimitedHttpToolsProtocol,), attributes)
