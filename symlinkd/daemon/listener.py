"""The listening side of the daemon's HTTP port: waitress, tuned for a daemon on a shared port.

waitress reads each request whole (headers and body, bounded) on one asyncore loop before a
worker thread sees it, so slow or stalled clients cost a socket, never a thread; it parses
strictly (two different ``Content-Length`` headers are a 400) and serves ``HEAD``. What it does
not do, and this module adds:

- a connection over the cap is *answered* ``503`` at once (waitress stops accepting instead, so
  the client would wait in the kernel's backlog);
- a chunked body is ``411`` from its headers, before anything is buffered (a body of unknown
  length is not ours to collect);
- an answer that closes the connection early (``413`` from the headers) lingers: it half-closes
  and reads and discards what the client still sends for a bounded time, so the client reads the
  answer instead of a connection reset;
- the body limit follows the live settings (SIGHUP may change ``daemon.max_body_bytes``);
- waitress's own log lines reach the structured log without tracebacks: a client that went
  away is an ordinary event, not an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import Error

# A client that sends nothing for this long loses its connection (waitress's default is 120 s).
CHANNEL_TIMEOUT_SECONDS = 30
# After an early answer, what the client still sends is read and thrown away for this long.
LINGER_SECONDS = 2.0
_LINGER_CHUNK = 65536

_REFUSAL_BODY = b'{"error": "too many open connections"}\n'
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nServer: symlinkd\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
    b"Retry-After: 1\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class _LengthRequired(Error):  # type: ignore[misc]
    code = 411
    reason = "Length Required"


class _Parser(HTTPRequestParser):  # type: ignore[misc]
    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked:
            # Refused from the headers: nothing of the body is read or kept.
            self.error = _LengthRequired("send a Content-Length")
            self.completed = True


class _ErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own answers (a malformed request, 411, 413 from the headers) in the app's
    shape: JSON, and counted like every other answer."""

    def execute(self) -> None:
        error = self.request.error
        self.channel.server.on_early_answer(self.request.path or "", int(error.code))
        body = json.dumps({"error": f"{error.reason}: {error.body}"}).encode() + b"\n"
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _Parser
    error_task_class = _ErrorTask

    def handle_close(self) -> None:
        server = self.server
        if self.connected and self.socket is not None and server.lingering_room():
            # The client may still be sending (a 413 decided from the headers): a plain close
            # with unread data makes the kernel answer RST and the client never reads ours.
            with contextlib.suppress(OSError):  # out of descriptors: a plain close then
                _Linger(self.socket.dup(), server, b"")
        super().handle_close()


class _Linger(wasyncore.dispatcher):  # type: ignore[misc]
    """A socket on its way out: send ``data`` (the 503 of a refused connection, or nothing),
    half-close, then read and discard until the client closes or ``LINGER_SECONDS`` pass."""

    def __init__(self, sock: socket.socket, server: Server, data: bytes) -> None:
        sock.setblocking(False)
        super().__init__(sock, map=server.socket_map)
        self._server = server
        self._out = data
        self._deadline = time.monotonic() + LINGER_SECONDS
        server.lingering[id(self)] = self
        if not data:
            self._half_close()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return bool(self._out)

    def handle_write(self) -> None:
        sent = self.send(self._out)
        self._out = self._out[sent:]
        if not self._out:
            self._half_close()

    def handle_read(self) -> None:
        # dispatcher.recv closes on EOF and on a reset; otherwise the data is dropped.
        self.recv(_LINGER_CHUNK)

    def handle_close(self) -> None:
        self.close()

    def close(self) -> None:
        self._server.lingering.pop(id(self), None)
        super().close()

    def expire(self, now: float) -> None:
        if now >= self._deadline:
            self.close()

    def _half_close(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()


class Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    next_channel_cleanup: float = 0.0

    def __init__(
        self, app: Callable[..., Any], *, host: str, port: int, threads: int,
        connection_limit: int, body_limit: Callable[[], int],
        on_early_answer: Callable[[str, int], None] = lambda route, code: None,
    ) -> None:
        """``on_early_answer(route, status)``: an answer given without the app (a refused
        connection has route "")."""
        adj = Adjustments(
            host=host, port=port, threads=threads, connection_limit=connection_limit,
            channel_timeout=CHANNEL_TIMEOUT_SECONDS, cleanup_interval=5, ident="symlinkd",
            expose_tracebacks=False, log_socket_errors=False, asyncore_use_poll=True,
            # Set from body_limit before any request is read (readable(), handle_accept()).
            # Whole seconds: waitress converts this with int(), so 0.2 became 0 and the loop
            # polled without waiting, one core busy on an idle daemon.
            asyncore_loop_timeout=1, max_request_body_size=1,
            # Bodies are at most max_body_bytes (1 MiB by default); above this they spool to a
            # temporary file (the pod's /tmp is an emptyDir) instead of RAM per connection.
            inbuf_overflow=256 * 1024,
            # Keep reading while a request is served, so a client that leaves (a scrape that
            # timed out) is noticed: the answer is then dropped, not written into a dead socket.
            channel_request_lookahead=1,
        )
        self._body_limit = body_limit
        self.on_early_answer = on_early_answer
        self.lingering: dict[int, _Linger] = {}
        super().__init__(app, adj=adj)

    @property
    def socket_map(self) -> dict[int, Any]:
        return self._map  # type: ignore[no-any-return]

    def lingering_room(self) -> bool:
        return len(self.lingering) < int(self.adj.connection_limit)

    def readable(self) -> bool:
        """Called on every loop turn: housekeeping, then always accept (over the cap we answer
        503 ourselves instead of leaving clients in the backlog)."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + float(self.adj.cleanup_interval)
            self.maintenance(now)
        mono = time.monotonic()
        for linger in list(self.lingering.values()):
            linger.expire(mono)
        if self.active_channels:  # idle, the settings are not asked (tests hand in none)
            self._follow_body_limit()
        return bool(self.accepting)

    def _follow_body_limit(self) -> None:
        # waitress refuses a body whose Content-Length is >= this, from the headers.
        self.adj.max_request_body_size = self._body_limit() + 1

    def handle_accept(self) -> None:
        self._follow_body_limit()  # before the new connection's first byte is read
        if len(self.active_channels) < self.adj.connection_limit:
            super().handle_accept()
            return
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, _ = accepted
        self.on_early_answer("", 503)
        if not self.lingering_room():
            conn.close()  # a flood: even the refusals are capped
            return
        _Linger(conn, self, _REFUSAL)

    def stop(self) -> None:
        """From another thread: close everything inside the loop, which then ends."""
        self.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))


class WaitressLogFilter(logging.Filter):
    """waitress's log lines, made fit for the structured log: a client that went away is left
    to the app (a debug ``client_disconnected`` line); no traceback is attached to anything (the
    app logs its own errors; waitress's are socket noise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Client disconnected"):
            return False  # the app logs it, with the route, as client_disconnected (debug)
        if message.startswith("Task queue depth"):
            # Every request that waits for a thread says so: under load a line per request.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        if record.exc_info:
            error = record.exc_info[1]
            record.msg, record.args = f"{message}: {error!r}", ()
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_waitress() -> None:
    """Idempotent: one filter on waitress's loggers, whatever configures logging later."""
    for name in ("waitress", "waitress.queue"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, WaitressLogFilter) for f in logger.filters):
            logger.addFilter(WaitressLogFilter())
