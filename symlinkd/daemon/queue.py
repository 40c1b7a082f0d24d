"""One work queue, one worker (FlexGet style): the scheduler, the watcher and the webhooks only
*enqueue* scan requests; a single thread runs them one at a time, so two passes never race on the
farm or the state database, and a burst of triggers costs one pass, not one each."""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from symlinkd.model import PassReport

log = structlog.get_logger("symlinkd.daemon")

# Pending work is bounded whatever arrives (issue 9, finding 7: 50 requests of 40,000 paths took
# the daemon from 53 MB to 764 MB). Past these, subtree paths coalesce to their parent folders,
# then to one full pass; refresh directories coalesce to parents, then the excess is dropped
# (a refresh only shortens rclone's cache; the cache expires by itself).
MAX_PENDING_PATHS = 20_000
MAX_PENDING_REFRESH = 2_000


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """A full pass, or a pass over some farm subtrees/links (``paths``; a subtree request with no
    paths only refreshes).

    ``refresh`` names rclone VFS directories, as ``(mount name, absolute directory under the
    mount)``, to refresh before the pass (a Zurg library update: rclone's dir cache would otherwise
    hide the change for ``--dir-cache-time``).
    """

    full: bool
    paths: frozenset[str] = frozenset()
    source: str = "api"
    refresh: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def full_pass(cls, source: str) -> ScanRequest:
        return cls(full=True, source=source)

    @classmethod
    def subtree(
        cls, paths: Iterable[str], source: str, refresh: Iterable[tuple[str, str]] = ()
    ) -> ScanRequest:
        return cls(full=False, paths=frozenset(paths), source=source, refresh=frozenset(refresh))


@dataclass(slots=True)
class _Pending:
    full: bool = False
    full_sources: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    subtree_sources: set[str] = field(default_factory=set)
    refresh: set[tuple[str, str]] = field(default_factory=set)

    def empty(self) -> bool:
        return not self.full and not self.paths and not self.refresh


@dataclass(frozen=True, slots=True)
class PassStatus:
    """What /readyz and the logs know of the last pass the worker ran."""

    kind: str
    finished: float
    crashed: bool
    error: str = ""
    run_id: str = ""


RunPass = Callable[[ScanRequest], PassReport | None]  # None: nothing to scan (refresh only)


class ScanQueue:
    """Coalescing queue: all pending subtree requests merge into one (their paths union); all
    pending full requests merge into one.

    A pending full pass does *not* swallow pending subtree requests: a subtree pass is what tells
    Plex/Jellyfin about links it sees for the first time (a full pass does not, or the first pass
    after start would announce the whole library), so it runs first; it is small. To keep a
    stream of watcher events from starving the full pass, a full pass that has waited behind one
    subtree pass runs next.
    """

    def __init__(
        self, *, farm: str | None = None, max_paths: int = MAX_PENDING_PATHS,
        max_refresh: int = MAX_PENDING_REFRESH,
    ) -> None:
        # Without the farm root, paths cannot climb to their parents safely (never out of the
        # farm): an overflow becomes a full pass at once.
        self._farm = posixpath.normpath(farm) if farm is not None else None
        self._max_paths = max_paths
        self._max_refresh = max_refresh
        self._cond = threading.Condition()
        self._pending = _Pending()
        self._closed = False
        self._full_waited = False
        self.busy = False  # a pass is running (read by /readyz and tests)

    def put(self, request: ScanRequest) -> bool:
        """Enqueue; False once the queue is closed (shutting down)."""
        with self._cond:
            if self._closed:
                return False
            pending = self._pending
            if request.full:
                pending.full = True
                pending.full_sources.add(request.source)
            else:
                pending.paths.update(request.paths)
                pending.subtree_sources.add(request.source)
                if len(pending.paths) > self._max_paths:
                    self._coalesce_paths()
            pending.refresh.update(request.refresh)
            if len(pending.refresh) > self._max_refresh:
                pending.refresh = _coalesce_refresh(pending.refresh, self._max_refresh)
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> ScanRequest | None:
        """Next merged request, or None on close/timeout. Marks the queue busy until done()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending.empty() and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            request = self._take()
            self.busy = True
            return request

    def _coalesce_paths(self) -> None:
        pending = self._pending
        before = len(pending.paths)
        merged = _coalesce(pending.paths, self._max_paths, self._farm)
        if merged is None:
            pending.full = True
            pending.full_sources.update(pending.subtree_sources)
            pending.paths = set()
            pending.subtree_sources.clear()
            log.warning("pending paths over the limit; one full pass instead", paths=before,
                        limit=self._max_paths)
        else:
            pending.paths = merged
            log.info("pending paths coalesced to their folders", paths=before,
                     folders=len(merged), limit=self._max_paths)

    def _take(self) -> ScanRequest:
        pending = self._pending
        refresh = frozenset(pending.refresh)
        pending.refresh.clear()
        if pending.paths and not (pending.full and self._full_waited):
            request = ScanRequest(
                full=False, paths=frozenset(pending.paths), source=_join(pending.subtree_sources),
                refresh=refresh,
            )
            self._full_waited = pending.full
            pending.paths.clear()
            pending.subtree_sources.clear()
            return request
        if pending.full:
            request = ScanRequest(full=True, source=_join(pending.full_sources), refresh=refresh)
            pending.full = False
            pending.full_sources.clear()
            self._full_waited = False
            return request
        # Only a refresh is pending (a Zurg update with no link into it): a subtree pass over
        # nothing still runs the refresh, so the next pass sees Zurg's new listing.
        return ScanRequest(full=False, source="refresh", refresh=refresh)

    def done(self) -> None:
        with self._cond:
            self.busy = False
            self._cond.notify_all()

    def pending(self) -> tuple[bool, int]:
        """(full pending, number of subtree paths pending)."""
        with self._cond:
            return self._pending.full, len(self._pending.paths)

    def close(self) -> None:
        """Stop accepting work; a waiting get() returns None. Pending requests are dropped (the
        next start runs a full pass anyway)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.busy or not self._pending.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


def _coalesce(paths: set[str], limit: int, farm: str | None) -> set[str] | None:
    """``paths`` with the deepest ones climbed to their parent folders (never above ``farm``),
    a level at a time, nested ones dropped, until at most ``limit`` remain; None when only a
    full pass covers them (the farm itself is reached, or no root is known). Deepest first, so
    a burst of file paths becomes their folders without blurring the folders already pending."""
    current = _outermost(paths)
    while len(current) > limit:
        if farm is None:
            return None
        deepest = max(p.count("/") for p in current)
        climbed = {_parent_within(p, farm) if p.count("/") == deepest else p for p in current}
        if farm in climbed:
            return None
        current = _outermost(climbed)
    if farm is not None and farm in current and len(current) > 1:
        return None
    return current


def _parent_within(path: str, farm: str) -> str:
    parent = posixpath.dirname(path)
    inside = parent == farm or parent.startswith(farm.rstrip("/") + "/")
    return parent if inside else farm


def _outermost(paths: set[str]) -> set[str]:
    """Drop every path that lies under another one of the set (its subtree pass covers it)."""
    kept: list[str] = []
    # With "/" sorting lowest, a folder sorts right before everything under it ("a", "a/b",
    # "a b"). Paths here carry no NUL (the HTTP layer and the file system rule it out).
    for path in sorted(paths, key=lambda p: p.replace("/", "\x00")):
        if kept and (path == kept[-1] or path.startswith(kept[-1].rstrip("/") + "/")):
            continue
        kept.append(path)
    return set(kept)


def _coalesce_refresh(refresh: set[tuple[str, str]], limit: int) -> set[tuple[str, str]]:
    """Each directory's parent (Zurg's torrent folders share ``__all__``); past the limit still,
    the excess is dropped with a warning."""
    parents = {(mount, posixpath.dirname(d) if d.count("/") > 1 else d) for mount, d in refresh}
    if len(parents) <= limit:
        return parents
    kept = set(sorted(parents)[:limit])
    log.warning("rclone refresh list over the limit; the rest waits for rclone's cache",
                dropped=len(parents) - limit, limit=limit)
    return kept


def _join(sources: Sequence[str] | set[str]) -> str:
    return ",".join(sorted(sources))


class Worker:
    """The one thread that runs passes. It never dies on an exception: the pass is logged as
    crashed, /readyz turns red until a later pass succeeds, and the loop goes on."""

    def __init__(
        self,
        queue: ScanQueue,
        run: RunPass,
        *,
        clock: Callable[[], float] = time.time,
        on_report: Callable[[PassReport], None] | None = None,
    ) -> None:
        self._queue = queue
        self._run = run
        self._clock = clock
        self._on_report = on_report
        self.last: PassStatus | None = None
        self.passes = 0
        self._thread = threading.Thread(target=self._loop, name="symlinkd-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """True when the worker ended within ``timeout``. Never blocks longer: a pass stuck in a
        hung FUSE mount is abandoned (the thread is a daemon thread)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                self._run_one(request)
            finally:
                self._queue.done()

    def _run_one(self, request: ScanRequest) -> None:
        kind = "full" if request.full else "subtree"
        try:
            report = self._run(request)
        except Exception as exc:  # noqa: BLE001 - the worker outlives any pass
            # No traceback here: the runtime logged it and counted symlinkd_pass_errors_total.
            log.error(  # noqa: TRY400
                "pass crashed", kind=kind, source=request.source, error=repr(exc)
            )
            self.last = PassStatus(kind=kind, finished=self._clock(), crashed=True,
                                   error=f"{type(exc).__name__}: {exc}")
            return
        finally:
            self.passes += 1
        if report is None:
            return
        self.last = PassStatus(kind=kind, finished=self._clock(), crashed=False,
                               run_id=report.run_id)
        if self._on_report is not None:
            try:
                self._on_report(report)
            except Exception:  # an index update must not take the worker down
                log.exception("post-pass hook failed", run_id=report.run_id)
