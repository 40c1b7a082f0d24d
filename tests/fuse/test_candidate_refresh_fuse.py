"""Issue 10, "fresh listings for candidates": rclone with a long ``--dir-cache-time`` answers
listings from its cache, so a file moved on the provider is invisible in its new folder until
the cache expires. The candidate search refreshes the folders it searches through rc first, so
the link is relinked in the first pass; without ``rc_url`` the report says the listing may
have been stale.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.fuse.rig import FuseRig
from tests.fuse.test_repair_fuse import links_by_path

pytestmark = pytest.mark.fuse

OLD = "torrents/Alpha.2020/Alpha.2020.mkv"
INTO_KNOWN = "torrents/Known.Pack/Alpha.2020.mkv"  # a folder rclone has listed (cached)
BETA_OLD = "torrents/Beta.2021/Beta.2021.mkv"
INTO_NEW = "torrents/Beta.2021.Repack/Beta.2021.mkv"  # a folder rclone has never seen


def scan(rig: FuseRig, *args: str, rc: bool = True,
         policy: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    cfg = rig.write_config(policy={"confirm_after_passes": 3, **(policy or {})}, rc=rc)
    proc = rig.run_cli("scan", "--config", str(cfg), "--json", "--no-notify", *args,
                       timeout=90)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-3000:]}")


@pytest.fixture
def moved(fuse_rig_factory: Callable[..., FuseRig]) -> FuseRig:
    rig = fuse_rig_factory(names=("torbox",), dir_cache_time="1h")
    rig.put("torbox", OLD, b"a" * 3000)
    rig.put("torbox", BETA_OLD, b"b" * 4000)
    rig.put("torbox", "torrents/Known.Pack/Other.mkv", b"o" * 10)
    rig.link("movies/Alpha (2020).mkv", "torbox", OLD)
    rig.link("movies/Beta (2021).mkv", "torbox", BETA_OLD)
    rig.link("movies/Other.mkv", "torbox", "torrents/Known.Pack/Other.mkv")
    code, doc = scan(rig)  # learns sizes; rclone caches torrents/ and both folders
    assert code == 0, doc["counts"]
    rig.rename("torbox", OLD, INTO_KNOWN)
    rig.rename("torbox", BETA_OLD, INTO_NEW)
    # The old folders are re-read (symlinkd's refresh-before-gone does this for them too);
    # the folders the files went to are still answered from rclone's hour-long cache.
    rig.refresh("torbox", ["torrents/Alpha.2020", "torrents/Beta.2021"])
    assert not os.path.exists(rig["torbox"].mount_path(INTO_KNOWN))
    return rig


def test_a_file_moved_into_cached_folders_is_relinked_in_the_first_pass(moved: FuseRig) -> None:
    # Control: with no refresh budget the search sees only cached listings and finds nothing.
    code, doc = scan(moved, policy={"candidate_refresh_dirs": 0})
    links = links_by_path(doc, moved)
    assert links["movies/Alpha (2020).mkv"]["action"] != "relink", links
    assert any("refresh budget" in note for note in doc["notes"]), doc["notes"]

    code, doc = scan(moved, "--apply")
    links = links_by_path(doc, moved)
    assert code == 1, doc
    assert links["movies/Alpha (2020).mkv"]["action"] == "relink", links
    assert links["movies/Beta (2021).mkv"]["action"] == "relink", links
    snapshot = moved.farm_snapshot()
    assert snapshot["movies/Alpha (2020).mkv"][0] == str(moved["torbox"].mount_path(INTO_KNOWN))
    assert snapshot["movies/Beta (2021).mkv"][0] == str(moved["torbox"].mount_path(INTO_NEW))


def test_without_rc_the_report_says_the_listing_may_be_stale(moved: FuseRig) -> None:
    code, doc = scan(moved, rc=False)
    assert code == 1
    assert any("cached listings (no rc_url)" in note for note in doc["notes"]), doc["notes"]
