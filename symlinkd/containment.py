"""The one containment rule (invariant 10): where symlinkd may write, rename or delete.

A path is acted on only if it is an absolute path without ``..`` or NUL whose *real* parent
directory (symlinks resolved) is the farm or the quarantine, or lies inside one of them (for the
quarantine: on the quarantine's own device, so a mount inside it is never touched), and never
on, below or above a configured mount or the state directory. The executor, undo, crash
recovery and quarantine purge all ask a ``Zone`` before acting, so a path that came from the
journal, a webhook or a plan is checked like any other input.

The answer is taken right before acting; a writer that swaps a folder for a symlink between
the check and the act can still win that race, which is why the check runs as late as it can.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from symlinkd.journal import JournalEntry
from symlinkd.settings import Settings

TMP_PREFIX = ".symlinkd-tmp-"  # the executor's and undo's temporary links
# StateDB.begin_run: UTC time + 6 hex digits. A quarantine folder of a run has exactly this name.
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


class Area(enum.StrEnum):
    FARM = "farm"
    QUARANTINE = "quarantine"


class OutsideZone(Exception):
    """A path symlinkd was asked to act on fails the containment rule. ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class _Root:
    path: str  # real path
    dev: int | None  # None while the root does not exist yet (a quarantine not made yet)


def _real(path: str) -> str:
    return os.path.realpath(path)


def _dev_of_nearest(path: str) -> int | None:
    """Device of ``path`` or of its nearest existing ancestor (a real path: no symlinks)."""
    current = path
    while True:
        try:
            return os.stat(current).st_dev
        except OSError:
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent


def _fence(path: str) -> str:
    """A mount or the state dir as a real path, resolving only its parent: the mount point
    itself is never statted (a hung FUSE mount would block right there)."""
    norm = os.path.normpath(path)
    return os.path.join(_real(os.path.dirname(norm)), os.path.basename(norm))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Zone:
    """The farm and the quarantine minus the state dir and the mounts, as real paths."""

    def __init__(self, farm: str, quarantine: str, *, forbidden: Iterable[str] = (),
                 state_dir: str | None = None) -> None:
        self.farm = os.path.normpath(farm)
        self.quarantine = os.path.normpath(quarantine)
        self._raw_forbidden = tuple(p for p in forbidden if p and "\0" not in p)
        self._raw_state = state_dir if state_dir and "\0" not in state_dir else None
        self._fenced: tuple[list[str], str | None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Zone:
        return cls(settings.farm, settings.policy.quarantine_dir,
                   forbidden=tuple(m.path for m in settings.mounts),
                   state_dir=settings.state_dir)

    def _fences(self, area: Area, root: str) -> list[str]:
        if self._fenced is None:
            # Resolved once per Zone (a pass, an undo, a purge): three realpaths per action
            # were a third of a 20k-relink apply. The configured mounts and state dir do not
            # move under a running pass; the areas' own roots are still resolved every call.
            self._fenced = ([_fence(raw) for raw in self._raw_forbidden],
                            _fence(self._raw_state) if self._raw_state is not None else None)
        mounts, state = self._fenced
        fences = list(mounts)
        # The documented default keeps the quarantine inside the state dir
        # (/config/symlinkd/quarantine): there the state dir fences off everything but the
        # quarantine itself (config refuses a quarantine equal to or holding the state dir).
        if state is not None and not (
                area is Area.QUARANTINE and root != state and _inside(root, state)):
            fences.append(state)
        return fences

    def _root(self, area: Area) -> _Root:
        # Resolved on every call: a quarantine made since, or a root swapped for a symlink,
        # is seen as it is now.
        real = _real(self.farm if area is Area.FARM else self.quarantine)
        return _Root(real, _dev_of_nearest(real))

    def quarantine_inside_farm(self) -> bool:
        """The real quarantine is the farm or lies inside it (directly or through a symlink)."""
        return _inside(_real(self.quarantine), _real(self.farm))

    def check(self, path: str, area: Area, *, under: str | None = None) -> str:
        """``path`` itself if symlinkd may act on it in ``area`` (with ``under``: only below
        that folder of the area); else raises ``OutsideZone`` saying why."""
        if not isinstance(path, str) or not path:
            raise OutsideZone("no path")
        if "\0" in path:
            raise OutsideZone("the path contains a NUL byte")
        if not os.path.isabs(path):
            raise OutsideZone("not an absolute path")
        parts = path.split(os.sep)
        if ".." in parts:
            raise OutsideZone("the path contains '..'")
        name = os.path.basename(os.path.normpath(path))
        if name in ("", ".", ".."):
            raise OutsideZone("the path names no entry")
        root = self._root(area)
        parent = _real(os.path.dirname(os.path.normpath(path)))
        if not _inside(parent, root.path):
            raise OutsideZone(f"its real folder {parent!r} is not inside the {area.value} "
                              f"{root.path!r}")
        if under is not None and not _inside(parent, _real(under)):
            raise OutsideZone(f"its real folder {parent!r} is not inside {under!r}")
        if area is Area.QUARANTINE and root.dev is not None \
                and _dev_of_nearest(parent) != root.dev:
            # Everything symlinkd puts in the quarantine sits on the quarantine's own device;
            # another device there is a mount. (The farm may span volumes: the configured
            # mounts and the state dir are its fences.)
            raise OutsideZone(f"its real folder {parent!r} is on another device than the "
                              f"{area.value} (a mount)")
        real_path = os.path.join(parent, name)
        for fence in self._fences(area, root.path):
            if _inside(real_path, fence):
                raise OutsideZone(f"it is on or below {fence!r} (a mount or the state dir)")
            if _inside(fence, real_path):
                raise OutsideZone(f"it holds {fence!r} (a mount or the state dir)")
        return path

    def allows(self, path: str, area: Area, *, under: str | None = None) -> bool:
        try:
            self.check(path, area, under=under)
        except OutsideZone:
            return False
        return True


def journal_refusal(zone: Zone, entry: JournalEntry) -> str | None:
    """Why a journal row must not be acted on (undo, crash recovery), or None when no target
    holds a NUL byte and every path in it passes the rule: ``path`` in the farm, its temporary
    link beside it, its quarantine copy inside the quarantine folder of its own run."""
    for name, target in (("old_target", entry.old_target), ("new_target", entry.new_target)):
        if target is not None and "\0" in target:
            # No link symlinkd made has one; acting on it would raise mid-undo, not refuse.
            return f"refused: {name} {target!r} contains a NUL byte; nothing touched"
    checks: list[tuple[str, str, Area, str | None]] = [("path", entry.path, Area.FARM, None)]
    if entry.tmp_path:
        if not os.path.basename(entry.tmp_path).startswith(TMP_PREFIX):
            return (f"refused: tmp_path {entry.tmp_path!r} is not a {TMP_PREFIX}* link; "
                    "nothing touched")
        checks.append(("tmp_path", entry.tmp_path, Area.FARM, os.path.dirname(entry.path)))
    if entry.quarantine_path:
        if not RUN_ID.fullmatch(entry.run_id):
            return f"refused: run id {entry.run_id!r} is not symlinkd's; nothing touched"
        checks.append(("quarantine_path", entry.quarantine_path, Area.QUARANTINE,
                       os.path.join(zone.quarantine, entry.run_id)))
    for name, path, area, under in checks:
        try:
            zone.check(path, area, under=under)
        except OutsideZone as why:
            return f"refused: {name} {path!r} fails the containment rule ({why}); nothing touched"
    return None
