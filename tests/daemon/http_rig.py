"""The daemon's HTTP port with fake probes and a real queue (no worker), for the HTTP tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from symlinkd.daemon.http import HttpContext, HttpServer
from symlinkd.daemon.queue import ScanQueue, ScanRequest
from symlinkd.daemon.webhooks import TargetIndex
from symlinkd.metrics import Metrics
from symlinkd.settings import DaemonSettings, MountSettings, Secret, Settings

TOKEN = "s3cret-webhook-token"
FARM = "/srv/farm"


@dataclass
class Rig:
    client: httpx.Client
    queue: ScanQueue
    targets: TargetIndex
    health: dict[str, Any]
    settings: list[Settings]
    server: HttpServer

    @property
    def port(self) -> int:
        return self.server.port

    def take(self) -> ScanRequest | None:
        request = self.queue.get(timeout=0.2)
        if request is not None:
            self.queue.done()
        return request


@contextlib.contextmanager
def http_rig(
    *, queue: ScanQueue | None = None, healthy: Callable[[], None] | None = None,
    **server_options: Any,
) -> Iterator[Rig]:
    """``healthy``: called inside the /healthz probe (a test makes it slow)."""
    settings = [Settings(
        farm=FARM, state_dir="/nonexistent",
        mounts=(MountSettings(name="torbox", path="/m/torbox"),
                MountSettings(name="zurg", path="/m/zurg", anchor="__all__")),
        daemon=DaemonSettings(listen="127.0.0.1:0", webhook_token=Secret(TOKEN),
                              max_body_bytes=64 * 1024),
    )]
    registry = CollectorRegistry()
    Metrics(registry)
    queue = queue if queue is not None else ScanQueue()
    targets = TargetIndex()
    health: dict[str, Any] = {"healthy": True, "ready": True}

    def probe() -> tuple[bool, dict[str, Any]]:
        if healthy is not None:
            healthy()
        return health["healthy"], {"worker": "alive"}

    context = HttpContext(
        registry=registry, settings=lambda: settings[0], enqueue=queue.put,
        healthy=probe, ready=lambda: (health["ready"], {"last_pass": "none yet"}),
        targets=targets,
    )
    server = HttpServer("127.0.0.1:0", context, **server_options)
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10)
    try:
        yield Rig(client, queue, targets, health, settings, server)
    finally:
        client.close()
        server.close()
