"""A first pass (no state) streams its writes too (issue 12): new healthy links go to the
``links`` table in bounded batches while the walk goes on, so a pass never holds a pending row
per link of the farm; the end result is that of writing everything at the end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from symlinkd import targets
from symlinkd.model import EntryKind, Judgement, LinkFacts, MountHealth, MountState, Verdict
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import MountSettings, Policy, Settings
from symlinkd.state import StateDB

NOW = 1_800_000_000.0
UP = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK)}


def facts(path: str) -> LinkFacts:
    return LinkFacts(path, EntryKind.SYMLINK, NOW, f"/mnt/zurg/t/{path.rsplit('/', 1)[1]}",
                     f"/mnt/zurg/t/{path.rsplit('/', 1)[1]}", "zurg", target_size=7)


def rows(db: StateDB) -> int:
    return int(db._conn.execute("SELECT count(*) FROM links").fetchone()[0])


def test_new_healthy_links_are_written_in_bounded_batches(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    recorder = db.recorder(spill=100)
    links = [facts(f"/farm/{i:04d}.mkv") for i in range(1050)]
    for start in range(0, len(links), 50):
        recorder.healthy(links[start:start + 50])
        assert recorder.pending() < 150, "pending rows stay bounded"
    assert rows(db) >= 1000, "written while the pass goes on"
    assert not recorder.known(links[0].path), "a subtree pass still sees them as new"
    recorder.finish([], full=True, mounts=UP)
    assert rows(db) == 1050, "a full pass does not drop what it wrote itself"
    assert all(db.known(f.path) for f in links)
    history = db.histories([links[3].path])[links[3].path]
    assert history.last_target == links[3].target and history.last_size == 7
    assert history.first_seen == NOW

    # The next pass is steady: nothing written.
    before = db._conn.total_changes
    recorder = db.recorder(spill=100)
    recorder.healthy(links)
    recorder.finish([], full=True, mounts=UP)
    assert db._conn.total_changes == before
    db.close()


def test_written_early_under_a_mount_that_failed_later_records_no_target(
    tmp_path: Path,
) -> None:
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    recorder = db.recorder(spill=10)
    links = [facts(f"/farm/{i:03d}.mkv") for i in range(40)]
    recorder.healthy(links)
    down = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.DEGRADED, "breaker")}
    recorder.finish([], full=False, mounts=down)
    found = db.histories([f.path for f in links])
    assert len(found) == 40
    assert all(h.last_target is None and h.last_size is None for h in found.values())
    db.close()
    # and a fresh process's digest agrees: the next healthy pass writes the targets
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    recorder = db.recorder()
    recorder.healthy(links)
    recorder.finish([], full=True, mounts=UP)
    assert db.histories([links[0].path])[links[0].path].last_target == links[0].target
    db.close()


def test_first_pass_makes_no_facts_for_healthy_links_and_records_their_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud = tmp_path / "mnt/zurg/__all__"
    farm = tmp_path / "farm"
    for show in range(30):
        (cloud / f"S{show}").mkdir(parents=True)
        (farm / f"Show{show}").mkdir(parents=True)
        for ep in range(10):
            if ep != 9:  # one in ten is gone
                (cloud / f"S{show}/e{ep}.mkv").write_bytes(b"x" * (ep + 1))
            os.symlink(cloud / f"S{show}/e{ep}.mkv", farm / f"Show{show}/e{ep}.mkv")
    settings = Settings(
        farm=str(farm), state_dir=str(tmp_path / "state"),
        mounts=(MountSettings("zurg", str(cloud.parent), "__all__", require_mountpoint=False),),
        policy=Policy(quarantine_dir=str(tmp_path / "q"), max_age_days=0),
    )
    made: list[str] = []

    def counted(*args: Any, **kw: Any) -> LinkFacts:
        made.append(args[0])
        return LinkFacts(*args, **kw)

    monkeypatch.setattr(targets, "LinkFacts", counted)
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        report = rt.run_pass(PassOptions(notify=False))
        assert report.tally()[("zurg", Verdict.OK)] == 270
        assert len(made) == 30, "facts only for the 30 dangling links"
        link = str(farm / "Show3/e4.mkv")
        assert rt.state.histories([link])[link].last_size == 5


def test_a_steady_pass_does_not_grow_the_digest(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    links = [facts(f"/farm/{i:04d}.mkv") for i in range(1000)]  # 2048 slots: half full
    recorder = db.recorder()
    recorder.healthy(links)
    recorder.finish([], full=True, mounts=UP)
    size = len(db._loaded_digest().keys)
    recorder = db.recorder()
    recorder.healthy(links[:600])  # the other 400 are judged (kept), not only counted
    recorder.finish([Judgement(f, Verdict.OK, 1.0) for f in links[600:]], full=True, mounts=UP)
    assert len(db._loaded_digest().keys) == size, "known rows need no room"
    db.close()
