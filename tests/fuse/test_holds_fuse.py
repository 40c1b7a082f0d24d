"""Holds on real rclone mounts (issue 10, finding 5), run as the operator runs symlinkd: a pass
relinks a link, `symlinkd undo` puts it back, and the next `--apply` pass leaves it alone,
reported `held` with the undo run, until the link is pointed elsewhere."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.fuse.rig import FuseRig
from tests.fuse.test_repair_fuse import links_by_path, symlinkd

pytestmark = pytest.mark.fuse

FARM_REL = "movies/Delta (2019)/Delta (2019).mkv"


def cli_json(rig: FuseRig, *args: str) -> tuple[int, Any]:
    cfg = rig.write_config()
    proc = rig.run_cli(*args, "--config", str(cfg), "--json")
    return proc.returncode, json.loads(proc.stdout)


def test_undone_relink_is_held_on_a_real_mount_until_the_link_changes(
    fuse_rig: FuseRig,
) -> None:
    rig = fuse_rig
    data = b"Delta.2019 release, 1080p\n" * 64
    rig.put("zurg", "__all__/Delta.2019.1080p/Delta.2019.mkv", data)
    rig.put("torbox", "usenet/Delta.2019.1080p/Delta.2019.mkv", data)
    rig.put("torbox", "torrents/Keep/Keep.mkv")  # torbox's anchor folder is not empty
    link = rig.link(FARM_REL, "zurg", "__all__/Delta.2019.1080p/Delta.2019.mkv")
    old_target = os.readlink(link)
    assert symlinkd(rig)[0] == 0  # learns target and size
    rig.remove("zurg", "__all__/Delta.2019.1080p")
    rig.put("zurg", "__all__/Other.2020/Other.2020.mkv")  # the anchor stays non-empty
    rig.refresh("zurg", ["__all__"])
    code, doc = symlinkd(rig, "--apply")
    assert links_by_path(doc, rig)[FARM_REL]["result"] == "done", doc
    assert os.readlink(link) != old_target

    code, undone = cli_json(rig, "undo", doc["run_id"])
    assert code == 0, undone
    assert os.readlink(link) == old_target
    before = rig.farm_snapshot()

    code, doc = symlinkd(rig, "--apply")  # what the daemon's next pass would do

    entry = links_by_path(doc, rig)[FARM_REL]
    assert (entry["verdict"], entry["action"], entry["held_by"]) == \
        ("dangling", "skip", undone["run_id"]), entry
    assert rig.farm_snapshot() == before
    assert doc["held"] == 1
    code, holds = cli_json(rig, "hold", "list")
    assert [h["path"] for h in holds] == [str(link)]

    # The admin (or Radarr) points the link somewhere else: the hold ends by itself.
    tmp = link.with_name(".tmp-link")
    os.symlink(rig["zurg"].mount_path("__all__/Delta.2019.1080p/Delta.2019.proper.mkv"), tmp)
    os.replace(tmp, link)
    code, doc = symlinkd(rig, "--apply")
    entry = links_by_path(doc, rig)[FARM_REL]
    assert entry["held_by"] is None and entry["action"] in ("relink", "prune"), entry
    assert any("released" in note for note in doc["notes"]), doc["notes"]
    assert cli_json(rig, "hold", "list")[1] == []
