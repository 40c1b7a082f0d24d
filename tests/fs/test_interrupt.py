"""SIGINT / SIGTERM in the middle of ``symlinkd scan --apply`` (issue 9, finding 10): the process
ends without leaving its own ``.symlinkd-tmp-*`` link in a farm folder (before, 3 tries in 12
left one, cleaned only by the next apply), exits 130, and the journal stays exact."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from symlinkd.containment import TMP_PREFIX
from tests.fs.repair_farm import relinkable_farm

REPO = Path(__file__).resolve().parents[2]
SHOWS = 120


def temp_links(farm: str) -> list[str]:
    return [os.path.join(top, n) for top, dirs, files in os.walk(farm)
            for n in dirs + files if n.startswith(TMP_PREFIX)]


# The real CLI in a child process; its os.replace sends the signal to its own process when the
# Nth relink is about to swap its finished temporary link in: exactly the window where the link
# is made and not yet moved, every time (a timed kill from outside hits it only now and then).
CHILD = """
import os, signal, sys, time
from symlinkd import cli
config, sig, nth = sys.argv[1], getattr(signal, sys.argv[2]), int(sys.argv[3])
real_replace, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    if os.path.basename(src).startswith(".symlinkd-tmp-"):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)  # a signal not held back is handled (or kills) right here
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
sys.exit(cli.main(["scan", "--apply", "--no-notify", "--json", "--config", config]))
"""


@pytest.mark.parametrize("nth", [1, 9, 40])
def test_sigint_and_sigterm_mid_apply_leave_no_temp_link(tmp_path: Path, nth: int) -> None:
    config, state_dir = relinkable_farm(str(tmp_path), SHOWS)
    farm = str(tmp_path / "farm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    env["PYTHONPATH"] = str(REPO)
    for sig in ("SIGTERM", "SIGINT"):
        proc = subprocess.run([sys.executable, "-c", CHILD, config, sig, str(nth)],
                              capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        found = temp_links(farm)  # before any next apply could clean them
        assert not found, f"{sig}: temp links left: {found}; stderr: {proc.stderr[-500:]}"
        assert proc.returncode == 130, (sig, proc.returncode, proc.stderr[-500:])
        assert "interrupted" in proc.stderr
        # The journal is exact: every relink it calls done is in the farm, none pending.
        conn = sqlite3.connect(f"{state_dir}/state.sqlite3")
        rows = conn.execute("SELECT path, new_target, state FROM journal "
                            "WHERE action = 'relink'").fetchall()
        conn.close()
        assert rows and all(state == "done" for _, _, state in rows), rows[-3:]
        for path, target, _ in rows:
            assert os.readlink(os.fsdecode(path)) == os.fsdecode(target)
