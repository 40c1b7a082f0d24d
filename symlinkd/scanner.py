"""Walk the farm and collect the facts of every entry; judging is the classifier's job.

Two phases per pass:

1. *Walk* the farm with ``os.scandir`` on directory fds (``readlink``/``lstat`` relative to the
   fd: the kernel does not re-walk the long path for every link). Symlinked directories are
   never followed. Each link's target is made absolute and normal and filed under its parent
   directory.
2. *Resolve* by listing each unique target parent directory once, through the gate of the mount
   it lies in, a few listings in flight at once, instead of one ``stat`` per link: on FUSE that
   is the difference between minutes and seconds. Links into a mount that is not ``ok`` are not
   touched at all. Before believing a target is gone under a mount with rclone rc, its parent
   is refreshed (``vfs/refresh``) and listed again.

Per-link work is kept to a few string operations and a dict lookup: a farm has a million links.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from symlinkd.errors import MountUnavailable
from symlinkd.model import EntryKind, LinkFacts, MountHealth, MountState, ScanProblem, ScanResult
from symlinkd.mounts import OUTSIDE, MountMonitor, MountTimeout
from symlinkd.settings import Timeouts

_MAX_HOPS = 40  # the kernel's own limit on symlinks followed in one lookup (ELOOP)
_GONE = (errno.ENOENT, errno.ENOTDIR)
_FILE, _DIR, _LINK = 0, 1, 2
_PROGRESS_EVERY = 1000
_WINDOW_PER_WORKER = 4  # listings in flight per gate worker while the caller consumes results
# Links walked before their targets are resolved and handed on: bounds the memory of a pass
# (a 1M-link farm is never held whole). A target folder whose links straddle two flushes is
# listed twice; in a Shows/Season farm that is a few folders per flush.
FLUSH_RECORDS = 50_000
_BATCH = 2048  # facts per batch handed to the caller
_MANY = 8  # target folders per gate call while listings are fast (8 slow ones fit op_seconds)
_FAST_LISTING = 0.002  # seconds a listing may take on average to count as fast

Listing = dict[str, int]  # name -> _FILE | _DIR | _LINK
Record = tuple[str, str, str, float]  # link path, raw target, absolute target, link mtime
# (mount, records whose target resolved, targets are folders) -> the records not taken
HealthySink = Callable[[str, list[Record], bool], list[Record]]
Outcome = Listing | OSError | MountUnavailable


def list_dir(path: str) -> Listing:
    """Names in ``path`` with their type from ``d_type`` (no per-entry stat where the
    filesystem fills ``d_type``, which FUSE/rclone does)."""
    with os.scandir(path) as entries:
        # regular files first: nearly every entry of a torrent folder, one d_type test each
        return {e.name: _FILE if e.is_file(follow_symlinks=False) else _LINK if e.is_symlink()
                else _DIR if e.is_dir() else _FILE for e in entries}


def _real_listing(path: str) -> tuple[str, Listing]:
    # Outside every mount a component of the path may be a symlink into one (/data -> /mnt):
    # the real path decides which mount, if any, the target is in.
    return os.path.realpath(path), list_dir(path)


def _timed(fn: Callable[[str], Any], parents: Sequence[str]) -> tuple[list[Any], float]:
    """``fn`` of each parent (an ``OSError`` in place of a result), and the seconds it took."""
    started = time.monotonic()
    out: list[Any] = []
    for parent in parents:
        try:
            out.append(fn(parent))
        except OSError as exc:
            out.append(exc)
    return out, time.monotonic() - started


def _sizes(parent: str, names: Sequence[str]) -> list[int | OSError]:
    out: list[int | OSError] = []
    for name in names:
        try:
            out.append(os.stat(f"{parent}/{name}").st_size)
        except OSError as exc:
            out.append(exc)
    return out


def _absolute(directory: str, target: str) -> str:
    full = target if target.startswith("/") else f"{directory}/{target}"
    # normpath costs a microsecond; most targets written by rdt-client/Riven are already
    # normal, which three substring checks prove.
    if "/." in full or "//" in full or full.endswith("/"):
        full = os.path.normpath(full)
    return full


def _split(full: str) -> tuple[str, str]:
    parent, _, name = full.rpartition("/")
    return parent or "/", name


class Scanner:
    def __init__(self, farm: str, monitor: MountMonitor, timeouts: Timeouts) -> None:
        self.farm = os.path.normpath(farm)
        self.monitor = monitor
        self.timeouts = timeouts

    def scan(
        self,
        mounts: Mapping[str, MountState],
        paths: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        size_wanted: Callable[[str], bool] | None = None,
    ) -> ScanResult:
        """Facts of every entry of the farm (``paths=()``) or of the given subtrees/links.
        ``ScanResult.mounts`` is ``mounts`` updated with what the pass met (a gate that timed
        out -> hung, ENOTCONN -> down, rc refresh failing -> degraded)."""
        stream = self.stream(mounts, paths, progress, size_wanted)
        facts = stream.result.facts
        for batch in stream:
            facts.extend(batch)
        return stream.result

    def stream(
        self,
        mounts: Mapping[str, MountState],
        paths: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        size_wanted: Callable[[str], bool] | None = None,
        *,
        flush_records: int = FLUSH_RECORDS,
        target_index: dict[str, set[str]] | None = None,
        healthy: HealthySink | None = None,
    ) -> ScanStream:
        """The same facts as ``scan``, in batches, so a pass never holds the whole farm.
        ``ScanStream.result.mounts`` changes while the batches come (a mount that hangs
        mid-pass); ``result.problems`` is complete once the iteration ends. ``result.facts``
        stays empty. ``target_index``, when given, is filled with target folder (the
        absolute target's parent, before any chain is followed) -> farm folders linking
        into it. ``healthy``, when given, is offered the links whose target resolved (a file
        or a folder, no error) under a mount, per target folder, as ``Record`` tuples instead
        of ``LinkFacts``: it returns those it did not take, which become facts as usual (a
        pass takes the healthy links it only counts, and a million objects are never made)."""
        scan = _Pass(self, mounts, progress, size_wanted, flush_records)
        scan.target_index = target_index
        scan.healthy = healthy
        return ScanStream(scan, paths)


class ScanStream:
    """Iterate for ``list[LinkFacts]`` batches; ``result`` holds the mounts and problems."""

    def __init__(self, scan: _Pass, paths: Sequence[str]) -> None:
        self.result = scan.result
        self._batches = scan.batches(paths)

    def __iter__(self) -> Iterator[list[LinkFacts]]:
        return self._batches


class _Pass:
    """State of one scan: the walk's records grouped by target parent, then their facts."""

    def __init__(self, scanner: Scanner, mounts: Mapping[str, MountState],
                 progress: Callable[[int], None] | None,
                 size_wanted: Callable[[str], bool] | None,
                 flush_records: int = FLUSH_RECORDS) -> None:
        self.farm = scanner.farm
        self.monitor = scanner.monitor
        self.result = ScanResult(mounts=dict(mounts))
        self.progress = progress
        self.size_wanted = size_wanted
        self.groups: dict[str, list[Record]] = {}
        self.out: list[LinkFacts] = []  # facts not yet handed to the caller
        self.flush_records = max(1, flush_records)
        self.buffered_at = 0  # entries walked at the last flush
        self.target_index: dict[str, set[str]] | None = None
        self.healthy: HealthySink | None = None
        self.refreshed: set[str] = set()  # folders already refreshed through rc this pass
        self.seen = 0
        self.next_tick = _PROGRESS_EVERY
        self.parent_mount: dict[str, str | None] = {}
        self.chain_listings: dict[str, tuple[str | None, Outcome | None]] = {}
        self.window = max(1, scanner.timeouts.workers_per_mount) * _WINDOW_PER_WORKER
        self.per_call = 1  # target folders listed per gate call (see _collect_many)

    # ---- phase 1: walk the farm -------------------------------------------------------------

    def batches(self, paths: Sequence[str]) -> Iterator[list[LinkFacts]]:
        """Walk; every ``flush_records`` links, resolve what was walked and hand it on."""
        for _ in self.walk(paths):
            yield from self.flush()
        yield from self.flush()

    def walk(self, paths: Sequence[str]) -> Iterator[None]:
        """Yields whenever enough links are waiting to be resolved."""
        if not paths:
            yield from self._walk_tree(self.farm, root=True)
        for raw in paths:
            path = os.path.normpath(raw)
            if path != self.farm and not path.startswith(self.farm + "/"):
                self._problem(path, None, f"not inside the farm {self.farm}; not scanned")
                continue
            try:
                st = os.lstat(path)
            except OSError as exc:
                self._problem(path, exc.errno, exc.strerror or "cannot stat")
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(path)
                except OSError as exc:
                    self._problem(path, exc.errno, exc.strerror or "cannot read link")
                    continue
                self._file(path, target, _split(path)[0], st.st_mtime)
            elif stat.S_ISDIR(st.st_mode):
                yield from self._walk_tree(path, root=path == self.farm)
            else:
                self._other(path, st.st_mode, st.st_mtime)
        if self.progress is not None:
            self.progress(self.seen)

    def _problem(self, path: str, code: int | None, message: str) -> None:
        self.result.problems.append(ScanProblem(path, code, message))

    def _file(self, path: str, target: str, directory: str, mtime: float) -> None:
        full = _absolute(directory, target)
        parent, _name = _split(full)
        group = self.groups.get(parent)
        if group is None:
            self.groups[parent] = group = []
        group.append((path, target, full, mtime))
        if self.target_index is not None:
            self.target_index.setdefault(parent, set()).add(directory)

    def _other(self, path: str, mode: int, mtime: float) -> None:
        kind = EntryKind.FILE if stat.S_ISREG(mode) else EntryKind.OTHER
        self.out.append(LinkFacts(path, kind, mtime))

    def _walk_tree(self, top: str, *, root: bool) -> Iterator[None]:
        stack = [top]
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        while stack:
            directory = stack.pop()
            if (not root or directory != top) and self.monitor.mount_for(directory) is not None:
                # A mount inside the farm would drag the walk into FUSE (and its hangs).
                self._problem(directory, None, "a configured mount inside the farm; skipped")
                continue
            try:
                # O_NOFOLLOW: a directory swapped for a symlink since it was listed is not
                # followed out of the farm.
                fd = os.open(directory, flags if directory == top else flags | os.O_NOFOLLOW)
            except OSError as exc:
                self._problem(directory, exc.errno, f"cannot open directory: {exc.strerror}")
                continue
            try:
                self.seen += self._walk_dir(directory, fd, stack)
            except OSError as exc:
                self._problem(directory, exc.errno, f"cannot list directory: {exc.strerror}")
            finally:
                os.close(fd)
            if self.progress is not None and self.seen >= self.next_tick:
                self.progress(self.seen)
                self.next_tick = self.seen + _PROGRESS_EVERY
            if self.seen - self.buffered_at >= self.flush_records:
                self.buffered_at = self.seen
                yield

    def _walk_dir(self, directory: str, fd: int, stack: list[str]) -> int:
        """One farm directory: links filed by target parent, subdirectories pushed on
        ``stack``. The hot loop of a scan; kept free of calls it does not need."""
        groups = self.groups
        readlink = os.readlink
        normpath = os.path.normpath
        touched: set[str] = set()
        touch = touched.add
        prefix = directory + "/"
        last_parent = ""
        group: list[Record] = []
        count = 0
        with os.scandir(fd) as entries:
            for entry in entries:
                count += 1
                name = entry.name
                try:
                    if entry.is_symlink():
                        target = readlink(name, dir_fd=fd)
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                        full = target if target[:1] == "/" else prefix + target
                        if "/." in full or "//" in full or full[-1:] == "/":
                            full = normpath(full)
                        parent = full.rpartition("/")[0] or "/"
                        # The links of one farm folder mostly share a target folder (a season
                        # into its torrent): compare with the last one before hashing.
                        if parent != last_parent:
                            got = groups.get(parent)
                            if got is None:
                                groups[parent] = got = []
                            group = got
                            last_parent = parent
                            touch(parent)
                        group.append((prefix + name, target, full, mtime))
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(f"{directory}/{name}")
                    else:
                        st = entry.stat(follow_symlinks=False)
                        self._other(f"{directory}/{name}", st.st_mode, st.st_mtime)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:  # ENOENT: removed while we looked
                        self._problem(f"{directory}/{name}", exc.errno,
                                      exc.strerror or "cannot read entry")
        index = self.target_index
        if index is not None:
            for parent in touched:
                folders = index.get(parent)
                if folders is None:
                    index[parent] = folders = set()
                folders.add(directory)
        return count

    # ---- phase 2: resolve targets by listing their parents --------------------------------

    def _mount_of(self, parent: str) -> str | None:
        try:
            return self.parent_mount[parent]
        except KeyError:
            mount = self.monitor.mount_for(parent)
            name = mount.name if mount is not None else None
            self.parent_mount[parent] = name
            return name

    def _usable(self, mount: str | None) -> bool:
        if mount is None:
            return True
        state = self.result.mounts.get(mount)
        return state is not None and state.health is MountHealth.OK

    def _submit(self, parent: str, mount: str | None) -> Future[Any] | None:
        if not self._usable(mount):
            return None
        if mount is None:
            return self.monitor.gate(OUTSIDE).submit(_real_listing, parent)
        return self.monitor.gate(mount).submit(list_dir, parent)

    def _collect(self, parent: str, mount: str | None,
                 future: Future[Any] | None) -> tuple[str | None, Outcome | None]:
        """The listing of ``parent`` (or its error) and the mount it really lies in; ``None``
        for a mount that is not usable, which is then not touched."""
        if future is None:
            return mount, None
        gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
        try:
            got = gate.wait(future)
        except MountTimeout as exc:
            if mount is not None:
                self._mark(mount, MountHealth.HUNG, gate.hung_reason or str(exc))
            return mount, exc
        except OSError as exc:
            got = exc
        return self._outcome(parent, mount, got)

    def _outcome(self, parent: str, mount: str | None,
                 got: Any) -> tuple[str | None, Outcome | None]:
        if isinstance(got, OSError):
            if got.errno == errno.ENOTCONN and mount is not None:
                self._mark(mount, MountHealth.DOWN, f"ENOTCONN listing {parent} mid-pass")
            return mount, got
        if mount is None:
            real, listing = got
            really = self._mount_of(real) if real != parent else None
            if really is not None:
                # Reached through a symlinked directory: judge it as part of that mount, and
                # only if that mount is usable (the listing already touched it, bounded).
                return really, (listing if self._usable(really) else None)
            return None, listing
        return mount, got

    def _submit_many(self, batch: list[tuple[str, str | None, list[Record]]]
                     ) -> Future[Any] | None:
        mount = batch[0][1]
        if not self._usable(mount):
            return None
        parents = [parent for parent, _m, _r in batch]
        if mount is None:
            return self.monitor.gate(OUTSIDE).submit(_timed, _real_listing, parents)
        return self.monitor.gate(mount).submit(_timed, list_dir, parents)

    def _collect_many(self, batch: list[tuple[str, str | None, list[Record]]],
                      future: Future[Any] | None
                      ) -> Iterator[tuple[str, str | None, list[Record], Outcome | None]]:
        mount = batch[0][1]
        if future is None:
            for parent, _m, records in batch:
                yield parent, mount, records, None
            return
        gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
        try:
            results, seconds = gate.wait(future)
        except MountTimeout as exc:
            if mount is not None:
                self._mark(mount, MountHealth.HUNG, gate.hung_reason or str(exc))
            for parent, _m, records in batch:
                yield parent, mount, records, exc
            return
        # Listings that come back fast (local disk, a warm cache) go many to a gate call: the
        # hand-over to a worker thread cost more than the listing. Slow ones go one by one,
        # each with its own timeout and all the workers in parallel.
        self.per_call = _MANY if seconds / len(batch) < _FAST_LISTING else 1
        for (parent, _m, records), got in zip(batch, results, strict=True):
            real_mount, outcome = self._outcome(parent, mount, got)
            yield parent, real_mount, records, outcome

    def _mark(self, mount: str, health: MountHealth, detail: str) -> None:
        state = self.result.mounts.get(mount)
        if state is not None and state.health is MountHealth.OK:
            self.result.mounts[mount] = replace(state, health=health, detail=detail)

    def flush(self) -> Iterator[list[LinkFacts]]:
        """Resolve the links walked so far and hand their facts on in batches."""
        groups = self.groups
        self.groups = {}
        suspects: list[tuple[str, str, list[Record], bool]] = []
        for parent, mount, records, outcome in self._listings(groups):
            if parent not in self.refreshed and self._suspect(mount, records, outcome):
                parent_gone = isinstance(outcome, OSError)
                suspects.append((parent, mount, records, parent_gone))  # type: ignore[arg-type]
            else:
                self._emit(parent, mount, records, outcome)
            if len(self.out) >= _BATCH:
                yield self._take()
        if suspects:
            self._refresh(suspects)
            again = {parent: records for parent, _m, records, _g in suspects}
            for parent, mount, records, outcome in self._listings(again):
                self._emit(parent, mount, records, outcome)
                if len(self.out) >= _BATCH:
                    yield self._take()
        if self.out:
            yield self._take()

    def _take(self) -> list[LinkFacts]:
        out = self.out
        self.out = []
        return out

    def _listings(self, groups: dict[str, list[Record]]
                  ) -> Iterator[tuple[str, str | None, list[Record], Outcome | None]]:
        """(parent, mount, records, listing) per group, keeping a window of listings in flight
        so the gates' workers list while this thread turns listings into facts."""
        pending: deque[tuple[list[tuple[str, str | None, list[Record]]], Future[Any] | None]]
        pending = deque()
        while True:
            while groups and len(pending) < self.window:
                batch: list[tuple[str, str | None, list[Record]]] = []
                while groups and len(batch) < self.per_call:
                    # popitem: each group's records are freed as soon as they became facts.
                    parent, records = groups.popitem()
                    mount = self._mount_of(parent)
                    if batch and mount != batch[0][1]:
                        groups[parent] = records  # another mount: the next call's first
                        break
                    batch.append((parent, mount, records))
                pending.append((batch, self._submit_many(batch)))
            if not pending:
                return
            batch, future = pending.popleft()
            yield from self._collect_many(batch, future)

    def _suspect(self, mount: str | None, records: list[Record], outcome: Outcome | None) -> bool:
        """A target looks gone under a healthy mount with rc: refresh before believing it."""
        if mount is None or outcome is None or not self.monitor.has_rc(mount):
            return False
        if not self._usable(mount):
            return False
        if isinstance(outcome, OSError):
            return outcome.errno in _GONE
        if isinstance(outcome, MountUnavailable):
            return False
        return any(_split(full)[1] not in outcome for _p, _t, full, _m in records)

    def _refresh(self, suspects: list[tuple[str, str, list[Record], bool]]) -> None:
        by_mount: dict[str, set[str]] = {}
        for parent, mount, _records, parent_gone in suspects:
            dirs = by_mount.setdefault(mount, set())
            dirs.add(parent)
            if parent_gone:
                # A missing parent may be a renamed torrent folder: rclone only learns of the
                # new name by re-reading the folder above (often the big __all__: only then).
                dirs.add(_split(parent)[0])
        for mount, dirs in by_mount.items():
            self.refreshed.update(dirs)
            root = os.path.normpath(self.monitor.settings(mount).path)
            wanted = sorted(d for d in dirs if d == root or d.startswith(root + "/"))
            try:
                self.monitor.refresh(mount, wanted)
            except MountUnavailable as exc:
                # Without a refresh "gone" cannot be told from "stale cache": do not trust it.
                self._mark(mount, MountHealth.DEGRADED, f"vfs/refresh failed: {exc}")

    # ---- facts ------------------------------------------------------------------------------

    def _emit(self, parent: str, mount: str | None, records: list[Record],
              outcome: Outcome | None) -> None:
        facts = self.out
        link = EntryKind.SYMLINK
        if outcome is None:  # mount not usable: not touched, the classifier judges by state
            facts.extend(LinkFacts(p, link, m, t, full, mount) for p, t, full, m in records)
            return
        if isinstance(outcome, MountUnavailable):
            facts.extend(LinkFacts(p, link, m, t, full, mount, None, True)
                         for p, t, full, m in records)
            return
        if isinstance(outcome, OSError):
            code = outcome.errno
            facts.extend(LinkFacts(p, link, m, t, full, mount, code)
                         for p, t, full, m in records)
            return
        cut = len(parent) + 1 if parent != "/" else 1
        sized: list[Record] = []
        files: list[Record] = []
        folders: list[Record] = []
        want = self.size_wanted
        for record in records:
            kind = outcome.get(record[2][cut:])
            if kind == _FILE:
                if want is not None and want(record[0]):
                    sized.append(record)
                else:
                    files.append(record)
            elif kind == _DIR:
                folders.append(record)
            elif kind is None:
                path, target, full, mtime = record
                facts.append(LinkFacts(path, link, mtime, target, full, mount, errno.ENOENT))
            else:
                facts.append(self._chain(record))
        sink = self.healthy
        if sink is not None and mount is not None:
            files = sink(mount, files, False) if files else files
            folders = sink(mount, folders, True) if folders else folders
        facts.extend(LinkFacts(p, link, m, t, full, mount) for p, t, full, m in files)
        facts.extend(LinkFacts(p, link, m, t, full, mount, target_is_dir=True)
                     for p, t, full, m in folders)
        if sized:
            self._emit_sized(parent, mount, sized)

    def _emit_sized(self, parent: str, mount: str | None,
                    sized: list[Record]) -> None:
        gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
        names = [_split(full)[1] for _p, _t, full, _m in sized]
        try:
            sizes: list[int | OSError] | MountUnavailable = gate.call(_sizes, parent, names)
        except MountUnavailable as exc:
            sizes = exc
        for i, (path, target, full, mtime) in enumerate(sized):
            got = sizes if isinstance(sizes, MountUnavailable) else sizes[i]
            if isinstance(got, MountUnavailable):
                fact = LinkFacts(path, EntryKind.SYMLINK, mtime, target, full, mount,
                                 timed_out=True)
            elif isinstance(got, OSError):
                fact = LinkFacts(path, EntryKind.SYMLINK, mtime, target, full, mount, got.errno)
            else:
                fact = LinkFacts(path, EntryKind.SYMLINK, mtime, target, full, mount,
                                 target_size=got)
            self.out.append(fact)

    def _chain(self, record: Record) -> LinkFacts:
        """Follow a target that is itself a symlink, hop by hop (rare: one gate call per hop)."""
        path, target, full, mtime = record
        hops: list[str] = []
        seen = {path}
        current = full
        for _ in range(_MAX_HOPS):
            parent, name = _split(current)
            mount = self._mount_of(parent)
            if current in seen:
                return LinkFacts(path, EntryKind.SYMLINK, mtime, target, current, mount,
                                 loop=True, chain=tuple(hops))
            seen.add(current)
            if not self._usable(mount):
                return LinkFacts(path, EntryKind.SYMLINK, mtime, target, current, mount,
                                 chain=tuple(hops))
            mount, outcome = self._listing_for_chain(parent, mount)
            base = LinkFacts(path, EntryKind.SYMLINK, mtime, target, current, mount,
                             chain=tuple(hops))
            if outcome is None:
                return base
            if isinstance(outcome, MountUnavailable):
                return replace(base, timed_out=True)
            if isinstance(outcome, OSError):
                return replace(base, errno=outcome.errno)
            kind = outcome.get(name)
            if kind is None:
                return replace(base, errno=errno.ENOENT)
            if kind == _DIR:
                return replace(base, target_is_dir=True)
            if kind == _FILE:
                return base
            gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
            try:
                nxt = gate.call(os.readlink, current)
            except MountUnavailable:
                return replace(base, timed_out=True)
            except OSError as exc:
                return replace(base, errno=exc.errno)
            hops.append(current)
            current = _absolute(parent, nxt)
        return LinkFacts(path, EntryKind.SYMLINK, mtime, target, current,
                         self._mount_of(_split(current)[0]), loop=True, chain=tuple(hops))

    def _listing_for_chain(self, parent: str,
                           mount: str | None) -> tuple[str | None, Outcome | None]:
        cached = self.chain_listings.get(parent)
        if cached is None:
            cached = self._collect(parent, mount, self._submit(parent, mount))
            self.chain_listings[parent] = cached
        return cached
