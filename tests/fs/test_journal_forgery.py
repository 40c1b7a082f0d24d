"""Forged journal rows that are not about *where* (issue 9 finding 2, retried as an attacker):
a NUL byte in a link target, an action symlinkd never writes. Each is refused on its own row;
the rest of the undo or of the apply goes on."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from symlinkd.journal import JournalAction, JournalState
from symlinkd.journal_cmds import cmd_undo
from symlinkd.settings import MountSettings, Policy, Settings
from symlinkd.state import StateDB
from tests.fs.repair_farm import apply_in_child


def setup(root: Path) -> tuple[Settings, dict[str, str]]:
    p = {k: str(root / k) for k in ("farm", "quarantine", "state", "zurg")}
    for d in p.values():
        os.makedirs(d)
    os.makedirs(os.path.join(p["farm"], "Show"))
    settings = Settings(
        farm=p["farm"], state_dir=p["state"],
        mounts=(MountSettings(name="zurg", path=p["zurg"], require_mountpoint=False),),
        policy=Policy(quarantine_dir=p["quarantine"]),
    )
    return settings, p


def test_undo_refuses_a_row_with_a_nul_target_and_undoes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, p = setup(tmp_path)
    good = os.path.join(p["farm"], "Show", "good.mkv")
    forged = os.path.join(p["farm"], "Show", "forged.mkv")
    os.symlink("/media/new", good)
    os.symlink("/media/new2", forged)
    state = StateDB(p["state"])
    run_id = state.begin_run("full", True)
    for path, old, new in ((good, "/media/old", "/media/new"),
                           (forged, "/media/o\0ld", "/media/new2")):
        seq = state.journal_begin(run_id, path, JournalAction.RELINK, old_target=old,
                                  new_target=new, old_mtime_ns=1)
        state.journal_mark(run_id, seq, JournalState.DONE)
    state.finish_run(run_id, {}, None)
    state.close()

    assert cmd_undo(settings, run_id, as_json=True) == 1  # not 2: "embedded null byte"
    report = capsys.readouterr().out
    assert os.readlink(good) == "/media/old"  # the good row is undone
    assert os.readlink(forged) == "/media/new2"  # the forged one left alone
    assert '"result": "refused"' in report and "NUL" in report, report
    state = StateDB(p["state"])
    undo = [r for r in state.runs(10) if r.kind == "undo"]
    assert len(undo) == 1 and undo[0].finished is not None  # the undo run is closed
    assert state.journal_pending() == []  # and leaves no pending row behind
    state.close()


def test_a_forged_pending_row_with_an_unknown_action_does_not_stop_every_apply(
    tmp_path: Path,
) -> None:
    _settings, p = setup(tmp_path)
    link = os.path.join(p["farm"], "Show", "e1.mkv")
    os.symlink("/media/x", link)
    StateDB(p["state"]).close()
    db = sqlite3.connect(os.path.join(p["state"], "state.sqlite3"))
    with db:
        db.execute("INSERT INTO journal (run_id, seq, path, action, old_target, state) "
                   "VALUES ('20260101T000000Z-abcdef', 1, ?, 'bogus', '/x', 'pending')",
                   (link.encode(),))
    db.close()
    done = apply_in_child(tmp_path, p)
    assert done.returncode != 4, done.stderr  # was: internal error, on every apply
    assert os.readlink(link) == "/media/x"
    db = sqlite3.connect(os.path.join(p["state"], "state.sqlite3"))
    state, message = db.execute("SELECT state, message FROM journal WHERE action = 'bogus'") \
        .fetchone()
    db.close()
    assert state == "failed" and message.startswith("refused"), message
