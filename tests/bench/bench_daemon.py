"""Benchmark of ``symlinkd run`` (a real subprocess, plain-directory mounts, a fake Plex):

1. latency from a new link appearing in the farm to Plex receiving the refresh request for its
   folder, in inotify and in poll mode (default debounce 1 s and poll interval 10 s), median and
   p95 over ``--links`` links created one at a time, ``--spacing`` seconds apart, each in its
   own folder;
2. resident memory (VmRSS) of an idle daemon watching a ``--farm-links`` farm (inotify and poll),
   after its start-up full pass.

    python tests/bench/bench_daemon.py                       # 200 links, 100k-link farm
    python tests/bench/bench_daemon.py --links 50 --farm-links 20000

Targets (issue 5): inotify median <= 2 s. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.contract.contract import SeenRequest
from tests.contract.fakes import Answer, FakePlex
from tests.daemon.proc import PLEX_TOKEN, DaemonProcess, Farm, wait_for, write_config


class TimedPlex(FakePlex):
    """Records when each refresh request arrived."""

    def __init__(self, token: str, sections: list[tuple[str, str, list[str]]]) -> None:
        super().__init__(token, sections)
        self.arrivals: list[tuple[float, str]] = []
        self._times = threading.Lock()

    def receive(self, request: SeenRequest) -> Answer | None:
        path = request.param("path")
        if path is not None:
            with self._times:
                self.arrivals.append((time.monotonic(), path))
        return super().receive(request)

    def first_arrival(self, folder: str, after: float) -> float | None:
        with self._times:
            hits = [t for t, p in self.arrivals
                    if t >= after and (folder == p or folder.startswith(p.rstrip("/") + "/"))]
        return min(hits) if hits else None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(base: Path, mode: str, links: int, spacing: float) -> dict[str, Any]:
    farm = Farm.create(base)
    plex = TimedPlex(PLEX_TOKEN, [("1", "TV Shows", [str(farm.farm / "Shows")])]).start()
    config = farm.config(watch=mode)
    config["daemon"].update({"debounce_seconds": 1.0, "poll_interval_seconds": 10.0,
                             "probe_interval_seconds": 15})
    created: list[tuple[float, str]] = []
    try:
        with DaemonProcess(write_config(base, config, plex_url=plex.url)) as daemon:
            daemon.wait_ready(60)
            for i in range(links):
                target = farm.put("zurg", f"__all__/Bench.{i:04d}/e.mkv")
                link = farm.link(f"Shows/Bench {i:04d}/Season 01/e.mkv", target)
                created.append((time.monotonic(), str(link.parent)))
                time.sleep(spacing)
            wait_for(lambda: all(plex.first_arrival(f, t) is not None for t, f in created),
                     120, "every refresh")
            daemon.stop()
    finally:
        plex.stop()
    seconds = [plex.first_arrival(f, t) - t for t, f in created]  # type: ignore[operator]
    return {"mode": mode, "links": links, "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(_pct(seconds, 0.95), 3), "max_s": round(max(seconds), 3),
            "requests": len(plex.arrivals)}


def idle_rss(base: Path, mode: str, farm_links: int) -> dict[str, Any]:
    farm = Farm.create(base)
    zurg = farm.mounts["zurg"][0] / "__all__"
    per_season, seasons = 10, 10
    shows = max(1, farm_links // (per_season * seasons))
    for show in range(shows):
        for season in range(seasons):
            src = zurg / f"Show.{show:05d}.S{season:02d}"
            src.mkdir(parents=True)
            dst = farm.farm / "Shows" / f"Show {show:05d}" / f"Season {season:02d}"
            dst.mkdir(parents=True)
            for ep in range(per_season):
                name = f"E{ep:02d}.mkv"
                (src / name).write_bytes(b"")
                os.symlink(src / name, dst / name)
    config = farm.config(watch=mode)
    config["daemon"].update({"probe_interval_seconds": 15, "poll_interval_seconds": 10})
    with DaemonProcess(write_config(base, config)) as daemon:
        started = time.monotonic()
        daemon.wait_ready(600)
        ready = time.monotonic() - started
        time.sleep(25)  # idle: probes and (poll mode) a couple of polls of the farm
        status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
        rss_kb = int(next(ln.split()[1] for ln in status.splitlines()
                          if ln.startswith("VmRSS:")))
        hwm_kb = int(next(ln.split()[1] for ln in status.splitlines()
                          if ln.startswith("VmHWM:")))
        watch = next((e.get("mode") for e in daemon.events()
                      if e.get("event") == "watcher started"), None)
        daemon.stop()
    return {"mode": mode, "watching": watch, "farm_links": shows * seasons * per_season,
            "start_to_ready_s": round(ready, 1), "idle_rss_mb": round(rss_kb / 1024, 1),
            "peak_rss_mb": round(hwm_kb / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.25)
    parser.add_argument("--farm-links", type=int, default=100_000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--modes", default="inotify,poll")
    args = parser.parse_args()
    results: dict[str, Any] = {"latency": [], "idle": []}
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        for mode in args.modes.split(","):
            if not args.skip_latency:
                results["latency"].append(
                    latency(Path(tmp) / f"lat-{mode}", mode, args.links, args.spacing))
            if not args.skip_rss:
                results["idle"].append(idle_rss(Path(tmp) / f"rss-{mode}", mode,
                                                args.farm_links))
            print(json.dumps(results), file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
