"""Phase 2 of a pass: resolve the walked links' targets and turn them into facts.

Each unique target parent folder is listed once, through the gate of the mount it lies in, a
few listings in flight at once, instead of one ``stat`` per link: on FUSE that is the
difference between minutes and seconds. Links into a mount that is not ``ok`` are not touched
at all. Before believing a target is gone under a mount with rclone rc, its parent is refreshed
(``vfs/refresh``) and listed again. A target that is itself a symlink is followed hop by hop.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from symlinkd.errors import MountUnavailable
from symlinkd.farmwalk import Record, absolute_target, split_path
from symlinkd.model import EntryKind, LinkFacts, MountHealth, ScanResult
from symlinkd.mounts import OUTSIDE, MountMonitor, MountTimeout
from symlinkd.rcmemo import RefreshMemo

_MAX_HOPS = 40  # the kernel's own limit on symlinks followed in one lookup (ELOOP)
_GONE = (errno.ENOENT, errno.ENOTDIR)
_FILE, _DIR, _LINK = 0, 1, 2
_WINDOW_PER_WORKER = 4  # listings in flight per gate worker while the caller consumes results
_BATCH = 2048  # facts per batch handed to the caller
_MANY = 64  # target folders per gate call while listings are fast
_FAST_LISTING = 0.002  # seconds a listing may take on average to count as fast
# A gate call stops listing once it has spent this long (after one listing at least): a mount
# that turns slow mid-batch hands back what it did, and the rest goes to new calls, so a call
# never outlasts op_seconds for want of splitting (the hang guarantee is per listing).
_CALL_BUDGET = 0.05

Listing = dict[str, int]  # name -> _FILE | _DIR | _LINK
# (mount, records whose target resolved, targets are folders, their targets' sizes when
# known) -> the records not taken
HealthySink = Callable[[str, list[Record], bool, list[int] | None], list[Record]]
Outcome = Listing | OSError | MountUnavailable
Sizes = dict[str, int | OSError]  # target name -> its size (or the stat's error)


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


def _timed(fn: Callable[[str], Any], parents: Sequence[str],
           wanted: Sequence[list[str] | None]) -> tuple[list[Any], list[Sizes | None], float]:
    """``fn`` of each parent (an ``OSError`` in place of a result), the sizes of its
    ``wanted`` names that are files in the listing (in the same hand-off to the gate: a first
    pass wants the size of every link), and the seconds it all took. Stops after
    ``_CALL_BUDGET`` seconds: the results are then for the first parents only."""
    started = time.monotonic()
    out: list[Any] = []
    sizes: list[Sizes | None] = []
    for parent, names in zip(parents, wanted, strict=True):
        if out and time.monotonic() - started > _CALL_BUDGET:
            break
        try:
            got = fn(parent)
        except OSError as exc:
            out.append(exc)
            sizes.append(None)
            continue
        out.append(got)
        if not names:
            sizes.append(None if names is None else {})  # {}: asked, nothing wanted
            continue
        listing: Listing = got[1] if isinstance(got, tuple) else got
        files = [name for name in names if listing.get(name) == _FILE]
        sizes.append(dict(zip(files, _sizes(parent, files), strict=True)))
    return out, sizes, time.monotonic() - started


def _sizes(parent: str, names: Sequence[str]) -> list[int | OSError]:
    out: list[int | OSError] = []
    for name in names:
        try:
            out.append(os.stat(f"{parent}/{name}").st_size)
        except OSError as exc:
            out.append(exc)
    return out


# (target folder, its mount, the records into it, its listing, sizes from the same gate call)
Listed = tuple[str, str | None, list[Record], Outcome | None, Sizes | None]


class TargetResolver:
    """Target folders listed, chains followed, facts made; ``result.mounts`` is updated with
    what the listings met (a gate that timed out -> hung, ENOTCONN -> down, rc refresh failing
    -> degraded)."""

    def __init__(self, monitor: MountMonitor, result: ScanResult, workers_per_mount: int,
                 size_wanted: Callable[[str], bool] | None,
                 healthy: HealthySink | None = None, *,
                 memo: RefreshMemo | None = None) -> None:
        self.monitor = monitor
        self.memo = memo  # None: every folder holding a missing target is refreshed
        self.result = result
        self.size_wanted = size_wanted
        self.healthy = healthy
        self.out: list[LinkFacts] = []  # facts not yet handed to the caller
        self.refreshed: set[str] = set()  # folders already refreshed through rc this pass
        self.parent_mount: dict[str, str | None] = {}
        self.chain_listings: dict[str, tuple[str | None, Outcome | None]] = {}
        self.window = max(1, workers_per_mount) * _WINDOW_PER_WORKER
        self.per_call = 1  # target folders listed per gate call (see _collect_many)

    # ---- listings of target folders, through the mounts' gates ------------------------------

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
        want = self.size_wanted
        wanted: list[list[str] | None] = []
        for parent, _m, records in batch:
            cut = len(parent) + 1 if parent != "/" else 1
            names = ([r[2][cut:] for r in records if want(r[0])] if want is not None
                     else None)
            wanted.append(names)
        if mount is None:
            return self.monitor.gate(OUTSIDE).submit(_timed, _real_listing, parents, wanted)
        return self.monitor.gate(mount).submit(_timed, list_dir, parents, wanted)

    def _collect_many(self, batch: list[tuple[str, str | None, list[Record]]],
                      future: Future[Any] | None,
                      groups: dict[str, list[Record]]) -> Iterator[Listed]:
        mount = batch[0][1]
        if future is None:
            for parent, _m, records in batch:
                yield parent, mount, records, None, None
            return
        gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
        try:
            results, sizes, seconds = gate.wait(future)
        except MountTimeout as exc:
            if mount is not None:
                self._mark(mount, MountHealth.HUNG, gate.hung_reason or str(exc))
            for parent, _m, records in batch:
                yield parent, mount, records, exc, None
            return
        # Listings that come back fast (local disk, a warm cache) go many to a gate call: the
        # hand-over to a worker thread cost more than the listing. Slow ones go one by one,
        # each with its own timeout and all the workers in parallel.
        done = len(results)
        self.per_call = _MANY if seconds / done < _FAST_LISTING else 1
        for parent, _m, records in batch[done:]:  # the call's time budget ran out first
            groups[parent] = records
        for (parent, _m, records), got, sized in zip(batch, results, sizes, strict=False):
            real_mount, outcome = self._outcome(parent, mount, got)
            yield parent, real_mount, records, outcome, sized

    def _mark(self, mount: str, health: MountHealth, detail: str) -> None:
        state = self.result.mounts.get(mount)
        if state is not None and state.health is MountHealth.OK:
            self.result.mounts[mount] = replace(state, health=health, detail=detail)

    # ---- one flush: list, refresh before believing "gone", list again ----------------------

    def flush(self, groups: dict[str, list[Record]],
              walked: list[LinkFacts]) -> Iterator[list[LinkFacts]]:
        """Resolve ``groups`` (target folder -> the links walked into it; emptied as it goes)
        and hand their facts on in batches, after ``walked`` (facts the walk already made)."""
        self.out = walked
        suspects: list[Listed] = []
        for listed in self._listings(groups):
            parent, mount, records, outcome, sizes = listed
            if parent not in self.refreshed and self._suspect(mount, records, outcome):
                suspects.append(listed)
            else:
                self._emit(parent, mount, records, outcome, sizes)
            if len(self.out) >= _BATCH:
                yield self._take()
        if suspects:
            due = self._due(suspects)
            for parent, mount, records, outcome, sizes in suspects:
                if parent not in due:  # a known dangling link, not due: the listing stands
                    self._emit(parent, mount, records, outcome, sizes)
            suspects = [s for s in suspects if s[0] in due]
            self._refresh([(p, m, r, isinstance(o, OSError))  # type: ignore[misc]
                           for p, m, r, o, _s in suspects])
            again = {parent: records for parent, _m, records, _o, _s in suspects}
            for parent, mount, records, outcome, sizes in self._listings(again):
                self._emit(parent, mount, records, outcome, sizes)
                if len(self.out) >= _BATCH:
                    yield self._take()
        if self.out:
            yield self._take()

    def _take(self) -> list[LinkFacts]:
        out = self.out
        self.out = []
        return out

    def _listings(self, groups: dict[str, list[Record]]) -> Iterator[Listed]:
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
            yield from self._collect_many(batch, future, groups)

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
        return any(split_path(full)[1] not in outcome for _p, _t, full, _m in records)

    def _due(self, suspects: list[Listed]) -> set[str]:
        """The suspect folders to refresh now (all of them without a memo)."""
        if self.memo is None:
            return {parent for parent, _m, _r, _o, _s in suspects}
        missing: list[tuple[str, list[str]]] = []
        for parent, _mount, records, outcome, _sizes in suspects:
            if isinstance(outcome, dict):
                cut = len(parent) + 1 if parent != "/" else 1
                links = [r[0] for r in records if r[2][cut:] not in outcome]
            else:  # the folder itself is missing: every link into it
                links = [r[0] for r in records]
            missing.append((parent, links))
        return self.memo.due(missing)

    def _refresh(self, suspects: list[tuple[str, str, list[Record], bool]]) -> None:
        by_mount: dict[str, set[str]] = {}
        for parent, mount, _records, parent_gone in suspects:
            dirs = by_mount.setdefault(mount, set())
            dirs.add(parent)
            if parent_gone:
                # A missing parent may be a renamed torrent folder: rclone only learns of the
                # new name by re-reading the folder above (often the big __all__: only then).
                dirs.add(split_path(parent)[0])
        for mount, dirs in by_mount.items():
            self.refreshed.update(dirs)
            root = os.path.normpath(self.monitor.settings(mount).path)
            wanted = sorted(d for d in dirs if d == root or d.startswith(root + "/"))
            try:
                self.monitor.refresh(mount, wanted)
            except MountUnavailable as exc:
                # Without a refresh "gone" cannot be told from "stale cache": do not trust it.
                self._mark(mount, MountHealth.DEGRADED, f"vfs/refresh failed: {exc}")
                continue
            if self.memo is not None:
                self.memo.refreshed(sorted(dirs))

    # ---- facts ------------------------------------------------------------------------------

    def _emit_unlisted(self, mount: str | None, records: list[Record],
                       outcome: MountUnavailable | OSError | None) -> None:
        facts = self.out
        link = EntryKind.SYMLINK
        if outcome is None:  # mount not usable: not touched, the classifier judges by state
            facts.extend(LinkFacts(p, link, m, t, full, mount) for p, t, full, m in records)
        elif isinstance(outcome, MountUnavailable):
            facts.extend(LinkFacts(p, link, m, t, full, mount, None, True)
                         for p, t, full, m in records)
        else:
            code = outcome.errno
            facts.extend(LinkFacts(p, link, m, t, full, mount, code)
                         for p, t, full, m in records)

    def _emit(self, parent: str, mount: str | None, records: list[Record],
              outcome: Outcome | None, sizes: Sizes | None = None) -> None:
        if outcome is None or isinstance(outcome, (MountUnavailable, OSError)):
            self._emit_unlisted(mount, records, outcome)
            return
        facts = self.out
        link = EntryKind.SYMLINK
        cut = len(parent) + 1 if parent != "/" else 1
        sized: list[Record] = []
        files: list[Record] = []
        folders: list[Record] = []
        known: list[Record] = []  # sized in the listing's own gate call
        known_sizes: list[int] = []
        want = self.size_wanted if sizes is None else None
        for record in records:
            name = record[2][cut:]
            kind = outcome.get(name)
            if kind == _FILE:
                got = sizes.get(name) if sizes is not None else None
                if got is None:
                    if want is not None and want(record[0]):
                        sized.append(record)
                    else:
                        files.append(record)
                elif isinstance(got, OSError):
                    path, target, full, mtime = record
                    facts.append(LinkFacts(path, link, mtime, target, full, mount, got.errno))
                else:
                    known.append(record)
                    known_sizes.append(got)
            elif kind == _DIR:
                folders.append(record)
            elif kind is None:
                path, target, full, mtime = record
                facts.append(LinkFacts(path, link, mtime, target, full, mount, errno.ENOENT))
            else:
                facts.append(self._chain(record))
        self._emit_healthy(mount, files, folders, known, known_sizes)
        if sized:
            self._emit_sized(parent, mount, sized)

    def _emit_healthy(self, mount: str | None, files: list[Record], folders: list[Record],
                      known: list[Record], known_sizes: list[int]) -> None:
        """Resolved links: the healthy sink takes what it only counts; the rest become facts."""
        sink = self.healthy
        if sink is not None and mount is not None:
            files = sink(mount, files, False, None) if files else files
            folders = sink(mount, folders, True, None) if folders else folders
            if known:
                size_of = {id(r): n for r, n in zip(known, known_sizes, strict=True)}
                rest = sink(mount, known, False, known_sizes)
                known_sizes = [size_of[id(r)] for r in rest]
                known = rest
        link = EntryKind.SYMLINK
        facts = self.out
        facts.extend(LinkFacts(p, link, m, t, full, mount, target_size=n)
                     for (p, t, full, m), n in zip(known, known_sizes, strict=True))
        facts.extend(LinkFacts(p, link, m, t, full, mount) for p, t, full, m in files)
        facts.extend(LinkFacts(p, link, m, t, full, mount, target_is_dir=True)
                     for p, t, full, m in folders)

    def _emit_sized(self, parent: str, mount: str | None,
                    sized: list[Record]) -> None:
        gate = self.monitor.gate(mount if mount is not None else OUTSIDE)
        names = [split_path(full)[1] for _p, _t, full, _m in sized]
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
            parent, name = split_path(current)
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
            current = absolute_target(parent, nxt)
        return LinkFacts(path, EntryKind.SYMLINK, mtime, target, current,
                         self._mount_of(split_path(current)[0]), loop=True, chain=tuple(hops))

    def _listing_for_chain(self, parent: str,
                           mount: str | None) -> tuple[str | None, Outcome | None]:
        cached = self.chain_listings.get(parent)
        if cached is None:
            cached = self._collect(parent, mount, self._submit(parent, mount))
            self.chain_listings[parent] = cached
        return cached
