"""The farm watcher on a real temp directory: inotify and polling, debounce batching, and the
``auto`` choice from the farm's filesystem type."""

from __future__ import annotations

import os
import queue as stdqueue
from pathlib import Path

import pytest

from symlinkd.daemon.queue import ScanRequest
from symlinkd.daemon.watcher import FarmWatcher, farm_fs_type, resolve_watch_mode
from symlinkd.settings import DaemonSettings

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /mnt/media rw,relatime - nfs4 truenas:/pool/media rw,vers=4.2
41 40 0:51 / /mnt/media/zurg rw,nosuid - fuse.rclone zurg: rw,user_id=0
42 27 0:52 / /srv/my\\040farm rw - xfs /dev/vdb rw
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


@pytest.mark.parametrize(
    ("farm", "fs_type", "mode"),
    [
        ("/mnt/media/stream", "nfs4", "poll"),
        ("/mnt/media/zurg/links", "fuse.rclone", "poll"),
        ("/srv/my farm/Shows", "xfs", "inotify"),
        ("/var/lib/farm", "ext4", "inotify"),
    ],
)
def test_auto_polls_on_network_and_fuse_filesystems(
    mountinfo: str, farm: str, fs_type: str, mode: str
) -> None:
    assert farm_fs_type(farm, mountinfo) == fs_type
    chosen, why = resolve_watch_mode("auto", farm, mountinfo)
    assert chosen == mode
    assert fs_type in why


def test_explicit_mode_wins_and_unreadable_mountinfo_means_inotify(tmp_path: Path) -> None:
    assert resolve_watch_mode("poll", "/var/lib/farm", "/nonexistent")[0] == "poll"
    assert resolve_watch_mode("off", "/mnt/media/stream", "/nonexistent")[0] == "off"
    assert resolve_watch_mode("auto", str(tmp_path), "/nonexistent")[0] == "inotify"


def _watch(farm: Path, mode: str) -> tuple[FarmWatcher, stdqueue.Queue[ScanRequest]]:
    got: stdqueue.Queue[ScanRequest] = stdqueue.Queue()

    def enqueue(request: ScanRequest) -> bool:
        got.put(request)
        return True

    settings = DaemonSettings(watch=mode,  # type: ignore[arg-type]
                              debounce_seconds=0.3, poll_interval_seconds=0.2)
    watcher = FarmWatcher(str(farm), settings, enqueue)
    watcher.start()
    return watcher, got


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_new_links_are_batched_into_one_subtree_request(tmp_path: Path, mode: str) -> None:
    farm = tmp_path / "farm"
    show = farm / "Shows" / "Peacemaker"
    show.mkdir(parents=True)
    target_dir = tmp_path / "mount" / "torrent"
    target_dir.mkdir(parents=True)
    (target_dir / "inside.mkv").write_text("x")
    watcher, got = _watch(farm, mode)
    try:
        links = [show / f"S01E0{i}.mkv" for i in range(1, 6)]
        for link in links:
            link.symlink_to(target_dir / "inside.mkv")
        # A link to a directory: the poller must lstat it, not walk into the target.
        (farm / "Shows" / "Folder").symlink_to(target_dir, target_is_directory=True)
        request = got.get(timeout=10)
        paths = set(request.paths)
        while not {str(p) for p in links} <= paths:
            paths |= got.get(timeout=10).paths
    finally:
        watcher.stop()
    assert not any(p.startswith(str(farm / "Shows" / "Folder") + "/") for p in paths)
    assert request.source == "watch" and not request.full


def test_a_name_gone_before_the_debounce_ends_is_not_scanned(tmp_path: Path) -> None:
    farm = tmp_path / "farm"
    farm.mkdir()
    watcher, got = _watch(farm, "inotify")
    try:
        # What the executor does for a relink: a temporary link, then os.replace over the real one.
        (farm / ".tmp-relink").symlink_to("/nowhere")
        os.replace(farm / ".tmp-relink", farm / "movie.mkv")
        request = got.get(timeout=10)
    finally:
        watcher.stop()
    assert request.paths == {str(farm / "movie.mkv")}


def test_off_watches_nothing(tmp_path: Path) -> None:
    watcher, got = _watch(tmp_path, "off")
    (tmp_path / "x").symlink_to("/nowhere")
    with pytest.raises(stdqueue.Empty):
        got.get(timeout=1)
    watcher.stop()
