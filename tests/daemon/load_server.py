"""The daemon's HTTP server and queue alone, as a process, for the load test: no worker, so
nothing drains the queue (the worst case for pending work). Prints the port on stdout, logs
JSON to stderr, serves until stdin closes.

    python -m tests.daemon.load_server FARM TOKEN MAX_BODY_BYTES
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from symlinkd.daemon.http import HttpContext, HttpServer
from symlinkd.daemon.queue import ScanQueue
from symlinkd.daemon.webhooks import TargetIndex
from symlinkd.logs import configure_logging
from symlinkd.metrics import Metrics
from symlinkd.settings import DaemonSettings, MountSettings, Secret, Settings


def main(farm: str, token: str, max_body: str) -> None:
    configure_logging(json=True, level=logging.INFO)
    settings = Settings(
        farm=farm, state_dir="/nonexistent",
        mounts=(MountSettings(name="zurg", path="/m/zurg", anchor="__all__"),),
        daemon=DaemonSettings(listen="127.0.0.1:0", webhook_token=Secret(token),
                              max_body_bytes=int(max_body)),
    )
    registry = CollectorRegistry()
    Metrics(registry)
    queue = ScanQueue(farm=farm)

    def healthy() -> tuple[bool, dict[str, Any]]:
        full, paths = queue.pending()
        return True, {"pending": {"full": full, "subtree_paths": paths}}

    server = HttpServer("127.0.0.1:0", HttpContext(
        registry=registry, settings=lambda: settings, enqueue=queue.put, healthy=healthy,
        ready=lambda: (True, {}), targets=TargetIndex(),
    ))
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
