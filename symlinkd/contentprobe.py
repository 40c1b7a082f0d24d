"""The rolling content probe (``policy.probe``): read a little of each link's target through its
mount, a budgeted few links a pass, so a file the provider expired — still listed, still
stat-able, but its bytes are gone (TorBox's idle cache, a dead Real-Debrid torrent Zurg still
lists) — is seen as ``stale`` before Plex fails to play it.

Selection is pure (``select``): links whose reads are failing first (their confirmation needs a
read every pass), then links never read, then the oldest-verified, each mount within its budget
per pass and per rolling day; only links not read-verified for ``probe_every_days`` are due.
Reads run in a reader process per mount (``probe_reader``), each answer awaited at most the
mount's op timeout, so a read that hangs costs at most that, and symlinkd itself never holds a
file of a mount open (see ``probe_reader`` for why a thread is not enough). A mount where
most reads fail at once is treated as a mount problem (like the breaker): no link of it is
marked stale in that pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from select import select as wait_readable

import structlog

from symlinkd.mounts import MountMonitor
from symlinkd.probestate import ProbeResult, ProbeRow
from symlinkd.settings import ProbePolicy

log = structlog.get_logger("symlinkd.probe")
_DAY = 86400.0
_MIN_READS_FOR_BREAKER = 5


@dataclass(frozen=True, slots=True)
class Due:
    row: ProbeRow
    mount: str
    resolved: str  # absolute target path


def resolve(row: ProbeRow) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(row.path), row.target))


def is_verified(row: ProbeRow, now: float, every_days: float) -> bool:
    return (row.fail_passes == 0 and row.last_ok is not None
            and now - row.last_ok < every_days * _DAY)


def select(
    rows: Iterable[Due], budgets: Mapping[str, int], now: float, every_days: float,
) -> list[Due]:
    """Pure: which links to read this pass, per mount within ``budgets``."""
    def order(d: Due) -> tuple[int, float]:
        if d.row.fail_passes:
            return (0, d.row.fail_since or 0.0)
        return (1, -1.0) if d.row.last_ok is None else (2, d.row.last_ok)

    due = sorted((d for d in rows if budgets.get(d.mount, 0) > 0
                  and not is_verified(d.row, now, every_days)), key=order)
    left = dict(budgets)
    chosen: list[Due] = []
    for d in due:
        if left[d.mount] > 0:
            left[d.mount] -= 1
            chosen.append(d)
    return chosen


@dataclass(slots=True)
class ProbePass:
    results: list[ProbeResult] = field(default_factory=list)
    stale: list[ProbeResult] = field(default_factory=list)  # failed reads believed
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (mount, result)
    unverified: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class ContentProber:
    """Reads through each mount in a reader process of its own (``probe_reader``), one read at
    a time, each answer awaited at most ``op_seconds``: a read that hangs costs that long, the
    reader is killed and left to the kernel, and the mount's other due links wait a pass."""

    def __init__(self, monitor: MountMonitor, policy: ProbePolicy, op_seconds: float,
                 breaker_ratio: float) -> None:
        self.monitor = monitor
        self.policy = policy
        self.op_seconds = op_seconds
        self.breaker_ratio = breaker_ratio
        self.names = [m.name for m in monitor.mounts]

    def due(self, rows: Iterable[ProbeRow], up: Mapping[str, bool],
            skip: frozenset[str]) -> list[Due]:
        """The links the probe may read: known healthy, judged ok in this pass (not in
        ``skip``), under a mount that is up."""
        out: list[Due] = []
        for row in rows:
            if row.path in skip:
                continue
            resolved = resolve(row)
            mount = self.monitor.mount_for(resolved)
            if mount is not None and up.get(mount.name, False):
                out.append(Due(row, mount.name, resolved))
        return out

    def run(self, due: Sequence[Due], used_today: Mapping[str, int], now: float) -> ProbePass:
        policy = self.policy
        started = time.monotonic()
        budgets = {name: max(0, min(policy.per_pass, policy.per_day - used_today.get(name, 0)))
                   for name in self.names}
        chosen = [d for d in select(due, budgets, now, policy.probe_every_days)
                  if _still_points(d)]
        out = ProbePass()
        by_mount: dict[str, list[Due]] = {}
        for d in chosen:
            by_mount.setdefault(d.mount, []).append(d)
        readers = {m: _Reader([d.resolved for d in ds], policy) for m, ds in by_mount.items()}
        for mount, ds in by_mount.items():
            for d, answer in zip(ds, readers[mount].answers(self.op_seconds), strict=False):
                result, error, nbytes = answer
                out.counts[(mount, result)] += 1
                out.bytes_read += nbytes
                if result != "skipped":
                    out.results.append(ProbeResult(d.row.path, mount, d.row.target,
                                                   result == "ok", error))
        out.stale = self._believed(out)
        out.unverified = self._unverified(due, out, now)
        out.seconds = time.monotonic() - started
        return out

    def _unverified(self, due: Sequence[Due], out: ProbePass, now: float) -> dict[str, int]:
        verified_now = {r.path for r in out.results if r.ok}
        failed_now = {r.path for r in out.results if not r.ok}
        unverified: Counter[str] = Counter()
        for d in due:
            fresh = d.row.path in verified_now or (
                d.row.path not in failed_now
                and is_verified(d.row, now, self.policy.probe_every_days))
            if not fresh:
                unverified[d.mount] += 1
        return {name: unverified.get(name, 0) for name in self.names}

    def _believed(self, out: ProbePass) -> list[ProbeResult]:
        """Failed reads, except under a mount where most reads failed (a mount problem)."""
        reads: Counter[str] = Counter(r.mount for r in out.results)
        failed: Counter[str] = Counter(r.mount for r in out.results if not r.ok)
        doubtful = {m for m, n in failed.items()
                    if reads[m] >= _MIN_READS_FOR_BREAKER and n > self.breaker_ratio * reads[m]}
        for mount in sorted(doubtful):
            out.notes.append(f"content probe: {failed[mount]} of {reads[mount]} reads under "
                             f"mount {mount} failed; a mount problem, no link marked stale")
        return [r for r in out.results if not r.ok and r.mount not in doubtful]

    def readable(self, paths: Sequence[str]) -> set[str]:
        """Which of ``paths`` (relink candidates for stale links) read now."""
        if not paths:
            return set()
        answers = _Reader(list(paths), self.policy).answers(self.op_seconds)
        return {p for p, (result, _e, _n) in zip(paths, answers, strict=False) if result == "ok"}

    def close(self) -> None:
        """Nothing to release: readers end with their pass."""


class _Reader:
    """One ``probe_reader`` child and its answers, each awaited at most a timeout."""

    def __init__(self, paths: list[str], policy: ProbePolicy) -> None:
        self.paths = paths
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "symlinkd.probe_reader"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        lines = [json.dumps({"path": p, "bytes": policy.read_bytes, "middle": policy.middle})
                 for p in paths]
        # Fed from a thread: a reader stuck in the mount stops reading its stdin.
        threading.Thread(target=self._feed, args=(lines,), daemon=True).start()

    def _feed(self, lines: list[str]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            for line in lines:
                stdin.write(line.encode() + b"\n")
            stdin.close()
        except OSError:
            return  # the reader was killed

    def answers(self, timeout: float) -> list[tuple[str, str, int]]:
        """(result, error, bytes) per path: result ok | failed | timeout | skipped."""
        out: list[tuple[str, str, int]] = []
        stdout = self.proc.stdout
        assert stdout is not None
        buffer = b""
        fd = stdout.fileno()
        for _path in self.paths:
            deadline = time.monotonic() + timeout
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                ready = wait_readable([fd], [], [], left)[0] if left > 0 else []
                chunk = os.read(fd, 65536) if ready else b""
                if not chunk:
                    break
                buffer += chunk
            if b"\n" not in buffer:
                self._abandon()
                out.append(("timeout", f"no answer within the op timeout ({timeout:g} s)", 0))
                out += [("skipped", "", 0)] * (len(self.paths) - len(out))
                return out
            line, buffer = buffer.split(b"\n", 1)
            answer = json.loads(line)
            if answer.get("ok"):
                out.append(("ok", "", int(answer.get("read", 0))))
            else:
                out.append(("failed", str(answer.get("error", "")), 0))
        stdout.close()
        threading.Thread(target=self.proc.wait, daemon=True).start()  # reap, never block
        return out

    def _abandon(self) -> None:
        # SIGKILL; a reader blocked in the mount dies when rclone answers. Reaped by a daemon
        # thread so neither the pass nor the process exit waits for it.
        with contextlib.suppress(OSError):
            self.proc.kill()
        threading.Thread(target=self.proc.wait, daemon=True).start()


def _still_points(d: Due) -> bool:
    """The link still has the target the DB remembers (else it changed: not this pass)."""
    try:
        return os.readlink(d.row.path) == d.row.target
    except OSError:
        return False
