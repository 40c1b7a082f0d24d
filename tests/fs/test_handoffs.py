"""Fewer hand-offs to gate threads while a mount answers fast (issue 12), without weakening the
hang guarantee: a gate call lists folders only until a small time budget is spent, so a mount
that turns slow mid-batch never makes one call outlast ``op_seconds`` (a false "hung")."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from symlinkd import targets
from symlinkd.classifier import classify
from symlinkd.model import MountHealth, Verdict
from symlinkd.mounts import MountGate, MountMonitor
from symlinkd.scanner import Scanner
from symlinkd.settings import MountSettings, Timeouts


def farm_of(tmp_path: Path, folders: int) -> tuple[Path, Path]:
    cloud = tmp_path / "mnt/zurg/__all__"
    farm = tmp_path / "farm"
    for i in range(folders):
        (cloud / f"T{i:04d}").mkdir(parents=True)
        (cloud / f"T{i:04d}/e.mkv").write_bytes(b"x")
        (farm / f"S{i:04d}").mkdir(parents=True)
        os.symlink(cloud / f"T{i:04d}/e.mkv", farm / f"S{i:04d}/e.mkv")
    return farm, cloud


def scan(farm: Path, cloud: Path, timeouts: Timeouts) -> tuple[dict[str, Verdict], MountHealth]:
    monitor = MountMonitor([MountSettings("zurg", str(cloud.parent), "__all__",
                                          require_mountpoint=False)], timeouts)
    try:
        mounts = monitor.probe()
        result = Scanner(str(farm), monitor, timeouts).scan(mounts)
    finally:
        monitor.close()
    now = time.time()
    verdicts = {f.path: classify(f, result.mounts, now).verdict for f in result.facts}
    return verdicts, result.mounts["zurg"].health


def test_fast_listings_go_many_to_one_gate_call(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    farm, cloud = farm_of(tmp_path, 400)
    calls = [0]
    submit = MountGate.submit

    def counted(self: MountGate, *args: object, **kw: object) -> object:
        calls[0] += 1
        return submit(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MountGate, "submit", counted)
    verdicts, health = scan(farm, cloud, Timeouts())
    assert health is MountHealth.OK and set(verdicts.values()) == {Verdict.OK}
    assert calls[0] <= 40, f"{calls[0]} gate calls for 400 fast target folders"


def test_a_mount_turning_slow_mid_batch_is_not_taken_for_hung(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    farm, cloud = farm_of(tmp_path, 120)
    real = targets.list_dir
    listed = [0]

    def slowing(path: str) -> targets.Listing:
        listed[0] += 1
        if listed[0] > 40:  # the cache expired: every listing now goes to the remote
            time.sleep(0.05)
        return real(path)

    monkeypatch.setattr(targets, "list_dir", slowing)
    # 0.6 s per call: more than enough for one slow listing, far too little for 32 of them.
    verdicts, health = scan(farm, cloud, Timeouts(probe_seconds=5, op_seconds=0.6,
                                                  workers_per_mount=2))
    assert health is MountHealth.OK
    assert set(verdicts.values()) == {Verdict.OK}
