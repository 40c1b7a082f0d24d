"""The daemon's one HTTP port: metrics, health, webhooks, manual trigger.

Standard library ``ThreadingHTTPServer``: five routes, no templating, no sessions, and nothing a
framework would check for us that is not a few lines here (token, size, JSON); one thread per
request so a slow scrape never blocks a webhook, and handlers only enqueue work.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder

from symlinkd.daemon.queue import ScanRequest
from symlinkd.daemon.webhooks import (
    PayloadError,
    TargetIndex,
    arr_event,
    farm_paths,
    zurg_dirs,
)
from symlinkd.settings import MountSettings, Settings

log = structlog.get_logger("symlinkd.http")

# After a 413 the rest of the body is read and thrown away for this long, so the client sees
# the answer instead of a connection reset (closing with unread data makes the kernel send RST).
_DRAIN_SECONDS = 2.0
_DRAIN_CHUNK = 65536

Check = Callable[[], tuple[bool, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class HttpContext:
    """What the handlers need, as parameters (tests hand in fakes)."""

    registry: CollectorRegistry
    settings: Callable[[], Settings]  # current settings (SIGHUP may swap them)
    enqueue: Callable[[ScanRequest], bool]
    healthy: Check
    ready: Check
    targets: TargetIndex


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up shutdown
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: HttpContext) -> None:
        self.context = context
        self.requests_total = Counter(
            "symlinkd_http_requests", "HTTP requests to the daemon by route and status code",
            ["route", "code"], registry=context.registry,
        )
        super().__init__(address, _Handler)


class HttpServer:
    """The listening server on its own thread."""

    def __init__(self, listen: str, context: HttpContext) -> None:
        host, _, port = listen.rpartition(":")
        self._server = _Server((host.strip("[]") or "0.0.0.0", int(port)), context)
        # A short poll interval: shutdown() waits for the loop to notice, and stop has 10 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name="symlinkd-http", daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Reply(Exception):
    """The answer to send; raised from deep in a handler to end it."""

    def __init__(self, status: int, body: dict[str, Any], *, drain: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.drain = drain


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "symlinkd"
    sys_version = ""
    # Socket timeout: a client that announces a body and stalls (or trickles headers) loses its
    # connection instead of holding a thread forever.
    timeout = 30

    # -- routing -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        handlers: dict[str, Callable[[], None]] = {
            "/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz,
        }
        self._dispatch(route, handlers, allowed_elsewhere=_POST_ROUTES)

    def do_POST(self) -> None:
        route = urlsplit(self.path).path
        handlers: dict[str, Callable[[], None]] = {
            "/webhook/sonarr": lambda: self._arr("sonarr"),
            "/webhook/radarr": lambda: self._arr("radarr"),
            "/webhook/zurg": self._zurg,
            "/api/v1/scan": self._scan,
        }
        self._dispatch(route, handlers, allowed_elsewhere=_GET_ROUTES)

    do_PUT = do_POST  # noqa: N815 - stdlib naming; Sonarr/Radarr can send webhooks with PUT

    def _dispatch(
        self, route: str, handlers: dict[str, Callable[[], None]], allowed_elsewhere: set[str]
    ) -> None:
        handler = handlers.get(route)
        if handler is None:
            handler = _wrong_method if route in allowed_elsewhere else _no_route
        try:
            handler()
        except _Reply as reply:
            self._json(reply.status, reply.body, drain=reply.drain, route=route)
        except Exception:  # a handler bug answers 500 and the server lives on
            log.exception("request failed", route=route)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"},
                       drain=True, route=route)

    # -- GET -----------------------------------------------------------------------------------
    def _metrics(self) -> None:
        # Content negotiation as prometheus_client's own server does: OpenMetrics when the
        # scraper asks for it, else the classic text format.
        encode, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encode(self.server.context.registry)
        self._count("/metrics", 200)
        self._send(200, body, content_type)

    def _healthz(self) -> None:
        ok, detail = self.server.context.healthy()
        raise _Reply(200 if ok else 503, {"status": "ok" if ok else "unhealthy", **detail})

    def _readyz(self) -> None:
        ok, detail = self.server.context.ready()
        raise _Reply(200 if ok else 503, {"status": "ready" if ok else "not ready", **detail})

    # -- POST ----------------------------------------------------------------------------------
    def _arr(self, kind: str) -> None:
        settings = self._authorised()
        payload = self._json_body(required=True)
        arr = getattr(settings.notify, kind)
        path_map = arr.path_map if arr is not None else ()
        try:
            meaning = arr_event(payload, path_map=path_map, farm=settings.farm)
        except PayloadError as exc:
            raise _Reply(400, {"error": str(exc)}) from exc
        if not meaning.paths:
            log.info("webhook ignored", source=kind, arr_event=meaning.event, why=meaning.ignored)
            raise _Reply(200, {"event": meaning.event, "ignored": meaning.ignored})
        self._enqueue(ScanRequest.subtree(meaning.paths, source=f"{kind}:{meaning.event}"))
        log.info("webhook accepted", source=kind, arr_event=meaning.event,
                 paths=list(meaning.paths))
        raise _Reply(202, {"event": meaning.event, "queued": list(meaning.paths)})

    def _zurg(self) -> None:
        settings = self._authorised()
        body = self._body()
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        directories = _zurg_directories(body, content_type)
        mount = _zurg_mount(settings, self._query().get("mount", [""])[0])
        try:
            targets = zurg_dirs(directories, mount)
        except PayloadError as exc:
            raise _Reply(400, {"error": str(exc)}) from exc
        if not targets:
            raise _Reply(400, {"error": "no directories given"})
        # rclone caches directory listings; refresh each changed folder and its parent (a new or
        # renamed torrent folder appears in the parent's listing).
        refresh = {(mount.name, t) for t in targets}
        refresh |= {(mount.name, t.rpartition("/")[0] or "/") for t in targets}
        index = self.server.context.targets
        if not index.ready:
            # No full pass has mapped targets to farm folders yet: only a full pass is correct.
            self._enqueue(ScanRequest(full=True, source="zurg", refresh=frozenset(refresh)))
            raise _Reply(202, {"queued": "full", "directories": targets})
        folders = sorted(index.farm_dirs(targets))
        self._enqueue(ScanRequest.subtree(folders, source="zurg", refresh=refresh))
        log.info("zurg update", directories=targets, farm_folders=len(folders))
        raise _Reply(202, {"directories": targets, "queued": folders})

    def _scan(self) -> None:
        settings = self._authorised()
        payload = self._json_body(required=False)
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise _Reply(400, {"error": "expected a JSON object"})
        raw = payload.get("paths", [payload["path"]] if "path" in payload else [])
        if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
            raise _Reply(400, {"error": "path must be a string, paths a list of strings"})
        if not raw:
            self._enqueue(ScanRequest.full_pass("api"))
            raise _Reply(202, {"queued": "full"})
        absolute = [p if p.startswith("/") else f"{settings.farm.rstrip('/')}/{p}" for p in raw]
        inside, outside = farm_paths(absolute, settings.farm)
        if outside:
            raise _Reply(400, {"error": "not inside the farm", "paths": outside})
        self._enqueue(ScanRequest.subtree(inside, source="api"))
        raise _Reply(202, {"queued": inside})

    # -- helpers -------------------------------------------------------------------------------
    def _enqueue(self, request: ScanRequest) -> None:
        if not self.server.context.enqueue(request):
            raise _Reply(503, {"error": "shutting down"}, drain=True)

    def _query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def _authorised(self) -> Settings:
        """The token check comes before the body is read: a stranger's upload costs nothing."""
        settings = self.server.context.settings()
        token = settings.daemon.webhook_token
        if token is None:
            raise _Reply(403, {"error": "webhooks are off: set daemon.webhook_token_file"},
                         drain=True)
        given = self.headers.get("X-Api-Key") or self._query().get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), token.reveal().encode()):
            raise _Reply(401, {"error": "missing or wrong token"}, drain=True)
        return settings

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Reply(411, {"error": "send a Content-Length"}, drain=True)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            raise _Reply(400, {"error": "bad Content-Length"}, drain=True) from exc
        limit = self.server.context.settings().daemon.max_body_bytes
        if length > limit:
            raise _Reply(413, {"error": f"body over {limit} bytes"}, drain=True)
        if length < 0:
            raise _Reply(400, {"error": "bad Content-Length"}, drain=True)
        return self.rfile.read(length) if length else b""

    def _json_body(self, *, required: bool) -> Any:
        body = self._body()
        if not body.strip():
            if required:
                raise _Reply(400, {"error": "empty body"})
            return None
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Reply(400, {"error": f"malformed JSON: {exc}"}) from exc

    def _json(self, status: int, body: dict[str, Any], *, drain: bool, route: str) -> None:
        self._count(route, status)
        data = json.dumps(body).encode() + b"\n"
        self._send(status, data, "application/json", close=drain)
        if drain:
            self._drain()

    def _send(self, status: int, data: bytes, content_type: str, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _drain(self) -> None:
        """Read and discard whatever the client still sends (bounded in time), never keeping it."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _DRAIN_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(_DRAIN_CHUNK):
                    break
        except OSError:
            pass  # the client went away first: nothing left to protect

    def _count(self, route: str, status: int) -> None:
        known = route if route in _GET_ROUTES | _POST_ROUTES else "other"
        self.server.requests_total.labels(route=known, code=str(int(status))).inc()

    def log_message(self, format: str, *args: Any) -> None:
        # The request line can carry ?token=: log the route only.
        log.debug("http", client=self.client_address[0], route=urlsplit(self.path).path)


def _wrong_method() -> None:
    raise _Reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"}, drain=True)


def _no_route() -> None:
    raise _Reply(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"}, drain=True)


_GET_ROUTES = {"/metrics", "/healthz", "/readyz"}
_POST_ROUTES = {"/webhook/sonarr", "/webhook/radarr", "/webhook/zurg", "/api/v1/scan"}


def _zurg_directories(body: bytes, content_type: str) -> list[str]:
    """Zurg runs a command with one argument per directory; a wrapper script posts them as a JSON
    list (or ``{"directories": [...]}``), as text with one per line, or as form fields ``dir``."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise _Reply(400, {"error": "body is not UTF-8"}) from exc
    if content_type == "application/json" or text.lstrip().startswith(("[", "{")):
        try:
            payload = json.loads(text)
        except ValueError as exc:
            if content_type == "application/json":
                raise _Reply(400, {"error": f"malformed JSON: {exc}"}) from exc
            payload = None  # a line that merely starts with "[" (a release group tag)
        else:
            if isinstance(payload, dict):
                payload = payload.get("directories")
            if not isinstance(payload, list) or not all(isinstance(d, str) for d in payload):
                raise _Reply(400, {"error": "expected a JSON list of directories"})
            return payload
    if content_type == "application/x-www-form-urlencoded" and text.startswith("dir="):
        return parse_qs(text).get("dir", [])
    # Plain lines; curl --data-binary also labels these as a form.
    return [line for line in text.splitlines() if line.strip()]


def _zurg_mount(settings: Settings, name: str) -> MountSettings:
    """The rclone mount of Zurg's WebDAV root: ``?mount=`` or the mount named ``zurg`` or the
    first one."""
    by_name = {m.name: m for m in settings.mounts}
    if name:
        if name not in by_name:
            raise _Reply(400, {"error": f"no mount named {name!r}"})
        return by_name[name]
    if "zurg" in by_name:
        return by_name["zurg"]
    if not settings.mounts:
        raise _Reply(400, {"error": "no mounts configured"})
    return settings.mounts[0]
