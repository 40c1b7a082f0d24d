"""The notifier hub: one pass's changes -> every configured target, concurrently, each bounded
by its own timeouts; what a target missed waits in the pending store for the next call."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import httpx
import structlog

from symlinkd.errors import NotifierRejected, NotifierUnavailable
from symlinkd.metrics import Metrics
from symlinkd.model import ActionKind, Outcome, OutcomeResult, Prune, PruneReason, Relink
from symlinkd.notifiers.arr import ArrTarget
from symlinkd.notifiers.base import ApiRequest, Change, ChangeCause, ChangeKind
from symlinkd.notifiers.client import ApiClient, RetryPolicy
from symlinkd.notifiers.delivery import Courier, Outbox, changes_payload
from symlinkd.notifiers.jellyfin import JellyfinTarget
from symlinkd.notifiers.jellyfin_api import JellyfinApi
from symlinkd.notifiers.pathmap import PathMap
from symlinkd.notifiers.plex import PlexTarget
from symlinkd.notifiers.plex_api import PlexApi
from symlinkd.notifiers.radarr_api import RadarrCatalog
from symlinkd.notifiers.sonarr_api import SonarrCatalog
from symlinkd.settings import NotifySettings


class Target(Protocol):
    """What every notification target (Plex, Jellyfin, Sonarr/Radarr) offers the hub."""

    name: str

    @property
    def client(self) -> ApiClient: ...

    def preview(self, changes: Sequence[Change]) -> list[str]:
        """Dry run: what would be sent, without a single network call."""
        ...

    def deliver(self, changes: Sequence[Change], courier: Courier) -> None:
        """Look up what is needed and send through ``courier``. A failed lookup raises
        ``NotifierUnavailable`` / ``NotifierRejected``; failed sends are the courier's job."""
        ...

    def close(self) -> None: ...


_PRUNE_CAUSE = {
    PruneReason.DANGLING: ChangeCause.PRUNE_DANGLING,
    # An expired file (listed, reads fail) is lost like a dangling one: reacquire it.
    PruneReason.STALE: ChangeCause.PRUNE_DANGLING,
    PruneReason.AGE: ChangeCause.PRUNE_AGE,
    # A link into a loop or outside every mount points at nothing usable: for the servers it
    # is a lost file like a dangling one.
    PruneReason.LOOP: ChangeCause.PRUNE_DANGLING,
    PruneReason.OUTSIDE_MOUNTS: ChangeCause.PRUNE_DANGLING,
}


class PendingStore(Protocol):
    """Outbox for notifications a server missed (``StateDB`` provides it)."""

    def add_pending(self, target: str, payload: str) -> None: ...
    def pending(self, target: str) -> list[tuple[int, str]]: ...
    def ack_pending(self, ids: Sequence[int]) -> None: ...


def changes_from_outcomes(outcomes: Sequence[Outcome]) -> list[Change]:
    """Relinks and prunes that happened (or would, in a dry run) -> changes for the servers."""
    changes: list[Change] = []
    for outcome in outcomes:
        if outcome.result not in (OutcomeResult.DONE, OutcomeResult.DRY_RUN):
            continue
        action = outcome.planned.action
        facts = outcome.planned.judgement.facts
        if isinstance(action, Relink):
            changes.append(Change(facts.path, ChangeKind.MODIFIED, ChangeCause.RELINK,
                                  is_dir=facts.target_is_dir))
        elif isinstance(action, Prune) and action.kind is ActionKind.PRUNE:
            changes.append(Change(facts.path, ChangeKind.DELETED, _PRUNE_CAUSE[action.why],
                                  is_dir=facts.target_is_dir))
    return list(dict.fromkeys(changes))


class NotifierHub:
    def __init__(self, settings: NotifySettings, *, store: PendingStore, metrics: Metrics,
                 transport: httpx.BaseTransport | None = None,
                 logger: structlog.typing.FilteringBoundLogger | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.log: structlog.typing.FilteringBoundLogger = (
            logger if logger is not None else structlog.get_logger("symlinkd.notify")
        )
        self.targets: list[Target] = _build_targets(
            settings, retry or RetryPolicy(retries=settings.retries), transport
        )

    def __repr__(self) -> str:
        return f"NotifierHub(targets={[t.name for t in self.targets]!r})"

    def notify(self, changes: Sequence[Change], *, dry_run: bool) -> list[str]:
        """Tell every target about ``changes`` (plus what it missed before). Never raises for a
        server being down or refusing; returns one line per request for the report."""
        if not self.targets:
            return []
        pending = {t.name: self.store.pending(t.name) for t in self.targets}
        if dry_run:
            return self._preview(changes, pending)
        with ThreadPoolExecutor(max_workers=len(self.targets),
                                thread_name_prefix="notify") as pool:
            futures = [
                # copy_context: the pass's run_id (bound in contextvars) reaches the log lines.
                pool.submit(contextvars.copy_context().run, self._deliver, target,
                            list(changes), pending[target.name])
                for target in self.targets
            ]
            results = [f.result() for f in futures]
        lines: list[str] = []
        for target, (target_lines, outbox) in zip(self.targets, results, strict=True):
            # Written here, in the caller's thread: the store may be a SQLite connection.
            for payload in outbox.add:
                self.store.add_pending(target.name, payload)
            if outbox.ack:
                self.store.ack_pending(outbox.ack)
            lines.extend(target_lines)
        return lines

    def _preview(self, changes: Sequence[Change],
                 pending: dict[str, list[tuple[int, str]]]) -> list[str]:
        lines: list[str] = []
        for target in self.targets:
            lines += [f"would send: {line}" for line in target.preview(changes)]
            if pending[target.name]:
                lines.append(f"{target.name}: {len(pending[target.name])} notification(s) "
                             "pending from earlier failures (sent by the next real pass)")
        return lines

    def _deliver(self, target: Target, changes: list[Change],
                 pending: list[tuple[int, str]]) -> tuple[list[str], Outbox]:
        courier = Courier(target.client, self.metrics, self.log)
        old_changes: list[Change] = []
        change_ids: list[int] = []
        old_requests: list[tuple[int, ApiRequest]] = []
        for pending_id, payload in pending:
            parsed = _parse(payload)
            if isinstance(parsed, list):
                old_changes.extend(parsed)
                change_ids.append(pending_id)
            elif parsed is not None:
                old_requests.append((pending_id, parsed))
            else:
                courier.log.warning("unreadable pending notification dropped", id=pending_id)
                courier.outbox.ack.append(pending_id)
        merged = list(dict.fromkeys([*old_changes, *changes]))

        def keep_changes() -> None:
            # One row of kept changes per target, however long the server stays away.
            if changes and merged:
                courier.outbox.add.append(changes_payload(merged))
                courier.outbox.ack.extend(change_ids)

        try:
            for pending_id, request in old_requests:
                courier.send(request, pending_id)
            if courier.down is None:
                target.deliver(merged, courier)
                courier.outbox.ack.extend(change_ids)
            else:
                keep_changes()
        except (NotifierUnavailable, NotifierRejected) as exc:
            courier.lookup_failed(exc)
            keep_changes()
        except Exception:  # a notifier bug must never fail the pass (logged with its traceback)
            courier.log.exception("notifier crashed; changes kept for the next pass")
            courier.count("failed")
            keep_changes()
            courier.lines.append(f"{target.name}: internal error, changes kept")
        return courier.lines, courier.outbox

    def close(self) -> None:
        for target in self.targets:
            target.close()


def _parse(payload: str) -> list[Change] | ApiRequest | None:
    try:
        data: Any = json.loads(payload)
        if "changes" in data:
            return [Change.from_json(c) for c in data["changes"]]
        return ApiRequest.from_json(data["request"])
    except (ValueError, KeyError, TypeError):
        return None


def _build_targets(settings: NotifySettings, retry: RetryPolicy,
                   transport: httpx.BaseTransport | None) -> list[Target]:
    targets: list[Target] = []
    if settings.plex is not None:
        plex = settings.plex
        targets.append(PlexTarget(PlexApi(plex, retry, transport), PathMap(plex.path_map),
                                  plex.max_paths_per_section))
    if settings.jellyfin is not None:
        jf = settings.jellyfin
        targets.append(JellyfinTarget(JellyfinApi(jf, retry, transport), PathMap(jf.path_map),
                                      jf.max_paths_per_section))
    for name, server, catalog_cls in (("sonarr", settings.sonarr, SonarrCatalog),
                                      ("radarr", settings.radarr, RadarrCatalog)):
        if server is not None:
            catalog = catalog_cls(name, server, retry, transport)
            targets.append(ArrTarget(catalog, PathMap(server.path_map),
                                     reacquire=server.reacquire,
                                     unmonitor_on_age_prune=server.unmonitor_on_age_prune,
                                     settle_seconds=server.timeout_seconds))
    return targets
