"""One WebDAV server playing a debrid cloud for the FUSE rig: ``python webdav_server.py ROOT PORT``.

Runs in its own process so the rig can stop it (the "provider is down" failure mode). Prints the
bound port on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import sys

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


def serve(root: str, port: int) -> None:
    app = WsgiDAVApp({
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {"/": root},
        "simple_dc": {"user_mapping": {"*": True}},  # anonymous, like Zurg's default
        "verbose": 1,
        "logging": {"enable_loggers": []},
        "dir_browser": {"enable": False},
    })
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=8)
    server.prepare()  # binds: the port is taken once we print it
    print(server.bind_addr[1], flush=True)
    server.serve()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} ROOT PORT")
    serve(sys.argv[1], int(sys.argv[2]))
