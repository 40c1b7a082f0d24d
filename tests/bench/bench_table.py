"""Issue 12's table in one go: every figure as a ratio to ``find FARM -xtype l`` run just before
it (same machine, same load), over interleaved rounds, min and median, with peak RSS.

    python tests/bench/bench_table.py                         # 1M links, 3 rounds, + rclone 20k
    python tests/bench/bench_table.py --links 200000 --rounds 3 --no-fuse
    python tests/bench/bench_table.py --tree /work/main       # the same runs on another tree

Rows (targets from issue 12):
- warm CLI      ``symlinkd scan --json``, the state DB from earlier passes     <= x1.5
- cold CLI      the same with no state DB (first pass), peak RSS               <= x2.5, 256 MB
- daemon steady one ``Runtime`` kept across passes, as ``symlinkd run`` does:
                the time of a pass after the first, nothing changed            <= x0.6
- rclone rc     warm ``symlinkd scan --json`` on a real rclone mount with
                ``rc_url``, 20k links, 10 % dangling                           <= x1.2
- apply/dry     steady ``scan --apply`` (nothing to do) / the dry run          <= x1.1

The farm is bench_scan's (Shows/Season, 20 episodes a season, 10 % of the targets gone). The
confirmation wait is set very long so that "nothing to do" stays true in every round.
``--tree`` runs another checkout's code (``python -m symlinkd`` with its PYTHONPATH), for
before/after figures from one script. Prints the table (markdown) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_scan import WRAP, build_farm

# One Runtime, passes in a row, as the daemon runs them: prints each pass's seconds.
DAEMON = """
import sys, time
from symlinkd.config import load_settings
from symlinkd.runtime import PassOptions, build_runtime
settings = load_settings(sys.argv[1], {})
passes = int(sys.argv[2])
with build_runtime(settings) as rt:
    try:  # as run_daemon sets it up (trees before issue 12 have no folder cache)
        from symlinkd.farmcache import FolderCache
        rt.scanner.folder_cache = FolderCache()
    except ImportError:
        pass
    for _ in range(passes):
        started = time.perf_counter()
        rt.run_pass(PassOptions(apply=True, notify=True, kind="full"))
        print("pass-seconds", time.perf_counter() - started, flush=True)
"""


@dataclass
class Row:
    name: str
    target: str
    ratios: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    finds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds, load-robust

    def add(self, seconds: float, find: float, rss: float, cpu: float | None = None) -> None:
        if cpu is not None:  # the daemon row times passes inside one process: no CPU figure
            self.cpu.append(cpu)
        self.seconds.append(seconds)
        self.finds.append(find)
        self.ratios.append(seconds / find)
        self.rss_mb.append(rss)

    def line(self) -> str:
        if not self.ratios:
            return f"| {self.name} | not run | | | | {self.target} |"
        median = statistics.median
        return (f"| {self.name} | x{min(self.ratios):.2f} | x{median(self.ratios):.2f} "
                f"| {median(self.seconds):.2f} s / {median(self.finds):.2f} s "
                f"| {max(self.rss_mb):.0f} MB | {self.target} |")

    def as_json(self) -> dict[str, Any]:
        return {"row": self.name, "ratios": [round(r, 3) for r in self.ratios],
                "seconds": [round(s, 3) for s in self.seconds],
                "find_seconds": [round(s, 3) for s in self.finds],
                "peak_rss_mb": [round(m, 1) for m in self.rss_mb],
                "cpu_seconds": [round(c, 3) for c in self.cpu]}


class Bench:
    def __init__(self, tree: Path) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(tree)}
        self.cwd = str(tree)  # `python -m` puts the working directory first on sys.path
        self.last_cpu = 0.0

    def run(self, cmd: list[str]) -> tuple[float, float, int]:
        """Wall seconds, peak RSS (MB) and exit code of ``cmd`` (bench_scan's wrapper); its CPU
        seconds (user + system) are kept in ``last_cpu``: on a shared machine they move with
        the load much less than wall time does."""
        done = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True,
                              text=True, check=True, env=self.env, cwd=self.cwd)
        took, rss, code, cpu = done.stdout.split()
        self.last_cpu = float(cpu)
        if int(code) not in (0, 1):
            print(done.stderr[-2000:], file=sys.stderr)
        return float(took), int(rss) / 1024, int(code)

    def find(self, farm: Path) -> float:
        return self.run(["find", str(farm), "-xtype", "l"])[0]

    def cli(self, cfg: Path, *extra: str) -> tuple[float, float, int]:
        return self.run([sys.executable, "-m", "symlinkd", "scan", "--json", "--config",
                         str(cfg), *extra])


def config(path: Path, farm: Path, state: Path, work: Path, mount: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "farm": str(farm), "state_dir": str(state), "mounts": [mount],
        "policy": {"quarantine_dir": str(work / "quarantine"),
                   # "nothing to do" in every round: no dangling link comes due
                   "confirm_after_minutes": 525_600},  # a year: the most allowed
    }))
    return path


def daemon_steady(bench: Bench, cfg: Path, passes: int) -> tuple[list[float], float]:
    """Seconds of each pass of one long-lived runtime, and the process's peak RSS."""
    script = Path(tempfile.mkstemp(prefix="bench-daemon-", suffix=".py")[1])
    try:
        script.write_text(DAEMON)
        out = Path(tempfile.mkstemp(prefix="bench-daemon-out-")[1])
        wrap = (
            "import resource, subprocess, sys\n"
            "with open(sys.argv[1], 'w') as out:\n"
            "    subprocess.run(sys.argv[2:], stdout=out, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        done = subprocess.run([sys.executable, "-c", wrap, str(out), sys.executable,
                               str(script), str(cfg), str(passes)],
                              capture_output=True, text=True, check=True, env=bench.env,
                              cwd=bench.cwd)
        times = [float(line.split()[1]) for line in out.read_text().splitlines()
                 if line.startswith("pass-seconds ")]
        out.unlink()
        return times, int(done.stdout.split()[-1]) / 1024
    finally:
        script.unlink(missing_ok=True)


def local_rows(bench: Bench, work: Path, links: int, rounds: int) -> list[Row]:
    farm, mount = work / "farm", work / "mnt" / "zurg"
    marker = work / f"built-{links}"
    if not marker.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.perf_counter()
        dangling = build_farm(farm, mount / "__all__", mount / "__all__", links)
        marker.write_text(str(dangling))
        print(f"built {links} links ({dangling} dangling) in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    spec = {"name": "zurg", "path": str(mount), "anchor": "__all__", "require_mountpoint": False}
    for state in ("state", "state-cold", "state-daemon"):
        shutil.rmtree(work / state, ignore_errors=True)
    warm_cfg = config(work / "warm.yaml", farm, work / "state", work, spec)
    cold_cfg = config(work / "cold.yaml", farm, work / "state-cold", work, spec)
    daemon_cfg = config(work / "daemon.yaml", farm, work / "state-daemon", work, spec)
    bench.cli(warm_cfg)  # the warm rows' state: one pass before
    warm = Row(f"warm CLI, {links:,} links", "<= x1.5")
    cold = Row(f"cold CLI (no state), {links:,} links", "<= x2.5, <= 256 MB")
    steady = Row(f"daemon steady pass, {links:,} links", "<= x0.6")
    apply = Row("steady --apply / dry run (ratio to the dry run)", "<= x1.1")
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        f = bench.find(farm)
        took, rss, _c = bench.cli(warm_cfg)
        warm.add(took, f, rss, bench.last_cpu)
        dry = took
        took, rss, _c = bench.cli(warm_cfg, "--apply")
        apply.add(took, dry, rss, bench.last_cpu)
        f = bench.find(farm)
        shutil.rmtree(work / "state-cold", ignore_errors=True)
        took, rss, _c = bench.cli(cold_cfg)
        cold.add(took, f, rss, bench.last_cpu)
        shutil.rmtree(work / "state-daemon", ignore_errors=True)
        f = bench.find(farm)
        times, rss = daemon_steady(bench, daemon_cfg, 3)
        f = (f + bench.find(farm)) / 2  # the steady passes ran between these two finds
        steady.add(min(times[1:]), f, rss)
        print(json.dumps([x.as_json() for x in (warm, cold, steady, apply)]), file=sys.stderr)
    return [warm, cold, steady, apply]


def fuse_row(bench: Bench, work: Path, links: int, rounds: int) -> Row:
    from tests.fuse.rig import FuseRig, missing_requirements  # noqa: PLC0415 - optional rig

    row = Row(f"warm, real rclone mount with rc_url, {links:,} links", "<= x1.2")
    missing = missing_requirements()
    if missing:
        print(f"rclone row skipped: needs {missing}", file=sys.stderr)
        return row
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with FuseRig(work, names=("zurg",), dir_cache_time="1h", attr_timeout="1s") as rig:
        z = rig["zurg"]
        build_farm(rig.farm, z.server_path("__all__"), z.mount_path("__all__"), links)
        cfg = config(work / "fuse.yaml", rig.farm, work / "state", work,
                     {"name": "zurg", "path": str(z.mountpoint), "anchor": "__all__",
                      "rc_url": z.rc_url})
        bench.cli(cfg)  # first pass: state, and rclone's cache filled
        for _ in range(rounds):
            f = bench.find(rig.farm)
            took, rss, _c = bench.cli(cfg)
            row.add(took, f, rss, bench.last_cpu)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--fuse-links", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fuse", action="store_true")
    parser.add_argument("--no-local", action="store_true")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "symlinkd-bench-table")
    args = parser.parse_args()
    bench = Bench(args.tree.resolve())
    rows: list[Row] = []
    if not args.no_local:
        rows += local_rows(bench, args.work / "local", args.links, args.rounds)
    if not args.no_fuse:
        rows.append(fuse_row(bench, args.work / f"fuse-{os.getpid()}", args.fuse_links,
                             args.rounds))
    print(f"\ntree {args.tree}, {args.rounds} interleaved rounds; ratio = wall / find -xtype l "
          "run just before (apply row: / the dry run just before)\n")
    print("| figure | min | median | median seconds (it / baseline) | peak RSS | target |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row.line())
    print(json.dumps([row.as_json() for row in rows]))


if __name__ == "__main__":
    main()
