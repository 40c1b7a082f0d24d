"""``symlinkd scan --apply`` against real rclone mounts, run as the operator runs it (a process).

A broken mount must never cost a link: with rclone killed, unmounted or stopped the pass exits 3
and the farm is exactly as before (every link's target and mtime), even though the same farm
under healthy mounts would be relinked and pruned. A file gone from one cloud and present in
another is relinked there; a torrent folder Zurg renamed is found again by name and size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fuse.rig import FuseRig, bounded

pytestmark = pytest.mark.fuse

CLI_TIMEOUT_S = 90.0  # generous: a pass with a stopped mount ends within its timeouts (2 s / 3 s)
DAY = 86400.0

# Relink needs no confirmation; prune does. confirm_after_passes=1 / minutes=0 makes a dangling
# link prunable at once, and the ratio is opened up, so the only thing standing between these
# farms and real changes is the mount-state gate under test.
POLICY: dict[str, Any] = {
    "confirm_after_passes": 1,
    "confirm_after_minutes": 0,
    "max_prune_ratio": 1.0,
    "max_prune": 100,
}


def symlinkd(rig: FuseRig, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``symlinkd scan --json --no-notify ARGS`` on the rig; its exit code and JSON report."""
    cfg = rig.write_config(policy=POLICY)
    proc = rig.run_cli("scan", "--config", str(cfg), "--json", "--no-notify", *args,
                       timeout=CLI_TIMEOUT_S)
    try:
        document = json.loads(proc.stdout)
    except json.JSONDecodeError:
        stderr = proc.stderr.decode(errors="replace")[-3000:]
        pytest.fail(f"symlinkd exit {proc.returncode}, no JSON on stdout;\n"
                    f"stdout: {proc.stdout[-2000:]!r}\nstderr: {stderr}")
    return proc.returncode, document


def links_by_path(document: dict[str, Any], rig: FuseRig) -> dict[str, dict[str, Any]]:
    prefix = str(rig.farm) + "/"
    return {link["path"].removeprefix(prefix): link for link in document["links"]}


def mount_states(document: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["state"] for m in document["mounts"]}


# ---------------------------------------------------------------------------- broken mounts
HEALTHY = {
    "movies/Alpha (2020)/Alpha (2020).mkv": ("zurg", "__all__/Alpha.2020/Alpha.2020.mkv"),
    "shows/Beta/Season 01/Beta S01E01.mkv": ("zurg", "__all__/Beta.S01/Beta.S01E01.mkv"),
    "movies/Gamma (2021)/Gamma (2021).mkv": ("torbox", "torrents/Gamma.2021/Gamma.2021.mkv"),
}
OLD = ("movies/Old (1999)/Old (1999).mkv", "zurg", "__all__/Old.1999/Old.1999.mkv")
GONE = ("shows/Beta/Season 01/Beta S01E02.mkv", "zurg", "__all__/Beta.S01/Beta.S01E02.mkv")
MOVED = ("movies/Eps (2022)/Eps (2022).mkv", "zurg", "__all__/Eps.2022/Eps.2022.mkv")
MOVED_TO = "torrents/Eps.2022/Eps.2022.mkv"


def tempting_farm(rig: FuseRig) -> None:
    """A farm where healthy mounts would mean work under zurg: an age prune (link 120 days old),
    a dangling link to prune, and a relink to torbox. Torbox's own links need nothing."""
    for farm_rel, (mount, rel) in HEALTHY.items():
        rig.put(mount, rel)
        rig.link(farm_rel, mount, rel)
    old_link = rig.link(OLD[0], OLD[1], OLD[2])
    rig.put(OLD[1], OLD[2])
    then = time.time() - 120 * DAY
    os.utime(old_link, (then, then), follow_symlinks=False)
    rig.put(GONE[1], GONE[2])
    rig.link(*GONE)
    rig.put(MOVED[1], MOVED[2], b"eps release bytes\n")
    rig.put("torbox", MOVED_TO, b"eps release bytes\n")
    rig.link(*MOVED)


@pytest.fixture
def tempted(fuse_rig: FuseRig) -> FuseRig:
    tempting_farm(fuse_rig)
    # One dry run with healthy mounts: the state DB learns every link's target and size, and
    # the report proves what --apply would do if the mounts stayed healthy.
    code, doc = symlinkd(fuse_rig)
    assert code == 1, doc
    assert mount_states(doc) == {"zurg": "ok", "torbox": "ok"}
    fuse_rig.remove(GONE[1], GONE[2])
    fuse_rig.remove(MOVED[1], MOVED[2])
    fuse_rig.refresh("zurg", ["__all__"], recursive=True)  # Zurg's library-update hook
    code, doc = symlinkd(fuse_rig)
    links = links_by_path(doc, fuse_rig)
    assert code == 1, doc
    assert links[OLD[0]]["action"] == "prune", links
    assert links[GONE[0]]["action"] == "prune", links
    assert links[MOVED[0]]["action"] == "relink", links
    return fuse_rig


BREAKS: dict[str, Callable[[FuseRig], None]] = {
    "kill9": lambda rig: rig.kill9("zurg"),
    "fusermount_uz": lambda rig: rig.unmount_lazy("zurg"),
    "sigstop": lambda rig: rig.stop("zurg", max_seconds=150),
}


@pytest.mark.parametrize("break_mount", list(BREAKS), ids=list(BREAKS))
def test_apply_with_broken_mount_exits_3_and_changes_nothing(
    tempted: FuseRig, break_mount: str
) -> None:
    rig = tempted
    before = rig.farm_snapshot()
    assert len(before) == len(HEALTHY) + 3
    BREAKS[break_mount](rig)
    try:
        code, doc = symlinkd(rig, "--apply")
    finally:
        rig.cont("zurg")
    assert code == 3, doc
    assert mount_states(doc)["zurg"] != "ok"
    assert mount_states(doc)["torbox"] == "ok"
    assert doc["actions"]["prune"] == 0 and doc["actions"]["relink"] == 0, doc["links"]
    assert not any(link["verdict"] == "dangling" for link in doc["links"]), doc["links"]
    assert rig.farm_snapshot() == before
    assert not rig.quarantine_dir.exists() or not any(rig.quarantine_dir.rglob("*"))


# ---------------------------------------------------------------------------- relink
def read_through(link: Path) -> bytes:
    # Through the farm link into the FUSE mount: bounded, a broken mount must fail, not hang.
    return bounded(link.read_bytes, 30.0)


def test_deleted_on_zurg_relinked_to_torbox_and_reads_the_bytes(fuse_rig: FuseRig) -> None:
    rig = fuse_rig
    data = b"Delta.2019 release, 1080p\n" * 64
    rig.put("zurg", "__all__/Delta.2019.1080p/Delta.2019.mkv", data)
    rig.put("torbox", "usenet/Delta.2019.1080p/Delta.2019.mkv", data)
    rig.put("torbox", "torrents/Keep/Keep.mkv")  # torbox's anchor folder is not empty
    link = rig.link("movies/Delta (2019)/Delta (2019).mkv", "zurg",
                    "__all__/Delta.2019.1080p/Delta.2019.mkv")
    code, _ = symlinkd(rig)  # learns target and size
    assert code == 0

    rig.remove("zurg", "__all__/Delta.2019.1080p")
    rig.put("zurg", "__all__/Other.2020/Other.2020.mkv")  # the anchor stays non-empty
    rig.refresh("zurg", ["__all__"])
    code, doc = symlinkd(rig, "--apply")

    new_target = str(rig["torbox"].mount_path("usenet/Delta.2019.1080p/Delta.2019.mkv"))
    entry = links_by_path(doc, rig)["movies/Delta (2019)/Delta (2019).mkv"]
    assert code == 1, doc
    assert (entry["action"], entry["new_target"], entry["result"]) == ("relink", new_target, "done")
    assert os.readlink(link) == new_target
    assert read_through(link) == data
    code, doc = symlinkd(rig)  # the next pass finds nothing to do
    assert code == 0, doc


def test_zurg_renamed_torrent_folder_relinked_by_name_and_size(fuse_rig: FuseRig) -> None:
    rig = fuse_rig
    episode = b"Show.S01E01 repack bytes\n" * 100
    old_rel = "__all__/Show.S01.1080p.WEB/Show.S01E01.mkv"
    rig.put("zurg", old_rel, episode)
    # Decoy: the same file name elsewhere with another size must not be chosen.
    rig.put("torbox", "torrents/Show.S01.720p/Show.S01E01.mkv", b"720p bytes\n")
    link = rig.link("shows/Show/Season 01/Show S01E01.mkv", "zurg", old_rel)
    code, _ = symlinkd(rig)
    assert code == 0

    # Zurg renames the torrent folder after a repair (new hash, new name).
    rig.rename("zurg", "__all__/Show.S01.1080p.WEB", "__all__/Show.S01.1080p.WEB.REPACK")
    rig.refresh("zurg", ["__all__"])
    code, doc = symlinkd(rig, "--apply")

    new_target = str(rig["zurg"].mount_path("__all__/Show.S01.1080p.WEB.REPACK/Show.S01E01.mkv"))
    entry = links_by_path(doc, rig)["shows/Show/Season 01/Show S01E01.mkv"]
    assert code == 1, doc
    assert (entry["action"], entry["new_target"], entry["result"]) == ("relink", new_target, "done")
    assert os.readlink(link) == new_target
    assert read_through(link) == episode
