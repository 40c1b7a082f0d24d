"""Benchmark: ``symlinkd scan --json`` against ``find FARM -xtype l`` in the same run.

    python tests/bench/bench_scan.py                  # 1,000,000 links into a plain "mount" dir
    python tests/bench/bench_scan.py --links 200000   # smaller
    python tests/bench/bench_scan.py --fuse           # 20,000 links into a real rclone mount

The farm has the Shows/<show>/Season NN layout, 20 episodes per season, 10 % of the links
dangling. Caches cannot be dropped here, so every command runs twice and the second (warm) run
counts. Three things are timed: GNU find (which only finds dangling links and judges nothing),
the scan engine alone (probe + Scanner.stream + classify, no state DB, no report), and the whole CLI
(which also writes the state DB, plans and renders JSON). Peak RSS is each command's
``ru_maxrss`` (RUSAGE_CHILDREN of a wrapper that runs only that command).

Targets (issue 2): CLI/find <= 0.8 and peak RSS <= 256 MB at 1M links.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

EPISODES = 20
SEASONS = 5

ENGINE = """
import sys, time, collections
from symlinkd.classifier import classify
from symlinkd.mounts import MountMonitor
from symlinkd.scanner import Scanner
from symlinkd.settings import MountSettings, Timeouts
farm, path, anchor, rc = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None
t = Timeouts()
monitor = MountMonitor([MountSettings("zurg", path, anchor, rc_url=rc,
                                      require_mountpoint=sys.argv[5] == "fuse")], t)
stream = Scanner(farm, monitor, t).stream(monitor.probe())
now = time.time()
counts = collections.Counter()
for batch in stream:  # batches, as a pass consumes them: the farm is never held whole
    counts.update(classify(f, stream.result.mounts, now).verdict.value for f in batch)
print(dict(counts))
"""

WRAP = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
took = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{took} {usage.ru_maxrss} {done.returncode} {usage.ru_utime + usage.ru_stime}")
sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
"""


Measured = tuple[float, float, int, float]  # wall seconds, peak RSS MB, exit code, CPU seconds


def measure(cmd: list[str], runs: int = 2) -> Measured:
    """The last of ``runs`` runs. CPU seconds (user + system) are shown too: the build machine
    is shared, and wall time moves with its load much more than CPU time does."""
    result: Measured = (0.0, 0.0, 0, 0.0)
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True,
                              text=True, check=True)
        took, rss, code, cpu = done.stdout.split()
        if done.stderr.strip() and int(code) not in (0, 1):
            print(done.stderr, file=sys.stderr)
        result = (float(took), int(rss) / 1024, int(code), float(cpu))
    return result


def build_farm(farm: Path, cloud: Path, anchor_dir: Path, links: int) -> int:
    """Farm of ``links`` links into ``anchor_dir`` (as seen through the mount); the files are
    created in ``cloud`` (the same dir for a plain mount, the server side for FUSE)."""
    dangling = 0
    made = 0
    show = 0
    while made < links:
        show += 1
        for season in range(1, SEASONS + 1):
            torrent = f"Show {show:05d} S{season:02d} 1080p WEB-DL"
            (cloud / torrent).mkdir(parents=True, exist_ok=True)
            season_dir = farm / "Shows" / f"Show {show:05d}" / f"Season {season:02d}"
            season_dir.mkdir(parents=True, exist_ok=True)
            for episode in range(1, EPISODES + 1):
                if made >= links:
                    return dangling
                name = f"Show {show:05d} - S{season:02d}E{episode:02d} - 1080p.mkv"
                if made % 10 == 9:
                    dangling += 1  # 10 %: the file is gone from the cloud
                else:
                    (cloud / torrent / name).write_bytes(b"")
                os.symlink(anchor_dir / torrent / name, season_dir / name)
                made += 1
    return dangling


def config(work: Path, farm: Path, mount: dict[str, Any]) -> Path:
    path = work / "symlinkd.yaml"
    path.write_text(yaml.safe_dump({
        "farm": str(farm), "state_dir": str(work / "state"), "mounts": [mount],
        "policy": {"quarantine_dir": str(work / "quarantine")},
    }))
    return path


def report(label: str, links: int, find: Measured, engine: Measured, cli: Measured) -> None:
    print(f"\n{label}: {links} links  (wall s, CPU s, peak RSS; ratio = wall / find's wall)")
    rows = [("find -xtype l", find), ("scan engine", engine), ("symlinkd scan", cli)]
    for name, m in rows:
        print(f"  {name:15} {m[0]:8.2f} s  cpu {m[3]:8.2f} s  rss {m[1]:7.1f} MB  "
              f"ratio {m[0] / find[0]:5.2f}  cpu ratio {m[3] / max(find[3], 1e-9):5.2f}")
    print(json.dumps({"mode": label, "links": links, "find_s": round(find[0], 3),
                      "find_cpu_s": round(find[3], 3),
                      "engine_s": round(engine[0], 3), "engine_cpu_s": round(engine[3], 3),
                      "engine_rss_mb": round(engine[1], 1),
                      "cli_s": round(cli[0], 3), "cli_cpu_s": round(cli[3], 3),
                      "cli_rss_mb": round(cli[1], 1), "cli_exit": cli[2],
                      "engine_ratio": round(engine[0] / find[0], 3),
                      "cli_ratio": round(cli[0] / find[0], 3)}))


def local(work: Path, links: int) -> None:
    farm, mount = work / "farm", work / "mnt" / "zurg"
    marker = work / f"built-{links}"
    if not marker.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.perf_counter()
        dangling = build_farm(farm, mount / "__all__", mount / "__all__", links)
        marker.write_text(str(dangling))
        print(f"built {links} links ({dangling} dangling) in {time.perf_counter() - started:.0f} s")
    shutil.rmtree(work / "state", ignore_errors=True)
    cfg = config(work, farm, {"name": "zurg", "path": str(mount), "anchor": "__all__",
                              "require_mountpoint": False})
    find = measure(["find", str(farm), "-xtype", "l"])
    engine = measure([sys.executable, "-c", ENGINE, str(farm), str(mount), "__all__", "",
                      "local"])
    cli = measure(["symlinkd", "scan", "--json", "--config", str(cfg)])
    report("local", links, find, engine, cli)


def fuse(work: Path, links: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fuse.rig import FuseRig, missing_requirements  # noqa: PLC0415 - optional rig

    missing = missing_requirements()
    if missing:
        sys.exit(f"--fuse needs {missing}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # Long caches so the warm run is warm; the cold run forgets rclone's cache first.
    with FuseRig(work, names=("zurg",), dir_cache_time="1h", attr_timeout="1s") as rig:
        z = rig["zurg"]
        started = time.perf_counter()
        build_farm(rig.farm, z.server_path("__all__"), z.mount_path("__all__"), links)
        print(f"built {links} links in {time.perf_counter() - started:.0f} s")
        cfg = config(work, rig.farm, {"name": "zurg", "path": str(z.mountpoint),
                                      "anchor": "__all__", "rc_url": z.rc_url})
        engine_cmd = [sys.executable, "-c", ENGINE, str(rig.farm), str(z.mountpoint), "__all__",
                      z.rc_url, "fuse"]
        cli_cmd = ["symlinkd", "scan", "--json", "--config", str(cfg)]
        find_cmd = ["find", str(rig.farm), "-xtype", "l"]
        # Without rc the engine only lists; with rc it also refreshes every folder holding a
        # missing target before believing it gone (10 % dangling: every folder, every pass).
        norc_cmd = [*engine_cmd[:-2], "", "fuse"]
        for label in ("fuse-cold", "fuse-warm"):
            results = []
            for cmd in (find_cmd, norc_cmd, engine_cmd, cli_cmd):
                shutil.rmtree(work / "state", ignore_errors=True)
                if label == "fuse-cold":
                    # rc vfs/forget with no arguments drops rclone's whole directory cache;
                    # then a pause longer than --attr-timeout lets the kernel's cache expire.
                    rig.refresh("zurg", ("",))
                    import httpx  # noqa: PLC0415

                    httpx.post(f"{z.rc_url}/vfs/forget", json={}, timeout=30)
                    time.sleep(1.5)
                results.append(measure(cmd, runs=1 if label == "fuse-cold" else 2))
            report(label, links, results[0], results[2], results[3])
            norc = results[1]
            print(f"  engine, no rc   {norc[0]:8.2f} s  cpu {norc[3]:8.2f} s  rss {norc[1]:7.1f} MB"
                  f"  ratio {norc[0] / results[0][0]:5.2f}  (lists only, no vfs/refresh)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=None)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "symlinkd-bench")
    parser.add_argument("--fuse", action="store_true", help="20k links into a real rclone mount")
    args = parser.parse_args()
    if args.fuse:
        fuse(args.work / "fuse", args.links or 20_000)
    else:
        local(args.work / "local", args.links or 1_000_000)


if __name__ == "__main__":
    main()
