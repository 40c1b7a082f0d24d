"""The rolling content probe (``policy.probe``): read a little of each link's target through its
mount, a budgeted few links a pass, so a file the provider expired — still listed, still
stat-able, but its bytes are gone (TorBox's idle cache, a dead Real-Debrid torrent Zurg still
lists) — is seen as ``stale`` before Plex fails to play it.

Selection is pure (``select``): links whose reads are failing first (their confirmation needs a
read every pass), then links never read, then the oldest-verified, each mount within its budget
per pass and per rolling day; only links not read-verified for ``probe_every_days`` are due.
Reads run on a small gate of their own per mount (bounded workers, the mount's op timeout), so
a read that hangs costs at most the op timeout, and a stuck reader never blocks the mount's
scan or executor gates. A mount where most reads fail at once is treated as a mount problem
(like the breaker): no link of it is marked stale in that pass.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from symlinkd.mounts import MountGate, MountMonitor, MountTimeout
from symlinkd.probestate import ProbeResult, ProbeRow
from symlinkd.settings import ProbePolicy

log = structlog.get_logger("symlinkd.probe")
_DAY = 86400.0
_MIN_READS_FOR_BREAKER = 5
PROBE_WORKERS = 2


class ShortRead(OSError):
    def __init__(self, path: str, wanted: int, got: int) -> None:
        super().__init__(errno.EIO, f"short read: {got} of {wanted} bytes", path)


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


def read_check(path: str, nbytes: int, middle: bool) -> int:
    """Read ``nbytes`` from the start of ``path`` (and from its middle); bytes read. Raises
    ``OSError`` (EIO, ENOENT, ...) or ``ShortRead``. Runs on a probe gate worker."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        # Drop what the kernel's page cache holds, so the bytes come from rclone.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        total = _read_range(fd, path, 0, min(nbytes, size))
        if middle and size > 2 * nbytes:
            total += _read_range(fd, path, size // 2, nbytes)
        return total
    finally:
        os.close(fd)


def _read_range(fd: int, path: str, offset: int, wanted: int) -> int:
    got = 0
    while got < wanted:
        chunk = os.pread(fd, wanted - got, offset + got)
        if not chunk:
            raise ShortRead(path, wanted, got)
        got += len(chunk)
    return got


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
    """Owns the probe gates (long-lived: a reader stuck in a mount stays counted)."""

    def __init__(self, monitor: MountMonitor, policy: ProbePolicy, op_seconds: float,
                 breaker_ratio: float) -> None:
        self.monitor = monitor
        self.policy = policy
        self.breaker_ratio = breaker_ratio
        self.gates = {m.name: MountGate(f"{m.name}/probe", PROBE_WORKERS, op_seconds)
                      for m in monitor.mounts}

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
                   for name in self.gates}
        chosen = [d for d in select(due, budgets, now, policy.probe_every_days)
                  if _still_points(d)]
        out = ProbePass()
        pending = [(d, self.gates[d.mount].submit(read_check, d.resolved, policy.read_bytes,
                                                  policy.middle)) for d in chosen]
        for d, future in pending:
            gate = self.gates[d.mount]
            was_hung = gate.hung
            try:
                out.bytes_read += gate.wait(future)
            except MountTimeout as exc:
                # The read that hung is a failed read; the ones queued behind it were not read.
                result = "skipped" if was_hung else "timeout"
                out.counts[(d.mount, result)] += 1
                if result == "timeout":
                    out.results.append(ProbeResult(d.row.path, d.mount, d.row.target, False,
                                                   f"no answer within the op timeout ({exc})"))
                continue
            except OSError as exc:
                out.counts[(d.mount, "failed")] += 1
                out.results.append(ProbeResult(d.row.path, d.mount, d.row.target, False,
                                               _describe(exc)))
                continue
            out.counts[(d.mount, "ok")] += 1
            out.results.append(ProbeResult(d.row.path, d.mount, d.row.target, True))
        out.stale = self._believed(out)
        verified_now = {r.path for r in out.results if r.ok}
        failed_now = {r.path for r in out.results if not r.ok}
        unverified: Counter[str] = Counter()
        for d in due:
            fresh = d.row.path in verified_now or (
                d.row.path not in failed_now and is_verified(d.row, now, policy.probe_every_days))
            if not fresh:
                unverified[d.mount] += 1
        out.unverified = {name: unverified.get(name, 0) for name in self.gates}
        out.seconds = time.monotonic() - started
        return out

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
        ok: set[str] = set()
        for path in paths:
            mount = self.monitor.mount_for(path)
            if mount is None:
                continue
            try:
                self.gates[mount.name].call(read_check, path, self.policy.read_bytes,
                                            self.policy.middle)
            except OSError:
                continue
            ok.add(path)
        return ok

    def close(self) -> None:
        for gate in self.gates.values():
            gate.close()


def _still_points(d: Due) -> bool:
    """The link still has the target the DB remembers (else it changed: not this pass)."""
    try:
        return os.readlink(d.row.path) == d.row.target
    except OSError:
        return False


def _describe(exc: OSError) -> str:
    if isinstance(exc, ShortRead):
        return str(exc.strerror)
    name = errno.errorcode.get(exc.errno or 0) if exc.errno else None
    return f"{name}: {exc.strerror or exc}" if name else str(exc) or type(exc).__name__
