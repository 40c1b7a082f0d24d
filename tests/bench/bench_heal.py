"""Benchmarks for issue 10 (not run by pytest).

    python tests/bench/bench_heal.py rename [--links 100000]   # tmpfs plain-directory mount
    python tests/bench/bench_heal.py probe  [--links 20000]    # real rclone mount (FuseRig)

``rename``: a farm of N links into a plain-directory "zurg" mount on tmpfs (/dev/shm), five
files a torrent folder. Timed: a steady-state ``--apply`` pass (the baseline, nothing to do),
then the pass after 80 % of the folders were renamed (breaker trips, rename search, N*0.8
relinks journaled and applied). Reported as seconds and the ratio to the baseline.

``probe``: N links into a real rclone mount of a local WebDAV server (tests/fuse/rig.py).
Timed: a pass without the probe (baseline), then passes with the probe at its default budget
(200 links a pass) and at 1000 a pass; reads, bytes and seconds per pass come from the probe's
own report note and from the WebDAV server's read log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import MountSettings, Policy, ProbePolicy, Settings, Timeouts

FILES = 5


def _pass(settings: Settings, *, apply: bool = True) -> tuple[float, object]:
    with build_runtime(settings) as runtime:
        started = time.perf_counter()
        report = runtime.run_pass(PassOptions(apply=apply, notify=False, target_index=False))
        return time.perf_counter() - started, report


def rename(links: int) -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="bench-heal-", dir="/dev/shm"))
    try:
        cloud, farm = base / "zurg", base / "farm"
        for i in range(links):
            folder = cloud / "__all__" / f"Torrent.{i // FILES:06d}"
            if i % FILES == 0:
                folder.mkdir(parents=True)
            target = folder / f"Show.{i:06d}.mkv"
            target.write_bytes(b"x" * (i % 4096))
            link = farm / f"Show {i // 1000:03d}" / f"E{i:06d}.mkv"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, link)
        settings = Settings(
            farm=str(farm), state_dir=str(base / "state"),
            mounts=(MountSettings("zurg", str(cloud), "__all__", require_mountpoint=False),),
            timeouts=Timeouts(probe_seconds=10, op_seconds=30),
            policy=Policy(quarantine_dir=str(base / "quarantine"), max_prune=10**9),
        )
        _pass(settings)  # learn targets and sizes
        steady, _ = _pass(settings)
        folders = links // FILES
        for n in range(int(folders * 0.8)):
            os.rename(cloud / "__all__" / f"Torrent.{n:06d}", cloud / "__all__" / f"New.{n:06d}")
        seconds, report = _pass(settings)
        results = {o.planned.action.kind.value: 0 for o in report.outcomes}  # type: ignore[attr-defined]
        for o in report.outcomes:  # type: ignore[attr-defined]
            results[o.planned.action.kind.value] += 1
        return {"links": links, "steady_apply_s": round(steady, 2),
                "rename_apply_s": round(seconds, 2), "ratio": round(seconds / steady, 2),
                "actions": results,
                "rename_events": [(e.mount, e.failing, len(e.relinkable))
                                  for e in report.renames]}  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def probe(links: int) -> dict[str, object]:
    from tests.fuse.rig import FuseRig  # noqa: PLC0415

    base = tempfile.mkdtemp(prefix="bench-probe-")
    out: dict[str, object] = {"links": links}
    with FuseRig(base, names=("torbox",), dir_cache_time="1h") as rig:
        for i in range(links):
            rel = f"torrents/Rel.{i // FILES:05d}/Rel.{i:06d}.mkv"
            # Sparse on the server's disk (20k x 300 kB); WebDAV serves the zeros.
            path = rig["torbox"].server_path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.truncate(300_000)
            rig.link(f"movies/{i // 1000:03d}/Rel.{i:06d}.mkv", "torbox", rel)
        settings = rig.settings(timeouts=Timeouts(probe_seconds=10, op_seconds=30))
        settings = replace(settings, policy=replace(settings.policy, max_prune=10**9))
        # Learn the farm and warm rclone's directory cache (a cold listing of 4000 folders
        # can outlast the mount probe: repeat until a pass saw the mount ok).
        for _ in range(3):
            _, report = _pass(settings, apply=False)
            if all(m.up for m in report.mounts.values()):  # type: ignore[attr-defined]
                break
        baseline, _ = _pass(settings, apply=False)
        out["pass_without_probe_s"] = round(baseline, 2)
        for per_pass in (200, 1000):
            probe_policy = ProbePolicy(enabled=True, per_pass=per_pass, per_day=10**6)
            with_probe = replace(settings, policy=replace(settings.policy, probe=probe_policy))
            before = len(rig.reads("torbox"))
            seconds, report = _pass(with_probe, apply=False)
            note = next(n for n in report.notes if n.startswith("content probe"))  # type: ignore[attr-defined]
            out[f"per_pass_{per_pass}"] = {
                "pass_s": round(seconds, 2), "ratio": round(seconds / baseline, 2),
                "server_gets": len(rig.reads("torbox")) - before, "note": note,
            }
    shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["rename", "probe"])
    parser.add_argument("--links", type=int)
    args = parser.parse_args()
    result = rename(args.links or 100000) if args.what == "rename" else probe(args.links or 20000)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
