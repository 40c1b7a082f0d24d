"""Benchmark of the repair side of a steady-state pass (nothing to do) on N synthetic links.

    python tests/bench/bench_repair.py                 # 1,000,000 links
    python tests/bench/bench_repair.py --links 200000

No filesystem walk: judgements are built in memory (all healthy, young), so the figures are the
cost symlinkd adds on top of the scan for ``--apply``: ``known`` per link (the scanner's
``size_wanted``), ``histories`` of the non-ok links, ``make_plan``, ``raise_if_unsafe``,
``Executor.execute`` and ``record_pass``. Each state-DB phase runs in a fresh process where it
matters (a CLI run starts cold; the daemon keeps the digest warm), so both are shown.
Memory: the process's peak RSS (VmHWM) after each phase, and the RSS it added.
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
    timed("histories(all N paths: one table sweep)", lambda: db.histories(paths))
    timed("histories(10k paths: chunked IN)", lambda: db.histories(paths[:: max(1, n // 10000)]))
    timed("histories(100k paths)", lambda: db.histories(paths[:: max(1, n // 100000)]))
out["peak RSS MB"] = vm("VmHWM:")
out["RSS of the N judgements MB"] = base
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    args = parser.parse_args()
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
