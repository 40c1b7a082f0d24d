"""What the daemon remembers of each farm folder between passes (issue 12).

A farm folder's entries only change through its own directory: creating, removing, renaming
or replacing a link (``os.replace``, which is how a link is re-pointed) all update the
folder's ``mtime`` and ``ctime``. So a folder whose ``(inode, mtime, ctime)`` is what it was
when the last pass listed it still holds the same links with the same targets, and the daemon
hands on those links from memory: one ``lstat`` of the folder instead of a ``getdents`` and a
``readlink`` plus an ``lstat`` per link. The *targets* are still checked on every pass (the
target-folder listings of ``symlinkd.targets``): only the farm side is remembered.

Kept honest by:
- a folder modified within ``RACY_SECONDS`` of being listed is not remembered (a change in
  the same clock tick as the listing would not move the mtime);
- a full re-walk, every ``rewalk_seconds`` (``daemon.full_rewalk_hours``, default 24 h);
- a folder that had any problem (an entry that could not be read) is not remembered;
- only full passes prune folders that are gone; at most ``max_links`` links are held.

Only the daemon keeps one (a CLI pass runs once per process: nothing to reuse).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

# A link as the walk files it: path, raw target, absolute target, link mtime (farmwalk.Record)
Record = tuple[str, str, str, float]
RACY_SECONDS = 2.0
# ~400 bytes a link in memory (measured: 1M links cached -> a 700 MB daemon). The deployment's
# limit is 512Mi, so the memory stops at 300k links (~120 MB); folders past it are read as before.
MAX_LINKS = 300_000


@dataclass(frozen=True, slots=True)
class Folder:
    identity: tuple[int, int, int]  # (inode, mtime ns, ctime ns) when it was listed
    links: tuple[tuple[str, tuple[Record, ...]], ...]  # by target folder: (folder, its links)
    count: int  # links
    subdirs: tuple[str, ...]  # full paths
    others: tuple[tuple[str, int, float], ...]  # (path, mode, mtime) of files and the rest


def identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def folder(st: os.stat_result, links: list[Record], subdirs: list[str],
           others: list[tuple[str, int, float]]) -> Folder:
    """A folder as listed, its links grouped by target folder (replayed a group at a time)."""
    grouped: dict[str, list[Record]] = {}
    for record in links:
        parent = record[2].rpartition("/")[0] or "/"
        group = grouped.get(parent)
        if group is None:
            grouped[parent] = group = []
        group.append(record)
    return Folder(identity(st), tuple((p, tuple(g)) for p, g in grouped.items()), len(links),
                  tuple(subdirs), tuple(others))


class FolderCache:
    def __init__(self, *, rewalk_seconds: float = 86400.0, max_links: int = MAX_LINKS,
                 clock: Callable[[], float] = time.time) -> None:
        self.rewalk_seconds = rewalk_seconds
        self.max_links = max_links
        self._clock = clock
        self._folders: dict[str, Folder] = {}
        self._previous: dict[str, Folder] = {}  # a full pass moves what it meets to _folders
        self._links = 0
        self._rewalked = clock()
        self.reused = 0  # folders handed on from memory in the current pass (for tests, logs)

    def __len__(self) -> int:
        return len(self._folders) + len(self._previous)

    def begin(self, *, full: bool) -> None:
        """A pass starts. A full pass keeps only the folders it meets; when the last full
        re-walk is ``rewalk_seconds`` old, it forgets everything and reads every folder."""
        self.reused = 0
        if not full:
            return
        self._previous = {} if self._due() else {**self._previous, **self._folders}
        self._folders = {}
        self._links = 0

    def _due(self) -> bool:
        now = self._clock()
        if now - self._rewalked >= self.rewalk_seconds:
            self._rewalked = now
            return True
        return False

    def end(self) -> None:
        """A full pass is over: folders it did not meet are gone from the farm."""
        self._previous = {}

    def lookup(self, directory: str) -> Folder | None:
        """The remembered folder, if it is unchanged on disk (one ``lstat``)."""
        folder = self._folders.get(directory)
        if folder is None:
            folder = self._previous.pop(directory, None)
            if folder is None:
                return None
            self._folders[directory] = folder
            self._links += folder.count
        try:
            st = os.lstat(directory)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode) or identity(st) != folder.identity:
            return None
        self.reused += 1
        return folder

    def store(self, directory: str, st: os.stat_result, folder: Folder) -> None:
        """Remember a folder listed from disk (``st``: its stat from before the listing)."""
        old = self._folders.pop(directory, None)
        if old is not None:
            self._links -= old.count
        self._previous.pop(directory, None)
        if self._clock() - st.st_mtime < RACY_SECONDS:  # entries change mtime (ctime too)
            return
        if self._links + folder.count > self.max_links:
            return
        self._folders[directory] = folder
        self._links += folder.count
