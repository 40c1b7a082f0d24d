"""Executor and relink on real temp dirs: what a user sees in the farm after a pass."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from symlinkd.executor import TMP_PREFIX, Executor, describe_os_error
from symlinkd.journal import JournalAction, JournalState
from symlinkd.journal_cmds import cmd_undo
from symlinkd.model import ActionKind, LinkHistory, OutcomeResult, Relink, Skip, Verdict
from symlinkd.mounts import MountMonitor
from symlinkd.relink import find_candidates
from symlinkd.settings import Policy, Settings, Timeouts
from symlinkd.state import StateDB
from tests.fs.repair_farm import (
    DAY,
    NOW,
    Farm,
    judge_farm,
    make_farm,
    ok_mounts,
    plan_for,
    snapshot,
)

POLICY = Policy(max_age_days=90, confirm_after_passes=1, confirm_after_minutes=0)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def farm(tmp_path: Path) -> Farm:
    return make_farm(str(tmp_path))


@pytest.fixture
def monitor(farm: Farm) -> Iterator[MountMonitor]:
    mon = MountMonitor(farm.mounts, Timeouts(probe_seconds=5, op_seconds=5))
    yield mon
    mon.close()


def executor(farm: Farm, state: StateDB, *, dry_run: bool = False) -> Executor:
    return Executor(state, farm.farm, farm.quarantine, dry_run=dry_run, mounts_ok=lambda _: True)


def repair(farm: Farm, monitor: MountMonitor, *, dry_run: bool = False,
           histories: dict[str, LinkHistory] | None = None,
           policy: Policy = POLICY) -> tuple[list, StateDB, str]:  # type: ignore[type-arg]
    mounts = monitor.probe()
    judgements = judge_farm(farm, mounts, NOW)
    dangling = [j for j in judgements if j.verdict is Verdict.DANGLING]
    cands = find_candidates(dangling, histories or {}, monitor, mounts)
    plan = plan_for(farm, judgements, mounts, policy, histories=histories, candidates=cands,
                    now=NOW)
    state = StateDB(farm.state_dir)
    run_id = state.begin_run("full", not dry_run)
    return executor(farm, state, dry_run=dry_run).execute(plan, run_id), state, run_id


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_relink_to_the_same_path_under_another_mount(farm: Farm,
                                                     monitor: MountMonitor) -> None:
    new = farm.media("torbox", "torrents/Show.S01/e1.mkv", b"the episode")
    gone = os.path.join(farm.root, "zurg/__all__/Show.S01/e1.mkv")
    link = farm.link("Show/Season 01/e1.mkv", gone, mtime=NOW - 10 * DAY)
    before = os.lstat(link)
    outcomes, state, run_id = repair(farm, monitor)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE]
    assert os.readlink(link) == new and read(link) == b"the episode"
    after = os.lstat(link)
    assert after.st_mtime_ns == before.st_mtime_ns  # a repair does not reset the age clock
    assert not [n for n in os.listdir(os.path.dirname(link)) if n.startswith(TMP_PREFIX)]
    (entry,) = state.journal(run_id)
    assert (entry.action, entry.state, entry.new_target) == (JournalAction.RELINK,
                                                              JournalState.DONE, new)
    assert entry.old_mtime_ns == before.st_mtime_ns
    state.close()


def test_relink_from_a_zurg_group_folder_to_all(farm: Farm, monitor: MountMonitor) -> None:
    new = farm.media("zurg", "__all__/Movie (2020)/movie.mkv")
    os.makedirs(os.path.join(farm.root, "zurg/movies"))
    link = farm.link("Movies/Movie (2020)/movie.mkv",
                     os.path.join(farm.root, "zurg/movies/Movie (2020)/movie.mkv"))
    outcomes, state, _ = repair(farm, monitor)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE]
    assert os.readlink(link) == new
    state.close()


def test_relink_by_name_and_remembered_size_after_a_rename(farm: Farm,
                                                           monitor: MountMonitor) -> None:
    data = b"y" * 4321
    new = farm.media("zurg", "__all__/Show.S01.REPACK-GRP/e1.mkv", data)
    farm.media("zurg", "__all__/Other.Show/e1.mkv", b"z" * 10)  # same name, other size
    link = farm.link("Show/e1.mkv", os.path.join(farm.root, "zurg/__all__/Show.S01-GRP/e1.mkv"))
    history = {link: LinkHistory(first_seen=NOW - DAY, last_size=len(data))}
    outcomes, state, _ = repair(farm, monitor, histories=history)
    assert [o.result for o in outcomes] == [OutcomeResult.DONE]
    assert os.readlink(link) == new and read(link) == data
    state.close()


def test_two_same_name_same_size_files_are_ambiguous(farm: Farm, monitor: MountMonitor) -> None:
    farm.media("zurg", "__all__/A/e1.mkv", b"q" * 50)
    farm.media("torbox", "usenet/B/e1.mkv", b"q" * 50)
    link = farm.link("Show/e1.mkv", os.path.join(farm.root, "zurg/__all__/Gone/e1.mkv"))
    history = {link: LinkHistory(first_seen=NOW - DAY, last_size=50)}
    mounts = monitor.probe()
    judgements = judge_farm(farm, mounts, NOW)
    cands = find_candidates(judgements, history, monitor, mounts)
    assert sorted(cands[link]) == sorted([os.path.join(farm.root, "zurg/__all__/A/e1.mkv"),
                                          os.path.join(farm.root, "torbox/usenet/B/e1.mkv")])
    plan = plan_for(farm, judgements, mounts, POLICY, histories=history, candidates=cands,
                    now=NOW)
    (planned,) = plan.actions
    assert isinstance(planned.action, Skip) and "ambiguous" in planned.action.reason


def test_prune_moves_the_link_into_quarantine_with_its_mtime(farm: Farm,
                                                             monitor: MountMonitor) -> None:
    target = farm.media("zurg", "__all__/Old/old.mkv")
    keep = farm.link("Old/Season 1/keep.mkv", target, mtime=NOW - 5 * DAY)
    old = farm.link("Old/Season 1/old.mkv", target, mtime=NOW - 120 * DAY)
    mtime_ns = os.lstat(old).st_mtime_ns
    outcomes, state, run_id = repair(farm, monitor)
    assert [(o.planned.path, o.result) for o in outcomes] == [(old, OutcomeResult.DONE)]
    assert not os.path.lexists(old) and os.path.islink(keep)
    q = os.path.join(farm.quarantine, run_id, "Old/Season 1/old.mkv")
    assert os.readlink(q) == target and os.lstat(q).st_mtime_ns == mtime_ns
    assert os.path.isdir(os.path.dirname(old))  # still holds keep.mkv: not removed
    state.close()


def test_dry_run_touches_nothing_and_says_what_it_would_do(farm: Farm,
                                                           monitor: MountMonitor) -> None:
    farm.media("torbox", "torrents/S/e1.mkv")
    farm.link("S/e1.mkv", os.path.join(farm.root, "zurg/__all__/S/e1.mkv"))
    farm.link("S/old.mkv", farm.media("zurg", "__all__/S/old.mkv"), mtime=NOW - 100 * DAY)
    before = snapshot(farm.root)
    outcomes, state, run_id = repair(farm, monitor, dry_run=True)
    assert sorted(o.result for o in outcomes) == [OutcomeResult.DRY_RUN] * 2
    messages = " ".join(o.message for o in outcomes)
    assert "would relink" in messages and "would move" in messages and "dry run" in messages
    after = snapshot(farm.root)
    after = {k: v for k, v in after.items() if not k.startswith(farm.state_dir)}
    assert after == {k: v for k, v in before.items() if not k.startswith(farm.state_dir)}
    assert state.journal(run_id) == []
    state.close()


def test_a_link_changed_since_the_scan_is_left_alone(farm: Farm, monitor: MountMonitor) -> None:
    farm.media("torbox", "torrents/S/e1.mkv")
    link = farm.link("S/e1.mkv", os.path.join(farm.root, "zurg/__all__/S/e1.mkv"))
    mounts = monitor.probe()
    judgements = judge_farm(farm, mounts, NOW)
    cands = find_candidates(judgements, {}, monitor, mounts)
    plan = plan_for(farm, judgements, mounts, POLICY, candidates=cands, now=NOW)
    assert isinstance(plan.actions[0].action, Relink)
    # rdt-client rewrites the link between our scan and our action.
    os.unlink(link)
    os.symlink("/somewhere/else.mkv", link)
    state = StateDB(farm.state_dir)
    (outcome,) = executor(farm, state).execute(plan, state.begin_run("full", True))
    assert outcome.result is OutcomeResult.SKIPPED and "changed since the scan" in outcome.message
    assert os.readlink(link) == "/somewhere/else.mkv"
    state.close()


@contextlib.contextmanager
def mounted(*args: str) -> Iterator[None]:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount here ({exc}); needs root with CAP_SYS_ADMIN")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", args[-1]], check=False, capture_output=True, timeout=30)


def test_read_only_part_of_the_farm_fails_that_action_and_the_pass_goes_on(
    farm: Farm, monitor: MountMonitor
) -> None:
    target = farm.media("zurg", "__all__/x.mkv")
    ro_link = farm.link("RO/old.mkv", target, mtime=NOW - 100 * DAY)
    rw_link = farm.link("RW/old.mkv", target, mtime=NOW - 100 * DAY)
    ro_dir = os.path.dirname(ro_link)
    with mounted("--bind", ro_dir, ro_dir), mounted("-o", "remount,bind,ro", ro_dir):
        outcomes, state, run_id = repair(farm, monitor)
        by_path = {o.planned.path: o for o in outcomes}
        assert by_path[ro_link].result is OutcomeResult.FAILED
        assert "EROFS" in by_path[ro_link].message and "read-only" in by_path[ro_link].message
        assert os.path.islink(ro_link)
    assert by_path[rw_link].result is OutcomeResult.DONE and not os.path.lexists(rw_link)
    states = {e.path: e.state for e in state.journal(run_id) if e.action is JournalAction.PRUNE}
    assert states == {ro_link: JournalState.FAILED, rw_link: JournalState.DONE}
    state.close()


def test_full_disk_fails_that_relink_cleanly(farm: Farm, monitor: MountMonitor) -> None:
    full = os.path.join(farm.farm, "Full")
    os.makedirs(full)
    with mounted("-t", "tmpfs", "-o", "size=64k,nr_inodes=8", "tmpfs", full):
        farm.media("torbox", "torrents/S/e1.mkv")
        link = farm.link("Full/e1.mkv", os.path.join(farm.root, "zurg/__all__/S/e1.mkv"))
        with contextlib.suppress(OSError):
            for i in range(100):  # use up the inodes
                Path(full, f"filler{i}").touch()
        outcomes, state, _ = repair(farm, monitor)
        (outcome,) = outcomes
        assert outcome.result is OutcomeResult.FAILED and "ENOSPC" in outcome.message
        assert os.readlink(link) == os.path.join(farm.root, "zurg/__all__/S/e1.mkv")
        assert not [n for n in os.listdir(full) if n.startswith(TMP_PREFIX)]
        state.close()


def test_stop_request_leaves_the_rest_untouched(farm: Farm, monitor: MountMonitor) -> None:
    target = farm.media("zurg", "__all__/x.mkv")
    links = [farm.link(f"S/{i}.mkv", target, mtime=NOW - 100 * DAY) for i in range(3)]
    mounts = monitor.probe()
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY, now=NOW)
    stop = threading.Event()
    stop.set()
    state = StateDB(farm.state_dir)
    ex = Executor(state, farm.farm, farm.quarantine, dry_run=False, mounts_ok=lambda _: True,
                  stop=stop)
    outcomes = ex.execute(plan, state.begin_run("full", True))
    assert {o.result for o in outcomes} == {OutcomeResult.SKIPPED}
    assert all(os.path.islink(p) for p in links)
    state.close()


def test_oserror_description_names_the_errno() -> None:
    text = describe_os_error(OSError(errno.EACCES, "Permission denied", "/farm/x"))
    assert text.startswith("EACCES") and "/farm/x" in text


def test_age_prune_policy_zero_disables(farm: Farm, monitor: MountMonitor) -> None:
    farm.link("S/old.mkv", farm.media("zurg", "__all__/x.mkv"), mtime=NOW - 1000 * DAY)
    outcomes, state, _ = repair(farm, monitor, policy=replace(POLICY, max_age_days=0))
    assert outcomes == []
    assert ActionKind.PRUNE not in {o.planned.action.kind for o in outcomes}
    state.close()


def test_dry_run_names_exactly_the_folders_apply_removes(farm: Farm,
                                                         monitor: MountMonitor) -> None:
    target = farm.media("zurg", "__all__/x.mkv")
    for rel in ("Old Show/Season 01/a.mkv", "Old Show/Season 01/b.mkv",
                "Old Show/Season 02/c.mkv", "Mixed/Season 01/d.mkv"):
        farm.link(rel, target, mtime=NOW - 100 * DAY)
    farm.link("Mixed/Season 01/young.mkv", target, mtime=NOW - DAY)

    def folders(outcomes: list, marker: str) -> set[str]:  # type: ignore[type-arg]
        found: set[str] = set()
        for o in outcomes:
            if marker in o.message:
                tail = o.message.split(marker, 1)[1]
                found |= {part.strip().strip("'") for part in tail.split(", ")}
        return found

    predicted, state, _ = repair(farm, monitor, dry_run=True)
    state.close()
    done, state, _ = repair(farm, monitor)
    state.close()
    expected = {os.path.join(farm.farm, p) for p in
                ("Old Show/Season 01", "Old Show/Season 02", "Old Show")}
    assert folders(predicted, "would remove emptied folders: ") == expected
    assert folders(done, "removed emptied folders: ") == expected
    assert os.path.isdir(os.path.join(farm.farm, "Mixed/Season 01"))


def test_quarantine_on_another_filesystem(farm: Farm, monitor: MountMonitor) -> None:
    """The usual deployment: quarantine on the /config volume, the farm on another (EXDEV)."""
    os.makedirs(farm.quarantine)
    with mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", farm.quarantine):
        target = farm.media("zurg", "__all__/x.mkv")
        old = farm.link("S/old.mkv", target, mtime=NOW - 100 * DAY)
        mtime_ns = os.lstat(old).st_mtime_ns
        outcomes, state, run_id = repair(farm, monitor)
        assert [o.result for o in outcomes] == [OutcomeResult.DONE]
        assert not os.path.lexists(old)
        q = os.path.join(farm.quarantine, run_id, "S/old.mkv")
        assert os.stat(q, follow_symlinks=False).st_dev != os.lstat(farm.farm).st_dev
        assert (os.readlink(q), os.lstat(q).st_mtime_ns) == (target, mtime_ns)
        state.close()
        settings = Settings(farm=farm.farm, state_dir=farm.state_dir, mounts=farm.mounts,
                            policy=Policy(quarantine_dir=farm.quarantine))
        assert cmd_undo(settings, run_id, as_json=True) == 0
        assert (os.readlink(old), os.lstat(old).st_mtime_ns) == (target, mtime_ns)
        assert not os.path.lexists(q)


def test_a_hung_mount_during_the_relink_search_gives_no_candidates(
    farm: Farm, monitor: MountMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symlinkd.mounts import MountTimeout  # noqa: PLC0415

    farm.media("torbox", "torrents/S/e1.mkv")
    farm.link("S/e1.mkv", os.path.join(farm.root, "zurg/__all__/S/e1.mkv"))
    mounts = monitor.probe()
    judgements = judge_farm(farm, mounts, NOW)

    def hangs(*_: object, **__: object) -> object:
        raise MountTimeout("torbox: no answer within 5 s")

    monkeypatch.setattr(monitor.gate("torbox"), "call", hangs)
    monkeypatch.setattr(monitor.gate("torbox"), "wait", hangs)
    assert find_candidates(judgements, {}, monitor, mounts) == {}


EACCES_CHILD = """
import json, sys
from symlinkd.executor import Executor
from symlinkd.settings import Policy
from symlinkd.state import StateDB
from tests.fs.repair_farm import NOW, judge_farm, make_farm, ok_mounts, plan_for

farm = make_farm(sys.argv[1])
mounts = ok_mounts(farm)
plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, Policy(), now=NOW)
state = StateDB(farm.state_dir)
outcomes = Executor(state, farm.farm, farm.quarantine, dry_run=False,
                    mounts_ok=lambda _: True).execute(plan, state.begin_run("full", True))
print(json.dumps({o.planned.path: [o.result.value, o.message] for o in outcomes}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the executor without DAC override")
def test_permission_denied_fails_that_action_and_the_pass_goes_on(tmp_path: Path) -> None:
    farm = make_farm(str(tmp_path))
    target = farm.media("zurg", "__all__/x.mkv")
    closed = farm.link("Closed/old.mkv", target, mtime=NOW - 100 * DAY)
    open_ = farm.link("Open/old.mkv", target, mtime=NOW - 100 * DAY)
    os.chown(os.path.dirname(closed), 65534, 65534)  # someone else's folder, mode 0755
    os.chmod(os.path.dirname(closed), 0o755)
    # Root without CAP_DAC_OVERRIDE/FOWNER meets permissions like the farm's real user would.
    done = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
         sys.executable, "-c", EACCES_CHILD, str(tmp_path)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results[closed][0] == "failed" and "EACCES" in results[closed][1]
    assert "permission denied" in results[closed][1]
    assert results[open_][0] == "done"
    assert os.path.islink(closed) and not os.path.lexists(open_)


def test_a_quarantine_inside_the_farm_is_never_used(farm: Farm) -> None:
    old = farm.link("S/old.mkv", farm.media("zurg", "__all__/x.mkv"), mtime=NOW - 100 * DAY)
    mounts = ok_mounts(farm)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, POLICY, now=NOW)
    state = StateDB(farm.state_dir)
    ex = Executor(state, farm.farm, os.path.join(farm.farm, ".quarantine"), dry_run=False,
                  mounts_ok=lambda _: True)
    (outcome,) = ex.execute(plan, state.begin_run("full", True))
    assert outcome.result is OutcomeResult.FAILED and "inside the farm" in outcome.message
    assert os.path.islink(old)
    state.close()
