"""Fake Plex, Jellyfin, Sonarr and Radarr: real HTTP servers on 127.0.0.1, each checking every
request it receives against the server's OpenAPI document and recording any mismatch."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.contract.contract import (
    ContractChecker,
    SeenRequest,
    arr_command_filter,
    header_equals,
    plex_rewrite,
)

Answer = tuple[int, Any]  # status, JSON-able body (None: empty)


class FakeServer:
    name = "fake"

    def __init__(self, token: str, checker: ContractChecker) -> None:
        self.token = token
        self.checker = checker
        self.requests: list[SeenRequest] = []
        self.mismatches: list[str] = []
        # Statuses to answer the next requests with, in order (None: answer normally).
        self.script: list[int | None] = []
        self.hang = False  # accept, read, never answer
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def seen(self, method: str, pattern: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests
                    if r.method == method and re.fullmatch(pattern, r.path)]

    def receive(self, request: SeenRequest) -> Answer | None:
        with self._lock:
            self.requests.append(request)
            self.mismatches.extend(self.checker.check(request))
            scripted = self.script.pop(0) if self.script else None
        if self.hang:
            self._release.wait(120)
            return None
        if scripted:
            return scripted, {"message": "scripted failure"}
        if not self.authorized(request):
            return 401, {"message": "Unauthorized"}
        return self.route(request)

    def authorized(self, request: SeenRequest) -> bool:
        raise NotImplementedError

    def route(self, request: SeenRequest) -> Answer:
        raise NotImplementedError

    def unknown(self, request: SeenRequest) -> Answer:
        with self._lock:
            self.mismatches.append(f"{request.method} {request.path}: no such route in the fake")
        return 404, {"message": "not found"}


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = SeenRequest(
                method=self.command, path=unquote(parts.path),
                query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
                headers=dict(self.headers.items()), body=body,
            )
            answer = server.receive(request)
            if answer is None:
                self.close_connection = True
                return
            status, payload = answer
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class FakePlex(FakeServer):
    name = "plex"

    def __init__(self, token: str, sections: list[tuple[str, str, list[str]]]) -> None:
        super().__init__(token, ContractChecker("plex.openapi.yaml", "http://localhost:32400",
                                                rewrite=plex_rewrite))
        self.sections = sections

    def authorized(self, request: SeenRequest) -> bool:
        return request.headers.get("X-Plex-Token") == self.token

    def route(self, request: SeenRequest) -> Answer:
        if request.method == "GET" and request.path == "/library/sections":
            if "application/json" not in request.headers.get("Accept", ""):
                self.mismatches.append("GET /library/sections without Accept: application/json")
            return 200, {"MediaContainer": {"size": len(self.sections), "Directory": [
                {"key": key, "title": title, "type": "show", "uuid": f"uuid-{key}",
                 "language": "en-US",
                 "Location": [{"id": i + 1, "path": p} for i, p in enumerate(paths)]}
                for key, title, paths in self.sections]}}
        if request.method in ("GET", "POST") and re.fullmatch(
                r"/library/sections/[^/]+/refresh", request.path):
            return 200, None
        return self.unknown(request)

    def refreshes(self) -> list[tuple[str, str | None]]:
        return [(r.path.split("/")[3], r.param("path"))
                for r in self.seen("GET", r"/library/sections/[^/]+/refresh")]


class FakeJellyfin(FakeServer):
    name = "jellyfin"

    def __init__(self, token: str, folders: list[tuple[str, list[str]]],
                 folders_status: int = 200) -> None:
        auth = header_equals("Authorization", r'MediaBrowser Token="[^"]+"')
        super().__init__(token, ContractChecker("jellyfin.openapi.json", "http://localhost",
                                                extra=(auth,)))
        self.folders = folders
        self.folders_status = folders_status

    def authorized(self, request: SeenRequest) -> bool:
        return request.headers.get("Authorization") == f'MediaBrowser Token="{self.token}"'

    def route(self, request: SeenRequest) -> Answer:
        if request.method == "GET" and request.path == "/Library/VirtualFolders":
            if self.folders_status != 200:
                return self.folders_status, None
            return 200, [{"Name": n, "Locations": locs, "CollectionType": "tvshows"}
                         for n, locs in self.folders]
        if request.method == "POST" and request.path == "/Library/Media/Updated":
            return 204, None
        return self.unknown(request)

    def updated_paths(self) -> list[str]:
        return [u["Path"] for r in self.seen("POST", "/Library/Media/Updated")
                for u in r.json()["Updates"]]


class FakeArr(FakeServer):
    """Sonarr or Radarr. Commands answer 201 like the real servers (the document says 200)."""

    def __init__(self, name: str, token: str, document: str, server_url: str) -> None:
        self.name = name
        super().__init__(token, ContractChecker(document, server_url,
                                                body_filter=arr_command_filter(name)))
        self.command_polls_before_done = 1
        self._polls: dict[int, int] = {}
        self._next_command = 100

    def authorized(self, request: SeenRequest) -> bool:
        return request.headers.get("X-Api-Key") == self.token

    def commands(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.seen("POST", "/api/v3/command")]

    def command(self, request: SeenRequest) -> Answer:
        body = request.json()
        self._next_command += 1
        self._polls[self._next_command] = 0
        return 201, {"id": self._next_command, "name": body.get("name"), "status": "queued"}

    def command_status(self, command_id: int) -> Answer:
        if command_id not in self._polls:
            return 404, None
        self._polls[command_id] += 1
        done = self._polls[command_id] > self.command_polls_before_done
        return 200, {"id": command_id, "status": "completed" if done else "started"}

    def routes(self) -> dict[tuple[str, str], Callable[[SeenRequest], Answer]]:
        return {}

    def route(self, request: SeenRequest) -> Answer:
        if request.method == "POST" and request.path == "/api/v3/command":
            return self.command(request)
        match = re.fullmatch(r"/api/v3/command/(\d+)", request.path)
        if request.method == "GET" and match:
            return self.command_status(int(match.group(1)))
        handler = self.routes().get((request.method, request.path))
        return handler(request) if handler else self.unknown(request)


class FakeSonarr(FakeArr):
    def __init__(self, token: str, series: list[dict[str, Any]],
                 files: dict[int, list[dict[str, Any]]],
                 episodes: dict[int, list[dict[str, Any]]]) -> None:
        super().__init__("sonarr", token, "sonarr-v3.openapi.json", "http://localhost:8989")
        self.series, self.files, self.episodes = series, files, episodes

    def routes(self) -> dict[tuple[str, str], Callable[[SeenRequest], Answer]]:
        def by_series(table: dict[int, list[dict[str, Any]]]) -> Callable[[SeenRequest], Answer]:
            return lambda r: (200, table.get(int(r.param("seriesId") or 0), []))

        return {
            ("GET", "/api/v3/series"): lambda r: (200, self.series),
            ("GET", "/api/v3/episodefile"): by_series(self.files),
            ("GET", "/api/v3/episode"): by_series(self.episodes),
            ("PUT", "/api/v3/episode/monitor"): lambda r: (202, None),
        }


class FakeRadarr(FakeArr):
    def __init__(self, token: str, movies: list[dict[str, Any]]) -> None:
        super().__init__("radarr", token, "radarr-v3.openapi.json", "http://localhost:7878")
        self.movies = movies

    def routes(self) -> dict[tuple[str, str], Callable[[SeenRequest], Answer]]:
        return {
            ("GET", "/api/v3/movie"): lambda r: (200, self.movies),
            ("PUT", "/api/v3/movie/editor"): lambda r: (202, None),
        }
