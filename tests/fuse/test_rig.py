"""The rig itself: each failure mode gives the kernel behaviour the other FUSE tests rely on."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

from tests.fuse.rig import BoundedTimeout, FuseRig, mounted_at, stat_errno

pytestmark = pytest.mark.fuse

MOVIE = "__all__/Movie (2020)/Movie (2020).mkv"


def test_healthy_mount_serves_the_cloud_bytes(fuse_rig: FuseRig) -> None:
    fuse_rig.put("zurg", MOVIE, b"frame 1\n")
    assert mounted_at(fuse_rig["zurg"].mountpoint)
    assert fuse_rig["zurg"].mount_path(MOVIE).read_bytes() == b"frame 1\n"
    assert sorted(os.listdir(fuse_rig["torbox"].mountpoint)) == ["torrents", "usenet"]
    assert fuse_rig.refresh("zurg", ["__all__"]) == {"result": {"__all__": "OK"}}


def test_kill9_gives_enotconn_until_remount(fuse_rig: FuseRig) -> None:
    fuse_rig.put("zurg", MOVIE)
    fuse_rig.kill9("zurg")
    zurg = fuse_rig["zurg"]
    assert stat_errno(zurg.mount_path(MOVIE)) == errno.ENOTCONN
    # Still listed as a mount, yet ismount() says no: ENOTCONN on the mount point itself.
    assert mounted_at(zurg.mountpoint)
    assert not os.path.ismount(zurg.mountpoint)
    fuse_rig.remount("zurg")
    assert stat_errno(zurg.mount_path(MOVIE)) is None


def test_stop_blocks_every_call_until_cont(fuse_rig: FuseRig) -> None:
    torbox = fuse_rig["torbox"]
    fuse_rig.put("torbox", "torrents/Show/S01E01.mkv")
    fuse_rig.stop("torbox")
    with pytest.raises(BoundedTimeout):
        stat_errno(torbox.mount_path("torrents/Show/S01E01.mkv"), timeout=1.0)
    fuse_rig.cont("torbox")
    assert stat_errno(torbox.mount_path("torrents/Show/S01E01.mkv"), timeout=10) is None


def test_lazy_unmount_leaves_an_empty_mount_point(fuse_rig: FuseRig) -> None:
    fuse_rig.put("zurg", MOVIE)
    fuse_rig.unmount_lazy("zurg")
    assert not mounted_at(fuse_rig["zurg"].mountpoint)
    assert os.listdir(fuse_rig["zurg"].mountpoint) == []
    assert not fuse_rig.rclone_running("zurg")


def test_close_cleans_up_a_stopped_and_a_killed_mount(
    fuse_rig_factory: Callable[..., FuseRig],
) -> None:
    rig = fuse_rig_factory()
    processes = [p for m in rig.mounts.values() for p in (m.rclone, m.webdav) if p is not None]
    rig.stop("zurg")
    rig.kill9("torbox", settle=False)
    rig.close()
    assert all(p.poll() is not None for p in processes)
    assert not any(mounted_at(m.mountpoint) for m in rig.mounts.values())


def test_webdav_down_uncached_lookup_blocks_not_enoent(
    fuse_rig_factory: Callable[..., FuseRig],
) -> None:
    # With the backend gone, a lookup rclone must ask the server for does not come back as
    # "no such file" quickly: it blocks while rclone retries (~20 s here), then fails EIO.
    rig = fuse_rig_factory(dir_cache_time="100ms")
    rig.put("zurg", MOVIE)
    rig.stop_webdav("zurg")
    with pytest.raises(BoundedTimeout):
        stat_errno(rig["zurg"].mount_path(MOVIE), timeout=2.0)
    rig.start_webdav("zurg")
    assert stat_errno(rig["zurg"].mount_path(MOVIE), timeout=60) is None
