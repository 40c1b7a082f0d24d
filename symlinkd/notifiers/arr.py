"""Sonarr/Radarr: changed folders -> one rescan per series/movie; pruned links -> search again
(``reacquire``) or stop monitoring (``unmonitor_on_age_prune``).

Order matters and is fixed here: the episode files are looked up *before* the rescan (the
rescan deletes the records of missing files); unmonitoring goes first (so the rescan does not
leave a monitored, missing item for the next RSS sync); a search waits until the rescan has
finished, because a search that still sees the old file on record rejects every release as
"not an upgrade".
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from symlinkd.errors import NotifierRejected, NotifierUnavailable
from symlinkd.notifiers.arr_api import FINISHED, Owned
from symlinkd.notifiers.base import ApiRequest, Change, ChangeCause
from symlinkd.notifiers.batching import group_by_owner
from symlinkd.notifiers.client import ApiClient
from symlinkd.notifiers.delivery import Courier
from symlinkd.notifiers.pathmap import PathMap, covering

_POLL_SECONDS = 0.5


class ArrCatalog(Protocol):
    """What Sonarr and Radarr each provide (``sonarr_api.py``, ``radarr_api.py``)."""

    target: str
    item_kind: str  # "series" / "movie", for people

    @property
    def client(self) -> ApiClient: ...
    def owners(self) -> list[Owned]: ...
    def items(self, owner: Owned, link_paths: Sequence[str]) -> list[int]: ...
    def rescan(self, owner: Owned) -> ApiRequest: ...
    def search(self, item_ids: Sequence[int]) -> ApiRequest: ...
    def unmonitor(self, item_ids: Sequence[int]) -> ApiRequest: ...
    def command_status(self, command_id: int) -> str: ...
    def close(self) -> None: ...


class ArrTarget:
    def __init__(self, catalog: ArrCatalog, path_map: PathMap, *, reacquire: bool,
                 unmonitor_on_age_prune: bool, settle_seconds: float,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self.name = catalog.target
        self.kind = catalog.item_kind
        self.path_map = path_map
        self.reacquire = reacquire
        self.unmonitor_on_age_prune = unmonitor_on_age_prune
        self.settle_seconds = settle_seconds
        self._sleep = sleep
        self._clock = clock

    @property
    def client(self) -> ApiClient:
        return self.catalog.client

    def preview(self, changes: Sequence[Change]) -> list[str]:
        folders = dict.fromkeys(self.path_map.to_server(c.folder) for c in changes)
        # Which series/movie holds a folder needs a lookup; a dry run sends nothing at all.
        lines = [f"{self.name} POST /api/v3/command rescan of the {self.kind} holding {f}, if any"
                 for f in folders]
        if self.reacquire:
            lines += [f"{self.name} POST /api/v3/command search again for {p}"
                      for p in self._paths(changes, ChangeCause.PRUNE_DANGLING)]
        if self.unmonitor_on_age_prune:
            lines += [f"{self.name} PUT unmonitor {p}"
                      for p in self._paths(changes, ChangeCause.PRUNE_AGE)]
        return lines

    def _paths(self, changes: Sequence[Change], cause: ChangeCause) -> list[str]:
        return list(dict.fromkeys(self.path_map.to_server(c.path) for c in changes
                                  if c.cause is cause))

    def deliver(self, changes: Sequence[Change], courier: Courier) -> None:
        if not changes:
            return
        owners = self.catalog.owners()
        by_path = {o.path: o.id for o in owners}
        by_id = {o.id: o for o in owners}
        # Folders holding this server's items: a change outside all of them belongs to another
        # server (a movie folder is not Sonarr's business) and is not "unmapped".
        roots = {posixpath.dirname(posixpath.normpath(o.path)) for o in owners}
        rescan: dict[int, None] = {}
        for change in changes:
            # Matched by the link itself: a removed folder link is a whole series/movie.
            owner = covering(self.path_map.to_server(change.path), by_path)
            folder = self.path_map.to_server(change.folder)
            if owner is not None:
                rescan[by_path[owner]] = None
            elif covering(folder, roots) is not None:
                courier.unmapped(folder, f"no {self.kind} has this folder")
        search = self._item_ids(changes, ChangeCause.PRUNE_DANGLING, by_path, by_id,
                                self.reacquire)
        unmonitor = self._item_ids(changes, ChangeCause.PRUNE_AGE, by_path, by_id,
                                   self.unmonitor_on_age_prune)
        if unmonitor:
            courier.send(self.catalog.unmonitor(unmonitor))
        commands: list[int] = []
        for owner_id in rescan:
            response = courier.send(self.catalog.rescan(by_id[owner_id]))
            # 201 on a real server (the document says 200); the body is the queued command.
            commands.append(_command_id(response) if response is not None else -1)
        if search:
            request = self.catalog.search(search)
            if self._settled(commands):
                courier.send(request)
            else:
                courier.defer(request, "the rescan had not finished")

    def _item_ids(self, changes: Sequence[Change], cause: ChangeCause,
                  by_path: dict[str, int], by_id: dict[int, Owned], wanted: bool) -> list[int]:
        if not wanted:
            return []
        grouped = group_by_owner(self._paths(changes, cause), by_path)
        ids: list[int] = []
        for owner_id, paths in grouped.items():
            ids.extend(self.catalog.items(by_id[owner_id], paths))
        return ids

    def _settled(self, commands: list[int]) -> bool:
        """Wait (bounded by the target's timeout) until every rescan command has finished."""
        if not commands or any(c < 0 for c in commands):
            return False
        deadline = self._clock() + self.settle_seconds
        waiting = set(commands)
        try:
            while waiting:
                waiting = {c for c in waiting if self.catalog.command_status(c) not in FINISHED}
                remaining = deadline - self._clock()
                if not waiting or remaining <= 0:
                    break
                self._sleep(min(_POLL_SECONDS, remaining))
        except (NotifierUnavailable, NotifierRejected):
            return False
        return not waiting

    def close(self) -> None:
        self.catalog.close()


def _command_id(response: httpx.Response) -> int:
    """The queued command's id (-1: the answer did not say; the search then waits a pass)."""
    try:
        data: Any = response.json()
    except ValueError:
        return -1
    if isinstance(data, dict) and isinstance(data.get("id"), int):
        return int(data["id"])
    return -1
