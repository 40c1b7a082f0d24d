"""Issue 10, "moved, not failing": Zurg renames most torrent folders at once (real rclone mount).

The breaker trips (80 % of the links into zurg dangle), but the anchor lists fine and every
renamed link's file is there under its new folder with its remembered size: one ``--apply``
pass relinks them all and prunes nothing (exit 1). The same farm whose mount came back empty, or
whose server is down, still changes nothing (exit 3). Ambiguous candidates are skipped, named.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fuse.rig import FuseRig
from tests.fuse.test_repair_fuse import links_by_path, mount_states, symlinkd

pytestmark = pytest.mark.fuse

FOLDERS = 100
FILES = 5  # 500 links
RENAMED = 80  # folders renamed on the server: 400 links


def rel(folder: int, episode: int, prefix: str = "Torrent") -> str:
    return f"__all__/{prefix}.{folder:03d}/Show.{folder:03d}.E{episode}.mkv"


def farm_rel(folder: int, episode: int) -> str:
    return f"shows/Show {folder:03d}/Show {folder:03d} E{episode}.mkv"


def body(folder: int, episode: int) -> bytes:
    return b"x" * (1000 + folder * FILES + episode)  # a distinct size per file


@pytest.fixture
def farm(fuse_rig_factory: Callable[..., FuseRig]) -> FuseRig:
    """500 healthy links into zurg, learned by one dry run (the state DB remembers sizes)."""
    fuse_rig = fuse_rig_factory(names=("zurg",))
    for folder in range(FOLDERS):
        for episode in range(FILES):
            fuse_rig.put("zurg", rel(folder, episode), body(folder, episode))
            fuse_rig.link(farm_rel(folder, episode), "zurg", rel(folder, episode))
    code, doc = symlinkd(fuse_rig)
    assert code == 0, doc["counts"]
    assert doc["counts"]["ok"] == FOLDERS * FILES
    return fuse_rig


def rename_folders(rig: FuseRig, count: int) -> None:
    for folder in range(count):
        rig.rename("zurg", f"__all__/Torrent.{folder:03d}", f"__all__/Renamed.{folder:03d}")
    # The rig's --dir-cache-time (2 s): until it has passed, rclone still lists the old folders
    # and every link is rightly ok (the fixture's dry run has just listed them).
    time.sleep(2.5)


def targets(rig: FuseRig) -> dict[str, str]:
    return {path: target for path, (target, _mtime) in rig.farm_snapshot().items()}


def test_mass_rename_is_relinked_in_one_pass_and_nothing_pruned(farm: FuseRig) -> None:
    rename_folders(farm, RENAMED)
    # One renamed file is really gone: under a rename event it is kept, not pruned.
    farm.remove("zurg", rel(0, 0, "Renamed"))
    code, doc = symlinkd(farm, "--apply")
    assert code == 1, (doc["mounts"], doc["refused"], doc["notes"][:5])
    assert mount_states(doc) == {"zurg": "ok"}
    assert doc["results"].get("relink") == {"done": RENAMED * FILES - 1}, doc["results"]
    assert "prune" not in doc["results"]
    assert doc["rename_events"] == [{"mount": "zurg", "detected": True,
                                     "failing": RENAMED * FILES,
                                     "relinkable": RENAMED * FILES - 1, "ambiguous": []}]
    now = targets(farm)
    for folder in range(FOLDERS):
        for episode in range(FILES):
            if (folder, episode) == (0, 0):
                continue
            prefix = "Renamed" if folder < RENAMED else "Torrent"
            want = str(farm["zurg"].mount_path(rel(folder, episode, prefix)))
            assert now[farm_rel(folder, episode)] == want
    kept = links_by_path(doc, farm)[farm_rel(0, 0)]
    assert kept["action"] == "skip" and "rename event" in kept["reason"], kept
    assert farm_rel(0, 0) in now  # still there


def _unchanged(rig: FuseRig, before: dict[str, Any], doc: dict[str, Any]) -> None:
    assert rig.farm_snapshot() == before
    assert not any(r.get("done") for r in doc["results"].values()), doc["results"]


def test_mass_rename_on_a_mount_that_came_back_empty_changes_nothing(farm: FuseRig) -> None:
    rename_folders(farm, RENAMED)
    before = farm.farm_snapshot()
    for entry in farm["zurg"].server_path("__all__").iterdir():
        farm.remove("zurg", f"__all__/{entry.name}")
    farm.refresh("zurg", ["__all__"])
    code, doc = symlinkd(farm, "--apply")
    assert code == 3, doc["mounts"]
    assert mount_states(doc)["zurg"] != "ok"
    _unchanged(farm, before, doc)


def test_mass_rename_with_the_server_down_changes_nothing(farm: FuseRig) -> None:
    rename_folders(farm, RENAMED)
    before = farm.farm_snapshot()
    farm.stop_webdav("zurg")
    code, doc = symlinkd(farm, "--apply")
    assert code == 3, doc["mounts"]
    _unchanged(farm, before, doc)


def test_ambiguous_candidates_are_skipped_and_named(farm: FuseRig) -> None:
    rename_folders(farm, RENAMED)
    # Ten renamed releases also appear under a second name: which one is "the" file?
    for folder in range(10):
        for episode in range(FILES):
            farm.put("zurg", rel(folder, episode, "Copy"), body(folder, episode))
    code, doc = symlinkd(farm, "--apply")
    assert code == 1, (doc["mounts"], doc["notes"][:5])
    event = doc["rename_events"][0]
    ambiguous = {farm_rel(f, e) for f in range(10) for e in range(FILES)}
    assert event["detected"] is True
    assert {p.removeprefix(str(farm.farm) + "/") for p in event["ambiguous"]} == ambiguous
    assert doc["results"]["relink"] == {"done": (RENAMED - 10) * FILES}
    links = links_by_path(doc, farm)
    for path in ambiguous:
        assert links[path]["action"] == "skip", links[path]
        assert "ambiguous" in links[path]["reason"]
    assert "prune" not in doc["results"]


def test_an_outage_that_looks_like_nothing_found_stays_frozen(farm: FuseRig) -> None:
    """Folders gone without a trace (not renamed): the breaker holds, exit 3, 0 changes."""
    before = farm.farm_snapshot()
    for folder in range(RENAMED):
        farm.remove("zurg", f"__all__/Torrent.{folder:03d}")
    time.sleep(2.5)  # the rig's --dir-cache-time: until then rclone still lists the folders
    code, doc = symlinkd(farm, "--apply")
    assert code == 3, doc["mounts"]
    assert mount_states(doc)["zurg"] == "degraded"
    assert doc["rename_events"][0]["detected"] is False
    _unchanged(farm, before, doc)
