"""One WebDAV server playing a debrid cloud for the FUSE rig:
``python webdav_server.py ROOT PORT [CONTROL_JSON READS_LOG]``.

Runs in its own process so the rig can stop it (the "provider is down" failure mode). Prints the
bound port on stdout once it listens, then serves until killed.

With ``CONTROL_JSON`` and ``READS_LOG`` it also plays a provider whose files expired while their
listing stays: ``CONTROL_JSON`` (re-read on every request, absent = no faults) maps a file's URL
path to how its GETs fail — ``"404"``, ``"500"``, ``"reset"`` (headers promise the whole file,
a few bytes come, then the connection drops) or ``"hang"`` (no answer for up to 120 s). Every
GET of a file is appended to ``READS_LOG`` (one URL path a line), so tests count reads at the
provider.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
HANG_SECONDS = 120.0


class Faults:
    """WSGI middleware in front of the WebDAV app: logs file GETs, fails the chosen ones."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]],
                 control: str, reads: str) -> None:
        self.app = app
        self.control = control
        self.reads = reads

    def _faults(self) -> dict[str, str]:
        try:
            with open(self.control, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
        with open(self.reads, "a", encoding="utf-8") as log:
            log.write(path + "\n")
        mode = self._faults().get(path)
        if mode in ("404", "500"):
            status = "404 Not Found" if mode == "404" else "500 Internal Server Error"
            start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "7")])
            return [b"expired"]
        if mode == "hang":
            time.sleep(HANG_SECONDS)
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        if mode == "reset":
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", "1048576")])
            return _broken()
        return self.app(environ, start_response)


def _broken() -> Iterator[bytes]:
    yield b"x" * 16
    raise ConnectionResetError("provider dropped the connection")


def serve(root: str, port: int, control: str | None = None, reads: str | None = None) -> None:
    app: Any = WsgiDAVApp({
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {"/": root},
        "simple_dc": {"user_mapping": {"*": True}},  # anonymous, like Zurg's default
        "verbose": 1,
        "logging": {"enable_loggers": []},
        "dir_browser": {"enable": False},
    })
    if control is not None and reads is not None:
        app = Faults(app, control, reads)
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=8)
    server.prepare()  # binds: the port is taken once we print it
    print(server.bind_addr[1], flush=True)
    server.serve()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        sys.exit(f"usage: {sys.argv[0]} ROOT PORT [CONTROL_JSON READS_LOG]")
    serve(sys.argv[1], int(sys.argv[2]), *sys.argv[3:5])
