"""Where did a dangling link's file go? Candidates for relinking, found through the mount gates.

Tried in order, per dangling link:

a. the same path under another top-level folder of a configured mount — Zurg's ``__all__`` vs
   its group folders, TorBox's ``torrents`` vs ``usenet``, Zurg vs TorBox for the same release.
   Mount order is relink preference, the anchor folder first: the first hit wins (the same
   relative path *is* the same release).
b. the same file name with the size remembered from when the link was healthy, anywhere in the
   ``ok`` mounts (Zurg renames torrent folders after repairs; mount paths get migrated). The
   index is built lazily, only for names (a) left unsolved, by walking the mounts through their
   gates. Hits that are one file seen through two folders of a mount collapse to one; otherwise
   more than one hit is ambiguous and all are returned (the planner skips and reports them).

Every filesystem call goes through ``MountMonitor.gate(name)`` with the op timeout, so a mount
that hangs now costs at most its timeouts; a walk cut short by a timeout yields no (b)
candidates at all (an unwalked corner could have made a hit ambiguous).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from symlinkd.errors import MountUnavailable
from symlinkd.freshen import ListingRefresher
from symlinkd.model import Judgement, LinkHistory, MountState
from symlinkd.mounts import MountMonitor
from symlinkd.settings import MountSettings

log = structlog.get_logger("symlinkd.relink")

INDEX_BUDGET_SECONDS = 600.0  # a whole-mount walk for (b) gives up after this long


@dataclass(slots=True)
class _Listings:
    """Names in a directory, listed once per pass through the mount's gate."""

    monitor: MountMonitor
    refresher: ListingRefresher | None = None
    cache: dict[str, frozenset[str] | None] = field(default_factory=dict)
    hung: set[str] = field(default_factory=set)

    def names(self, mount: str, directory: str, want: str | None = None) -> frozenset[str] | None:
        """Names in ``directory``; when ``want`` is not among them, the folder is refreshed
        through rclone's rc (once a pass, within budget) and listed again before "not here"."""
        listed = self._names(mount, directory)
        if (want is not None and listed is not None and want not in listed
                and self.refresher is not None and not self.refresher.done(directory)
                and self.refresher.refresh(mount, [directory])):
            del self.cache[directory]
            listed = self._names(mount, directory)
        return listed

    def _names(self, mount: str, directory: str) -> frozenset[str] | None:
        if directory in self.cache:
            return self.cache[directory]
        if mount in self.hung:
            return None
        try:
            listed: frozenset[str] | None = frozenset(
                self.monitor.gate(mount).call(os.listdir, directory)
            )
        except MountUnavailable:
            self.hung.add(mount)
            listed = None
        except OSError:
            listed = frozenset()  # ENOENT/ENOTDIR: no such folder there, so no candidate
        self.cache[directory] = listed
        return listed


def find_candidates(
    dangling: Sequence[Judgement],
    histories: Mapping[str, LinkHistory],
    monitor: MountMonitor,
    mounts: Mapping[str, MountState],
    refresher: ListingRefresher | None = None,
) -> dict[str, list[str]]:
    """Relink candidates per dangling link path (absolute target paths). Links with none are
    absent from the result. With a ``refresher``, folders are refreshed through rclone's rc
    before the search concludes a file is not in them."""
    ok = [m for m in monitor.mounts if m.name in mounts and mounts[m.name].up]
    if not ok or not dangling:
        return {}
    listings = _Listings(monitor, refresher)
    if refresher is not None:
        for m in ok:  # a renamed torrent folder shows first in the mount's top listings
            refresher.refresh(m.name, [m.path, *([m.anchor_path] if m.anchor else [])])
    tops = {m.name: _top_folders(m, listings) for m in ok}
    found: dict[str, list[str]] = {}
    unsolved: list[tuple[Judgement, str]] = []
    for j in dangling:
        gone = _target_path(j)
        if gone is None:
            continue
        hit = _same_relative_path(
            j, gone, ok=ok, tops=tops, monitor=monitor, listings=listings
        )
        if hit is not None:
            found[j.facts.path] = [hit]
        else:
            unsolved.append((j, gone))
    found.update(_by_name(unsolved, histories, ok=ok, tops=tops, monitor=monitor,
                          refresher=refresher))
    return found


def _by_name(
    unsolved: Sequence[tuple[Judgement, str]],
    histories: Mapping[str, LinkHistory],
    *,
    ok: Sequence[MountSettings],
    tops: Mapping[str, Sequence[str]],
    monitor: MountMonitor,
    refresher: ListingRefresher | None,
) -> dict[str, list[str]]:
    """(b): same name and remembered size anywhere in the ok mounts."""
    by_name: dict[str, list[tuple[str, int]]] = {}
    for j, gone in unsolved:
        history = histories.get(j.facts.path)
        if history is not None and history.last_size is not None:
            by_name.setdefault(os.path.basename(gone), []).append((j.facts.path, history.last_size))
    found: dict[str, list[str]] = {}
    if not by_name:
        return found
    index = _index_by_name(ok, set(by_name), monitor, refresher)
    if index is None:
        return found
    for name, links in by_name.items():
        for link, size in links:
            hits = _dedupe([p for p, s in index.get(name, ()) if s == size], ok, tops)
            if hits:
                found[link] = hits
    return found


def _target_path(j: Judgement) -> str | None:
    facts = j.facts
    if facts.resolved:
        return os.path.normpath(facts.resolved)
    if facts.target is None:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(facts.path), facts.target))


def _top_folders(mount: MountSettings, listings: _Listings) -> list[str]:
    """The mount's top-level folders, the anchor first (``""`` stands for the mount root)."""
    names = listings.names(mount.name, mount.path) or frozenset()
    rest = sorted(n for n in names if n != mount.anchor and not n.startswith("."))
    return [mount.anchor, *rest] if mount.anchor else ["", *rest]


def _split(path: str, mount: MountSettings) -> tuple[str, str] | None:
    """``path`` as (top-level folder, the rest) under ``mount``; ``None`` when outside it."""
    root = os.path.normpath(mount.path)
    if not path.startswith(root.rstrip("/") + "/"):
        return None
    rel = path[len(root.rstrip("/")) + 1 :]
    top, _, tail = rel.partition("/")
    return (top, tail) if tail else ("", rel)


def _same_relative_path(
    j: Judgement,
    gone: str,
    *,
    ok: Sequence[MountSettings],
    tops: Mapping[str, Sequence[str]],
    monitor: MountMonitor,
    listings: _Listings,
) -> str | None:
    source = monitor.mount_for(gone)
    if source is None:
        return None
    split = _split(gone, source)
    if split is None:
        return None
    _, tail = split
    for mount in ok:
        for top in tops[mount.name]:
            candidate = os.path.join(mount.path, top, tail) if top else os.path.join(
                mount.path, tail
            )
            candidate = os.path.normpath(candidate)
            if candidate == gone:
                continue
            names = listings.names(mount.name, os.path.dirname(candidate),
                                   os.path.basename(candidate))
            if names is not None and os.path.basename(candidate) in names:
                log.debug("relink candidate by path", link=j.facts.path, candidate=candidate)
                return candidate
    return None


def _list_for_index(
    directory: str, wanted: frozenset[str]
) -> tuple[list[str], list[tuple[str, int]]]:
    """One directory: its sub-directories, and (path, size) of entries with a wanted name.
    Runs on a gate worker; never follows symlinks inside the mount."""
    subdirs: list[str] = []
    hits: list[tuple[str, int]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            elif entry.name in wanted and entry.is_file(follow_symlinks=False):
                hits.append((entry.path, entry.stat(follow_symlinks=False).st_size))
    return subdirs, hits


def _index_by_name(
    ok: Sequence[MountSettings], wanted: set[str], monitor: MountMonitor,
    refresher: ListingRefresher | None = None,
) -> dict[str, list[tuple[str, int]]] | None:
    """name -> [(path, size)] for the wanted names in every ok mount; ``None`` when a walk was
    cut short (a timeout, the budget), because then a hit might not be the only one."""
    names = frozenset(wanted)
    index: dict[str, list[tuple[str, int]]] = {}
    deadline = time.monotonic() + INDEX_BUDGET_SECONDS
    for mount in ok:
        gate = monitor.gate(mount.name)
        frontier = [mount.path]
        while frontier:
            if time.monotonic() > deadline:
                log.warning("relink index budget spent; no by-name candidates", mount=mount.name)
                return None
            if refresher is not None:
                refresher.refresh(mount.name, frontier)
            # Keep the whole level in flight: the gate's workers list folders in parallel.
            futures = [(d, gate.submit(_list_for_index, d, names)) for d in frontier]
            frontier = []
            for directory, future in futures:
                try:
                    subdirs, hits = gate.wait(future)
                except MountUnavailable as exc:
                    log.warning("relink index walk cut short", mount=mount.name, error=str(exc))
                    return None
                except OSError as exc:
                    # A folder that vanished or cannot be read mid-walk: its files are unknown.
                    log.warning("relink index walk incomplete", directory=directory,
                                error=str(exc))
                    return None
                frontier.extend(subdirs)
                for path, size in hits:
                    index.setdefault(os.path.basename(path), []).append((path, size))
    return index


def _dedupe(
    paths: Sequence[str], ok: Sequence[MountSettings], tops: Mapping[str, Sequence[str]]
) -> list[str]:
    """Collapse hits that are one release seen through several top-level folders or mounts
    (same path below the top-level folder), keeping the preferred one: mount order, then the
    anchor folder, then the other folders by name."""

    def rank(path: str) -> tuple[int, int, str]:
        for m_index, mount in enumerate(ok):
            split = _split(path, mount)
            if split is not None:
                order = list(tops[mount.name])
                top = split[0]
                return (m_index, order.index(top) if top in order else len(order), path)
        return (len(ok), 0, path)

    chosen: dict[str, str] = {}
    for path in sorted(paths, key=rank):
        key = path
        for mount in ok:
            split = _split(path, mount)
            if split is not None:
                key = split[1]
                break
        chosen.setdefault(key, path)
    return list(chosen.values())
