"""Issue 13 through the real CLI on the demo farm: the undo line after ``--apply`` (and that it
works), and ``history --json``: compact into a pipe, counts split into ``verdicts`` and
``actions``, a note that says why a run was refused or left links alone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from symlinkd.demo import build_demo_farm
from tests.fs.test_cli import cli, snapshot

RUN_KEYS = {"id", "kind", "mode", "started", "finished", "duration_seconds", "verdicts",
            "actions", "journal", "refused", "undo_of", "note", "holds"}


@pytest.fixture
def demo(tmp_path: Path) -> tuple[str, str]:
    settings = build_demo_farm(str(tmp_path), time.time())
    return str(tmp_path / "symlinkd.yaml"), settings.farm


def history(config: str) -> list[dict[str, Any]]:
    proc = cli("history", "--json", "--config", config)
    assert proc.returncode == 0, proc.stderr
    # into a pipe: one compact line, like `scan --json`
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith('[{"id":')
    runs: list[dict[str, Any]] = json.loads(proc.stdout)
    return runs


def test_apply_report_ends_with_the_undo_line_that_reverts_it(demo: tuple[str, str]) -> None:
    config, farm = demo
    before = snapshot(farm)
    proc = cli("scan", "--apply", "--no-notify", "--config", config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stdout.rstrip().splitlines()[-1]
    assert last.startswith("To revert this run: symlinkd undo "), proc.stdout
    command = last.split(": ", 1)[1].split()
    assert command[:2] == ["symlinkd", "undo"]
    undo = cli(*command[1:], "--config", config)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert snapshot(farm) == before
    # a dry run changes nothing, so it offers no undo
    dry = cli("scan", "--config", config)
    assert "symlinkd undo" not in dry.stdout


def test_history_json_shape(demo: tuple[str, str]) -> None:
    config, _ = demo
    assert cli("scan", "--apply", "--no-notify", "--config", config).returncode == 1
    runs = history(config)
    assert len(runs) == 1
    run = runs[0]
    assert set(run) == RUN_KEYS
    assert run["kind"] == "full" and run["mode"] == "apply"
    assert run["verdicts"]["dangling"] == 2 and run["verdicts"]["ok"] == 6
    assert all(":" not in key for key in run["verdicts"])
    assert run["actions"] == {"relink": {"done": 1}, "prune": {"done": 1}}
    assert run["journal"] == {"done": 3}  # relink, prune, the emptied folder removed
    assert run["note"] == "" and run["refused"] is None
    assert run["duration_seconds"] >= 0


def test_a_refused_run_says_why(demo: tuple[str, str]) -> None:
    config, _ = demo
    proc = cli("scan", "--apply", "--no-notify", "--config", config,
               env={"SYMLINKD_POLICY__MAX_PRUNE": "0"})
    assert proc.returncode == 3
    run = history(config)[0]
    assert run["refused"] and "max_prune=0" in run["refused"]
    assert run["note"].startswith("refused: ") and "max_prune=0" in run["note"]
    assert run["actions"] == {}


def test_a_run_with_a_mount_down_says_its_links_were_left_alone(
        demo: tuple[str, str], tmp_path: Path) -> None:
    config, _ = demo
    os.rename(tmp_path / "zurg" / "__all__", tmp_path / "zurg" / "gone")  # anchor missing
    proc = cli("scan", "--apply", "--no-notify", "--config", config)
    assert proc.returncode == 3
    run = history(config)[0]
    assert run["refused"] is None
    assert run["verdicts"]["mount_down"] == 6
    assert run["note"] == "6 links under a mount that was not ok, left alone (mount_down 6)"


def test_undo_runs_count_their_results_as_actions(demo: tuple[str, str]) -> None:
    config, _ = demo
    proc = cli("scan", "--apply", "--no-notify", "--config", config)
    run_id = proc.stdout.rstrip().splitlines()[-1].rsplit(" ", 1)[1]
    assert cli("undo", run_id, "--config", config).returncode == 0
    newest = history(config)[0]
    assert newest["kind"] == "undo" and newest["undo_of"] == run_id
    assert newest["verdicts"] == {}
    assert newest["actions"] == {"undo": {"restored": 3}}
    assert newest["note"] == f"undo of {run_id}"
