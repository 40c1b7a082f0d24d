"""StateDB on a real SQLite file: migrations, what a pass writes (and does not), the outbox,
the process lock."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from symlinkd.errors import StateLocked
from symlinkd.model import EntryKind, Judgement, LinkFacts, MountHealth, MountState, Verdict
from symlinkd.state import MIGRATIONS, StateDB, migrate

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def jd(path: str, verdict: Verdict, target: str = "/mnt/zurg/__all__/a.mkv",
       size: int | None = 100, mount: str = "zurg") -> Judgement:
    facts = LinkFacts(path=path, kind=EntryKind.SYMLINK, link_mtime=T0, target=target,
                      resolved=target, mount=mount,
                      target_size=size if verdict is Verdict.OK else None)
    return Judgement(facts, verdict, 1.0)


def changes(db: StateDB) -> int:
    return db._conn.total_changes  # rows SQLite wrote through this connection


def test_fresh_database_is_at_the_latest_version(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    version = db._conn.execute("PRAGMA user_version").fetchone()[0]
    mode = db._conn.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert version == len(MIGRATIONS)
    assert mode == "wal"


def test_old_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    assert migrate(conn, upto=1) == 1
    conn.execute("INSERT INTO links (path, first_seen, bad_passes) VALUES (?, ?, ?)",
                 (b"/farm/old\xff.mkv", 123.0, 2))
    conn.execute("INSERT INTO runs (id, kind, mode, started) VALUES ('r1', 'full', 'apply', 1)")
    conn.close()
    db = StateDB(str(tmp_path))
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    old = os.fsdecode(b"/farm/old\xff.mkv")
    assert db.histories([old])[old].bad_passes == 2
    run = db.run("r1")
    assert run is not None and run.undo_of is None  # a column migration 2 added
    db.close()


def test_a_database_from_a_newer_symlinkd_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.sqlite3")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        StateDB(str(tmp_path))


def test_steady_state_pass_writes_nothing(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    js = [jd(f"/farm/{i}.mkv", Verdict.OK, target=f"/mnt/zurg/__all__/{i}.mkv")
          for i in range(2000)]
    db.record_pass(js, full=True)
    first = changes(db)
    assert first >= 2000
    db.record_pass(js, full=True)
    assert changes(db) == first  # not one row rewritten
    # A fresh process (empty cache) sees the same: the digest is rebuilt from the table.
    db.close()
    db = StateDB(str(tmp_path))
    db.record_pass(js, full=True)
    assert changes(db) == 0
    db.close()


def test_only_changed_rows_are_written(tmp_path: Path) -> None:
    clock = Clock()
    db = StateDB(str(tmp_path), clock=clock)
    js = [jd(f"/farm/{i}.mkv", Verdict.OK, target=f"/mnt/zurg/__all__/{i}.mkv")
          for i in range(100)]
    db.record_pass(js, full=True)
    before = changes(db)
    js[3] = jd("/farm/3.mkv", Verdict.OK, target="/mnt/torbox/torrents/3.mkv", size=None)
    js[4] = jd("/farm/4.mkv", Verdict.DANGLING)
    js[5] = jd("/farm/5.mkv", Verdict.MOUNT_DOWN)
    js.append(jd("/farm/new.mkv", Verdict.OK, target="/mnt/zurg/__all__/new.mkv", size=7))
    db.record_pass(js, full=True)
    assert changes(db) - before == 3  # relinked 3, dangling 4, new link; mount_down 5 untouched
    h = db.histories(["/farm/3.mkv", "/farm/4.mkv", "/farm/5.mkv", "/farm/new.mkv"])
    assert h["/farm/3.mkv"].last_target == "/mnt/torbox/torrents/3.mkv"
    assert h["/farm/4.mkv"].bad_passes == 1 and h["/farm/4.mkv"].bad_since == T0
    assert h["/farm/4.mkv"].last_size == 100  # the healthy size is remembered for relink
    assert h["/farm/5.mkv"].bad_passes == 0
    assert h["/farm/new.mkv"].last_size == 7 and h["/farm/new.mkv"].first_seen == T0
    db.close()


def test_dangling_streak_counts_and_resets(tmp_path: Path) -> None:
    clock = Clock()
    db = StateDB(str(tmp_path), clock=clock)
    p = "/farm/x.mkv"
    db.record_pass([jd(p, Verdict.OK)], full=True)
    for n in range(1, 4):
        clock.now = T0 + n * 600
        db.record_pass([jd(p, Verdict.DANGLING)], full=True)
        h = db.histories([p])[p]
        assert (h.bad_passes, h.bad_since) == (n, T0 + 600)
    # A mount blinking down says nothing about the file: the streak neither grows nor ends.
    db.record_pass([jd(p, Verdict.MOUNT_DOWN)], full=True)
    assert db.histories([p])[p].bad_passes == 3
    db.record_pass([jd(p, Verdict.OK)], full=True)
    h = db.histories([p])[p]
    assert (h.bad_passes, h.bad_since) == (0, None)
    db.close()


def test_dangling_under_a_mount_not_ok_does_not_count(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    degraded = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.DEGRADED)}
    ok = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK)}
    p = "/farm/x.mkv"
    db.record_pass([jd(p, Verdict.DANGLING)], full=True, mounts=degraded)
    assert db.histories([p])[p].bad_passes == 0
    db.record_pass([jd(p, Verdict.DANGLING)], full=True, mounts=ok)
    assert db.histories([p])[p].bad_passes == 1
    db.close()


def test_full_pass_forgets_links_that_are_gone_subtree_pass_does_not(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    a, b = jd("/farm/a", Verdict.OK), jd("/farm/b", Verdict.OK)
    db.record_pass([a, b], full=True)
    db.record_pass([a], full=False)
    assert db.known("/farm/b")
    db.record_pass([a], full=True)
    assert not db.known("/farm/b") and db.known("/farm/a")
    assert db.histories(["/farm/b"]) == {}
    db.close()


def test_odd_names_round_trip_exactly(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    odd = os.fsdecode(b"/farm/bad\xff\xfename\nwith newline.mkv")
    db.record_pass([jd(odd, Verdict.DANGLING)], full=True)
    db.close()
    db = StateDB(str(tmp_path))
    assert db.known(odd)
    assert odd in db.histories([odd])
    raw = db._conn.execute("SELECT path FROM links").fetchone()[0]
    assert raw == b"/farm/bad\xff\xfename\nwith newline.mkv"
    db.close()


def test_histories_of_many_paths_across_chunks(tmp_path: Path) -> None:
    clock = Clock()
    db = StateDB(str(tmp_path), clock=clock)
    js = [jd(f"/farm/{i}", Verdict.DANGLING) for i in range(1_200)]
    db.record_pass(js, full=True)
    clock.now += 60
    db.record_pass(js[::2], full=False)
    got = db.histories([j.path for j in js] + ["/farm/unknown"])
    assert len(got) == 1_200 and "/farm/unknown" not in got
    assert [got[j.path].bad_passes for j in js[:4]] == [2, 1, 2, 1]
    assert {h.bad_since for h in got.values()} == {T0}
    db.close()


def test_runs_are_listed_newest_first_with_counts(tmp_path: Path) -> None:
    clock = Clock()
    db = StateDB(str(tmp_path), clock=clock)
    first = db.begin_run("full", False)
    db.finish_run(first, {"ok": 3}, None)
    clock.now += 60
    second = db.begin_run("subtree", True)
    db.finish_run(second, {"dangling": 1}, "max_prune: too many")
    runs = db.runs()
    assert [r.id for r in runs] == [second, first]
    assert runs[0].mode == "apply" and runs[0].refused == "max_prune: too many"
    assert runs[1].counts == {"ok": 3} and runs[1].mode == "dry_run"
    db.close()


def test_outbox_keeps_notifications_until_acked(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    db.add_pending("plex", '{"path": "/data/Show"}')
    db.add_pending("plex", '{"path": "/data/Movie"}')
    db.add_pending("sonarr", "{}")
    db.close()
    db = StateDB(str(tmp_path))  # survives a restart
    pending = db.pending("plex")
    assert [p for _, p in pending] == ['{"path": "/data/Show"}', '{"path": "/data/Movie"}']
    db.ack_pending([pending[0][0]])
    assert [p for _, p in db.pending("plex")] == ['{"path": "/data/Movie"}']
    assert len(db.pending("sonarr")) == 1
    db.close()


def test_second_process_is_refused_the_lock(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path))
    db.lock_exclusive()
    code = (
        "import sys\n"
        "from symlinkd.state import StateDB\n"
        "from symlinkd.errors import StateLocked\n"
        f"db = StateDB({str(tmp_path)!r})\n"
        "try:\n"
        "    db.lock_exclusive()\n"
        "except StateLocked as e:\n"
        "    print(e); sys.exit(7)\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=False)
    assert other.returncode == 7, other.stderr
    assert "another symlinkd holds" in other.stdout
    db.unlock()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    db.close()


def test_lock_within_one_process_is_exclusive_too(tmp_path: Path) -> None:
    first, second = StateDB(str(tmp_path)), StateDB(str(tmp_path))
    first.lock_exclusive()
    with pytest.raises(StateLocked):
        second.lock_exclusive()
    first.close()
    second.lock_exclusive()
    second.close()
