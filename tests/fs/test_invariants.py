"""One test (or a pair, one per layer that enforces it) per safety invariant of ARCHITECTURE.md.

Each was checked to fail with the invariant's code taken out (see docs/repair.md, "Safety
invariants and their tests").
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from symlinkd.classifier import apply_breaker, classify
from symlinkd.errors import UnsafePlan
from symlinkd.executor import TMP_PREFIX, Executor, MountRecheck
from symlinkd.journal_cmds import cmd_undo
from symlinkd.model import (
    ActionKind,
    EntryKind,
    LinkFacts,
    LinkHistory,
    MountHealth,
    OutcomeResult,
    PlannedAction,
    Prune,
    PruneReason,
    Relink,
    Verdict,
)
from symlinkd.mounts import MountMonitor
from symlinkd.planner import Plan, make_plan
from symlinkd.settings import Policy, Settings, Timeouts
from symlinkd.state import StateDB
from tests.fs.repair_farm import (
    DAY,
    NOW,
    Farm,
    facts_of,
    judge_farm,
    make_farm,
    ok_mounts,
    plan_for,
    snapshot,
)

POLICY = Policy(max_age_days=90, confirm_after_passes=2, confirm_after_minutes=60,
                max_prune=100, max_prune_ratio=1.0)


@pytest.fixture
def farm(tmp_path: Path) -> Farm:
    return make_farm(str(tmp_path))


@pytest.fixture
def state(farm: Farm) -> Iterator[StateDB]:
    db = StateDB(farm.state_dir)
    yield db
    db.close()


def execute(farm: Farm, state: StateDB, plan: Plan,
            mounts_ok: Callable[[str], bool] = lambda _: True) -> tuple[str, list[Any]]:
    run_id = state.begin_run("full", True)
    ex = Executor(state, farm.farm, farm.quarantine, dry_run=False, mounts_ok=mounts_ok)
    return run_id, ex.execute(plan, run_id)


def old_links(farm: Farm, n: int, mount: str = "zurg", folder: str = "Old") -> list[str]:
    anchor = "__all__" if mount == "zurg" else "torrents"
    target = farm.media(mount, f"{anchor}/{folder}/x.mkv")
    return [farm.link(f"{folder}/{i}.mkv", target, mtime=NOW - 200 * DAY) for i in range(n)]


# 1. No link changes unless its mount was verified ok in the same pass. ------------------------


def test_inv1_executor_rechecks_the_mount_right_before_each_action(farm: Farm,
                                                                    state: StateDB) -> None:
    links = old_links(farm, 4)
    mounts = ok_mounts(farm)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY, now=NOW)
    assert len(plan.changes()) == 4
    calls: list[str] = []

    def blinks_after_the_first(name: str) -> bool:  # the probe between actions sees it die
        calls.append(name)
        return len(calls) == 1

    _, outcomes = execute(farm, state, plan, blinks_after_the_first)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE] + [OutcomeResult.SKIPPED] * 3
    assert sum(os.path.islink(p) for p in links) == 3


def test_inv1_planner_and_gate_never_act_under_a_mount_not_ok(farm: Farm) -> None:
    old_links(farm, 2)
    for health in (MountHealth.DOWN, MountHealth.HUNG, MountHealth.DEGRADED):
        mounts = ok_mounts(farm, zurg=health)
        judgements = [classify(facts_of(p, farm.mounts), ok_mounts(farm), NOW)
                      for p in sorted(str(x) for x in Path(farm.farm).rglob("*.mkv"))]
        plan = plan_for(farm, judgements, mounts, POLICY, now=NOW)
        assert plan.changes() == [], health
        forced = Plan([PlannedAction(j, Prune(PruneReason.AGE)) for j in judgements])
        with pytest.raises(UnsafePlan) as err:
            forced.raise_if_unsafe(POLICY, mounts)
        assert err.value.reason == "mount_not_ok"


# 2. Only ENOENT/ENOTDIR under a healthy mount make a link dangling. ---------------------------


@pytest.mark.parametrize(
    ("code", "timed_out"),
    [(errno.ENOTCONN, False), (errno.EIO, False), (errno.ESTALE, False), (errno.EACCES, False),
     (None, True)],
)
def test_inv2_other_errors_never_lead_to_a_prune(tmp_path: Path, code: int | None,
                                                 timed_out: bool) -> None:
    farm = make_farm(str(tmp_path))
    mounts = ok_mounts(farm)
    db = StateDB(farm.state_dir)
    facts = LinkFacts(path=os.path.join(farm.farm, "S/e.mkv"), kind=EntryKind.SYMLINK,
                      link_mtime=NOW - DAY, target=f"{farm.root}/zurg/__all__/S/e.mkv",
                      resolved=f"{farm.root}/zurg/__all__/S/e.mkv", mount="zurg", errno=code,
                      timed_out=timed_out)
    for hour in range(6):  # six passes over five hours: long past confirm_after
        now = NOW + hour * 3600
        j = classify(facts, mounts, now)
        assert j.verdict is not Verdict.DANGLING
        plan = make_plan([j], mounts, db.histories([j.path]), {}, POLICY, farm.farm, now)
        assert plan.changes() == []
        db.record_pass([j], full=True)
    # Even were the state DB to claim a long dangling streak, the verdict decides.
    streak = {facts.path: LinkHistory(first_seen=NOW - 30 * DAY, bad_since=NOW - 30 * DAY,
                                      bad_passes=99)}
    j = classify(facts, mounts, NOW)
    assert make_plan([j], mounts, streak, {}, POLICY, farm.farm, NOW).changes() == []
    db.close()


def test_inv2_control_enoent_does_lead_to_a_prune(farm: Farm, state: StateDB) -> None:
    link = farm.link("S/e.mkv", f"{farm.root}/zurg/__all__/S/gone.mkv", mtime=NOW - DAY)
    mounts = ok_mounts(farm)
    kinds = []
    for hour in range(3):
        j = classify(facts_of(link, farm.mounts), mounts, NOW + hour * 3600)
        plan = make_plan([j], mounts, state.histories([link]), {}, POLICY, farm.farm,
                         NOW + hour * 3600)
        kinds.append(plan.actions[0].action.kind)
        state.record_pass([j], full=True)
    assert kinds[-1] is ActionKind.PRUNE


# 3. Per-mount breaker. -----------------------------------------------------------------------


def test_inv3_breaker_stops_one_mount_and_the_other_carries_on(farm: Farm,
                                                               state: StateDB) -> None:
    farm.media("zurg", "__all__/S/ok.mkv")
    for i in range(12):
        farm.link(f"Z/gone{i}.mkv", f"{farm.root}/zurg/__all__/S/gone{i}.mkv", mtime=NOW - DAY)
    for i in range(4):
        farm.link(f"Z/ok{i}.mkv", f"{farm.root}/zurg/__all__/S/ok.mkv", mtime=NOW - DAY)
    torbox_old = old_links(farm, 1, mount="torbox", folder="T")
    probed = ok_mounts(farm)
    judgements = judge_farm(farm, probed, NOW)
    mounts = apply_breaker(judgements, probed, POLICY.breaker_ratio, POLICY.breaker_min_links)
    assert mounts["zurg"].health is MountHealth.DEGRADED and mounts["torbox"].up
    confirmed = {j.path: LinkHistory(first_seen=NOW - 9 * DAY, bad_since=NOW - 9 * DAY,
                                     bad_passes=50) for j in judgements}
    plan = plan_for(farm, judgements, mounts, POLICY, histories=confirmed, now=NOW)
    plan.raise_if_unsafe(POLICY, mounts)
    assert [p.path for p in plan.changes()] == torbox_old
    _, outcomes = execute(farm, state, plan, lambda name: mounts[name].up)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE]
    assert len(list(Path(farm.farm, "Z").iterdir())) == 16


# 4. A dangling link is pruned only after confirm_after (passes and time, in the state DB). ----


def test_inv4_prune_waits_for_both_passes_and_minutes(farm: Farm, state: StateDB) -> None:
    link = farm.link("S/e.mkv", f"{farm.root}/zurg/__all__/S/gone.mkv", mtime=NOW - DAY)
    mounts = ok_mounts(farm)

    def decide(minutes: float) -> ActionKind:
        now = NOW + minutes * 60
        j = classify(facts_of(link, farm.mounts), mounts, now)
        plan = make_plan([j], mounts, state.histories([link]), {}, POLICY, farm.farm, now)
        state._clock = lambda: now  # the pass is recorded at its own time
        state.record_pass([j], full=True)
        return plan.actions[0].action.kind

    assert decide(0) is ActionKind.SKIP  # first sight
    assert decide(30) is ActionKind.SKIP  # two passes, but only 30 minutes
    assert decide(59) is ActionKind.SKIP
    assert decide(61) is ActionKind.PRUNE  # passes and minutes both met


def test_inv4_time_alone_is_not_enough(farm: Farm, state: StateDB) -> None:
    link = farm.link("S/e.mkv", f"{farm.root}/zurg/__all__/S/gone.mkv", mtime=NOW - DAY)
    mounts = ok_mounts(farm)
    j = classify(facts_of(link, farm.mounts), mounts, NOW)
    state._clock = lambda: NOW - 10 * DAY  # first recorded dangling ten days ago, once
    plan = make_plan([j], mounts, {link: LinkHistory(first_seen=NOW - 10 * DAY,
                                                     bad_since=NOW - 10 * DAY, bad_passes=0)},
                     {}, POLICY, farm.farm, NOW)
    assert plan.actions[0].action.kind is ActionKind.SKIP


# 5. max_prune / max_prune_ratio: the whole plan is refused unless forced. ---------------------


def test_inv5_plan_over_max_prune_is_refused_and_force_applies_it(farm: Farm,
                                                                  state: StateDB) -> None:
    links = old_links(farm, 3)
    mounts = ok_mounts(farm)
    policy = replace(POLICY, max_prune=2)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, policy, now=NOW)
    before = snapshot(farm.farm)
    with pytest.raises(UnsafePlan) as err:
        plan.raise_if_unsafe(policy, mounts)
    assert err.value.reason == "max_prune"
    assert snapshot(farm.farm) == before  # refused: nothing done
    # --force: the caller skips the gate; the executor applies the whole plan.
    _, outcomes = execute(farm, state, plan)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE] * 3
    assert not any(os.path.lexists(p) for p in links)


def test_inv5_ratio_refuses_mass_pruning(farm: Farm) -> None:
    old_links(farm, 3)
    for i in range(7):
        farm.link(f"New/{i}.mkv", farm.media("zurg", "__all__/n.mkv"), mtime=NOW - DAY)
    mounts = ok_mounts(farm)
    policy = replace(POLICY, max_prune_ratio=0.2)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, policy, now=NOW)
    with pytest.raises(UnsafePlan) as err:
        plan.raise_if_unsafe(policy, mounts)
    assert err.value.reason == "max_prune_ratio"


# 6. Every mutation is journaled before it happens; undo puts links back exactly. --------------


def test_inv6_journal_entry_is_committed_before_the_farm_changes(
    farm: Farm, state: StateDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = old_links(farm, 2)
    farm.media("torbox", "torrents/R/e.mkv")
    relinked = farm.link("R/e.mkv", f"{farm.root}/zurg/__all__/R/e.mkv", mtime=NOW - DAY)
    mounts = ok_mounts(farm)
    judgements = judge_farm(farm, mounts, NOW)
    plan = plan_for(farm, judgements, mounts, POLICY,
                    candidates={relinked: [f"{farm.root}/torbox/torrents/R/e.mkv"]}, now=NOW)
    seen_at_change: list[tuple[str, list[tuple[bytes, str]]]] = []
    db_file = os.path.join(farm.state_dir, "state.sqlite3")

    def committed() -> list[tuple[bytes, str]]:
        other = sqlite3.connect(db_file)  # another connection sees only committed rows
        try:
            return other.execute("SELECT path, state FROM journal").fetchall()
        finally:
            other.close()

    real_rename, real_replace = os.rename, os.replace

    def spy_rename(src: Any, dst: Any, *a: Any, **k: Any) -> None:
        seen_at_change.append((os.fsdecode(src), committed()))
        real_rename(src, dst, *a, **k)

    def spy_replace(src: Any, dst: Any, *a: Any, **k: Any) -> None:
        seen_at_change.append((os.fsdecode(dst), committed()))
        real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "rename", spy_rename)
    monkeypatch.setattr(os, "replace", spy_replace)
    _run_id, outcomes = execute(farm, state, plan)
    monkeypatch.undo()
    assert len(outcomes) == 3 and all(o.result is OutcomeResult.DONE for o in outcomes)
    assert sorted(p for p, _ in seen_at_change) == sorted([*links, relinked])
    for path, rows in seen_at_change:
        assert (os.fsencode(path), "pending") in rows, path


def test_inv6_undo_puts_links_back_exactly(farm: Farm, state: StateDB) -> None:
    old_links(farm, 3)
    mounts = ok_mounts(farm)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY, now=NOW)
    before = snapshot(farm.farm)
    run_id, _ = execute(farm, state, plan)
    assert snapshot(farm.farm) != before
    settings = Settings(farm=farm.farm, state_dir=farm.state_dir, mounts=farm.mounts,
                        policy=Policy(quarantine_dir=farm.quarantine))
    state.close()
    assert cmd_undo(settings, run_id, as_json=True) == 0
    assert snapshot(farm.farm) == before


# 7. Relink is atomic: temporary link in the same directory, then os.replace. ------------------


def test_inv7_relink_swaps_a_finished_temporary_link_in_one_rename(
    farm: Farm, state: StateDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = farm.media("torbox", "torrents/R/e.mkv")
    old_target = f"{farm.root}/zurg/__all__/R/e.mkv"
    link = farm.link("R/e.mkv", old_target, mtime=NOW - 3 * DAY)
    mtime_ns = os.lstat(link).st_mtime_ns
    mounts = ok_mounts(farm)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY,
                    candidates={link: [new]}, now=NOW)
    assert isinstance(plan.actions[0].action, Relink)
    swaps: list[tuple[str, str | None, str, int]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any, *a: Any, **k: Any) -> None:
        # At the instant of the swap the old link is still whole and the new one is finished.
        swaps.append((os.fsdecode(src), os.readlink(dst) if os.path.lexists(dst) else None,
                      os.readlink(src), os.lstat(src).st_mtime_ns))
        real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    _, outcomes = execute(farm, state, plan)
    monkeypatch.undo()
    assert [o.result for o in outcomes] == [OutcomeResult.DONE]
    ((src, dst_before, src_target, src_mtime),) = swaps
    assert os.path.dirname(src) == os.path.dirname(link)
    assert os.path.basename(src).startswith(TMP_PREFIX)
    assert (dst_before, src_target, src_mtime) == (old_target, new, mtime_ns)
    assert os.readlink(link) == new
    assert not [n for n in os.listdir(os.path.dirname(link)) if n.startswith(TMP_PREFIX)]


# 8. Only symlinks are changed; only directories symlinkd emptied itself are removed. ----------


def test_inv8_only_symlinks_and_only_folders_we_emptied(farm: Farm, state: StateDB) -> None:
    target = farm.media("zurg", "__all__/S/x.mkv")
    pruned = farm.link("Show/Season 01/e1.mkv", target, mtime=NOW - 200 * DAY)
    becomes_file = farm.link("Show/Season 02/e1.mkv", target, mtime=NOW - 200 * DAY)
    keeps_nfo = farm.link("Other/Season 01/e1.mkv", target, mtime=NOW - 200 * DAY)
    Path(farm.farm, "Other/Season 01/tvshow.nfo").write_text("mine")
    already_empty = Path(farm.farm, "Show/Season 03")
    already_empty.mkdir()
    lonely_empty = Path(farm.farm, "Empty Show/Season 01")
    lonely_empty.mkdir(parents=True)
    mounts = ok_mounts(farm)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY, now=NOW)
    assert len(plan.changes()) == 3
    # After the scan, a user replaces one link with a real file (a manual download).
    os.unlink(becomes_file)
    Path(becomes_file).write_bytes(b"real file")
    _, outcomes = execute(farm, state, plan)
    results = {o.planned.path: o.result for o in outcomes}
    assert results == {pruned: OutcomeResult.DONE, becomes_file: OutcomeResult.SKIPPED,
                       keeps_nfo: OutcomeResult.DONE}
    assert Path(becomes_file).read_bytes() == b"real file"
    assert not Path(pruned).parent.exists()  # emptied by this run: removed
    assert Path(farm.farm, "Other/Season 01/tvshow.nfo").exists()
    assert already_empty.is_dir() and lonely_empty.is_dir()  # empty, but not our doing
    assert Path(farm.farm, "Show").is_dir()


def test_inv1_mount_recheck_reprobes_between_actions(farm: Farm, state: StateDB) -> None:
    """``MountRecheck`` (what the runtime can hand the executor as ``mounts_ok``): a mount that
    dies in the middle of a long apply stops being acted on at the next probe."""
    links = old_links(farm, 4)
    monitor = MountMonitor(farm.mounts, Timeouts(probe_seconds=5, op_seconds=5))
    try:
        planned = monitor.probe()
        plan = plan_for(farm, judge_farm(farm, planned, NOW), planned, POLICY, now=NOW)
        ticks = iter(range(1, 100))
        anchor = farm.mounts[0].anchor_path

        def clock() -> float:
            tick = next(ticks)
            if tick == 3:  # between the first and the second action: rclone dies
                os.rename(anchor, anchor + ".gone")
            return tick * 10.0

        _, outcomes = execute(farm, state, plan, MountRecheck(monitor, planned, clock=clock))
    finally:
        monitor.close()
    assert [o.result for o in outcomes] == [OutcomeResult.DONE] + [OutcomeResult.SKIPPED] * 3
    assert sum(os.path.islink(p) for p in links) == 3
