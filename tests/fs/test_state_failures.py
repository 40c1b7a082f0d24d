"""A state disk that fills up mid-apply or is read-only (issue 9, finding 9), on real mounts: a
small tmpfs and a read-only bind mount (root ignores chmod). One line names the database and
the errno, the work already done is reported, and ``history`` shows what happened."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fs.repair_farm import relinkable_farm
from tests.fs.test_executor import mounted

REPO = Path(__file__).resolve().parents[2]


def symlinkd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "symlinkd", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_state_disk_full_mid_apply_names_the_cause_and_reports_the_work_done(
    tmp_path: Path,
) -> None:
    config, state_dir = relinkable_farm(str(tmp_path), 600)
    os.makedirs(state_dir)
    with mounted("-t", "tmpfs", "-o", "size=640k", "tmpfs", state_dir):
        proc = symlinkd("scan", "--apply", "--no-notify", "--json", "--config", config)
        db = os.path.join(state_dir, "state.sqlite3")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 4, proc.stderr
        assert "cannot rollback" not in proc.stderr
        assert lines[-1] == (f"symlinkd: error: state database {db}: database or disk is "
                             "full (ENOSPC)"), proc.stderr
        report = json.loads(proc.stdout)  # the report of what was done is printed
        done = report["results"]["relink"].get("done", 0)
        relinked = sum(
            1 for top, _dirs, files in os.walk(tmp_path / "farm") for name in files
            if os.readlink(os.path.join(top, name)).startswith(str(tmp_path / "zurg" / "shows"))
        )
        assert 0 < done == relinked < 600, (done, relinked)  # the disk filled mid-apply
        history = symlinkd("history", "--json", "--config", config)
        assert history.returncode == 0, history.stderr
        (run,) = json.loads(history.stdout)
        assert run["finished"] is not None
        assert re.search(r"state database .*full", run["refused"] or ""), run
        assert run["actions"]["relink"]["done"] == done, run
        assert run["note"] == run["refused"], run  # said as it is, not as "refused: ..."


def test_read_only_state_dir_names_the_path_and_errno(tmp_path: Path) -> None:
    config, state_dir = relinkable_farm(str(tmp_path), 3)
    assert symlinkd("scan", "--json", "--config", config).returncode in (0, 1)
    with mounted("--bind", state_dir, state_dir), \
            mounted("-o", "remount,bind,ro", state_dir):
        for args in (("scan", "--json"), ("scan", "--apply", "--json"), ("history",)):
            proc = symlinkd(*args, "--config", config)
            assert proc.returncode == 4, (args, proc.returncode, proc.stderr)
            db = os.path.join(state_dir, "state.sqlite3")
            assert proc.stderr.strip().splitlines()[-1].startswith(
                f"symlinkd: error: state database {db}: "), (args, proc.stderr)
            assert proc.stderr.strip().endswith("(EROFS)"), (args, proc.stderr)


def test_state_disk_full_with_a_server_down_says_the_outbox_could_not_keep_its_changes(
    tmp_path: Path,
) -> None:
    config, state_dir = relinkable_farm(str(tmp_path), 600)
    token = tmp_path / "plex-token"
    token.write_text("not-a-real-token")
    with open(config, "a") as f:  # a Plex that is down: its changes go to the outbox
        f.write("notify:\n  retries: 0\n  plex:\n    url: http://127.0.0.1:9/\n"
                f"    token_file: {token}\n")
    os.makedirs(state_dir)
    with mounted("-t", "tmpfs", "-o", "size=640k", "tmpfs", state_dir):
        proc = symlinkd("scan", "--apply", "--json", "--config", config)
        db = os.path.join(state_dir, "state.sqlite3")
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"symlinkd: error: state database {db}: database or disk is full (ENOSPC)")
        report = json.loads(proc.stdout)
        assert report["results"]["relink"].get("done", 0) > 0
        notes = " ".join(report["notes"])
        assert "could not be kept in the outbox" in notes, report["notes"]
