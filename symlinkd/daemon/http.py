"""The daemon's one HTTP port: metrics, health, webhooks, manual trigger.

A small WSGI app served by waitress (``listener``): a bounded pool of worker threads, a cap on
open connections (the excess is answered 503 at once), strict request parsing and ``HEAD``.
Issue 9 (findings 7, 8) showed the standard library server needed all of that added by hand.
Handlers only enqueue work; /metrics is prometheus-client's own WSGI app.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import resource
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import structlog
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

from symlinkd.daemon.listener import Server, quiet_waitress
from symlinkd.daemon.queue import ScanRequest
from symlinkd.daemon.webhooks import (
    PayloadError,
    TargetIndex,
    arr_event,
    load_json,
    scan_paths,
    zurg_dirs,
    zurg_names,
)
from symlinkd.settings import MountSettings, Settings

log = structlog.get_logger("symlinkd.http")

# Worker threads run handlers (each only parses a body and enqueues); four keep a slow /metrics
# from delaying a webhook. Connections: far more than Prometheus, the probes, Sonarr, Radarr
# and Zurg ever hold at once, and each idle one costs a socket, not a thread.
THREADS = 4
CONNECTION_LIMIT = 512
# A body this big (a path list, not a webhook: Sonarr's are a few KB) needs a "heavy" slot (a
# quarter of the threads); with none free it is answered 503 at once. Parsing 40,000 paths takes
# a thread for a while, and probes and webhooks must always find one.
HEAVY_BODY_BYTES = 64 * 1024

Check = Callable[[], tuple[bool, dict[str, Any]]]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class HttpContext:
    """What the handlers need, as parameters (tests hand in fakes)."""

    registry: CollectorRegistry
    settings: Callable[[], Settings]  # current settings (SIGHUP may swap them)
    enqueue: Callable[[ScanRequest], bool]
    healthy: Check
    ready: Check
    targets: TargetIndex


class HttpServer:
    """The listening server on its own thread."""

    def __init__(
        self, listen: str, context: HttpContext, *, threads: int = THREADS,
        connection_limit: int = CONNECTION_LIMIT,
    ) -> None:
        host, _, port = listen.rpartition(":")
        quiet_waitress()
        self._app = HttpApp(context, heavy_slots=max(1, threads // 4))
        try:
            self._server = Server(
                self._app,
                host=host.strip("[]") or "0.0.0.0", port=int(port), threads=threads,
                connection_limit=_within_descriptors(connection_limit),
                body_limit=lambda: context.settings().daemon.max_body_bytes,
                on_early_answer=self._count_early,
            )
        except ValueError as exc:  # waitress: a host that does not resolve
            # The daemon answers OSError with "cannot listen on ...", exit 2.
            raise OSError(f"{exc} ({listen})") from exc
        self._thread = threading.Thread(target=self._server.run, name="symlinkd-http",
                                         daemon=True)

    def _count_early(self, route: str, status: int) -> None:
        self._app.requests_total.labels(route=_known(route), code=str(status)).inc()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.stop()
            self._thread.join(2)
        else:
            self._server.close()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)


def _within_descriptors(limit: int) -> int:
    """Half the process's descriptors at most: the farm walk and the state database need the
    rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return limit if soft == resource.RLIM_INFINITY else max(8, min(limit, soft // 2))


class _Reply(Exception):
    """The answer to send; raised from deep in a handler to end it."""

    def __init__(
        self, status: int, body: dict[str, Any], *, headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


_GET_ROUTES = {"/metrics", "/healthz", "/readyz"}
_POST_ROUTES = {"/webhook/sonarr", "/webhook/radarr", "/webhook/zurg", "/api/v1/scan"}


class HttpApp:
    """The WSGI application."""

    def __init__(self, context: HttpContext, *, heavy_slots: int = 1) -> None:
        self.context = context
        self._heavy = threading.BoundedSemaphore(heavy_slots)
        self.requests_total = Counter(
            "symlinkd_http_requests", "HTTP requests to the daemon by route and status code",
            ["route", "code"], registry=context.registry,
        )
        self._metrics_app = make_wsgi_app(context.registry)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = environ.get("PATH_INFO") or "/"
        try:
            answer = self._route(environ, route)
        except _Reply as reply:
            answer = _json(reply.status, reply.body)
            answer.headers += reply.headers
        except Exception:  # a handler bug answers 500 and the server lives on
            log.exception("request failed", route=route)
            answer = _json(500, {"error": "internal error"})
        phrase = HTTPStatus(answer.status).phrase
        start_response(f"{answer.status} {phrase}", [
            *answer.headers, ("Content-Length", str(len(answer.body))),
        ])
        # HEAD: the headers GET would send (its Content-Length too), no body; waitress leaves
        # that to the application.
        head = environ.get("REQUEST_METHOD") == "HEAD"
        return _Body(b"" if head else answer.body,
                     lambda sent: self._finished(route, answer.status, sent))

    def _finished(self, route: str, status: int, sent: bool) -> None:
        if not sent:
            # The client left before the answer (a scrape that timed out): not a server error.
            log.debug("client_disconnected", route=_known(route), status=status)
            return
        self.requests_total.labels(route=_known(route), code=str(status)).inc()

    # -- routing -------------------------------------------------------------------------------
    def _route(self, environ: Environ, route: str) -> _Answer:
        method = environ.get("REQUEST_METHOD", "")
        if route in _GET_ROUTES:
            if method not in ("GET", "HEAD"):
                raise _Reply(405, {"error": "method not allowed"})
            if route == "/metrics":
                return self._metrics(environ)
            check = self.context.healthy if route == "/healthz" else self.context.ready
            ok, detail = check()
            word = ("ok", "unhealthy") if route == "/healthz" else ("ready", "not ready")
            return _json(200 if ok else 503, {"status": word[0] if ok else word[1], **detail})
        if route in _POST_ROUTES:
            if method not in ("POST", "PUT"):  # Sonarr/Radarr can send webhooks with PUT
                raise _Reply(405, {"error": "method not allowed"})
            return self._post(_Request(environ, self.context.settings()), route)
        raise _Reply(404, {"error": "no such endpoint"})

    def _metrics(self, environ: Environ) -> _Answer:
        # prometheus-client's WSGI app: content negotiation (OpenMetrics when the scraper asks),
        # gzip, name[] filters.
        seen: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            seen["status"], seen["headers"] = int(status.split(maxsplit=1)[0]), headers

        body = b"".join(self._metrics_app({**environ, "REQUEST_METHOD": "GET"}, start))
        headers = [(k, v) for k, v in seen["headers"] if k.lower() != "content-length"]
        return _Answer(seen["status"], body, headers)

    def _post(self, request: _Request, route: str) -> _Answer:
        request.authorise()  # before the body is looked at: a stranger gets 401, not 400
        heavy = request.length() > HEAVY_BODY_BYTES
        if heavy and not self._heavy.acquire(blocking=False):
            raise _Reply(503, {"error": "busy with other large requests; retry"},
                         headers=[("Retry-After", "2")])
        try:
            if route == "/webhook/zurg":
                return self._zurg(request)
            if route == "/api/v1/scan":
                return self._scan(request)
            return self._arr(request, route.rsplit("/", 1)[1])
        except PayloadError as exc:
            raise _Reply(400, {"error": str(exc)}) from exc
        finally:
            if heavy:
                self._heavy.release()

    # -- handlers ------------------------------------------------------------------------------
    def _arr(self, request: _Request, kind: str) -> _Answer:
        settings = request.settings
        body = request.body()
        if not body.strip():
            raise _Reply(400, {"error": "empty body"})
        arr = getattr(settings.notify, kind)
        path_map = arr.path_map if arr is not None else ()
        meaning = arr_event(load_json(body), path_map=path_map, farm=settings.farm)
        if not meaning.paths:
            log.info("webhook ignored", source=kind, arr_event=meaning.event, why=meaning.ignored)
            return _json(200, {"event": meaning.event, "ignored": meaning.ignored})
        self._enqueue(ScanRequest.subtree(meaning.paths, source=f"{kind}:{meaning.event}"))
        log.info("webhook accepted", source=kind, arr_event=meaning.event,
                 paths=list(meaning.paths))
        return _json(202, {"event": meaning.event, "queued": list(meaning.paths)})

    def _zurg(self, request: _Request) -> _Answer:
        content_type = request.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        names = zurg_names(request.body(), content_type)
        mount = _zurg_mount(request.settings, request.query("mount"))
        targets = zurg_dirs(names, mount)
        if not targets:
            raise _Reply(400, {"error": "no directories given"})
        # rclone caches directory listings; refresh each changed folder and its parent (a new or
        # renamed torrent folder appears in the parent's listing).
        refresh = {(mount.name, t) for t in targets}
        refresh |= {(mount.name, t.rpartition("/")[0] or "/") for t in targets}
        index = self.context.targets
        if not index.ready:
            # No full pass has mapped targets to farm folders yet: only a full pass is correct.
            self._enqueue(ScanRequest(full=True, source="zurg", refresh=frozenset(refresh)))
            return _json(202, {"queued": "full", "directories": targets})
        folders = sorted(index.farm_dirs(targets))
        self._enqueue(ScanRequest.subtree(folders, source="zurg", refresh=refresh))
        log.info("zurg update", directories=targets, farm_folders=len(folders))
        return _json(202, {"directories": targets, "queued": folders})

    def _scan(self, request: _Request) -> _Answer:
        inside, outside = scan_paths(request.body(), request.settings.farm)
        if outside:
            raise _Reply(400, {"error": "not inside the farm", "paths": outside})
        if not inside:
            self._enqueue(ScanRequest.full_pass("api"))
            return _json(202, {"queued": "full"})
        self._enqueue(ScanRequest.subtree(inside, source="api"))
        return _json(202, {"queued": inside})

    def _enqueue(self, request: ScanRequest) -> None:
        if not self.context.enqueue(request):
            raise _Reply(503, {"error": "shutting down"})


class _Request:
    def __init__(self, environ: Environ, settings: Settings) -> None:
        self.environ = environ
        self.settings = settings

    def query(self, name: str) -> str:
        return str(parse_qs(self.environ.get("QUERY_STRING", "")).get(name, [""])[0])

    def authorise(self) -> None:
        token = self.settings.daemon.webhook_token
        if token is None:
            raise _Reply(403, {"error": "webhooks are off: set daemon.webhook_token_file"})
        expected = token.reveal().encode()
        # Every offered credential is compared, in constant time, whichever matches.
        matches = [hmac.compare_digest(given, expected) for given in self._offered()]
        if not any(matches):
            raise _Reply(401, {"error": "missing or wrong token"})

    def _offered(self) -> list[bytes]:
        """``X-Api-Key``, ``?token=``, and the password of ``Authorization: Basic`` (any user
        name): Sonarr v4 and Radarr v5 send their webhook Username/Password that way."""
        offered = [
            self.environ.get("HTTP_X_API_KEY", "").encode("latin-1"),
            self.query("token").encode("utf-8", "surrogateescape"),
        ]
        scheme, _, credentials = self.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            _user, colon, password = decoded.partition(b":")
            if colon:
                offered.append(password)
        return [given for given in offered if given]

    def length(self) -> int:
        return int(self.environ.get("CONTENT_LENGTH") or 0)  # digits: waitress checked them

    def body(self) -> bytes:
        # waitress has read the body already, refusing it from Content-Length past the limit of
        # the moment; a SIGHUP may have lowered the limit since.
        length = self.length()
        limit = self.settings.daemon.max_body_bytes
        if length > limit:
            raise _Reply(413, {"error": f"body over {limit} bytes"})
        return bytes(self.environ["wsgi.input"].read(length)) if length else b""


class _Body:
    """The answer's bytes, telling ``done`` whether they were all handed to the server: waitress
    stops iterating when the client has gone (and still calls ``close``)."""

    def __init__(self, data: bytes, done: Callable[[bool], None]) -> None:
        self._data = data
        self._done = done
        self._sent = False

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        self._sent = True

    def close(self) -> None:
        self._done(self._sent)


def _json(status: int, body: dict[str, Any]) -> _Answer:
    return _Answer(status, json.dumps(body).encode() + b"\n",
                   [("Content-Type", "application/json")])


def _known(route: str) -> str:
    return route if route in _GET_ROUTES | _POST_ROUTES else "other"


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
