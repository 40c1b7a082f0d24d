"""Benchmark of the repair side of a steady-state pass (nothing to do) on N synthetic links.

    python tests/bench/bench_repair.py                 # 1,000,000 links
    python tests/bench/bench_repair.py --links 200000
    python tests/bench/bench_repair.py --cli          # real farm: scan vs scan --apply (below)

No filesystem walk: judgements are built in memory (all healthy, young), so the figures are the
cost symlinkd adds on top of the scan for ``--apply``: ``known`` per link (the scanner's
``size_wanted``), ``histories`` of the non-ok links, ``make_plan``, ``raise_if_unsafe``,
``Executor.execute`` and ``record_pass``. Each state-DB phase runs in a fresh process where it
matters (a CLI run starts cold; the daemon keeps the digest warm), so both are shown.
Memory: the process's peak RSS (VmHWM) after each phase, and the RSS it added.

``--cli`` builds a real farm (bench_scan's layout: Shows/Season, 10 % dangling, into a plain
directory mount) and times, each after a warm-up pass that fills the state DB: the scan engine
alone (no state, no plan), ``symlinkd scan --json`` (dry run) and ``symlinkd scan --apply
--json`` — the steady-state apply pass the issue bounds at 1.2 x scan-only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
from symlinkd.model import EntryKind, Judgement, LinkFacts, MountHealth, MountState, Verdict

def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) // 1024
    return 0

n, state_dir, phase = int(sys.argv[1]), sys.argv[2], sys.argv[3]
now = 1_800_000_000.0
mounts = {"zurg": MountState("zurg", "/mnt/media/zurg", MountHealth.OK)}
js = []
for i in range(n):
    show, season, ep = i // 200, (i // 20) % 10, i % 20
    p = f"/mnt/media/stream/Shows/Show {show:05d}/Season {season:02d}/Show.S01E{ep:02d}.{i}.mkv"
    t = f"/mnt/media/zurg/__all__/Show.{show}.S{season:02d}/Show.S01E{ep:02d}.{i}.mkv"
    js.append(Judgement(LinkFacts(path=p, kind=EntryKind.SYMLINK, link_mtime=now - 86400,
                                  target=t, resolved=t, mount="zurg", target_size=10**9),
                        Verdict.OK, 1.0))
base = vm("VmRSS:")
from symlinkd.state import StateDB
out = {}
def timed(name, fn):
    start = time.perf_counter()
    result = fn()
    out[name] = round(time.perf_counter() - start, 3)
    out[name + " +MB"] = vm("VmRSS:") - base
    return result

db = StateDB(state_dir, clock=lambda: now)
if phase == "first":
    timed("record_pass first pass (all new)", lambda: db.record_pass(js, full=True))
elif phase == "steady":
    timed("known x N (cold: loads digest)", lambda: sum(1 for j in js if db.known(j.path)))
    timed("known x N (warm)", lambda: sum(1 for j in js if db.known(j.path)))
    watch = [j.path for j in js if j.verdict is not Verdict.OK]
    timed("histories(non-ok links)", lambda: db.histories(watch))
    from symlinkd.planner import make_plan
    from symlinkd.settings import Policy
    from symlinkd.executor import Executor
    policy = Policy()
    farm = "/mnt/media/stream"
    plan = timed("make_plan", lambda: make_plan(js, mounts, {}, {}, policy, farm, now))
    timed("raise_if_unsafe", lambda: plan.raise_if_unsafe(policy, mounts))
    ex = Executor(db, "/mnt/media/stream", "/tmp/q", dry_run=False, mounts_ok=lambda _: True)
    timed("execute (nothing to do)", lambda: ex.execute(plan, "bench"))
    before = db._conn.total_changes
    timed("record_pass steady (warm digest)", lambda: db.record_pass(js, full=True))
    out["rows written by the steady pass"] = db._conn.total_changes - before
elif phase == "steady-cold":
    timed("record_pass steady (cold: loads digest)", lambda: db.record_pass(js, full=True))
elif phase == "histories":
    paths = [j.path for j in js]
    timed("histories(all N paths)", lambda: db.histories(paths))
    timed("histories(10k paths)", lambda: db.histories(paths[:: max(1, n // 10000)]))
    timed("histories(100k paths)", lambda: db.histories(paths[:: max(1, n // 100000)]))
out["peak RSS MB"] = vm("VmHWM:")
out["RSS of the N judgements MB"] = base
print(json.dumps(out))
"""


def timed_run(cmd: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and exit code of ``cmd``."""
    wrap = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "c = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, c)")
    out = subprocess.run([sys.executable, "-c", wrap, *cmd], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


def cli(links: int, work: str) -> int:
    from pathlib import Path  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import yaml  # noqa: PLC0415
    from bench_scan import ENGINE, build_farm  # noqa: PLC0415

    root = Path(work)
    farm, mount = root / "farm", root / "mnt" / "zurg"
    marker = root / f"built-{links}"
    if not marker.exists():
        started = time.perf_counter()
        build_farm(farm, mount / "__all__", mount / "__all__", links)
        marker.write_text("built")
        print(f"built {links:,} links in {time.perf_counter() - started:.0f} s")
    cfg = root / "symlinkd.yaml"
    cfg.write_text(yaml.safe_dump({
        "farm": str(farm), "state_dir": str(root / "state"),
        "mounts": [{"name": "zurg", "path": str(mount), "anchor": "__all__",
                    "require_mountpoint": False}],
        "policy": {"quarantine_dir": str(root / "quarantine")},
    }))
    engine = [sys.executable, "-c", ENGINE, str(farm), str(mount), "__all__", ""]
    scan = ["symlinkd", "scan", "--json", "--no-notify", "--config", str(cfg)]
    apply = [*scan, "--apply"]
    timed_run(scan)  # warm-up: fills the state DB (the first pass inserts every link)
    results = {}
    for label, cmd in (("engine", engine), ("scan", scan), ("apply", apply),
                       ("engine ", engine), ("scan ", scan), ("apply ", apply)):
        results[label.strip()] = timed_run(cmd)  # the second round counts (warm caches)
    for label, (took, rss, code) in results.items():
        print(f"  {label:8s} {took:7.2f} s  peak RSS {rss:6.0f} MB  exit {code}")
    print(f"  apply / scan   {results['apply'][0] / results['scan'][0]:.2f}")
    print(f"  apply / engine {results['apply'][0] / results['engine'][0]:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--cli", action="store_true", help="real farm: scan vs scan --apply")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "repair-bench"))
    args = parser.parse_args()
    if args.cli:
        os.makedirs(args.work, exist_ok=True)
        return cli(args.links, args.work)
    with tempfile.TemporaryDirectory() as state_dir:
        for phase in ("first", "steady", "steady-cold", "histories"):
            done = subprocess.run([sys.executable, "-c", CHILD, str(args.links), state_dir, phase],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            print(f"## {phase} ({args.links:,} links)")
            for key, value in json.loads(done.stdout).items():
                print(f"  {key:45s} {value}")
        size = os.path.getsize(os.path.join(state_dir, "state.sqlite3"))
        print(f"state.sqlite3: {size / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - start:.0f} s")
    sys.exit(code)
