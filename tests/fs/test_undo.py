"""Prune/relink -> undo puts the farm back bit for bit; history; quarantine purge."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from symlinkd.executor import Executor
from symlinkd.journal_cmds import cmd_history, cmd_quarantine_purge, cmd_undo
from symlinkd.model import OutcomeResult
from symlinkd.mounts import MountMonitor
from symlinkd.relink import find_candidates
from symlinkd.settings import Policy, Settings, Timeouts
from symlinkd.state import StateDB
from tests.fs.repair_farm import DAY, NOW, Farm, judge_farm, make_farm, plan_for, snapshot

POLICY = Policy(max_age_days=90, confirm_after_passes=1, confirm_after_minutes=0)


@pytest.fixture
def farm(tmp_path: Path) -> Farm:
    return make_farm(str(tmp_path))


@pytest.fixture
def settings(farm: Farm) -> Settings:
    return Settings(farm=farm.farm, state_dir=farm.state_dir, mounts=farm.mounts,
                    policy=Policy(quarantine_dir=farm.quarantine))


@pytest.fixture
def monitor(farm: Farm) -> Iterator[MountMonitor]:
    mon = MountMonitor(farm.mounts, Timeouts(probe_seconds=5, op_seconds=5))
    yield mon
    mon.close()


def apply_pass(farm: Farm, monitor: MountMonitor) -> str:
    mounts = monitor.probe()
    judgements = judge_farm(farm, mounts, NOW)
    cands = find_candidates(judgements, {}, monitor, mounts)
    plan = plan_for(farm, judgements, mounts, POLICY, candidates=cands, now=NOW)
    plan.raise_if_unsafe(POLICY, mounts)
    state = StateDB(farm.state_dir)
    run_id = state.begin_run("full", True)
    outcomes = Executor(state, farm.farm, farm.quarantine, dry_run=False,
                        mounts_ok=lambda _: True).execute(plan, run_id)
    state.finish_run(run_id, {"outcomes": len(outcomes)}, None)
    state.close()
    assert outcomes and all(o.result is OutcomeResult.DONE for o in outcomes), outcomes
    return run_id


def farm_view(farm: Farm) -> dict[str, tuple[str, str | None, int]]:
    return snapshot(farm.farm)


def links_view(farm: Farm) -> dict[str, tuple[str, str | None, int]]:
    """Links only: a folder that kept other links gets a new mtime when one leaves and comes
    back (on purpose — that mtime is how Plex notices the folder changed)."""
    return {k: v for k, v in snapshot(farm.farm).items() if v[0] == "link"}


def test_old_link_pruned_with_its_season_folder_and_undo_restores_all(
    farm: Farm, monitor: MountMonitor, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    target = farm.media("zurg", "__all__/Old.Show.S01/e1.mkv")
    farm.link("Young Show/Season 01/e1.mkv", farm.media("zurg", "__all__/Young/e1.mkv"),
              mtime=NOW - 3 * DAY)
    old = farm.link("Old Show/Season 01/e1.mkv", target, mtime=NOW - 91 * DAY)
    season, show = os.path.dirname(old), os.path.dirname(os.path.dirname(old))
    os.utime(season, (NOW - 91 * DAY, NOW - 91 * DAY))
    os.utime(show, (NOW - 95 * DAY, NOW - 95 * DAY))
    before = farm_view(farm)

    run_id = apply_pass(farm, monitor)
    assert not os.path.lexists(old)
    assert not os.path.exists(season) and not os.path.exists(show)  # emptied by us: removed
    q = os.path.join(farm.quarantine, run_id, "Old Show/Season 01/e1.mkv")
    assert os.readlink(q) == target

    assert cmd_undo(settings, run_id, as_json=True) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["undo_of"] == run_id and doc["counts"] == {"restored": 3}
    assert farm_view(farm) == before  # link target+mtime, both folders with their mtimes
    assert not os.path.lexists(q)  # the quarantine copy went back

    # Idempotent: a second undo finds nothing left and changes nothing.
    assert cmd_undo(settings, run_id, as_json=False) == 0
    assert "Nothing to undo" in capsys.readouterr().out
    assert farm_view(farm) == before


def test_odd_names_survive_prune_and_undo(farm: Farm, monitor: MountMonitor,
                                          settings: Settings) -> None:
    odd_dir = os.fsdecode(b"Bad \xff\xfe Show\nS01")
    odd_file = farm.media("zurg", os.fsdecode(b"__all__/t\xe9st\n.mkv"))
    farm.link(os.path.join(odd_dir, "ok.mkv"), farm.media("zurg", "__all__/k.mkv"),
              mtime=NOW - DAY)
    odd = farm.link(os.path.join(odd_dir, os.fsdecode(b"ep\n\xff01.mkv")), odd_file,
                    mtime=NOW - 200 * DAY)
    before = links_view(farm)
    run_id = apply_pass(farm, monitor)
    assert not os.path.lexists(odd)
    assert cmd_undo(settings, run_id, as_json=True) == 0
    assert links_view(farm) == before
    assert os.fsencode(os.readlink(odd)) == os.fsencode(odd_file)


def test_relink_undo_puts_the_old_target_back(farm: Farm, monitor: MountMonitor,
                                              settings: Settings) -> None:
    farm.media("torbox", "torrents/R/e1.mkv")
    gone = os.path.join(farm.root, "zurg/__all__/R/e1.mkv")
    link = farm.link("R/e1.mkv", gone, mtime=NOW - 7 * DAY)
    before = links_view(farm)
    run_id = apply_pass(farm, monitor)
    assert os.readlink(link) != gone
    assert cmd_undo(settings, run_id, as_json=True) == 0
    assert links_view(farm) == before


def test_undo_never_overwrites_what_took_the_place(farm: Farm, monitor: MountMonitor,
                                                   settings: Settings,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    old = farm.link("S/old.mkv", farm.media("zurg", "__all__/o.mkv"), mtime=NOW - 100 * DAY)
    run_id = apply_pass(farm, monitor)
    os.makedirs(os.path.dirname(old), exist_ok=True)
    os.symlink("/the/new/download.mkv", old)  # Sonarr grabbed it again meanwhile
    assert cmd_undo(settings, run_id, as_json=True) == 1
    doc = json.loads(capsys.readouterr().out)
    results = {i["path"]: (i["result"], i["message"]) for i in doc["items"]}
    assert results[old][0] == "conflict" and "/the/new/download.mkv" in results[old][1]
    assert os.readlink(old) == "/the/new/download.mkv"


def test_undo_is_a_journaled_run_in_history(farm: Farm, monitor: MountMonitor,
                                            settings: Settings,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    farm.link("S/old.mkv", farm.media("zurg", "__all__/o.mkv"), mtime=NOW - 100 * DAY)
    run_id = apply_pass(farm, monitor)
    assert cmd_undo(settings, run_id, as_json=True) == 0
    undo_id = json.loads(capsys.readouterr().out)["run_id"]
    assert cmd_history(settings, as_json=True, limit=10) == 0
    runs = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert runs[undo_id]["kind"] == "undo" and runs[undo_id]["undo_of"] == run_id
    assert runs[undo_id]["journal"] == {"done": 2}  # mkdir S, restore the link
    assert runs[run_id]["journal"] == {"undone": 2}
    assert cmd_history(settings, as_json=False, limit=10) == 0
    assert run_id in capsys.readouterr().out
    assert cmd_undo(settings, undo_id, as_json=False) == 2  # an undo is not undone
    assert cmd_undo(settings, "no-such-run", as_json=False) == 2


def test_quarantine_purge_dry_run_then_apply_and_undo_still_works(
    farm: Farm, monitor: MountMonitor, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    old = farm.link("S/old.mkv", farm.media("zurg", "__all__/o.mkv"), mtime=NOW - 100 * DAY)
    before = farm_view(farm)
    run_id = apply_pass(farm, monitor)
    folder = os.path.join(farm.quarantine, run_id)
    assert cmd_quarantine_purge(settings, older_than_days=1, apply=True) == 0
    assert os.path.isdir(folder)  # the run is minutes old, not a day
    capsys.readouterr()
    assert cmd_quarantine_purge(settings, older_than_days=0, apply=False) == 0
    assert "would delete" in capsys.readouterr().out and os.path.isdir(folder)
    assert cmd_quarantine_purge(settings, older_than_days=0, apply=True) == 0
    assert not os.path.exists(folder)
    # The journal alone knows the target and mtime: undo still restores the link.
    assert cmd_undo(settings, run_id, as_json=True) == 0
    assert farm_view(farm) == before and os.path.islink(old)
