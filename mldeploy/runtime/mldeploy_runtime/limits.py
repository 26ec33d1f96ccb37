"""Limits on what one client may send, enforced in the HTTP layer before the app sees a request.

uvicorn's httptools protocol accepts headers of any size and waits forever for slow ones: one
anonymous client sending a 256 MiB header or a byte every few seconds (slowloris) could starve
the service. This protocol bounds, per request: the request line (414), the header block size and
the number of headers (431), the time to receive the headers and the time to receive the body
(408). Every refusal answers in the runtime's JSON error contract and closes the connection; the
other connections are never delayed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_SECONDS = 2.0
REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class RequestLimits:
    max_head_bytes: int = 64 * 1024  # request line and headers together
    max_headers: int = 100
    max_url_bytes: int = 16 * 1024
    header_timeout: float = 10.0  # from the first byte of a request (or the connection) to its last header
    body_timeout: float = 60.0  # from the last header to the last byte of the body


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def guarded_protocol(limits: RequestLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``limits`` (pass the class as ``uvicorn.Config(http=...)``)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _url_bytes = 0
        _headers = 0
        _head_size = 0  # exact: the request line and header names and values of this request
        _timer: asyncio.TimerHandle | None = None
        _discarding = False  # refused: what still arrives is read and dropped until the connection closes

        # --- timers ----------------------------------------------------------------------
        def _arm(self, seconds: float, phase: str) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._timed_out, phase)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _timed_out(self, phase: str) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and self.cycle.response_started:
                self.transport.close()
                return
            seconds = limits.header_timeout if phase == "headers" else limits.body_timeout
            self._refuse(408, f"The request {phase} did not arrive within {seconds:g} s.")

        def _refuse(self, status: int, message: str) -> None:
            """Answer, then close after a short linger that reads and drops what the client still sends:
            closing with unread data would reset the connection and lose the answer."""
            body = json.dumps({"message": message}).encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\nx-ms-run-function-failed: False\r\n\r\n%s"
                % (status, REASONS[status], len(body), body)
            )
            self._disarm()
            self._discarding = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

        # --- protocol --------------------------------------------------------------------
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm(limits.header_timeout, "headers")  # a connection that never sends is not kept forever

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._discarding:
                return
            self._unset_keepalive_if_required()
            in_head = self._in_head
            if in_head and self._timer is None:
                self._arm(limits.header_timeout, "headers")
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
                if refused is None:
                    raise
                self._refuse(refused.status, refused.message)
                return
            except httptools.HttpParserError:
                self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()
                return
            if in_head and self._in_head:  # the whole chunk went into a head that is not complete yet
                self._head_bytes += len(data)
                if self._head_bytes > limits.max_head_bytes:  # the parser buffers a header until it ends
                    self._refuse(431, f"The request headers are larger than {limits.max_head_bytes} bytes.")

        def on_message_begin(self) -> None:
            self._url_bytes = self._headers = self._head_size = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._url_bytes += len(url)
            self._head_size += len(url)
            if self._url_bytes > limits.max_url_bytes:
                raise _Refused(414, f"The request line is longer than {limits.max_url_bytes} bytes.")
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._headers += 1
            self._head_size += len(name) + len(value)
            if self._headers > limits.max_headers:
                raise _Refused(431, f"The request has more than {limits.max_headers} headers.")
            if self._head_size > limits.max_head_bytes:
                raise _Refused(431, f"The request headers are larger than {limits.max_head_bytes} bytes.")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._arm(limits.body_timeout, "body")
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._in_head = True
            super().on_message_complete()

    return GuardedHttpToolsProtocol
