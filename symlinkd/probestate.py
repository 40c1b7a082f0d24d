"""What the state database remembers of the content probe: per link, the target last read, the
last successful read, and the streak of failed reads (``StateDB`` mixes this in)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Appended to ``state.MIGRATIONS`` (one entry: the schema version after it is the probe's).
PROBE_MIGRATION = """
    CREATE TABLE probes (
        path BLOB PRIMARY KEY,
        mount TEXT NOT NULL,
        target BLOB,
        last_probe REAL NOT NULL,
        last_ok REAL,
        fail_since REAL,
        fail_passes INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    CREATE INDEX probes_mount_time ON probes (mount, last_probe);
"""


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """A healthy link as the probe sees it: its target (raw readlink text, as last seen
    healthy) and its read history (``None``: never read, or read under another target)."""

    path: str
    target: str
    last_ok: float | None = None
    fail_since: float | None = None
    fail_passes: int = 0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    path: str
    mount: str
    target: str
    ok: bool
    error: str = ""


class ProbeStore:
    """Probe methods of ``StateDB`` (kept apart so each module stays small)."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._pconn = conn
        self._plock = lock

    def probe_rows(self) -> Iterator[ProbeRow]:
        """Every link the DB knows healthy, with its probe history for the same target."""
        sql = (
            "SELECT l.path, l.last_target, p.target, p.last_ok, p.fail_since, p.fail_passes "
            "FROM links l LEFT JOIN probes p ON p.path = l.path "
            "WHERE l.last_target IS NOT NULL"
        )
        with self._plock:
            rows = self._pconn.execute(sql).fetchall()
        for path, target, probed, last_ok, fail_since, fail_passes in rows:
            if probed != target:  # never read, or read under a target it no longer has
                yield ProbeRow(os.fsdecode(path), os.fsdecode(target))
            else:
                yield ProbeRow(os.fsdecode(path), os.fsdecode(target), last_ok, fail_since,
                               int(fail_passes or 0))

    def probes_since(self, since: float) -> dict[str, int]:
        """Links read per mount since ``since`` (the per-day budget)."""
        with self._plock:
            rows = self._pconn.execute(
                "SELECT mount, COUNT(*) FROM probes WHERE last_probe >= ? GROUP BY mount",
                (since,),
            ).fetchall()
        return {str(m): int(n) for m, n in rows}

    def record_probes(self, results: Iterable[ProbeResult], now: float) -> None:
        ok = [(os.fsencode(r.path), r.mount, os.fsencode(r.target), now, now)
              for r in results if r.ok]
        bad = [(os.fsencode(r.path), r.mount, os.fsencode(r.target), now, now, r.error)
               for r in results if not r.ok]
        with self._plock:
            self._pconn.execute("BEGIN")
            try:
                self._pconn.executemany(
                    "INSERT INTO probes (path, mount, target, last_probe, last_ok) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                    "mount = excluded.mount, target = excluded.target, "
                    "last_probe = excluded.last_probe, last_ok = excluded.last_ok, "
                    "fail_since = NULL, fail_passes = 0, last_error = ''", ok)
                # A failed read under a new target starts a new streak.
                self._pconn.executemany(
                    "INSERT INTO probes (path, mount, target, last_probe, fail_since, "
                    "fail_passes, last_error) VALUES (?, ?, ?, ?, ?, 1, ?) "
                    "ON CONFLICT (path) DO UPDATE SET "
                    "fail_passes = CASE WHEN target = excluded.target "
                    "THEN fail_passes + 1 ELSE 1 END, "
                    "fail_since = CASE WHEN target = excluded.target "
                    "THEN COALESCE(fail_since, excluded.fail_since) "
                    "ELSE excluded.fail_since END, "
                    "last_ok = CASE WHEN target = excluded.target THEN last_ok ELSE NULL END, "
                    "mount = excluded.mount, target = excluded.target, "
                    "last_probe = excluded.last_probe, last_error = excluded.last_error", bad)
                self._pconn.execute("COMMIT")
            except BaseException:
                self._pconn.execute("ROLLBACK")
                raise
