"""The daemon does not re-read farm folders that did not change (issue 12): a folder with the
same inode, mtime and ctime hands on its links from memory, a changed one is read again (a
link re-pointed with ``os.replace`` is seen at once), and a full re-walk comes every
``full_rewalk_hours``. Targets are checked on every pass all the same."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from symlinkd.farmcache import FolderCache
from symlinkd.model import Verdict
from symlinkd.runtime import PassOptions, Runtime, build_runtime
from symlinkd.settings import MountSettings, Policy, Settings

HOUR = 3600.0


class Readlinks:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = os.readlink

        def counted(*args: object, **kw: object) -> str:
            self.calls += 1
            return real(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "readlink", counted)


def build(tmp_path: Path) -> tuple[Settings, Path, Path]:
    cloud = tmp_path / "mnt/zurg/__all__"
    farm = tmp_path / "farm"
    for show in range(4):
        (cloud / f"S{show}").mkdir(parents=True)
        (farm / f"Show{show}").mkdir(parents=True)
        for ep in range(5):
            (cloud / f"S{show}/e{ep}.mkv").write_bytes(b"x")
            os.symlink(cloud / f"S{show}/e{ep}.mkv", farm / f"Show{show}/e{ep}.mkv")
    past = time.time() - HOUR  # folders settled long ago: not "racy"
    for folder in [farm, *farm.iterdir()]:
        os.utime(folder, (past, past))
    settings = Settings(
        farm=str(farm), state_dir=str(tmp_path / "state"),
        mounts=(MountSettings("zurg", str(cloud.parent), "__all__", require_mountpoint=False),),
        policy=Policy(quarantine_dir=str(tmp_path / "q"), max_age_days=0),
    )
    return settings, farm, cloud


def dangling(rt: Runtime) -> list[str]:
    report = rt.run_pass(PassOptions(notify=False))
    assert report.tally()[("zurg", Verdict.OK)] + len(report.judgements) == 20
    return sorted(j.path for j in report.judgements if j.verdict is Verdict.DANGLING)


def test_unchanged_folders_are_not_read_again_and_a_replaced_link_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, farm, cloud = build(tmp_path)
    offset = [0.0]
    cache = FolderCache(rewalk_seconds=24 * HOUR, clock=lambda: time.time() + offset[0])
    readlinks = Readlinks(monkeypatch)
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        rt.scanner.folder_cache = cache
        assert dangling(rt) == []
        assert readlinks.calls == 20

        readlinks.calls = 0
        assert dangling(rt) == []
        assert readlinks.calls == 0, "nothing changed: no folder read again"
        assert cache.reused == 5

        # Re-point a link the way tools do: a new link, renamed over the old one.
        link = farm / "Show2/e3.mkv"
        os.symlink(cloud / "S2/missing.mkv", farm / "Show2/.e3.tmp")
        os.replace(farm / "Show2/.e3.tmp", link)
        readlinks.calls = 0
        assert dangling(rt) == [str(link)]
        assert readlinks.calls == 5, "only the changed folder was read"

        # A target gone on the mount side is seen although no farm folder changed.
        (cloud / "S0/e1.mkv").unlink()
        assert str(farm / "Show0/e1.mkv") in dangling(rt)

        # The periodic full re-walk reads every folder again.
        offset[0] = 25 * HOUR
        readlinks.calls = 0
        dangling(rt)
        assert readlinks.calls == 20


def test_a_cli_pass_keeps_no_folder_cache(tmp_path: Path) -> None:
    settings, _farm, _cloud = build(tmp_path)
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        assert rt.scanner.folder_cache is None


def test_the_memory_is_bounded_and_folders_past_it_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, _farm, _cloud = build(tmp_path)
    readlinks = Readlinks(monkeypatch)
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        rt.scanner.folder_cache = FolderCache(max_links=5)  # one show folder's worth
        dangling(rt)
        readlinks.calls = 0
        assert dangling(rt) == []
        assert readlinks.calls == 15, "three of the four folders are read from disk"
