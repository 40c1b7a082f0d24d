"""State of each configured mount, and the gate every filesystem call into a mount goes through.

A FUSE mount fails in ways a local disk does not: a dead rclone answers ENOTCONN, a lazily
unmounted one is an empty directory, a SIGSTOPped one blocks every call forever (the thread is in
the kernel, in uninterruptible FUSE wait, and cannot be cancelled). So every call that touches a
mount runs on that mount's own small pool of *daemon* threads with a timeout: a hung mount costs
at most its timeout, a stuck thread is abandoned (never joined, so the process can still exit),
and the gate remembers it is hung so the rest of the pass fails fast instead of queueing.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from symlinkd import plain
from symlinkd.errors import MountUnavailable
from symlinkd.model import MountHealth, MountState
from symlinkd.rclone import RcClient
from symlinkd.settings import MountSettings, Timeouts

T = TypeVar("T")

OUTSIDE = "(outside mounts)"  # name of the gate for targets under no configured mount
# Folders per vfs/refresh call: rclone re-reads them one after the other, and one call must stay
# well inside the rc read timeout; several calls run at once on the mount's gate.
_RC_BATCH = 16


class MountTimeout(MountUnavailable):
    """A call into a mount did not return within its timeout (or the mount is already hung)."""


@dataclass(frozen=True, slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any]


class MountGate:
    """Bounded pool of daemon threads for one mount; ``call`` waits at most its timeout."""

    def __init__(self, name: str, workers: int, timeout: float) -> None:
        self.name = name
        self._workers = max(1, workers)
        self._timeout = timeout
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = False
        self._stuck: set[Future[Any]] = set()  # abandoned calls still running on a worker
        self._hung_reason = ""
        self._closed = False

    @property
    def hung(self) -> bool:
        """A call timed out in this pass: further calls fail fast."""
        return bool(self._hung_reason)

    @property
    def hung_reason(self) -> str:
        return self._hung_reason

    def reset(self) -> None:
        """Start a new pass: forget the hung mark (calls fail fast again while all workers
        are still stuck in the mount)."""
        self._hung_reason = ""

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; collect it with ``wait``. Lets a caller keep several listings
        in flight while it does other work."""
        future: Future[T] = Future()
        if self._closed:
            future.set_exception(MountTimeout(f"{self.name}: gate closed"))
            return future
        if self._hung_reason:
            future.set_exception(MountTimeout(f"{self.name}: {self._hung_reason}"))
            return future
        with self._lock:
            if len(self._stuck) >= self._workers:
                self._hung_reason = f"all {self._workers} workers stuck in the mount"
                future.set_exception(MountTimeout(f"{self.name}: {self._hung_reason}"))
                return future
            if not self._started:
                self._started = True
                for i in range(self._workers):
                    threading.Thread(
                        target=self._work, name=f"gate-{self.name}-{i}", daemon=True
                    ).start()
        self._jobs.put(_Job(fn, args, future))
        return future

    def wait(self, future: Future[T], timeout: float | None = None) -> T:
        """Result of a submitted call, or ``MountTimeout`` after ``timeout`` (default: the
        gate's op timeout). Exceptions of the call itself (``OSError``) pass through."""
        if self._hung_reason and not future.done():
            self._abandon(future)
            raise MountTimeout(f"{self.name}: {self._hung_reason}")
        try:
            return future.result(self._timeout if timeout is None else timeout)
        except FutureTimeout:
            limit = self._timeout if timeout is None else timeout
            if not self._hung_reason:
                self._hung_reason = f"no answer within {plain.seconds(limit)}"
            self._abandon(future)
            raise MountTimeout(f"{self.name}: {self._hung_reason}") from None
        except CancelledError:
            raise MountTimeout(f"{self.name}: {self._hung_reason or 'cancelled'}") from None

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        return self.wait(self.submit(fn, *args), timeout)

    def _abandon(self, future: Future[Any]) -> None:
        # Not started yet: cancel it. Running: it may never return; count it as stuck so the
        # gate stops queueing behind it. Its worker decrements the count if it ever comes back.
        if future.cancel():
            return
        with self._lock:
            if not future.done():
                self._stuck.add(future)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            with self._lock:
                self._stuck.discard(job.future)

    def close(self) -> None:
        """Ask idle workers to stop; never joins (a worker may be stuck in the kernel)."""
        self._closed = True
        if self._started:
            for _ in range(self._workers):
                self._jobs.put(None)


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> set[str]:
    """Mount points listed in a ``/proc/<pid>/mountinfo`` text (field 5, unescaped)."""
    points: set[str] = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) >= 5:
            points.add(_unescape(fields[4]))
    return points


def _first_entry(path: str) -> bool:
    """True when ``path`` lists at least one entry (one readdir is enough to prove life)."""
    with os.scandir(path) as entries:
        return any(True for _ in entries)


def _errno_name(code: int | None) -> str:
    return errno.errorcode.get(code or 0, str(code))


def state_from_error(mount: MountSettings, exc: OSError) -> MountState:
    """What an error listing the anchor says about the mount (ENOTCONN, ENOENT: down; EIO
    and the rest: degraded)."""
    code = exc.errno
    if code == errno.ENOTCONN:
        detail = f"ENOTCONN on {mount.anchor_path} (rclone gone; mount not connected)"
        return MountState(mount.name, mount.path, MountHealth.DOWN, detail)
    if code in (errno.ENOENT, errno.ENOTDIR):
        detail = f"anchor {mount.anchor_path} missing ({_errno_name(code)})"
        return MountState(mount.name, mount.path, MountHealth.DOWN, detail)
    detail = f"{_errno_name(code)} listing {mount.anchor_path}: {exc.strerror}"
    return MountState(mount.name, mount.path, MountHealth.DEGRADED, detail)


class MountMonitor:
    """Probes each mount, hands out its gate, and talks to its rclone rc when configured."""

    def __init__(
        self,
        mounts: Sequence[MountSettings],
        timeouts: Timeouts,
        *,
        mountinfo_path: str = "/proc/self/mountinfo",
        rc_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.mounts = tuple(mounts)
        self.timeouts = timeouts
        self._mountinfo_path = mountinfo_path
        self._rc_transport = rc_transport
        self._by_name = {m.name: m for m in self.mounts}
        # Longest path first so /mnt/media/zurg/sub wins over /mnt/media/zurg.
        self._prefixes = sorted(
            ((os.path.normpath(m.path), m) for m in self.mounts),
            key=lambda pm: len(pm[0]), reverse=True,
        )
        self._gates = {
            name: MountGate(name, timeouts.workers_per_mount, timeouts.op_seconds)
            for name in [*self._by_name, OUTSIDE]
        }
        self._rc: dict[str, RcClient] = {}

    def gate(self, name: str) -> MountGate:
        """The gate of mount ``name``; ``mounts.OUTSIDE`` for paths under no mount."""
        return self._gates[name]

    def settings(self, name: str) -> MountSettings:
        return self._by_name[name]

    def has_rc(self, name: str) -> bool:
        return self._by_name[name].rc_url is not None

    def mount_for(self, path: str) -> MountSettings | None:
        """The mount ``path`` lies under, comparing whole components (``/a/bc`` is not under
        ``/a/b``)."""
        for prefix, mount in self._prefixes:
            if path == prefix or path.startswith(prefix + "/") or prefix == "/":
                return mount
        return None

    def _mount_points(self) -> set[str] | OSError:
        try:
            with open(self._mountinfo_path, encoding="utf-8", errors="surrogateescape") as f:
                return parse_mountinfo(f.read())
        except OSError as exc:
            return exc

    def probe(self) -> dict[str, MountState]:
        """State of every mount, probed concurrently, each bounded by ``probe_seconds``.
        Starts a new pass: the gates forget they were hung (and find out again if still so)."""
        points: set[str] | OSError = set()
        if any(m.require_mountpoint for m in self.mounts):
            points = self._mount_points()
        states: dict[str, MountState] = {}
        pending: list[tuple[MountSettings, Future[bool]]] = []
        for mount in self.mounts:
            gate = self._gates[mount.name]
            gate.reset()
            if mount.require_mountpoint:
                if isinstance(points, OSError):
                    detail = f"cannot read {self._mountinfo_path}: {points.strerror}"
                    states[mount.name] = MountState(mount.name, mount.path,
                                                    MountHealth.DEGRADED, detail)
                    continue
                if os.path.normpath(mount.path) not in points:
                    detail = f"{mount.path} is not a mount point (absent from mountinfo)"
                    states[mount.name] = MountState(mount.name, mount.path,
                                                    MountHealth.DOWN, detail)
                    continue
            pending.append((mount, gate.submit(_first_entry, mount.anchor_path)))
        self._gates[OUTSIDE].reset()
        deadline = time.monotonic() + self.timeouts.probe_seconds
        for mount, future in pending:
            states[mount.name] = self._judge_probe(mount, future, deadline)
        return {m.name: states[m.name] for m in self.mounts}

    def _judge_probe(self, mount: MountSettings, future: Future[bool],
                     deadline: float) -> MountState:
        gate = self._gates[mount.name]
        try:
            listed = gate.wait(future, max(0.0, deadline - time.monotonic()))
        except MountTimeout as exc:
            return MountState(mount.name, mount.path, MountHealth.HUNG, str(exc))
        except OSError as exc:
            return state_from_error(mount, exc)
        if not listed:
            detail = f"anchor {mount.anchor_path} is empty (unmounted, or nothing mounted)"
            return MountState(mount.name, mount.path, MountHealth.DOWN, detail)
        return MountState(mount.name, mount.path, MountHealth.OK)

    def _client(self, name: str) -> RcClient | None:
        url = self._by_name[name].rc_url
        if url is None:
            return None
        client = self._rc.get(name)
        if client is None:
            client = RcClient(url, timeout=self.timeouts.op_seconds,
                              transport=self._rc_transport)
            self._rc[name] = client
        return client

    def _relative(self, name: str, path: str) -> str:
        # rc paths are relative to the remote root, which is the mount path.
        root = os.path.normpath(self._by_name[name].path)
        if path == root:
            return ""
        if path.startswith(root + "/"):
            return path[len(root) + 1:]
        return path.lstrip("/")

    def refresh(self, mount: str, directories: Sequence[str]) -> None:
        """rclone ``vfs/refresh`` of ``directories`` (absolute, under the mount) when the mount
        has ``rc_url``; a no-op otherwise. Raises ``RcError`` if rc fails as a whole (or
        ``MountTimeout`` if the mount's gate is hung). A directory
        rclone does not know is answered per path ("file does not exist") and is not an error:
        the caller lists it again and finds it gone."""
        client = self._client(mount)
        if client is None or not directories:
            return
        rel = sorted({self._relative(mount, d) for d in directories})
        gate = self._gates[mount]
        calls = [gate.submit(client.refresh, rel[i:i + _RC_BATCH])
                 for i in range(0, len(rel), _RC_BATCH)]
        for call in calls:
            # The HTTP timeout bounds each call; the gate's wait only backs it up.
            gate.wait(call, 2 * self.timeouts.op_seconds + 1)

    def forget(self, mount: str, paths: Sequence[str]) -> None:
        """rclone ``vfs/forget`` of files ``paths`` (absolute, under the mount); no-op without
        ``rc_url``."""
        client = self._client(mount)
        if client is None or not paths:
            return
        rel = [self._relative(mount, p) for p in paths]
        for i in range(0, len(rel), _RC_BATCH):
            client.forget(rel[i:i + _RC_BATCH])

    def close(self) -> None:
        """Never waits on a thread stuck in a hung mount."""
        for gate in self._gates.values():
            gate.close()
        for client in self._rc.values():
            client.close()
        self._rc.clear()
