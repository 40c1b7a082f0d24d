"""Watch the farm: a new or changed link is checked (a subtree pass over just those links) a short
debounce after it appears, so Plex/Jellyfin hear of it without waiting for the full pass.

inotify only reports changes made through this kernel. On the stack's NFS farm, rdt-client writes
links from another pod, so no inotify event ever arrives here: ``auto`` polls when the farm is on
NFS/FUSE/SMB (from the fs type in /proc/self/mountinfo).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from symlinkd.daemon.poller import FarmPoller
from symlinkd.daemon.queue import ScanRequest
from symlinkd.settings import DaemonSettings

log = structlog.get_logger("symlinkd.watcher")

# Filesystems whose other writers (other pods, the NFS server, a FUSE backend) make no inotify
# events on this machine.
_REMOTE_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "virtiofs", "afs", "lustre"}


def farm_fs_type(farm: str, mountinfo_path: str = "/proc/self/mountinfo") -> str | None:
    """Filesystem type of the mount holding ``farm`` (longest mount point that contains it)."""
    real = os.path.realpath(farm)
    best: tuple[int, str] | None = None
    try:
        with open(mountinfo_path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, sep, tail = line.partition(" - ")
        parts = fields.split()
        if not sep or len(parts) < 5 or not tail:
            continue
        # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
        point = _unescape(parts[4])
        inside = point in ("/", real) or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), tail.split()[0])
    return None if best is None else best[1]


def _unescape(text: str) -> str:
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def resolve_watch_mode(
    requested: str, farm: str, mountinfo_path: str = "/proc/self/mountinfo"
) -> tuple[str, str]:
    """(``inotify`` | ``poll`` | ``off``, why)."""
    if requested != "auto":
        return requested, "configured"
    fs_type = farm_fs_type(farm, mountinfo_path)
    if fs_type is not None and (fs_type in _REMOTE_FS or fs_type.startswith("fuse")):
        return "poll", f"farm is on {fs_type}: other writers make no inotify events here"
    return "inotify", f"farm is on {fs_type or 'an unknown filesystem'}"


class _Collector(FileSystemEventHandler):
    def __init__(self, add: Callable[[str], None]) -> None:
        self._add = add

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind == "moved":
            path = event.dest_path
        elif kind == "created" or (kind == "modified" and not event.is_directory):
            path = event.src_path
        else:
            # deleted: nothing left to check; a directory "modified" only echoes its entries
            return
        self._add(os.fsdecode(path))


class FarmWatcher:
    """Batches farm events for ``debounce_seconds`` from the first one, then enqueues one
    subtree request with every path that still exists (the executor's own temporary names are
    gone by then)."""

    def __init__(
        self,
        farm: str,
        daemon: DaemonSettings,
        enqueue: Callable[[ScanRequest], bool],
        *,
        mountinfo_path: str = "/proc/self/mountinfo",
    ) -> None:
        self.farm = farm
        self._enqueue = enqueue
        self._debounce = daemon.debounce_seconds
        self._poll_interval = daemon.poll_interval_seconds
        self.mode, self.why = resolve_watch_mode(daemon.watch, farm, mountinfo_path)
        self._cond = threading.Condition()
        self._paths: set[str] = set()
        self._first_event: float | None = None
        self._stopped = False
        self._observer: BaseObserver | FarmPoller | None = None
        self._flusher = threading.Thread(target=self._flush_loop, name="symlinkd-watch-flush",
                                         daemon=True)

    def start(self) -> None:
        if self.mode == "off":
            log.info("watcher off", why=self.why)
            return
        try:
            self._observer = self._start_observer(self.mode)
        except OSError as exc:
            if self.mode != "inotify" or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            # fs.inotify.max_user_watches (ENOSPC) or max_user_instances (EMFILE) is too low for
            # this farm; polling still works, just later and at the cost of a walk per interval.
            log.warning("inotify limit reached; polling instead", error=str(exc))
            self.mode, self.why = "poll", f"inotify failed: {exc}"
            self._observer = self._start_observer("poll")
        self._flusher.start()
        log.info("watcher started", mode=self.mode, why=self.why, farm=self.farm)

    def _start_observer(self, mode: str) -> BaseObserver | FarmPoller:
        if mode == "poll":
            poller = FarmPoller(self.farm, self._poll_interval, self._add)
            poller.start()
            return poller
        observer = Observer()
        observer.daemon = True
        observer.schedule(_Collector(self._add), self.farm, recursive=True)
        observer.start()
        return observer

    def _add(self, path: str) -> None:
        with self._cond:
            if not self._paths:
                self._first_event = time.monotonic()
            self._paths.add(path)
            self._cond.notify()

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._paths and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                assert self._first_event is not None
                due = self._first_event + self._debounce
                while (left := due - time.monotonic()) > 0 and not self._stopped:
                    self._cond.wait(left)
                if self._stopped:
                    return
                paths, self._paths = self._paths, set()
            self._flush(paths)

    def _flush(self, paths: set[str]) -> None:
        root = os.path.normpath(self.farm)
        # The farm itself is on NFS at worst, never in a FUSE mount: lexists is cheap and safe.
        alive = sorted(p for p in paths if p != root and os.path.lexists(p))
        if alive:
            log.info("farm changed", paths=len(alive))
            self._enqueue(ScanRequest.subtree(alive, source="watch"))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if isinstance(self._observer, FarmPoller):
            self._observer.stop()
        elif self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)  # bounded: never wait long on a farm listing
