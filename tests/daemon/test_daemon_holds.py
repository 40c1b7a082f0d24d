"""`symlinkd run` as a process (issue 10, findings 5 and 6): the gauges right after the daemon's
pass show the farm as it left it, and a link the admin put back with `symlinkd undo` is left
alone by the next daemon's passes, counted as held."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.daemon.proc import DaemonProcess, Farm, symlinkd_command, write_config

MOVED = "Shows/Show/Season 01/e1.mkv"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*symlinkd_command(), *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_daemon_pass_metrics_after_relink_and_undo_holds(tmp_path: Path) -> None:
    farm = Farm.create(tmp_path)
    farm.put("torbox", "torrents/Show.S01/e1.mkv")  # moved here from zurg: relinkable
    link = farm.link(MOVED, farm.mounts["zurg"][0] / "__all__/Show.S01/e1.mkv")
    old_target = os.readlink(link)
    healthy = farm.put("zurg", "__all__/Other.S01/e1.mkv")
    farm.link("Shows/Other/Season 01/e1.mkv", healthy)
    config = write_config(tmp_path, farm.config(watch="off"))

    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        assert os.readlink(link) != old_target  # the start-up pass relinked it
        # right after that pass, not a full pass later: dangling 0, ok under its new mount
        assert daemon.metric("symlinkd_links", mount="zurg", verdict="dangling") == 0
        assert daemon.metric("symlinkd_links", mount="torbox", verdict="ok") == 1
        assert daemon.metric("symlinkd_links", mount="zurg", verdict="ok") == 1
        assert daemon.stop() == 0

    runs = json.loads(cli(config, "history", "--json").stdout)
    relinked = next(r for r in runs if r["actions"].get("relink"))
    undo = cli(config, "undo", relinked["id"], "--json")
    assert undo.returncode == 0, undo.stderr
    undo_id = json.loads(undo.stdout)["run_id"]
    assert os.readlink(link) == old_target

    with DaemonProcess(config) as daemon:  # a restart: the hold comes from the state DB
        daemon.wait_ready()
        assert os.readlink(link) == old_target
        assert daemon.metric("symlinkd_links", mount="zurg", verdict="dangling") == 1
        assert daemon.stop() == 0
    latest = json.loads(cli(config, "history", "--json").stdout)[0]
    assert latest["actions"].get("skip") == {"held": 1}
    assert not latest["actions"].get("relink")
    holds = json.loads(cli(config, "hold", "list", "--json").stdout)
    assert [(h["path"], h["run_id"]) for h in holds] == [(str(link), undo_id)]
