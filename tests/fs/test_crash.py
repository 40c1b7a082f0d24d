"""kill -9 in the middle of applying a large plan: no half-made link, no lost link, a consistent
journal, and undo restores the finished part."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from symlinkd.journal_cmds import cmd_undo
from symlinkd.settings import Policy, Settings
from symlinkd.state import StateDB
from tests.fs.repair_farm import DAY, NOW, make_farm

REPO = Path(__file__).resolve().parents[2]
LINKS = 20_000
KILL_AFTER_DONE = 3_000  # journal entries done before the kill

CHILD = textwrap.dedent(
    """
    import json, sys
    from symlinkd.executor import Executor
    from symlinkd.settings import Policy
    from symlinkd.state import StateDB
    from tests.fs.repair_farm import NOW, judge_farm, make_farm, ok_mounts, plan_for

    farm = make_farm(sys.argv[1])
    with open(sys.argv[2]) as f:
        candidates = json.load(f)
    mounts = ok_mounts(farm)
    policy = Policy(max_age_days=90, max_prune=10**9, max_prune_ratio=1.0)
    plan = plan_for(farm, judge_farm(farm, mounts, NOW), mounts, policy,
                    candidates=candidates, now=NOW)
    state = StateDB(farm.state_dir)
    run_id = state.begin_run("full", True)
    print(run_id, len(plan.changes()), flush=True)
    Executor(state, farm.farm, farm.quarantine, dry_run=False,
             mounts_ok=lambda _: True).execute(plan, run_id)
    print("finished", flush=True)
    """
)


def build(root: str) -> tuple[dict[str, tuple[str, int, str]], dict[str, list[str]]]:
    """Half the shows are 200-day-old links (pruned, their folders emptied), half dangle into
    zurg with the file present under torbox (relinked). Returns path -> (target, mtime_ns,
    kind) and the relink candidates."""
    farm = make_farm(root)
    kept = farm.media("zurg", "__all__/Kept/x.mkv")
    manifest: dict[str, tuple[str, int, str]] = {}
    candidates: dict[str, list[str]] = {}
    for i in range(LINKS):
        show, season = i // 200, (i // 20) % 10
        rel = f"Show {show:03d}/Season {season:02d}/e{i:05d}.mkv"
        if show % 2 == 0:
            path = farm.link(rel, kept, mtime=NOW - 200 * DAY)
            kind = "prune"
        else:
            new = os.path.join(root, f"torbox/torrents/R{i}/e.mkv")
            os.makedirs(os.path.dirname(new))
            Path(new).touch()
            path = farm.link(rel, os.path.join(root, f"zurg/__all__/R{i}/e.mkv"),
                             mtime=NOW - 10 * DAY)
            candidates[path] = [new]
            kind = "relink"
        manifest[path] = (os.readlink(path), os.lstat(path).st_mtime_ns, kind)
    return manifest, candidates


def done_count(db: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM journal WHERE state = 'done'")
                   .fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_mid_apply_loses_nothing_and_undo_restores(tmp_path: Path) -> None:
    root = str(tmp_path)
    manifest, candidates = build(root)
    cands_file = tmp_path / "candidates.json"
    cands_file.write_text(json.dumps(candidates))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, root, str(cands_file)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    first = child.stdout.readline().split()
    assert first, child.stderr.read() if child.stderr else ""
    run_id, planned = first[0], int(first[1])
    assert planned == LINKS
    db = os.path.join(root, "state", "state.sqlite3")
    deadline = time.monotonic() + 120
    while done_count(db) < KILL_AFTER_DONE and child.poll() is None:
        assert time.monotonic() < deadline, "executor made no progress"
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the executor finished before the kill"

    quarantine = os.path.join(root, "quarantine", run_id)
    state = StateDB(os.path.join(root, "state"))
    entries = {e.path: e for e in state.journal(run_id)}
    pending = [e for e in entries.values() if e.state.value == "pending"]
    assert len(pending) <= 1  # only the action in hand when the signal came
    done = [e for e in entries.values() if e.state.value == "done"]
    assert KILL_AFTER_DONE <= len(done) < LINKS

    changed = 0
    for path, (target, mtime_ns, kind) in manifest.items():
        q = os.path.join(quarantine, os.path.relpath(path, os.path.join(root, "farm")))
        if kind == "relink":
            now = os.readlink(path)  # never missing: the swap is one rename
            assert now in (target, candidates[path][0]), path
            assert os.lstat(path).st_mtime_ns == mtime_ns
            changed += now != target
            entry = entries.get(path)
            if entry is not None and entry.state.value == "done":
                assert now == candidates[path][0]
        else:
            here, moved = os.path.lexists(path), os.path.lexists(q)
            assert here != moved, path  # exactly one copy: neither lost nor doubled
            where = path if here else q
            assert (os.readlink(where), os.lstat(where).st_mtime_ns) == (target, mtime_ns)
            changed += moved
            entry = entries.get(path)
            if entry is not None and entry.state.value == "done":
                assert moved
    # Every change on disk is journaled (done, or the one pending entry).
    assert changed <= len([e for e in done if e.action.value != "rmdir"]) + len(pending)
    state.close()

    settings = Settings(farm=os.path.join(root, "farm"), state_dir=os.path.join(root, "state"),
                        policy=Policy(quarantine_dir=os.path.join(root, "quarantine")))
    assert cmd_undo(settings, run_id, as_json=True) == 0
    for path, (target, mtime_ns, _) in manifest.items():
        assert (os.readlink(path), os.lstat(path).st_mtime_ns) == (target, mtime_ns), path
    leftovers = [
        os.path.join(d, n) for d, _, names in os.walk(os.path.join(root, "farm"))
        for n in names if n.startswith(".symlinkd-tmp-")
    ]
    assert leftovers == []
    state = StateDB(os.path.join(root, "state"))
    assert state.journal_pending() == []
    state.close()
