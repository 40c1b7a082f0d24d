"""The action journal (write-ahead log of every change to the farm), stored in the state DB.

The executor writes an entry as ``pending`` and commits it *before* touching the farm, then marks
it ``done`` or ``failed``; undo marks entries ``undone``. Paths are ``os.fsencode`` BLOBs.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass


class JournalState(enum.StrEnum):
    PENDING = "pending"  # written before acting; still pending after a crash mid-action
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"


class JournalAction(enum.StrEnum):
    RELINK = "relink"  # path: old_target -> new_target (tmp_path: the temporary link)
    PRUNE = "prune"  # path moved to quarantine_path
    RMDIR = "rmdir"  # directory path removed after this run emptied it (old_mtime_ns: its mtime)
    RESTORE = "restore"  # undo put path back to old_target (an undo run's entry)
    MKDIR = "mkdir"  # undo recreated a directory


@dataclass(frozen=True, slots=True)
class JournalEntry:
    run_id: str
    seq: int
    path: str
    action: JournalAction
    state: JournalState
    old_target: str | None = None
    old_mtime_ns: int | None = None
    new_target: str | None = None
    quarantine_path: str | None = None
    tmp_path: str | None = None
    message: str = ""
    old_uid: int | None = None
    old_gid: int | None = None
    old_mode: int | None = None


_COLS = (
    "run_id, seq, path, action, state, old_target, old_mtime_ns, new_target, quarantine_path, "
    "tmp_path, message, old_uid, old_gid, old_mode"
)


def _enc(value: str | None) -> bytes | None:
    return os.fsencode(value) if value is not None else None


def _dec(value: bytes | None) -> str | None:
    return os.fsdecode(value) if value is not None else None


class JournalStore:
    """Journal methods of ``StateDB`` (kept apart so each module stays small)."""

    def __init__(
        self, conn: sqlite3.Connection, lock: threading.RLock, clock: Callable[[], float]
    ) -> None:
        self._jconn = conn
        self._jlock = lock

    def journal_begin(
        self,
        run_id: str,
        path: str,
        action: JournalAction,
        *,
        old_target: str | None = None,
        old_mtime_ns: int | None = None,
        new_target: str | None = None,
        quarantine_path: str | None = None,
        tmp_path: str | None = None,
        old_uid: int | None = None,
        old_gid: int | None = None,
        old_mode: int | None = None,
    ) -> int:
        """Write a ``pending`` entry and commit it (autocommit) before the caller acts."""
        with self._jlock:
            row = self._jconn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM journal WHERE run_id = ?", (run_id,)
            ).fetchone()
            seq = int(row[0])
            self._jconn.execute(
                f"INSERT INTO journal ({_COLS}) VALUES "  # noqa: S608 -- fixed column list
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)",
                (
                    run_id, seq, os.fsencode(path), action.value, JournalState.PENDING.value,
                    _enc(old_target), old_mtime_ns, _enc(new_target), _enc(quarantine_path),
                    _enc(tmp_path), old_uid, old_gid, old_mode,
                ),
            )
        return seq

    def journal_mark(self, run_id: str, seq: int, state: JournalState, message: str = "") -> None:
        with self._jlock:
            self._jconn.execute(
                "UPDATE journal SET state = ?, message = ? WHERE run_id = ? AND seq = ?",
                (state.value, message, run_id, seq),
            )

    def journal(self, run_id: str) -> list[JournalEntry]:
        return self._select("WHERE run_id = ? ORDER BY seq", (run_id,))

    def journal_pending(self) -> list[JournalEntry]:
        """Entries a crash left ``pending`` (any run), oldest first. A pending row with an
        action symlinkd never writes (an edited journal) is marked ``failed`` here, so it is
        refused on its own instead of stopping every apply."""
        known = json.dumps([a.value for a in JournalAction])
        with self._jlock:
            self._jconn.execute(
                "UPDATE journal SET state = 'failed', message = 'refused: ' || quote(action) || "
                "' is not an action symlinkd writes; nothing touched' "
                "WHERE state = 'pending' AND action NOT IN (SELECT value FROM json_each(?))",
                (known,),
            )
        return self._select("WHERE state = 'pending' ORDER BY run_id, seq", ())

    def _select(self, where: str, params: tuple[object, ...]) -> list[JournalEntry]:
        with self._jlock:
            rows = self._jconn.execute(
                f"SELECT {_COLS} FROM journal {where}", params  # noqa: S608 -- fixed clauses
            ).fetchall()
        return [
            JournalEntry(
                run_id=r[0], seq=r[1], path=os.fsdecode(r[2]), action=JournalAction(r[3]),
                state=JournalState(r[4]), old_target=_dec(r[5]), old_mtime_ns=r[6],
                new_target=_dec(r[7]), quarantine_path=_dec(r[8]), tmp_path=_dec(r[9]),
                message=r[10], old_uid=r[11], old_gid=r[12], old_mode=r[13],
            )
            for r in rows
        ]
