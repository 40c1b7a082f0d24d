"""Coalescing: many link changes from one pass become few requests. Pure functions, no I/O.

A pass that relinks 500 episodes of one series touches a handful of season folders; the
servers are asked about those folders once each, and a library with more changed folders
than ``max_paths_per_section`` is refreshed at its root instead (one request, no storm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from symlinkd.notifiers.base import Change, ChangeKind
from symlinkd.notifiers.pathmap import PathMap, covering


@dataclass(frozen=True, slots=True)
class FolderChange:
    """A changed folder in the server's view, with how it changed (for Jellyfin's
    ``UpdateType``): a folder link created or relinked keeps its kind, a folder whose entries
    changed is "modified"."""

    folder: str
    kind: ChangeKind


def changed_folders(changes: Iterable[Change], path_map: PathMap) -> list[FolderChange]:
    """One entry per distinct folder, in first-seen order, mapped into the server's view."""
    kinds: dict[str, set[ChangeKind]] = {}
    for change in changes:
        folder = path_map.to_server(change.folder)
        kind = change.kind if folder == path_map.to_server(change.path) else ChangeKind.MODIFIED
        kinds.setdefault(folder, set()).add(kind)
    return [
        FolderChange(folder, next(iter(seen)) if len(seen) == 1 else ChangeKind.MODIFIED)
        for folder, seen in kinds.items()
    ]


@dataclass(frozen=True, slots=True)
class LibraryScan:
    """Scan ``path`` in library ``library`` (a Plex section key, a Jellyfin folder name)."""

    library: str
    path: str
    kind: ChangeKind = ChangeKind.MODIFIED


@dataclass(slots=True)
class ScanBatch:
    scans: list[LibraryScan]
    unmapped: list[str]  # folders no library location covers


def plan_library_scans(
    folders: Sequence[FolderChange],
    libraries: Mapping[str, Sequence[str]],
    max_paths_per_library: int,
) -> ScanBatch:
    """Match each folder to every library whose location covers it (two libraries may share a
    location), then collapse a library with more than ``max_paths_per_library`` folders into
    one scan per location that holds changes."""
    per_library: dict[str, dict[str, list[FolderChange]]] = {}
    unmapped: list[str] = []
    for change in folders:
        matched = False
        for library, locations in libraries.items():
            location = covering(change.folder, locations)
            if location is not None:
                per_library.setdefault(library, {}).setdefault(location, []).append(change)
                matched = True
        if not matched:
            unmapped.append(change.folder)
    scans: list[LibraryScan] = []
    for library, by_location in per_library.items():
        total = sum(len(items) for items in by_location.values())
        if total > max_paths_per_library:
            scans.extend(LibraryScan(library, location) for location in by_location)
        else:
            scans.extend(LibraryScan(library, c.folder, c.kind)
                         for items in by_location.values() for c in items)
    return ScanBatch(scans=list(dict.fromkeys(scans)), unmapped=unmapped)


def group_by_owner(paths: Iterable[str], owners: Mapping[str, int]) -> dict[int, list[str]]:
    """Map each path to the id of the deepest owner folder covering it (a series or movie
    folder -> its id); paths no owner covers are left out."""
    grouped: dict[int, list[str]] = {}
    for path in paths:
        owner = covering(path, owners)
        if owner is not None:
            grouped.setdefault(owners[owner], []).append(path)
    return grouped
