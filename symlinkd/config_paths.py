"""How the farm, the state dir, the quarantine and the mounts may lie relative to each other,
judged on the paths as configured *and* as resolved (symlinks followed), so a quarantine reached
through a symlink into the farm is caught like one written there.

The rule, per pair (A "inside" B includes A equal to B unless said otherwise):

==================  ===================================================================
farm / mount        no overlap: the farm inside a mount is read-only; a mount inside the
                    farm would be walked as part of it
farm / state_dir    no overlap: media servers would see the database; a scan would walk it
farm / quarantine   no overlap: pruned links would be pruned again every pass
mount / mount       no overlap: a nested mount is walked twice, and a dead outer mount
                    hides the inner one (equal paths are the "duplicate mount path" problem)
state_dir / mount   no overlap: a FUSE mount is read-only, and a state dir holding a mount is
                    not symlinkd's own folder
quarantine / mount  no overlap: `quarantine purge` deletes what lies under the quarantine
                    (it would delete the remote's files); a mount is read-only
quarantine /        the quarantine may lie *inside* the state dir (the default,
state_dir           /config/symlinkd/quarantine) but not be it, nor contain it (a purge
                    would delete the database)
==================  ===================================================================

``resolve`` is the only I/O here and never looks at or into a mount: an ``lstat`` on a hung
FUSE mount would hang ``config check`` and a SIGHUP reload.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import combinations

Key = tuple[str | int, ...]

_MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup (ELOOP)


@dataclass(frozen=True, slots=True)
class Place:
    key: Key  # where the config says it: ("policy", "quarantine_dir")
    role: str  # "farm", "state", "quarantine" or "mount"
    path: str  # as configured, normalised
    real: str  # symlinks resolved (== path when nothing was a link)
    name: str = ""  # a mount's name


def inside(path: str, root: str) -> bool:
    """Component-wise: /mnt/media/zurg2 is not inside /mnt/media/zurg; a path is inside itself."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve(path: str, stop: Collection[str] = ()) -> str:
    """``os.path.realpath(path)`` that stops resolving at any path in ``stop`` (or below it) and
    appends the rest as written; a missing or unreadable component ends resolution the same
    way. ``path`` must be absolute and normalised."""
    done = "/"
    todo = [p for p in path.split("/") if p]
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            done = os.path.dirname(done)
            continue
        candidate = os.path.join(done, part)
        if any(inside(candidate, s) for s in stop):
            return os.path.normpath(os.path.join(candidate, *todo))
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
            target = os.readlink(candidate) if is_link else ""
        except OSError:  # missing, EACCES, ELOOP: what follows is taken as written
            return os.path.normpath(os.path.join(candidate, *todo))
        if not is_link:
            done = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            return os.path.normpath(os.path.join(candidate, *todo))
        if target.startswith("/"):
            done = "/"
        todo = [p for p in target.split("/") if p] + todo
    return done


def resolve_places(places: list[Place]) -> list[Place]:
    """``places`` with ``real`` filled in. Mounts first, each stopping at itself (its parent
    folders are resolved, never the FUSE mount); then the rest, stopping at every mount."""
    mounts = [p for p in places if p.role == "mount"]
    real_mounts = {p.key: resolve(p.path, stop=(p.path,)) for p in mounts}
    stops = {p.path for p in mounts} | set(real_mounts.values())
    return [
        Place(p.key, p.role, p.path, real_mounts[p.key] if p.key in real_mounts
              else resolve(p.path, stop=stops), p.name)
        for p in places
    ]


def relation_problems(places: list[Place]) -> Iterator[tuple[Key, str]]:
    """Every unsafe pair of ``places`` as (key, message), the key being the path to change."""
    for a, b in combinations(places, 2):
        if b.role == "farm" or (b.role == "mount" and a.role not in ("farm", "mount")):
            a, b = b, a  # noqa: PLW2901 - one order per pair keeps the table below short
        yield from _pair(a, b)


def _pair(a: Place, b: Place) -> Iterator[tuple[Key, str]]:
    roles = (a.role, b.role)
    if roles == ("farm", "mount"):
        if _rel(a, b, inside):
            yield a.key, (f"{_show(a, b)} lies inside mount {b.name!r} ({b.path}); the farm "
                          "must be outside every mount")
        elif _rel(b, a, inside):
            yield b.key, (f"{_show(b, a)} lies inside the farm ({a.path}); a mount inside the "
                          "farm would be walked as part of it")
    elif a.role == "farm":
        what = "the state database" if b.role == "state" else "quarantined links"
        if _rel(b, a, inside) or _rel(a, b, inside):
            yield b.key, (f"{_show(b, a)} overlaps the farm ({a.path}); {what} must live "
                          "outside it, where media servers never look")
    elif roles == ("mount", "mount"):
        yield from _mounts(a, b)
    elif a.role == "mount":
        yield from _near_mount(b, a)
    else:
        yield from _state_quarantine(*((a, b) if a.role == "state" else (b, a)))


def _mounts(a: Place, b: Place) -> Iterator[tuple[Key, str]]:
    if a.path == b.path:
        return  # the "duplicate mount path" problem, reported with the mounts
    for inner, outer in ((a, b), (b, a)):
        if _rel(inner, outer, inside):
            yield inner.key, (f"{_show(inner, outer)} lies inside mount {outer.name!r} "
                              f"({outer.path}); mounts must not nest (a dead outer mount hides "
                              "the inner one)")
            return


def _near_mount(p: Place, mount: Place) -> Iterator[tuple[Key, str]]:
    label = f"mount {mount.name!r} ({mount.path})"
    if _rel(p, mount, inside):
        what = "the state database" if p.role == "state" else "quarantined links"
        yield p.key, (f"{_show(p, mount)} lies inside {label}, a read-only FUSE mount; "
                      f"{what} cannot live there")
    elif _rel(mount, p, inside):
        why = ("`quarantine purge` deletes what lies under the quarantine" if p.role ==
               "quarantine" else "the state dir must be a folder of symlinkd's own")
        yield p.key, f"{_show(p, mount)} contains {label}; {why}"


def _state_quarantine(state: Place, quarantine: Place) -> Iterator[tuple[Key, str]]:
    if _rel(quarantine, state, lambda x, y: x == y):
        yield quarantine.key, (f"{_show(quarantine, state)} is the state dir; quarantined "
                               f"links need a folder of their own (e.g. {state.path}/quarantine)")
    elif _rel(state, quarantine, inside):
        yield quarantine.key, (f"{_show(quarantine, state)} contains the state dir "
                               f"({state.path}); `quarantine purge` would delete the state "
                               "database")


def _rel(a: Place, b: Place, test: Callable[[str, str], bool]) -> bool:
    """``test`` holds as configured or as resolved (either is enough to be unsafe)."""
    return test(a.path, b.path) or test(a.real, b.real)


def _show(p: Place, other: Place) -> str:
    """The path as configured, plus what it resolves to when only the resolved paths meet."""
    lexical_meets = inside(p.path, other.path) or inside(other.path, p.path)
    if p.real != p.path and not lexical_meets:
        return f"{p.path} (resolves to {p.real})"
    return p.path
