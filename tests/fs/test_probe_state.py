"""The probe's memory in the state DB: migration from v2, read streaks, per-day counts."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from symlinkd.probestate import ProbeResult
from symlinkd.state import StateDB, migrate

T0 = 1_800_000_000.0


def _db_with_links(tmp_path: Path, *links: tuple[str, str]) -> StateDB:
    conn = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    assert migrate(conn, upto=2) == 2  # a database from before the probe
    for path, target in links:
        conn.execute("INSERT INTO links (path, first_seen, last_target, last_size) "
                     "VALUES (?, ?, ?, 10)", (os.fsencode(path), T0, os.fsencode(target)))
    conn.close()
    return StateDB(str(tmp_path))


def test_v2_database_gains_the_probe_table_and_keeps_its_links(tmp_path: Path) -> None:
    db = _db_with_links(tmp_path, ("/farm/a.mkv", "/mnt/zurg/a.mkv"))
    rows = list(db.probe_rows())
    assert [(r.path, r.target, r.last_ok, r.fail_passes) for r in rows] == [
        ("/farm/a.mkv", "/mnt/zurg/a.mkv", None, 0)]
    db.close()


def test_failed_reads_build_a_streak_a_good_read_ends_it(tmp_path: Path) -> None:
    db = _db_with_links(tmp_path, ("/farm/a.mkv", "/mnt/zurg/a.mkv"))
    bad = ProbeResult("/farm/a.mkv", "zurg", "/mnt/zurg/a.mkv", False, "EIO")
    db.record_probes([bad], T0)
    db.record_probes([bad], T0 + 60)
    (row,) = db.probe_rows()
    assert (row.fail_passes, row.fail_since, row.last_ok) == (2, T0, None)
    db.record_probes([ProbeResult("/farm/a.mkv", "zurg", "/mnt/zurg/a.mkv", True)], T0 + 120)
    (row,) = db.probe_rows()
    assert (row.fail_passes, row.fail_since, row.last_ok) == (0, None, T0 + 120)
    assert db.probes_since(T0 + 100) == {"zurg": 1}
    assert db.probes_since(T0 + 200) == {}
    db.close()


def test_history_of_another_target_does_not_count(tmp_path: Path) -> None:
    db = _db_with_links(tmp_path, ("/farm/a.mkv", "/mnt/zurg/a.mkv"))
    db.record_probes([ProbeResult("/farm/a.mkv", "zurg", "/mnt/zurg/old.mkv", False, "EIO")],
                     T0)
    (row,) = db.probe_rows()
    assert (row.fail_passes, row.last_ok) == (0, None)  # relinked since: a new target
    db.close()
