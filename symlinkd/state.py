"""The state database: what symlinkd remembers between passes, and the action journal.

SQLite (standard library) at ``<state_dir>/state.sqlite3`` in WAL mode, schema versioned with
``PRAGMA user_version`` from the first release (``MIGRATIONS``; an old database is migrated on
open). Paths are stored as ``os.fsencode(path)`` BLOBs so names with invalid UTF-8 round-trip
byte for byte.

A farm of 1M links is normal, so a steady-state pass must not write a row per healthy link: the
first ``known``/``record_pass`` of a process loads a compact digest of the ``links`` table
(``hash(path) -> hash(target)`` of healthy rows in an open-addressing table of two
``array('q')``: ~32 bytes a row where a dict took ~136) and ``record_pass`` writes only new
links, changed targets and dangling-state transitions, in one transaction. A streaming pass uses
a ``PassRecorder``: healthy links are checked against the digest batch by batch while the walk
goes on, and nothing is written before the pass ends (the planner reads the histories of the
pass *before*).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from symlinkd.errors import StateLocked
from symlinkd.holds import HoldStore
from symlinkd.journal import JournalAction, JournalEntry, JournalState, JournalStore
from symlinkd.linkdigest import (
    SPILL_ROWS,
    STEADY_BAD,
    STEADY_NONE,
    InsertRow,
    LinkDigest,
    PassRecorder,
    Writes,
    link_key,
)
from symlinkd.model import Judgement, LinkHistory, MountState
from symlinkd.probestate import PROBE_MIGRATION, ProbeStore
from symlinkd.rcmemo import RefreshTable
from symlinkd.statefail import keep_reserve, state_error

__all__ = [
    "MIGRATIONS", "JournalAction", "JournalEntry", "JournalState", "PassRecorder", "RunSummary",
    "StateDB",
]

# Each entry moves the schema from version i to i + 1. Never edit a released entry: append one.
MIGRATIONS: tuple[str, ...] = (
    # 1: links, runs, journal, outbox.
    """
    CREATE TABLE links (
        path BLOB PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_target BLOB,
        last_size INTEGER,
        bad_since REAL,
        bad_passes INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        mode TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        counts TEXT,
        refused TEXT
    );
    CREATE TABLE journal (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path BLOB NOT NULL,
        action TEXT NOT NULL,
        old_target BLOB,
        old_mtime_ns INTEGER,
        new_target BLOB,
        quarantine_path BLOB,
        tmp_path BLOB,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE pending_notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        created REAL NOT NULL
    );
    """,
    # 2: undo runs point at the run they undid; ownership/mode so undo restores them; indexes.
    """
    ALTER TABLE runs ADD COLUMN undo_of TEXT;
    ALTER TABLE journal ADD COLUMN old_uid INTEGER;
    ALTER TABLE journal ADD COLUMN old_gid INTEGER;
    ALTER TABLE journal ADD COLUMN old_mode INTEGER;
    CREATE INDEX journal_state ON journal (state);
    CREATE INDEX pending_target ON pending_notifications (target, id);
    """,
    # 3: holds — links an undo put back, left alone until they change (symlinkd.holds).
    """
    CREATE TABLE holds (
        path BLOB PRIMARY KEY,
        target BLOB,
        ino INTEGER,
        run_id TEXT NOT NULL,
        undo_of TEXT NOT NULL,
        created REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: the content probe's memory of reads per link.
    PROBE_MIGRATION,
    # 5: when each folder was last re-read through rclone rc (vfs/refresh), see rcmemo.
    """
    CREATE TABLE rc_refreshes (
        folder BLOB PRIMARY KEY,
        at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
)

_CHUNK = 500  # bound parameters per IN (...) query
_RUN_COLS = "id, kind, mode, started, finished, counts, refused, undo_of"


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: str
    kind: str
    mode: str  # "apply" | "dry_run"
    started: float
    finished: float | None
    counts: dict[str, int]
    refused: str | None
    undo_of: str | None = None
    journal: dict[str, int] = field(default_factory=dict)  # journal state -> entries


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the migrations the database lacks (up to ``upto``); returns the new version."""
    target = len(MIGRATIONS) if upto is None else upto
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"state database schema v{version} is newer than this symlinkd (v{len(MIGRATIONS)})"
        )
    for number in range(version, target):
        # executescript commits first; the version bump rides in the same script so a crash
        # mid-migration leaves the old version number and the script is re-run.
        conn.executescript(
            f"BEGIN;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;"
        )
    return max(version, target)


class StateDB(JournalStore, ProbeStore):
    """One process's handle on the state directory. Thread-safe (one lock per handle)."""

    def __init__(self, state_dir: str, *, clock: Callable[[], float] = time.time) -> None:
        os.makedirs(state_dir, exist_ok=True)
        self.state_dir = state_dir
        self._clock = clock
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self.path = os.path.join(state_dir, "state.sqlite3")
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,  # explicit BEGIN/COMMIT: we decide what one transaction is
                check_same_thread=False,
                timeout=30.0,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (kill -9) at every commit; only a power
            # cut can lose the last transactions, and then the farm's own unsynced renames too.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc
        keep_reserve(state_dir)
        self._digest: LinkDigest | None = None
        self._refresh_table = RefreshTable(self._conn, self._lock)
        # Histories read before, kept in step with every write of this handle (the daemon's
        # passes read the same dangling links' histories again and again). Other processes
        # cannot write the links table meanwhile: scan and undo hold the process lock.
        self._remembered: dict[str, LinkHistory] = {}
        JournalStore.__init__(self, self._conn, self._lock, clock)
        ProbeStore.__init__(self, self._conn, self._lock)
        self.holds = HoldStore(self._conn, self._lock, clock)

    # -- process lock ------------------------------------------------------------------------

    def lock_exclusive(self, wait_seconds: float = 0.0) -> None:
        """Hold ``<state_dir>/lock`` until ``unlock``/``close``; one symlinkd per state dir."""
        if self._lock_fd is not None:
            return
        fd = os.open(os.path.join(self.state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StateLocked(
                        f"another symlinkd holds {self.state_dir}/lock (the daemon, or a "
                        "scan/undo still running); wait for it or stop it first"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        with self._lock:
            self.unlock()
            self._conn.close()

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self, kind: str, apply: bool, *, undo_of: str | None = None) -> str:
        now = self._clock()
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)
        with self._lock:
            self._conn.execute(
                "INSERT INTO runs (id, kind, mode, started, undo_of) VALUES (?, ?, ?, ?, ?)",
                (run_id, kind, "apply" if apply else "dry_run", now, undo_of),
            )
        return run_id

    def finish_run(self, run_id: str, counts: Mapping[str, int], refused: str | None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE runs SET finished = ?, counts = ?, refused = ? WHERE id = ?",
                (self._clock(), json.dumps(dict(counts), sort_keys=True), refused, run_id),
            )

    def run(self, run_id: str) -> RunSummary | None:
        found = self._runs("WHERE id = ?", (run_id,))
        return found[0] if found else None

    def runs(self, limit: int = 50) -> list[RunSummary]:
        return self._runs("ORDER BY started DESC, id DESC LIMIT ?", (limit,))

    def _runs(self, where: str, params: tuple[object, ...]) -> list[RunSummary]:
        with self._lock:
            query = f"SELECT {_RUN_COLS} FROM runs {where}"  # noqa: S608 -- fixed clauses
            rows = self._conn.execute(
                query,
                params,
            ).fetchall()
            tallies: dict[str, dict[str, int]] = {}
            for run_id, state, n in self._conn.execute(
                "SELECT run_id, state, count(*) FROM journal GROUP BY run_id, state"
            ):
                tallies.setdefault(run_id, {})[state] = n
        return [
            RunSummary(
                id=r[0], kind=r[1], mode=r[2], started=r[3], finished=r[4],
                counts=json.loads(r[5]) if r[5] else {}, refused=r[6], undo_of=r[7],
                journal=tallies.get(r[0], {}),
            )
            for r in rows
        ]

    # -- links -------------------------------------------------------------------------------

    def known(self, path: str) -> bool:
        """Whether the database has a row for ``path``. A few array reads after the
        first call of a process (64-bit hash digest: a collision only means one new link is not
        statted for its size)."""
        return link_key(path) in self._loaded_digest()

    def _loaded_digest(self) -> LinkDigest:
        if self._digest is None:
            with self._lock:
                decode = bytes.decode
                enc, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
                (rows,) = self._conn.execute("SELECT count(*) FROM links").fetchone()
                digest = LinkDigest(int(rows))
                keys, vals, mask = digest.keys, digest.vals, digest.mask
                bad_value, none_value = STEADY_BAD, STEADY_NONE
                # (os.fsdecode and the table's own put inlined: a million rows load here)
                for path, bad, target in self._conn.execute(
                    "SELECT path, bad_passes > 0, last_target FROM links"
                ):
                    key = hash(decode(path, enc, errors)) or 1
                    i = key & mask
                    while keys[i]:  # paths are the primary key: no key twice (bar collisions)
                        if keys[i] == key:
                            break
                        i = (i + 1) & mask
                    keys[i] = key
                    vals[i] = (bad_value if bad else none_value if target is None
                               else hash(decode(target, enc, errors)))
                digest.rows = int(rows)
                self._digest = digest
        return self._digest

    # -- rclone refreshes (rcmemo) ------------------------------------------------------------

    def last_refreshes(self) -> dict[str, float]:
        """Folder -> when it was last re-read through rclone rc (see ``RefreshTable``)."""
        return self._refresh_table.load()

    def note_refreshes(self, folders: Sequence[str], at: float) -> None:
        self._refresh_table.note(folders, at)

    def recorder(self, *, spill: int = SPILL_ROWS) -> PassRecorder:
        """A recorder for one streaming pass (see ``PassRecorder``); ``spill``: pending new
        links written early, in one transaction each."""
        with self._lock:
            digest = self._loaded_digest()
            digest.new_pass()
        return PassRecorder(digest, lock=self._lock, clock=self._clock, write=self._write,
                            insert=self._insert, rows_since=self._rows_since, spill=spill)

    def _insert(self, rows: list[InsertRow]) -> None:
        rows.sort()  # B-tree inserts in key order touch each page once
        with self._lock, contextlib.closing(self._conn.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT OR REPLACE INTO links (path, first_seen, last_target, last_size, "
                    "bad_since, bad_passes) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _rows_since(self, since: float) -> list[bytes]:
        with self._lock:
            return [path for (path,) in self._conn.execute(
                "SELECT path FROM links WHERE first_seen >= ?", (since,))]

    def histories(self, paths: Iterable[str]) -> dict[str, LinkHistory]:
        """What the DB remembers of ``paths`` (unknown paths are absent). Primary-key lookups
        in chunks of ``IN (...)``: measured faster than one sweep of the table even for every
        path of the farm, and memory stays proportional to the answer."""
        out: dict[str, LinkHistory] = {}
        cols = "path, first_seen, last_target, last_size, bad_since, bad_passes"
        with self._lock:
            remembered = self._remembered
            wanted: list[str] = []
            for path in dict.fromkeys(paths):
                history = remembered.get(path)
                if history is None:
                    wanted.append(path)
                else:
                    out[path] = history
            for start in range(0, len(wanted), _CHUNK):
                chunk = [os.fsencode(p) for p in wanted[start : start + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                for row in self._conn.execute(
                    f"SELECT {cols} FROM links WHERE path IN ({marks})",  # noqa: S608
                    chunk,
                ):
                    path = os.fsdecode(row[0])
                    out[path] = remembered[path] = _history(row)
        return out

    def _mirror(self, writes: Writes) -> None:
        """Apply a committed pass's writes to the remembered histories (the SQL of ``_write``,
        on the rows in memory). A link that turned healthy is forgotten: the planner asks
        for it again only when it is not healthy, and then it is read afresh."""
        remembered = self._remembered
        if not remembered:
            return
        fsdecode = os.fsdecode
        for enc, first, target, size, since, passes in writes.inserts:
            path = fsdecode(enc)
            if path in remembered:
                remembered[path] = LinkHistory(
                    first, fsdecode(target) if target is not None else None, size, since, passes)
        for _target, _size, enc in writes.healthy:
            remembered.pop(fsdecode(enc), None)
        for now, enc in writes.worse:
            path = fsdecode(enc)
            old = remembered.get(path)
            if old is not None:
                remembered[path] = dataclasses.replace(
                    old, bad_passes=old.bad_passes + 1,
                    bad_since=old.bad_since if old.bad_since is not None else now)
        for (enc,) in writes.resets:
            path = fsdecode(enc)
            old = remembered.get(path)
            if old is not None:
                remembered[path] = dataclasses.replace(old, bad_passes=0, bad_since=None)

    def record_pass(
        self,
        judgements: Sequence[Judgement],
        *,
        full: bool,
        mounts: Mapping[str, MountState] | None = None,
    ) -> None:
        """Remember this pass. Writes only new links, changed healthy targets and dangling-state
        transitions. A dangling link counts one more bad pass only while its mount is ``ok``
        (when ``mounts`` is given): a degraded mount's verdicts are not evidence. ``full``: the
        pass saw the whole farm, so rows of links it did not see are dropped."""
        self.recorder().finish(judgements, full=full, mounts=mounts)

    def _write(self, writes: Writes, digest: LinkDigest, full: bool) -> None:
        stale = len(digest) - writes.seen if full else 0
        if not (writes.any() or stale > 0):
            return
        # B-tree inserts in key order touch each page once (a first pass of 1M links).
        writes.inserts.sort()
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "INSERT OR REPLACE INTO links (path, first_seen, last_target, last_size, "
                "bad_since, bad_passes) VALUES (?, ?, ?, ?, ?, ?)",
                writes.inserts,
            )
            cur.executemany(
                "UPDATE links SET last_size = CASE WHEN last_target IS ?1 "
                "THEN coalesce(?2, last_size) ELSE ?2 END, last_target = ?1, "
                "bad_since = NULL, bad_passes = 0 WHERE path = ?3",
                writes.healthy,
            )
            cur.executemany(
                "UPDATE links SET bad_passes = bad_passes + 1, "
                "bad_since = coalesce(bad_since, ?) WHERE path = ?",
                writes.worse,
            )
            cur.executemany(
                "UPDATE links SET bad_passes = 0, bad_since = NULL WHERE path = ?",
                writes.resets,
            )
            if stale > 0:
                self._drop_unseen(cur, digest)
            cur.execute("COMMIT")
        except BaseException:
            # SQLite already rolled back after some errors (SQLITE_FULL): a second ROLLBACK
            # would hide the real cause behind "no transaction is active".
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
            self._digest = None  # the cache may now disagree with the table; reload
            self._remembered = {}
            raise
        self._mirror(writes)

    def _drop_unseen(self, cur: sqlite3.Cursor, digest: LinkDigest) -> None:
        fsdecode = os.fsdecode
        gone = [
            (path,)
            # read row by row (the list is done before the DELETEs start): at 1M rows a
            # fetchall would hold every path at once
            for (path,) in cur.execute("SELECT path FROM links")
            if not digest.was_seen(link_key(fsdecode(path)))
        ]
        cur.executemany("DELETE FROM links WHERE path = ?", gone)
        self._remembered = {}  # (cleared before _mirror: it then has nothing to update)
        self._digest = None  # rows left the table: the next pass loads the digest afresh

    # -- notification outbox (NOTIFY's PendingStore) -----------------------------------------

    def add_pending(self, target: str, payload: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO pending_notifications (target, payload, created) VALUES (?, ?, ?)",
                (target, payload, self._clock()),
            )

    def pending(self, target: str) -> list[tuple[int, str]]:
        with self._lock:
            return [
                (int(i), str(p))
                for i, p in self._conn.execute(
                    "SELECT id, payload FROM pending_notifications WHERE target = ? ORDER BY id",
                    (target,),
                )
            ]

    def ack_pending(self, ids: Sequence[int]) -> None:
        with self._lock, contextlib.closing(self._conn.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany(
                "DELETE FROM pending_notifications WHERE id = ?", [(i,) for i in ids]
            )
            cur.execute("COMMIT")


def _history(row: tuple[bytes, float, bytes | None, int | None, float | None, int]) -> LinkHistory:
    return LinkHistory(
        first_seen=row[1],
        last_target=os.fsdecode(row[2]) if row[2] is not None else None,
        last_size=row[3],
        bad_since=row[4],
        bad_passes=row[5],
    )
