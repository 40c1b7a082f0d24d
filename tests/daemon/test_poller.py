"""The farm poller (watch mode ``poll``), driven poll by poll on a real temp directory."""

from __future__ import annotations

import os
from pathlib import Path

from symlinkd.daemon.poller import FarmPoller


def _poller(farm: Path) -> tuple[FarmPoller, list[str]]:
    seen: list[str] = []
    poller = FarmPoller(str(farm), 3600, seen.append)
    poller._register(str(farm), emit=False)  # what start() does, without the thread
    return poller, seen


def _age(path: Path) -> None:
    """Older than the racy window, as a directory left alone for a while is."""
    os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)


def test_changed_directories_hand_on_their_links_and_new_subtrees(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    season = farm / "Shows" / "A" / "S01"
    season.mkdir(parents=True)
    (season / "e1.mkv").symlink_to("/mnt/zurg/a/e1.mkv")
    for path in (season, season.parent, season.parent.parent, farm):
        _age(path)
    poller, seen = _poller(farm)
    assert poller.directories == 4
    poller.poll()
    assert seen == [], "nothing changed"

    (season / "e2.mkv").symlink_to("/mnt/zurg/a/e2.mkv")
    new_show = farm / "Shows" / "B" / "S01"
    new_show.mkdir(parents=True)
    (new_show / "b1.mkv").symlink_to("/mnt/zurg/b/b1.mkv")
    (new_show / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    poller.poll()
    assert set(seen) == {str(season / "e1.mkv"), str(season / "e2.mkv"),
                         str(new_show / "b1.mkv"), str(new_show / "dirlink")}
    assert poller.directories == 6


def test_a_removed_directory_is_forgotten(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    (farm / "Shows" / "A" / "S01").mkdir(parents=True)
    poller, _ = _poller(farm)
    (farm / "Shows" / "A" / "S01").rmdir()
    (farm / "Shows" / "A").rmdir()
    poller.poll()
    assert poller.directories == 2


def test_a_recently_changed_directory_is_listed_again(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    farm.mkdir()
    (farm / "m.mkv").symlink_to("/mnt/zurg/m.mkv")
    poller, seen = _poller(farm)  # farm's mtime is "now": racy, no signature kept
    poller.poll()
    assert seen == [str(farm / "m.mkv")]
