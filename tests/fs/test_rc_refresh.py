"""rclone ``vfs/refresh`` that pays once (issue 12): a folder holding a missing target is
refreshed when its link is first seen dangling and again only when the link's confirmation is
due, never on every pass; the folders of one pass go to rclone batched, several per call."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from symlinkd.model import ActionKind, Verdict
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import MountSettings, Policy, Settings

HOUR = 3600.0


class Rc:
    """A fake rclone rc: records every vfs/refresh call's folders; ``on_refresh`` runs first
    (rclone re-reading the remote)."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []
        self.on_refresh: list[Path] = []  # files that appear once rclone re-reads the remote

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        dirs = {v for k, v in sent.items() if k.startswith("dir")}
        self.calls.append(dirs)
        for path in self.on_refresh:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        return httpx.Response(200, json={"result": dict.fromkeys(dirs, "OK")})

    def folders(self) -> set[str]:
        return set().union(*self.calls) if self.calls else set()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def farm(tmp_path: Path) -> tuple[Settings, Path, Path]:
    cloud = tmp_path / "mnt/zurg/__all__"
    cloud.mkdir(parents=True)
    (cloud / "anchor").write_bytes(b"x")
    farm = tmp_path / "farm"
    settings = Settings(
        farm=str(farm), state_dir=str(tmp_path / "state"),
        mounts=(MountSettings("zurg", str(cloud.parent), "__all__",
                              rc_url="http://127.0.0.1:5572", require_mountpoint=False),),
        policy=Policy(confirm_after_passes=2, confirm_after_minutes=60, max_age_days=0,
                      relink=False, quarantine_dir=str(tmp_path / "q"), max_prune_ratio=1.0,
                      breaker_ratio=1.0),
    )
    for show in range(3):
        (cloud / f"S{show}").mkdir()
        for ep in range(3):
            (cloud / f"S{show}/e{ep}.mkv").write_bytes(b"x")
            link = farm / f"Show{show}/e{ep}.mkv"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(cloud / f"S{show}/e{ep}.mkv", link)
    return settings, farm, cloud


def test_missing_target_folder_refreshed_once_then_when_confirmation_is_due(
    farm: tuple[Settings, Path, Path],
) -> None:
    settings, _links, cloud = farm
    (cloud / "S0/e1.mkv").unlink()
    rc, clock = Rc(), Clock()
    with build_runtime(settings, clock=clock, registry=CollectorRegistry(),
                       http_transport=httpx.MockTransport(rc)) as rt:
        first = rt.run_pass(PassOptions(notify=False))
        assert [j.verdict for j in first.judgements] == [Verdict.DANGLING]
        assert rc.folders() == {"__all__/S0"}, "first seen dangling: its folder is refreshed"

        rc.calls.clear()
        clock.now += 60
        second = rt.run_pass(PassOptions(notify=False))
        assert [j.verdict for j in second.judgements] == [Verdict.DANGLING]
        assert rc.calls == [], "confirmation not due yet: no refresh on this pass"

        clock.now += HOUR
        third = rt.run_pass(PassOptions(notify=False))
        assert rc.folders() == {"__all__/S0"}, "confirmation due: refreshed before believing"
        assert [p.action.kind for p in third.planned] == [ActionKind.PRUNE]

        rc.calls.clear()
        clock.now += 60
        rt.run_pass(PassOptions(notify=False))
        assert rc.calls == [], "refreshed after the confirmation came due: not again"

        # Another link goes missing: only its folder is refreshed, on first sight.
        (cloud / "S2/e0.mkv").unlink()
        clock.now += 60
        rt.run_pass(PassOptions(notify=False))
        assert rc.folders() == {"__all__/S2"}


def test_a_target_back_after_the_due_refresh_ends_the_streak(
    farm: tuple[Settings, Path, Path],
) -> None:
    settings, _links, cloud = farm
    (cloud / "S1/e2.mkv").unlink()
    rc, clock = Rc(), Clock()
    with build_runtime(settings, clock=clock, registry=CollectorRegistry(),
                       http_transport=httpx.MockTransport(rc)) as rt:
        rt.run_pass(PassOptions(notify=False))
        clock.now += HOUR + 60
        rc.on_refresh.append(cloud / "S1/e2.mkv")  # only rclone's re-read shows it again
        report = rt.run_pass(PassOptions(notify=False))
        assert report.judgements == []
        assert report.planned == []


def test_a_fresh_process_remembers_when_a_folder_was_refreshed(
    farm: tuple[Settings, Path, Path],
) -> None:
    settings, _links, cloud = farm
    (cloud / "S0/e0.mkv").unlink()
    rc, clock = Rc(), Clock()
    for step in range(2):  # two CLI runs: two processes' worth of runtimes on one state dir
        with build_runtime(settings, clock=clock, registry=CollectorRegistry(),
                           http_transport=httpx.MockTransport(rc)) as rt:
            rt.run_pass(PassOptions(notify=False))
        assert len(rc.calls) == 1, f"run {step + 1}"
        clock.now += 60


def test_many_folders_go_to_rclone_several_per_call(farm: tuple[Settings, Path, Path]) -> None:
    settings, _links, cloud = farm
    for show in range(3):
        (cloud / f"S{show}/e0.mkv").unlink()
    rc = Rc()
    with build_runtime(settings, clock=Clock(), registry=CollectorRegistry(),
                       http_transport=httpx.MockTransport(rc)) as rt:
        rt.run_pass(PassOptions(notify=False))
    assert rc.calls == [{"__all__/S0", "__all__/S1", "__all__/S2"}]
