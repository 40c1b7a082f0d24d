"""A dangling link costs no write once its streak has reached the confirmation count (issue
12: UPDATEs only for links whose state changed): the planner only asks "passes >= N", so the
count stops at N and the row is left alone while the link stays dangling."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from symlinkd.model import ActionKind, Verdict
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import MountSettings, Policy, Settings


def test_streak_stops_at_the_confirmation_count_and_the_plan_is_unchanged(
    tmp_path: Path,
) -> None:
    cloud = tmp_path / "mnt/zurg/__all__"
    (cloud / "S").mkdir(parents=True)
    farm = tmp_path / "farm/Show"
    farm.mkdir(parents=True)
    for ep in range(4):
        (cloud / f"S/e{ep}.mkv").write_bytes(b"x")
        os.symlink(cloud / f"S/e{ep}.mkv", farm / f"e{ep}.mkv")
    (cloud / "S/e2.mkv").unlink()
    link = str(farm / "e2.mkv")
    now = [1_800_000_000.0]
    settings = Settings(
        farm=str(tmp_path / "farm"), state_dir=str(tmp_path / "state"),
        mounts=(MountSettings("zurg", str(cloud.parent), "__all__", require_mountpoint=False),),
        policy=Policy(quarantine_dir=str(tmp_path / "q"), confirm_after_passes=2,
                      confirm_after_minutes=60, max_prune_ratio=1.0, breaker_ratio=1.0),
    )
    with build_runtime(settings, clock=lambda: now[0], registry=CollectorRegistry()) as rt:
        for _ in range(4):
            report = rt.run_pass(PassOptions(notify=False))
            now[0] += 60
        assert [j.verdict for j in report.judgements] == [Verdict.DANGLING]
        history = rt.state.histories([link])[link]
        assert history.bad_passes == 2, "no UPDATE once the count is reached"
        assert history.bad_since == 1_800_000_000.0
        assert report.planned == [] or all(p.action.kind is not ActionKind.PRUNE
                                           for p in report.planned)
        now[0] += 3600  # the minutes are met too: confirmed, as before
        report = rt.run_pass(PassOptions(notify=False))
        assert [p.action.kind for p in report.planned] == [ActionKind.PRUNE]
