"""Sending one target's requests in one notify call: de-duplication, counting, logging, and
keeping what the target missed for the next call.

A ``Courier`` runs in the target's worker thread. It never touches the pending store itself
(SQLite connections belong to the thread that made them); it collects acknowledgements and
new outbox entries, and the hub writes them from the calling thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from symlinkd.errors import NotifierRejected, NotifierUnavailable
from symlinkd.metrics import Metrics
from symlinkd.notifiers.base import ApiRequest, Change
from symlinkd.notifiers.client import ApiClient, RequestRefused


def request_payload(request: ApiRequest) -> str:
    return json.dumps({"v": 1, "request": request.to_json()}, sort_keys=True)


def changes_payload(changes: list[Change]) -> str:
    return json.dumps({"v": 1, "changes": [c.to_json() for c in changes]}, sort_keys=True)


@dataclass(slots=True)
class Outbox:
    """What one target's delivery wants written to / removed from the pending store."""

    add: list[str] = field(default_factory=list)
    ack: list[int] = field(default_factory=list)


class Courier:
    """Sends one target's requests for one notify call."""

    def __init__(self, client: ApiClient, metrics: Metrics,
                 log: structlog.typing.FilteringBoundLogger) -> None:
        self.client = client
        self.target = client.target
        self.metrics = metrics
        self.log = log.bind(target=self.target)
        self.lines: list[str] = []
        self.outbox = Outbox()
        self.down: str | None = None  # why the rest of this call is deferred
        self._sent: dict[tuple[Any, ...], httpx.Response | None] = {}
        self._unmapped: set[str] = set()

    def count(self, result: str, n: int = 1) -> None:
        self.metrics.notifications.labels(target=self.target, result=result).inc(n)

    def unmapped(self, folder: str, why: str) -> None:
        """A folder this target's libraries do not cover: logged and counted once per call."""
        if folder in self._unmapped:
            return
        self._unmapped.add(folder)
        self.count("unmapped")
        self.log.warning("folder not covered by any library; not sent", folder=folder, why=why)
        self.lines.append(f"{self.target}: not sent, no library covers {folder} ({why})")

    def defer(self, request: ApiRequest, why: str, pending_id: int | None = None) -> None:
        if pending_id is None:
            self.outbox.add.append(request_payload(request))
        self.lines.append(f"{request.describe()}: deferred to the next pass ({why})")

    def send(self, request: ApiRequest, pending_id: int | None = None) -> httpx.Response | None:
        """Send once per call; ``None`` when it was not delivered (then it is kept for the next
        call unless the server refused it for good)."""
        if request.key in self._sent:
            # Sent (or deferred) already in this call: the earlier fate stands for both.
            if pending_id is not None and self._sent[request.key] is not None:
                self.outbox.ack.append(pending_id)
            return self._sent[request.key]
        self._sent[request.key] = None
        if self.down is not None:
            self.defer(request, self.down, pending_id)
            return None
        try:
            response = self.client.send(request)
        except NotifierUnavailable as exc:
            self._fail_unavailable(request, exc, pending_id)
            return None
        except RequestRefused as exc:
            self._fail_refused(request, exc, pending_id)
            return None
        self._sent[request.key] = response
        self.count("ok")
        if pending_id is not None:
            self.outbox.ack.append(pending_id)
        self.log.info("notified", request=request.describe(), status=response.status_code)
        self.lines.append(f"{request.describe()}: ok ({response.status_code})")
        return response

    def _fail_unavailable(self, request: ApiRequest, exc: NotifierUnavailable,
                          pending_id: int | None) -> None:
        self.count("failed")
        self.down = f"{self.target} unreachable"
        self.log.warning("notification failed; kept for the next pass", error=str(exc),
                         request=request.describe())
        if pending_id is None:
            self.outbox.add.append(request_payload(request))
        self.lines.append(f"{request.describe()}: failed, kept for the next pass ({exc})")

    def _fail_refused(self, request: ApiRequest, exc: RequestRefused,
                      pending_id: int | None) -> None:
        if exc.auth:
            # Wrong or revoked key: nothing else will pass either. Keep everything so that it
            # goes out once the operator fixes the key.
            self.count("rejected")
            self.down = f"{self.target} rejected the credentials"
            self.log.error("notification rejected: check the token / API key",
                           status=exc.status, request=request.describe())
            if pending_id is None:
                self.outbox.add.append(request_payload(request))
            self.lines.append(f"{request.describe()}: rejected (HTTP {exc.status}), kept")
            return
        # Another 4xx will be refused again; keeping it would replay it forever.
        self.count("failed")
        if pending_id is not None:
            self.outbox.ack.append(pending_id)
        self.log.error("notification refused; dropped", status=exc.status,
                       request=request.describe())
        self.lines.append(f"{request.describe()}: refused (HTTP {exc.status}), dropped")

    def lookup_failed(self, exc: NotifierUnavailable | NotifierRejected) -> None:
        """A read the plan needed failed: nothing was sent; the hub keeps the changes (a down
        server comes back, a wrong key or URL gets fixed)."""
        auth = isinstance(exc, RequestRefused) and exc.auth
        self.count("rejected" if auth else "failed")
        self.down = str(exc)
        self.log.warning("could not look up the libraries; changes kept for the next pass",
                         error=str(exc))
        self.lines.append(f"{self.target}: changes kept for the next pass ({exc})")
