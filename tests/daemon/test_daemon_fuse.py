"""``symlinkd run`` against real rclone FUSE mounts (tests/fuse/rig.py): the mount metrics follow
rclone dying and coming back, the farm is never touched meanwhile, and a new link into a real
mount reaches Plex."""

from __future__ import annotations

import errno
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.fakes import FakePlex
from tests.daemon.proc import PLEX_TOKEN, TOKEN, DaemonProcess, free_port, wait_for, write_config
from tests.fuse.host import stat_errno
from tests.fuse.rig import FuseRig

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

PROBE_SECONDS = 1


@pytest.fixture
def plex(fuse_rig: FuseRig) -> Iterator[FakePlex]:
    server = FakePlex(PLEX_TOKEN, [("1", "TV Shows", [str(fuse_rig.farm / "Shows")])]).start()
    yield server
    server.stop()
    assert server.mismatches == []


def _config(rig: FuseRig) -> dict[str, Any]:
    config = rig.config_dict()
    config["daemon"] = {"listen": f"127.0.0.1:{free_port()}", "scan_interval_minutes": 60,
                        "probe_interval_seconds": PROBE_SECONDS, "watch": "inotify",
                        "debounce_seconds": 0.2}
    return config


def _up(daemon: DaemonProcess, mount: str) -> float | None:
    return daemon.metric("symlinkd_mount_up", mount=mount)


def test_kill9_rclone_drops_mount_up_and_touches_no_link(
    fuse_rig: FuseRig, plex: FakePlex
) -> None:
    rig = fuse_rig
    for i in range(1, 4):
        rig.put("zurg", f"__all__/Show.S01/e{i}.mkv")
        rig.link(f"Shows/Show/Season 01/e{i}.mkv", "zurg", f"__all__/Show.S01/e{i}.mkv")
    rig.put("torbox", "torrents/Film/film.mkv")
    rig.link("Movies/Film/film.mkv", "torbox", "torrents/Film/film.mkv")
    config = write_config(rig.base, _config(rig), plex_url=plex.url)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready(60)
        assert _up(daemon, "zurg") == 1.0
        before = rig.farm_snapshot()

        rig.kill9("zurg")
        # Probe every second, each bounded by timeouts.probe_seconds (2 s in the rig config).
        wait_for(lambda: _up(daemon, "zurg") == 0.0, PROBE_SECONDS + 2 + 5,
                 "symlinkd_mount_up{mount=zurg} to drop to 0")
        assert _up(daemon, "torbox") == 1.0
        assert daemon.metric("symlinkd_mount_state", mount="zurg", state="down") == 1.0

        # A full pass while the mount is dead: links are judged mount_down and left alone.
        passes = daemon.metric("symlinkd_scan_duration_seconds_count", kind="full") or 0.0
        answer = daemon.client.post("/api/v1/scan", headers={"X-Api-Key": TOKEN})
        assert answer.status_code == 202
        wait_for(lambda: (daemon.metric("symlinkd_scan_duration_seconds_count", kind="full")
                          or 0.0) > passes, 60, "the full pass over the dead mount")
        assert daemon.metric("symlinkd_links", mount="zurg", verdict="mount_down") == 3.0
        assert rig.farm_snapshot() == before

        rig.remount("zurg")
        wait_for(lambda: _up(daemon, "zurg") == 1.0, PROBE_SECONDS + 2 + 10,
                 "symlinkd_mount_up{mount=zurg} back to 1")
        assert rig.farm_snapshot() == before
        assert daemon.stop() == 0


def test_new_link_into_a_real_mount_reaches_plex(fuse_rig: FuseRig, plex: FakePlex) -> None:
    rig = fuse_rig
    rig.put("zurg", "__all__/Seed/seed.mkv")
    config_path = write_config(rig.base, _config(rig), plex_url=plex.url)
    assert yaml.safe_load(Path(config_path).read_text())["daemon"]["watch"] == "inotify"
    with DaemonProcess(config_path) as daemon:
        daemon.wait_ready(60)
        rig.put("torbox", "torrents/New.Show.S01/New.Show.S01E01.mkv")
        wait_for(lambda: rig["torbox"].mount_path("torrents/New.Show.S01").is_dir(), 30,
                 "rclone to list the new torrent (dir cache)")
        link = rig.link("Shows/New Show/Season 01/New.Show.S01E01.mkv", "torbox",
                        "torrents/New.Show.S01/New.Show.S01E01.mkv")
        wait_for(lambda: any(p and str(link).startswith(p.rstrip("/") + "/")
                             for _, p in plex.refreshes()), 30, "the Plex refresh")
        assert daemon.stop() == 0


def test_sigterm_with_a_hung_mount_exits_0_within_10_s(fuse_rig: FuseRig, plex: FakePlex) -> None:
    rig = fuse_rig
    for i in range(1, 4):
        rig.put("zurg", f"__all__/Show.S01/e{i}.mkv")
        rig.link(f"Shows/Show/Season 01/e{i}.mkv", "zurg", f"__all__/Show.S01/e{i}.mkv")
    config = write_config(rig.base, _config(rig), plex_url=plex.url)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready(60)
        before = rig.farm_snapshot()
        rig.stop("zurg", max_seconds=60)  # SIGSTOP: every call into the mount blocks
        answer = daemon.client.post("/api/v1/scan", headers={"X-Api-Key": TOKEN})
        assert answer.status_code == 202
        # SIGTERM while the pass waits on the stopped mount (its probe blocks there).
        wait_for(lambda: daemon.logs().count('"pass queued"') >= 2, 30, "the second pass")
        daemon.signal(signal.SIGTERM)
        started = time.monotonic()
        code = daemon.proc.wait(timeout=30)
        took = time.monotonic() - started
    rig.cont("zurg")
    assert code == 0
    assert took < 10, f"exit took {took:.1f} s with a hung mount"
    assert rig.farm_snapshot() == before


def test_zurg_library_update_relinks_a_renamed_torrent(fuse_rig: FuseRig, plex: FakePlex) -> None:
    """Zurg's repair renames a torrent folder and calls on_library_update with the directories:
    the links into the old folder are re-checked at once and relinked to the new one."""
    rig = fuse_rig
    rig.put("zurg", "__all__/Show.S01.OLD/Show.S01E01.mkv", b"x" * 4096)
    link = rig.link("Shows/Show/Season 01/Show.S01E01.mkv", "zurg",
                    "__all__/Show.S01.OLD/Show.S01E01.mkv")
    config = _config(rig)
    config["daemon"]["watch"] = "off"  # only the webhook can start the pass
    with DaemonProcess(write_config(rig.base, config, plex_url=plex.url)) as daemon:
        daemon.wait_ready(60)
        rig.rename("zurg", "__all__/Show.S01.OLD", "__all__/Show.S01.NEW")
        # The start-up pass stat'ed the old path a moment ago: the kernel answers from its FUSE
        # entry/attribute cache (--attr-timeout) even after rclone's vfs/refresh. In the stack
        # that pass was long ago; here, wait for the mount to show the rename. The webhook is
        # then still the only thing that can start a pass (watch off, full pass hourly).
        old_file = rig["zurg"].mount_path("__all__/Show.S01.OLD/Show.S01E01.mkv")
        wait_for(lambda: stat_errno(old_file) == errno.ENOENT, 30, "rclone to drop OLD")
        answer = daemon.client.post(
            "/webhook/zurg", content=b"__all__/Show.S01.OLD\n__all__/Show.S01.NEW\n",
            headers={"X-Api-Key": TOKEN, "Content-Type": "text/plain"},
        )
        assert answer.status_code == 202
        assert answer.json()["queued"] == [str(link.parent)]
        new_target = str(rig["zurg"].mount_path("__all__/Show.S01.NEW/Show.S01E01.mkv"))
        wait_for(lambda: Path(link).is_symlink() and str(Path(link).readlink()) == new_target,
                 60, "the relink into the renamed folder")
        wait_for(lambda: any(p and str(link).startswith(p.rstrip("/") + "/")
                             for _, p in plex.refreshes()), 30, "the Plex refresh")
        assert daemon.stop() == 0
