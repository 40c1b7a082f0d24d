"""Holds: links an admin put back with ``symlinkd undo`` that symlinkd must leave alone.

An undo records a hold on every link it restored, with the link's target text and inode as the
undo left them. The planner turns any action on a held link into ``Skip`` (``held``, naming the
undo run) — the daemon's next pass must not redo what the admin just undid. A hold ends when
the link changes (another target, another inode: someone replaced it, or it is gone) or with
``symlinkd hold release PATH|--all``. Holds live in the state DB (table ``holds``), so they
survive restarts.

``HoldStore`` is the table; ``sort_holds`` is the pure rule; ``current_holds`` and
``link_identity`` read the farm (``lstat``/``readlink`` of the link itself, never its target:
a farm path is local, and a held link into a hung mount must cost nothing).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog

log = structlog.get_logger("symlinkd")

# (readlink text, inode) of a link as it is now; None: no symlink there any more.
Identity = tuple[str, int] | None

_COLS = "path, target, ino, run_id, undo_of, created"


@dataclass(frozen=True, slots=True)
class Hold:
    path: str
    target: str | None  # what the undo put back (readlink text)
    ino: int | None  # the restored link's inode: a replaced link (same target) is a new link
    run_id: str  # the undo run that created the hold
    undo_of: str  # the run whose change was undone
    created: float

    def describe(self) -> str:
        return f"held by undo {self.run_id} (of run {self.undo_of})"


class HoldStore:
    """The ``holds`` table of the state DB (shares ``StateDB``'s connection and lock)."""

    def __init__(
        self, conn: sqlite3.Connection, lock: threading.RLock, clock: Callable[[], float]
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._clock = clock

    def record(self, paths: Iterable[str], *, run_id: str, undo_of: str) -> list[Hold]:
        """Hold each of ``paths`` as it is on disk now (a later hold on a path replaces the
        earlier one). Paths that are no symlink now are not held."""
        now = self._clock()
        holds: list[Hold] = []
        for path in dict.fromkeys(paths):
            identity = link_identity(path)
            if identity is None:
                continue
            holds.append(Hold(path, identity[0], identity[1], run_id, undo_of, now))
        with self._lock:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO holds ({_COLS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                [(os.fsencode(h.path), _enc(h.target), h.ino, h.run_id, h.undo_of, h.created)
                 for h in holds],
            )
        return holds

    def all(self) -> list[Hold]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLS} FROM holds ORDER BY path"  # noqa: S608 -- fixed columns
            ).fetchall()
        return [
            Hold(os.fsdecode(r[0]), os.fsdecode(r[1]) if r[1] is not None else None, r[2],
                 r[3], r[4], r[5])
            for r in rows
        ]

    def release(self, paths: Iterable[str]) -> list[str]:
        """Drop the holds on ``paths``; returns the paths that had one."""
        released: list[str] = []
        with self._lock:
            for path in dict.fromkeys(paths):
                cur = self._conn.execute("DELETE FROM holds WHERE path = ?",
                                         (os.fsencode(path),))
                if cur.rowcount:
                    released.append(path)
        return released

    def release_all(self) -> int:
        with self._lock:
            return int(self._conn.execute("DELETE FROM holds").rowcount)

    def count_by_run(self) -> dict[str, int]:
        """Holds still in force, per undo run that created them (``history``)."""
        with self._lock:
            return {str(run): int(n) for run, n in self._conn.execute(
                "SELECT run_id, count(*) FROM holds GROUP BY run_id")}


def _enc(value: str | None) -> bytes | None:
    return os.fsencode(value) if value is not None else None


def link_identity(path: str) -> Identity:
    try:
        st = os.lstat(path)
        return os.readlink(path), st.st_ino
    except OSError:  # gone, or not a symlink (EINVAL) any more
        return None


def still_held(hold: Hold, identity: Identity) -> bool:
    """Pure: the link is still the one the undo put back."""
    if identity is None:
        return False
    target, ino = identity
    return target == hold.target and (hold.ino is None or ino == hold.ino)


def sort_holds(
    holds: Iterable[Hold], identities: Mapping[str, Identity]
) -> tuple[dict[str, Hold], list[Hold]]:
    """Pure: (holds in force by path, holds whose link changed and so end)."""
    active: dict[str, Hold] = {}
    changed: list[Hold] = []
    for hold in holds:
        if still_held(hold, identities.get(hold.path)):
            active[hold.path] = hold
        else:
            changed.append(hold)
    return active, changed


def current_holds(store: HoldStore, *, release: bool) -> tuple[dict[str, Hold], list[str]]:
    """The holds in force for a pass (planner input) and report notes. Holds whose link changed
    are released when ``release`` (an applying pass); a dry run only leaves them out."""
    holds = store.all()
    if not holds:
        return {}, []
    active, changed = sort_holds(holds, {h.path: link_identity(h.path) for h in holds})
    notes: list[str] = []
    if changed:
        if release:
            store.release(h.path for h in changed)
        verb = "released" if release else "no longer applies (released by the next --apply)"
        for hold in changed:
            log.info("hold released: the link changed", path=hold.path, hold=hold.run_id)
            notes.append(f"hold on {hold.path} {verb}: the link changed since undo {hold.run_id}")
    return active, notes
