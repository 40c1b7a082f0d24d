"""Fresh listings for the candidate search: rclone ``vfs/refresh`` of the folders searched.

rclone answers a listing from its directory cache for ``--dir-cache-time`` (5 min by default,
hours in some stacks); a file moved on the provider is invisible there until the cache expires.
The refresh-before-gone rule (``targets``) covers a link's *old* folder; this covers the folders
a *new* home is sought in: before the search concludes "not here" (and before a rename
decision) the folders are refreshed through the mount's rc. Bounded per pass, in folders and in
seconds: past the budget the search goes on with cached listings and the report says so, as it
does for a mount without ``rc_url``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from symlinkd.errors import MountUnavailable
from symlinkd.mounts import MountMonitor

log = structlog.get_logger("symlinkd.freshen")


def rc_refresh(monitor: MountMonitor, mount: str, directories: Sequence[str]) -> None:
    """The one place the candidate search asks rclone to re-read folders (kept small so the rc
    client's batching and per-folder refresh memory can change behind it)."""
    monitor.refresh(mount, directories)


class ListingRefresher:
    """Refreshes candidate folders at most once a pass, within ``max_dirs``/``max_seconds``."""

    def __init__(
        self,
        monitor: MountMonitor,
        *,
        max_dirs: int,
        max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monitor = monitor
        self.max_dirs = max_dirs
        self.max_seconds = max_seconds
        self.clock = clock
        self.refreshed: set[str] = set()
        self.no_rc: set[str] = set()  # mounts searched through cached listings only
        self.over_budget: set[str] = set()
        self.failed: dict[str, str] = {}  # mount -> rc error
        self._started: float | None = None

    def done(self, directory: str) -> bool:
        return directory in self.refreshed

    def refresh(self, mount: str, directories: Sequence[str]) -> bool:
        """Refresh ``directories`` of ``mount``; True when every one of them is fresh now."""
        if not self.monitor.has_rc(mount):
            self.no_rc.add(mount)
            return False
        wanted = [d for d in dict.fromkeys(directories) if d not in self.refreshed]
        if not wanted:
            return True
        if mount in self.failed:
            return False
        now = self.clock()
        if self._started is None:
            self._started = now
        room = self.max_dirs - len(self.refreshed)
        if room <= 0 or now - self._started > self.max_seconds:
            self.over_budget.add(mount)
            return False
        take = wanted[:room]
        try:
            rc_refresh(self.monitor, mount, take)
        except MountUnavailable as exc:
            # rc unreachable: the search still runs, on cached listings, and says so.
            log.warning("candidate folder refresh failed", mount=mount, error=str(exc))
            self.failed[mount] = str(exc)
            return False
        self.refreshed.update(take)
        if len(take) < len(wanted):
            self.over_budget.add(mount)
            return False
        return True

    def notes(self) -> list[str]:
        """What the report says about listings the search could not refresh."""
        out = [f"candidate search under mount {m} used rclone's cached listings (no rc_url): "
               "a file moved recently may have been missed" for m in sorted(self.no_rc)]
        out += [f"candidate search under mount {m} may have used stale listings: the refresh "
                f"budget ({self.max_dirs} folders, {self.max_seconds:g} s a pass) was spent"
                for m in sorted(self.over_budget)]
        out += [f"candidate search under mount {m} may have used stale listings: rc refresh "
                f"failed ({error})" for m, error in sorted(self.failed.items())]
        return out
