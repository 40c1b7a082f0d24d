"""Invariants 10 and 11 on real temp dirs: the one containment rule (``symlinkd.containment``)
and every place that writes or deletes — undo and crash recovery of a forged journal, and
quarantine purge of a quarantine that holds things symlinkd did not put there."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symlinkd.containment import Area, OutsideZone, Zone
from symlinkd.journal import JournalAction, JournalState
from symlinkd.journal_cmds import cmd_quarantine_purge, cmd_undo
from symlinkd.settings import MountSettings, Policy, Settings
from symlinkd.state import StateDB
from tests.fs.repair_farm import apply_in_child


def tree(root: str) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root`` (links not followed): kind, target or size, mode, mtime."""
    seen: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st_ = os.lstat(path)
            what = os.readlink(path) if stat.S_ISLNK(st_.st_mode) else st_.st_size
            seen[os.path.relpath(path, root)] = (stat.S_IFMT(st_.st_mode), what,
                                                  stat.S_IMODE(st_.st_mode), st_.st_mtime_ns)
    return seen


def layout(root: str) -> dict[str, str]:
    """farm/ quarantine/ state/ zurg/ (a "mount") outside/ — with symlinks that lead out."""
    paths = {k: os.path.join(root, k) for k in ("farm", "quarantine", "state", "zurg", "outside")}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    os.makedirs(os.path.join(paths["farm"], "Show", "Season 1"))
    os.makedirs(os.path.join(paths["outside"], "deep"))
    with open(os.path.join(paths["outside"], "file.mkv"), "wb") as f:
        f.write(b"precious")
    os.symlink(os.path.join(paths["outside"], "file.mkv"), os.path.join(paths["outside"], "l"))
    os.symlink(paths["outside"], os.path.join(paths["farm"], "escape"))  # a folder link out
    os.symlink("../../outside", os.path.join(paths["farm"], "Show", "rel-escape"))
    os.symlink(paths["zurg"], os.path.join(paths["farm"], "into-mount"))
    os.symlink(paths["state"], os.path.join(paths["quarantine"], "into-state"))
    return paths


def zone_of(p: dict[str, str]) -> Zone:
    return Zone(p["farm"], p["quarantine"], forbidden=(p["state"], p["zurg"]))


# --- the rule itself -----------------------------------------------------------------------

COMPONENTS = st.one_of(
    st.sampled_from(["..", ".", "", "Show", "Season 1", "escape", "rel-escape", "into-mount",
                     "into-state", "farm", "quarantine", "outside", "state", "zurg", "new",
                     "deep", "l", "file.mkv", "x\0y", "é", "\udcff", "😀", "a/../..", "//"]),
    st.text(min_size=1, max_size=4),
)
STARTS = st.sampled_from(["farm", "quarantine", "outside", "state", "zurg", "", "/", "rel"])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=STARTS, parts=st.lists(COMPONENTS, min_size=1, max_size=6),
       area=st.sampled_from(list(Area)))
def test_nothing_outside_the_farm_or_quarantine_is_ever_accepted(
    start: str, parts: list[str], area: Area
) -> None:
    with tempfile.TemporaryDirectory() as root:
        p = layout(root)
        zone = zone_of(p)
        base = "/" if start == "/" else "" if start == "rel" else os.path.join(root, start)
        path = os.path.join(base, *parts) if base or parts else ""
        outside = {k: tree(p[k]) for k in ("outside", "state", "zurg")}
        try:
            zone.check(path, area)
        except OutsideZone as refused:
            assert str(refused)
            return
        except ValueError:  # pragma: no cover - the rule must never raise anything else
            pytest.fail(f"check raised ValueError for {path!r}")
        # Accepted: acting on it (the folders above, then a link) changes nothing outside.
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.symlink("/nowhere", path)
        assert os.path.lexists(path)
        assert {k: tree(p[k]) for k in ("outside", "state", "zurg")} == outside, path
        real_root = os.path.realpath(p[area.value])
        assert os.path.realpath(os.path.dirname(path)).startswith(real_root)


def test_the_rule_names_why(tmp_path: Path) -> None:
    p = layout(str(tmp_path))
    zone = zone_of(p)
    inside = os.path.join(p["farm"], "Show", "Season 1", "e1.mkv")
    assert zone.check(inside, Area.FARM) == inside
    assert zone.allows(os.path.join(p["farm"], "escape"), Area.FARM)  # the link itself: yes
    cases = {
        os.path.join(p["farm"], "escape", "l"): "not inside the farm",
        os.path.join(p["farm"], "Show", "rel-escape", "new", "x"): "not inside the farm",
        os.path.join(p["farm"], "into-mount", "x"): "not inside the farm",
        os.path.join(p["farm"], "..", "outside", "l"): "'..'",
        os.path.join(p["farm"], "a\0b"): "NUL",
        "farm/x": "absolute",
        os.path.join(p["quarantine"], "into-state", "state.sqlite3"): "quarantine",
        inside: "quarantine",  # a farm path is not a quarantine path
    }
    for path, why in cases.items():
        area = Area.QUARANTINE if why == "quarantine" else Area.FARM
        with pytest.raises(OutsideZone, match=why):
            zone.check(path, area)


def test_a_mount_or_the_state_dir_inside_an_area_is_fenced_off(tmp_path: Path) -> None:
    farm, q = tmp_path / "farm", tmp_path / "q"
    (q / "state").mkdir(parents=True)
    (q / "zurg" / "__all__").mkdir(parents=True)
    farm.mkdir()
    zone = Zone(str(farm), str(q), forbidden=(str(q / "state"), str(q / "zurg")))
    assert zone.allows(str(q / "run" / "x"), Area.QUARANTINE)
    for path in (q / "state", q / "state" / "state.sqlite3", q / "zurg", q / "zurg" / "__all__"):
        assert not zone.allows(str(path), Area.QUARANTINE), path


# --- undo and recovery of a forged journal ---------------------------------------------------


def forged_settings(p: dict[str, str]) -> Settings:
    return Settings(
        farm=p["farm"], state_dir=p["state"],
        mounts=(MountSettings(name="zurg", path=p["zurg"], require_mountpoint=False),),
        policy=Policy(quarantine_dir=p["quarantine"]),
    )


def test_undo_of_a_journal_edited_to_point_outside_changes_nothing_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = layout(str(tmp_path))
    out = p["outside"]
    os.symlink("/media/new", os.path.join(out, "relinked"))
    os.symlink("/media/old", os.path.join(out, "qcopy"))
    state = StateDB(p["state"])
    run_id = state.begin_run("full", True)
    def done(path: str, action: JournalAction, **fields: Any) -> None:
        state.journal_mark(run_id, state.journal_begin(run_id, path, action, **fields),
                           JournalState.DONE)

    # a prune "restored" into a new folder outside (undo made it mode 777)
    done(os.path.join(out, "newdir", "link"), JournalAction.PRUNE, old_target="/media/x",
         old_mtime_ns=1)
    # a removed folder "recreated" outside with mode 777
    done(os.path.join(out, "made"), JournalAction.RMDIR, old_mtime_ns=1, old_mode=0o777)
    # a relink "undone" outside: retargets an existing link there
    done(os.path.join(out, "relinked"), JournalAction.RELINK, old_target="/media/old",
         new_target="/media/new", old_mtime_ns=1)
    # a farm prune whose "quarantine copy" is a link outside: undo deleted it + its folder
    done(os.path.join(p["farm"], "Show", "e9.mkv"), JournalAction.PRUNE, old_target="/media/old",
         old_mtime_ns=1, quarantine_path=os.path.join(out, "qcopy"))
    # through a farm symlink that leads out
    done(os.path.join(p["farm"], "escape", "deep", "via"), JournalAction.PRUNE,
         old_target="/media/y", old_mtime_ns=1)
    # the state database itself
    done(os.path.join(p["state"], "state.sqlite3"), JournalAction.PRUNE, old_target="/media/z",
         old_mtime_ns=1)
    rows = 6
    state.finish_run(run_id, {}, None)
    state.close()
    before = {k: tree(p[k]) for k in ("outside", "state", "zurg")}
    farm_before = tree(p["farm"])

    assert cmd_undo(forged_settings(p), run_id, as_json=True) == 1
    report = capsys.readouterr().out
    assert tree(out) == before["outside"]
    assert tree(p["zurg"]) == before["zurg"]
    assert tree(p["farm"]) == farm_before  # the half-good row is refused whole
    assert report.count('"result": "refused"') == rows, report
    assert "restored" not in report
    state = StateDB(p["state"])
    assert all(e.state is JournalState.DONE for e in state.journal(run_id))  # never "undone"
    state.close()


def test_forged_pending_row_and_scan_apply_deletes_nothing_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = layout(str(tmp_path))
    out = p["outside"]
    os.symlink("/media/new", os.path.join(out, "tmp-link"))
    os.symlink("/media/old", os.path.join(out, "orig"))
    os.symlink("/media/old", os.path.join(out, "quarantined"))
    state = StateDB(p["state"])
    run_id = state.begin_run("full", True)
    # A relink cut before its swap: recovery removed its temporary link (outside here).
    state.journal_begin(run_id, os.path.join(out, "orig"), JournalAction.RELINK,
                        old_target="/media/old", new_target="/media/new",
                        tmp_path=os.path.join(out, "tmp-link"))
    # A cross-device prune cut after the copy: recovery removed the "copy" (outside here).
    state.journal_begin(run_id, os.path.join(out, "orig"), JournalAction.PRUNE,
                        old_target="/media/old", quarantine_path=os.path.join(out, "quarantined"))
    # An undo's restore cut short: recovery removed its temporary link.
    state.journal_begin(run_id, os.path.join(p["farm"], "x"), JournalAction.RESTORE,
                        old_target="/media/old", tmp_path=os.path.join(out, "l"))
    state.finish_run(run_id, {}, None)
    state.close()
    before = tree(out)
    apply_in_child(tmp_path, p)
    assert tree(out) == before
    state = StateDB(p["state"])
    entries = state.journal(run_id)
    state.close()
    assert [e.state for e in entries] == [JournalState.FAILED] * 3
    assert all(e.message.startswith("refused") for e in entries), entries


# --- quarantine purge ------------------------------------------------------------------------


def test_purge_deletes_only_links_in_journaled_run_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    farm, q, state_dir = tmp_path / "farm", tmp_path / "q", tmp_path / "q" / "state"
    farm.mkdir()
    state = StateDB(str(state_dir))  # the state dir *inside* the quarantine (config bypassed)
    run_id = state.begin_run("full", True)
    state.close()
    run = q / run_id
    (run / "Show" / "Season 1").mkdir(parents=True)
    os.symlink("/media/a", run / "Show" / "Season 1" / "e1.mkv")
    (run / "Show" / "notes.nfo").write_bytes(b"a regular file: never symlinkd's")
    os.symlink("/media/b", run / "e2.mkv")
    unknown = q / "20200101T000000Z-abcdef"  # run-id shaped, but no such run
    unknown.mkdir()
    os.symlink("/media/c", unknown / "x.mkv")
    (q / "Movies").mkdir()
    os.symlink("/media/d", q / "Movies" / "y.mkv")
    (q / "loose.mkv").write_bytes(b"z")
    settings_ = Settings(farm=str(farm), state_dir=str(state_dir), mounts=(),
                         policy=Policy(quarantine_dir=str(q)))
    keep_state = tree(str(state_dir))
    assert cmd_quarantine_purge(settings_, older_than_days=0, apply=True) == 1
    text = capsys.readouterr().out
    assert not os.path.lexists(run / "e2.mkv")
    assert not os.path.lexists(run / "Show" / "Season 1")
    assert (run / "Show" / "notes.nfo").read_bytes().startswith(b"a regular")
    assert "notes.nfo" in text and "left alone" in text
    assert os.path.islink(unknown / "x.mkv") and os.path.islink(q / "Movies" / "y.mkv")
    assert (q / "loose.mkv").exists()
    assert tree(str(state_dir)).keys() == keep_state.keys()
    for name in ("20200101T000000Z-abcdef", "Movies", "loose.mkv", "state"):
        assert name in text


def test_purge_never_follows_a_run_folder_that_is_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    farm, q, state_dir, out = (tmp_path / n for n in ("farm", "q", "state", "out"))
    for d in (farm, q, out):
        d.mkdir()
    os.symlink("/media/keep", out / "keep.mkv")
    state = StateDB(str(state_dir))
    run_id = state.begin_run("full", True)
    state.close()
    os.symlink(out, q / run_id)
    settings_ = Settings(farm=str(farm), state_dir=str(state_dir), mounts=(),
                         policy=Policy(quarantine_dir=str(q)))
    cmd_quarantine_purge(settings_, older_than_days=0, apply=True)
    assert os.path.islink(out / "keep.mkv") and os.path.islink(q / run_id)


def test_purge_never_crosses_into_another_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tmpfs mounted on a journaled run's folder (and one inside another run's folder), full
    of symlinks: purge leaves every one of them, and says why."""
    from tests.fs.test_executor import mounted  # noqa: PLC0415 -- root-only helper

    farm, q, state_dir = tmp_path / "farm", tmp_path / "q", tmp_path / "state"
    farm.mkdir()
    state = StateDB(str(state_dir))
    on_mount, holding_mount = state.begin_run("full", True), state.begin_run("full", True)
    state.close()
    (q / on_mount).mkdir(parents=True)
    (q / holding_mount / "Show").mkdir(parents=True)
    os.symlink("/media/mine", q / holding_mount / "mine.mkv")
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(q / on_mount)), \
            mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(q / holding_mount / "Show")):
        for folder in (q / on_mount, q / holding_mount / "Show"):
            (folder / "Season 1").mkdir()
            os.symlink("/media/theirs", folder / "Season 1" / "e1.mkv")
        settings_ = Settings(farm=str(farm), state_dir=str(state_dir), mounts=(),
                             policy=Policy(quarantine_dir=str(q)))
        assert cmd_quarantine_purge(settings_, older_than_days=0, apply=True) == 1
        out = capsys.readouterr().out
        assert os.path.islink(q / on_mount / "Season 1" / "e1.mkv")
        assert os.path.islink(q / holding_mount / "Show" / "Season 1" / "e1.mkv")
        assert not os.path.lexists(q / holding_mount / "mine.mkv")  # its own: purged
        assert "another device" in out, out


def test_the_rule_never_stats_a_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung FUSE mount blocks any stat of it: the rule resolves a mount's parent, never the
    mount point itself, so the executor's per-action check cannot hang on one."""
    p = layout(str(tmp_path))
    zone = zone_of(p)
    real_lstat, real_stat = os.lstat, os.stat

    def guarded(real: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if os.fsdecode(path).startswith(p["zurg"]):
                raise AssertionError(f"statted the mount: {path!r}")
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "lstat", guarded(real_lstat))
    monkeypatch.setattr(os, "stat", guarded(real_stat))
    assert zone.allows(os.path.join(p["farm"], "Show", "Season 1", "e1.mkv"), Area.FARM)
    assert zone.allows(os.path.join(p["quarantine"], "run", "e1.mkv"), Area.QUARANTINE)


def test_the_default_quarantine_inside_the_state_dir_is_usable(tmp_path: Path) -> None:
    """The documented default: quarantine_dir = <state_dir>/quarantine. The quarantine is open,
    the rest of the state dir (the database) stays fenced off."""
    farm, state = tmp_path / "farm", tmp_path / "state"
    (state / "quarantine").mkdir(parents=True)
    (state / "state.sqlite3").write_text("")
    farm.mkdir()
    zone = Zone(str(farm), str(state / "quarantine"), state_dir=str(state))
    run = "20261206T000000Z-abcdef"
    assert zone.allows(str(state / "quarantine" / run / "Show" / "x.mkv"), Area.QUARANTINE)
    assert not zone.allows(str(state / "state.sqlite3"), Area.QUARANTINE)
    assert not zone.allows(str(state / "state.sqlite3"), Area.FARM)
    # a quarantine that *is* the state dir opens nothing in it
    same = Zone(str(farm), str(state), state_dir=str(state))
    assert not same.allows(str(state / "x"), Area.QUARANTINE)
