"""Polling the farm for watch mode ``poll`` (NFS/FUSE farms, where inotify hears nothing).

Remembers one signature per *directory* (mtime, ctime, link count, inode), not one stat per
link: adding, removing or replacing a link changes its directory's mtime, so each poll costs one
``lstat`` per directory and a listing only of the directories that changed. (watchdog's
snapshot poller keeps a ``stat_result`` per entry: ~250 MB for a 100k-link farm.) The links of a
changed directory are all handed on; the pass knows from the state database which are new.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("symlinkd.watcher")

Signature = tuple[int, int, int, int]

# A directory changed this recently may change again within the same timestamp tick without its
# mtime moving; such a directory is listed again on the next poll (git's "racy" entries).
_RACY_NS = 2_000_000_000


class FarmPoller:
    def __init__(self, farm: str, interval: float, emit: Callable[[str], None]) -> None:
        self._farm = os.path.normpath(farm)
        self._interval = interval
        self._emit = emit
        self._dirs: dict[str, Signature | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="symlinkd-poll", daemon=True)

    def start(self) -> None:
        os.lstat(self._farm)  # a missing farm is the caller's error to report, now
        self._register(self._farm, emit=False)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        # An NFS listing can block; the thread is a daemon thread, so the wait is bounded.
        self._thread.join(timeout)

    @property
    def directories(self) -> int:
        return len(self._dirs)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # the poller must outlive a surprise; the next poll retries
                log.exception("farm poll failed")

    def poll(self) -> None:
        for path in sorted(self._dirs):  # parents before children
            if path not in self._dirs:
                continue  # dropped with a removed parent during this poll
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._forget(path)
                continue
            except OSError as exc:
                log.warning("cannot stat farm directory", path=path, error=str(exc))
                continue
            if _signature(st) != self._dirs[path]:
                self._register(path, emit=True)

    def _register(self, top: str, *, emit: bool) -> None:
        """List ``top`` and every directory under it that is new, remember their signatures and
        (``emit``) hand on their entries."""
        pending = [top]
        while pending:
            path = pending.pop()
            try:
                st = os.lstat(path)
                entries = list(os.scandir(path))
            except FileNotFoundError:
                self._forget(path)
                continue
            except OSError as exc:
                log.warning("cannot list farm directory", path=path, error=str(exc))
                continue
            was_known = path in self._dirs
            self._dirs[path] = None if time.time_ns() - st.st_mtime_ns < _RACY_NS \
                else _signature(st)
            present: set[str] = set()
            for entry in entries:
                # d_type from the listing: no stat, and never into a link's target
                if entry.is_dir(follow_symlinks=False):
                    present.add(entry.path)
                    if entry.path not in self._dirs:
                        pending.append(entry.path)
                elif emit:
                    self._emit(entry.path)
            if was_known:  # a subdirectory may have gone (never on the first walk: O(n^2))
                prefix = path + os.sep
                for gone in [d for d in self._dirs
                             if d.startswith(prefix) and os.sep not in d[len(prefix):]
                             and d not in present]:
                    self._forget(gone)

    def _forget(self, path: str) -> None:
        prefix = path + os.sep
        for known in [d for d in self._dirs if d == path or d.startswith(prefix)]:
            del self._dirs[known]


def _signature(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_nlink, st.st_ino)
