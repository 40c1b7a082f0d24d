"""Holds end to end (issue 10, finding 5): `symlinkd undo` puts links back, and the daemon's
next pass (the runtime pipeline it runs) leaves them alone, reported `held`, until the link
changes or the admin releases the hold. Real temp farm, the real state DB."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from symlinkd.demo import build_demo_farm
from symlinkd.journal_cmds import cmd_undo
from symlinkd.model import ActionKind, OutcomeResult, PassReport, Skip
from symlinkd.report import to_json
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import Settings
from symlinkd.state import StateDB
from tests.fs.test_cli import cli, snapshot

MOVED = "Shows/ShowX/Season 01/ShowX.S01E03.1080p.mkv"  # relinked by the first pass
OLD = "Movies/Old Film (2001)/Old.Film.2001.mkv"  # pruned by age
GONE = "Movies/Gone Girl (2014)/Gone.Girl.2014.mkv"  # pruned as dangling
CHANGED = (MOVED, OLD, GONE)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = build_demo_farm(str(tmp_path), time.time())
    policy = replace(base.policy, confirm_after_passes=1, confirm_after_minutes=0,
                     max_prune_ratio=1.0)
    return replace(base, policy=policy)


def apply_pass(settings: Settings) -> PassReport:
    with build_runtime(settings, registry=CollectorRegistry()) as runtime:
        return runtime.run_pass(PassOptions(apply=True, notify=False))


def undo_first_pass(settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    first = apply_pass(settings)
    done = {os.path.relpath(o.planned.path, settings.farm) for o in first.outcomes
            if o.result is OutcomeResult.DONE}
    assert done == set(CHANGED), done
    assert cmd_undo(settings, first.run_id, as_json=True) == 0
    # structlog's default logger may write to stdout too, depending on what configured it
    # earlier in the run: the document is the indented object that starts a line.
    out = capsys.readouterr().out
    start = re.search(r"(?m)^\{$", out)
    assert start is not None, out
    return str(json.loads(out[start.start():])["run_id"])


def test_undone_links_are_held_by_the_next_pass(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    undo_id = undo_first_pass(settings, capsys)
    restored = snapshot(settings.farm)

    report = apply_pass(settings)  # a fresh process's runtime: holds came from the state DB

    assert snapshot(settings.farm) == restored
    assert report.outcomes == [] or all(
        o.planned.action.kind not in (ActionKind.RELINK, ActionKind.PRUNE)
        for o in report.outcomes)
    held = {os.path.relpath(p.path, settings.farm): p.action for p in report.planned
            if isinstance(p.action, Skip) and p.action.held_by}
    assert set(held) == set(CHANGED)
    assert all(a.held_by == undo_id and undo_id in a.reason for a in held.values())
    doc = to_json(report, all_links=False)
    listed = {os.path.relpath(link["path"], settings.farm): link for link in doc["links"]}
    assert all(listed[rel]["held_by"] == undo_id and listed[rel]["action"] == "skip"
               for rel in CHANGED)
    assert doc["held"] == len(CHANGED)


def test_changing_the_link_releases_its_hold(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    undo_first_pass(settings, capsys)
    gone = os.path.join(settings.farm, GONE)
    tmp = gone + ".new"
    os.symlink(os.path.join(settings.mounts[0].path, "__all__/Movies/elsewhere.mkv"), tmp)
    os.replace(tmp, gone)  # Radarr re-pointed it (still dangling: now symlinkd may act)

    report = apply_pass(settings)

    actions = {os.path.relpath(p.path, settings.farm): p.action for p in report.planned}
    assert actions[GONE].kind is ActionKind.PRUNE
    assert not os.path.lexists(gone)
    assert isinstance(actions[OLD], Skip) and actions[OLD].held_by  # the others stay held
    assert any("released" in note and GONE in note for note in report.notes)
    state = StateDB(settings.state_dir)
    try:
        assert sorted(os.path.relpath(h.path, settings.farm) for h in state.holds.all()) == \
            sorted([MOVED, OLD])
    finally:
        state.close()


def test_hold_list_release_and_history(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    undo_id = undo_first_pass(settings, capsys)
    config = os.path.join(os.path.dirname(settings.farm), "held.yaml")
    with open(config, "w", encoding="utf-8") as handle:
        json.dump({"farm": settings.farm, "state_dir": settings.state_dir,
                   "mounts": [{"name": m.name, "path": m.path, "anchor": m.anchor,
                               "require_mountpoint": False} for m in settings.mounts],
                   "policy": {"quarantine_dir": settings.policy.quarantine_dir}}, handle)

    listed = cli("hold", "list", "--json", "--config", config)
    assert listed.returncode == 0, listed.stderr
    holds = json.loads(listed.stdout)
    assert sorted(os.path.relpath(h["path"], settings.farm) for h in holds) == sorted(CHANGED)
    assert {h["run_id"] for h in holds} == {undo_id}
    table = cli("hold", "list", "--config", config)
    assert "Gone.Girl" in table.stdout and undo_id in table.stdout

    history = cli("history", "--json", "--config", config)
    runs = {r["id"]: r for r in json.loads(history.stdout)}
    assert runs[undo_id]["holds"] == len(CHANGED)
    assert "held" in cli("history", "--config", config).stdout

    assert cli("hold", "release", "--config", config).returncode == 2  # PATH or --all
    assert cli("hold", "release", GONE, "--all", "--config", config).returncode == 2
    one = cli("hold", "release", GONE, "--config", config)  # relative to the farm
    assert one.returncode == 0, one.stderr
    again = cli("hold", "release", GONE, "--config", config)
    assert again.returncode == 1 and "no hold" in again.stdout + again.stderr
    left = json.loads(cli("hold", "list", "--json", "--config", config).stdout)
    assert sorted(os.path.relpath(h["path"], settings.farm) for h in left) == sorted([MOVED, OLD])
    assert cli("hold", "release", "--all", "--config", config).returncode == 0
    assert json.loads(cli("hold", "list", "--json", "--config", config).stdout) == []

    report = apply_pass(settings)  # released: symlinkd acts again
    assert {os.path.relpath(o.planned.path, settings.farm) for o in report.outcomes
            if o.result is OutcomeResult.DONE} == set(CHANGED)
