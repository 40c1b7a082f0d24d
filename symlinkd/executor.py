"""The only code that changes the farm. Dry-run is decided here and nowhere else.

Per action: the link's mount(s) must still be ``ok`` (invariant 1); the link is read again
(``lstat`` + ``readlink``) and left alone if another writer (rdt-client, Riven) changed it since
the scan; the journal entry is committed *before* acting (invariant 6); a relink is a temporary
link in the same directory moved over the old one with ``os.replace`` (invariant 7); a prune
moves the link into ``quarantine_dir/<run_id>/<path in the farm>``; only directories this run
emptied are removed (invariant 8), each journaled with its mtime so undo recreates it.

A relinked link keeps the old link's mtime (and owner): the age policy counts from when the
release entered the library, and a repair must neither extend nor reset that.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from symlinkd.containment import TMP_PREFIX, Area, OutsideZone, Zone
from symlinkd.journal import JournalAction, JournalState
from symlinkd.linkops import describe_os_error, discard_link, move_link, place_link, signals_held
from symlinkd.model import (
    ActionKind,
    MountState,
    Outcome,
    OutcomeResult,
    PlannedAction,
    Prune,
    Relink,
)
from symlinkd.mounts import MountMonitor
from symlinkd.planner import Plan
from symlinkd.recovery import recover_pending
from symlinkd.state import StateDB

__all__ = ["TMP_PREFIX", "Executor", "MountRecheck", "describe_os_error", "move_link",
           "place_link", "signals_held"]

_MTIME_SLACK = 1e-3  # seconds; the scanner's float mtime vs a fresh lstat of the same inode


class _Changed(Exception):
    """The link is not what the scan saw; leave it alone."""


@dataclass(frozen=True, slots=True)
class _Seen:
    target: str
    st: os.stat_result


class Executor:
    def __init__(
        self,
        state: StateDB,
        farm: str,
        quarantine_dir: str,
        *,
        dry_run: bool,
        mounts_ok: Callable[[str], bool],
        stop: threading.Event | None = None,
        mount_of: Callable[[str], str | None] | None = None,
        zone: Zone | None = None,
    ) -> None:
        self.state = state
        self.farm = os.path.normpath(farm)
        self.quarantine_dir = os.path.normpath(quarantine_dir)
        # Invariant 10: every path written, renamed or deleted passes this one rule. The
        # runtime's zone also fences off the state dir and the mounts.
        self.zone = zone if zone is not None else Zone(self.farm, self.quarantine_dir)
        self.dry_run = dry_run
        self.mounts_ok = mounts_ok
        self.stop = stop
        self.mount_of = mount_of  # a relink's new target -> its mount name, re-checked too
        # Each folder's stat before this run first changed it: a folder we empty and remove is
        # journaled with the mtime it had before the run, so undo restores that one.
        self._folder_before: dict[str, os.stat_result] = {}
        # Set when the state database refuses a journal write (a full or read-only disk): no
        # further action starts, since none could be journaled first (invariant 6).
        self._journal_broken: str | None = None

    def _before(self, folder: str) -> os.stat_result:
        st = self._folder_before.get(folder)
        if st is None:
            st = self._folder_before[folder] = os.stat(folder)
        return st

    def execute(self, plan: Plan, run_id: str) -> list[Outcome]:
        """Outcomes of the plan's relinks and prunes, in plan order (keeps and skips do
        nothing and have none). Entries a crash left pending are settled first."""
        if not self.dry_run:
            recover_pending(self.state, self.zone)
        self._folder_before.clear()
        outcomes: list[Outcome] = []
        for planned in plan.actions:
            if planned.action.kind not in (ActionKind.RELINK, ActionKind.PRUNE):
                continue
            if self.stop is not None and self.stop.is_set():
                outcomes.append(Outcome(planned, OutcomeResult.SKIPPED,
                                        "not started: symlinkd is stopping"))
                continue
            if self._journal_broken is not None:
                outcomes.append(Outcome(planned, OutcomeResult.SKIPPED,
                                        "not started: the journal cannot be written "
                                        f"({self._journal_broken})"))
                continue
            outcomes.append(self._one(planned, run_id))
        if self.dry_run:
            outcomes = self._predict_emptied(outcomes)
        return outcomes

    def _predict_emptied(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Dry run: name the folders ``--apply`` would remove because its prunes empty them,
        on the last prune in each, so the dry run says exactly what the real run would do."""
        leaving: dict[str, set[str]] = {}  # folder -> entries this run would take out of it
        last: dict[str, int] = {}  # folder -> index of the outcome that would empty it
        for index, outcome in enumerate(outcomes):
            if outcome.planned.action.kind is ActionKind.PRUNE:
                folder, name = os.path.split(outcome.planned.path)
                leaving.setdefault(folder, set()).add(name)
                last[folder] = index
        notes: dict[int, list[str]] = {}
        emptied: set[str] = set()
        for start in sorted(leaving, key=len, reverse=True):  # deepest first: cascade upward
            current = start
            while current != self.farm and current.startswith(self.farm + os.sep):
                if current not in emptied:
                    try:
                        if not set(os.listdir(current)) <= leaving.get(current, set()):
                            break
                    except OSError:
                        break
                    emptied.add(current)
                    notes.setdefault(last[current], []).append(current)
                parent, name = os.path.split(current)
                leaving.setdefault(parent, set()).add(name)
                last[parent] = max(last.get(parent, last[current]), last[current])
                current = parent
        for index, folders in notes.items():
            outcome = outcomes[index]
            listed = ", ".join(map(repr, dict.fromkeys(folders)))
            outcomes[index] = Outcome(outcome.planned, outcome.result,
                                      f"{outcome.message}; would remove emptied folders: {listed}")
        return outcomes

    def _one(self, planned: PlannedAction, run_id: str) -> Outcome:
        action = planned.action
        try:
            # The quarantine path is the link's path relative to the farm: never let "../"
            # or a folder symlink carry a change outside it, whatever a caller put in the plan.
            self.zone.check(planned.path, Area.FARM)
        except OutsideZone as why:
            return Outcome(planned, OutcomeResult.SKIPPED,
                           f"not inside the farm ({why}); left alone")
        if self.dry_run:
            return Outcome(planned, OutcomeResult.DRY_RUN, self._would(planned, run_id))
        for name in self._mounts(planned):
            if not self.mounts_ok(name):
                return Outcome(planned, OutcomeResult.SKIPPED,
                               f"mount {name!r} is no longer ok; left alone")
        try:
            seen = self._reread(planned)
        except _Changed as changed:
            return Outcome(planned, OutcomeResult.SKIPPED, f"changed since the scan: {changed}")
        try:
            with signals_held():
                if isinstance(action, Relink):
                    return self._relink(planned, action, seen, run_id)
                if isinstance(action, Prune):
                    return self._prune(planned, seen, run_id)
        except sqlite3.Error as exc:
            # No journal entry, no change: invariant 6 outranks finishing the pass.
            self._journal_broken = str(exc)
            return Outcome(planned, OutcomeResult.FAILED,
                           f"journal write failed, nothing changed: {exc}")
        raise AssertionError(f"not a mutating action: {action!r}")

    def _would(self, planned: PlannedAction, run_id: str) -> str:
        action = planned.action
        if isinstance(action, Relink):
            return (f"would relink {planned.path!r}: {planned.judgement.facts.target!r} -> "
                    f"{action.new_target!r} (dry run; not actually changed)")
        return (f"would move {planned.path!r} to {self._quarantine_path(planned.path, run_id)!r}"
                " (dry run; not actually moved)")

    def _mounts(self, planned: PlannedAction) -> list[str]:
        names = [planned.judgement.facts.mount] if planned.judgement.facts.mount else []
        action = planned.action
        if isinstance(action, Relink) and self.mount_of is not None:
            names.append(self.mount_of(action.new_target) or f"<none: {action.new_target}>")
        return names

    def _reread(self, planned: PlannedAction) -> _Seen:
        facts = planned.judgement.facts
        try:
            st = os.lstat(facts.path)
            if not stat.S_ISLNK(st.st_mode):
                raise _Changed("no longer a symlink")
            target = os.readlink(facts.path)
        except FileNotFoundError:
            raise _Changed("gone") from None
        except OSError as exc:
            raise _Changed(describe_os_error(exc)) from None
        if target != facts.target:
            raise _Changed(f"now points to {target!r}")
        if abs(st.st_mtime - facts.link_mtime) > _MTIME_SLACK:
            raise _Changed("rewritten (its mtime moved)")
        return _Seen(target, st)

    def _relink(self, planned: PlannedAction, action: Relink, seen: _Seen,
                run_id: str) -> Outcome:
        path = planned.path
        tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + secrets.token_hex(6))
        seq = self.state.journal_begin(
            run_id, path, JournalAction.RELINK, old_target=seen.target,
            old_mtime_ns=seen.st.st_mtime_ns, new_target=action.new_target, tmp_path=tmp,
            old_uid=seen.st.st_uid, old_gid=seen.st.st_gid,
        )
        try:
            place_link(tmp, action.new_target, seen.st)
            os.replace(tmp, path)
        except OSError as exc:
            discard_link(tmp)
            message = describe_os_error(exc)
            self.state.journal_mark(run_id, seq, JournalState.FAILED, message)
            return Outcome(planned, OutcomeResult.FAILED, message)
        note = self._mark_done(run_id, seq)
        return Outcome(planned, OutcomeResult.DONE,
                       f"relinked: {seen.target!r} -> {action.new_target!r}{note}")

    def _mark_done(self, run_id: str, seq: int) -> str:
        """Mark a finished action done; if the journal refuses, the change stands (the entry
        stays pending and the next run settles it from the farm) and the outcome says so."""
        try:
            self.state.journal_mark(run_id, seq, JournalState.DONE)
        except sqlite3.Error as exc:
            self._journal_broken = str(exc)
            return (f"; the journal could not mark it done ({exc}): the next run settles "
                    "the entry")
        return ""

    def _quarantine_path(self, path: str, run_id: str) -> str:
        return os.path.join(self.quarantine_dir, run_id, os.path.relpath(path, self.farm))

    def _prune(self, planned: PlannedAction, seen: _Seen, run_id: str) -> Outcome:
        path = planned.path
        if self.zone.quarantine_inside_farm():
            # Config validation refuses this too; a quarantine the scanner walks would be
            # judged, and pruned into itself, on the next pass (also through a symlink).
            return Outcome(planned, OutcomeResult.FAILED,
                           f"quarantine_dir {self.quarantine_dir!r} is inside the farm; "
                           "not moving links there")
        parent = os.path.dirname(path)
        qpath = self._quarantine_path(path, run_id)
        try:
            self.zone.check(qpath, Area.QUARANTINE,
                            under=os.path.join(self.quarantine_dir, run_id))
        except OutsideZone as why:
            return Outcome(planned, OutcomeResult.FAILED,
                           f"quarantine path {qpath!r} refused ({why}); link left in place")
        seq = self.state.journal_begin(
            run_id, path, JournalAction.PRUNE, old_target=seen.target,
            old_mtime_ns=seen.st.st_mtime_ns, quarantine_path=qpath,
            old_uid=seen.st.st_uid, old_gid=seen.st.st_gid,
        )
        try:
            parent_before = self._before(parent)
            os.makedirs(os.path.dirname(qpath), exist_ok=True)
            move_link(path, qpath, seen.target, seen.st)
        except OSError as exc:
            message = describe_os_error(exc)
            self.state.journal_mark(run_id, seq, JournalState.FAILED, message)
            return Outcome(planned, OutcomeResult.FAILED, message)
        note = self._mark_done(run_id, seq)
        removed = self._remove_emptied(parent, parent_before, run_id) if not note else []
        if removed:
            note = f"; removed emptied folders: {', '.join(map(repr, removed))}"
        return Outcome(planned, OutcomeResult.DONE, f"moved to quarantine {qpath!r}{note}")

    def _remove_emptied(self, directory: str, before: os.stat_result, run_id: str) -> list[str]:
        """Remove ``directory`` and then its parents while each is empty because of this run
        (it held the link just pruned). Never the farm root, never outside the farm."""
        removed: list[str] = []
        while directory != self.farm and directory.startswith(self.farm + os.sep):
            if not self.zone.allows(directory, Area.FARM):
                break
            try:
                if os.listdir(directory):
                    break
                parent = os.path.dirname(directory)
                parent_before = self._before(parent)
            except OSError:
                break
            try:
                seq = self.state.journal_begin(
                    run_id, directory, JournalAction.RMDIR, old_mtime_ns=before.st_mtime_ns,
                    old_uid=before.st_uid, old_gid=before.st_gid,
                    old_mode=stat.S_IMODE(before.st_mode),
                )
            except sqlite3.Error as exc:
                self._journal_broken = str(exc)  # no entry, no rmdir: the folder stays
                break
            try:
                os.rmdir(directory)  # ENOTEMPTY if a writer put something there meanwhile
            except OSError as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.state.journal_mark(run_id, seq, JournalState.FAILED,
                                            describe_os_error(exc))
                break
            if self._mark_done(run_id, seq):
                removed.append(directory)
                break
            removed.append(directory)
            directory, before = parent, parent_before
        return removed


class MountRecheck:
    """A ``mounts_ok`` for the executor that keeps looking: a mount counts as ok only if it was
    ok when the plan was made, its gate has not timed out since, and a fresh probe (all mounts
    at once, bounded by ``probe_seconds``, at most every ``interval`` seconds) still says ok.
    A mount found not ok stays not ok for the rest of the pass."""

    def __init__(self, monitor: MountMonitor, planned: Mapping[str, MountState], *,
                 interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        self.interval = interval
        self.clock = clock
        self._bad = {name for name, state in planned.items() if not state.up}
        self._known = set(planned)
        self._last = clock()

    def __call__(self, name: str) -> bool:
        if name not in self._known or name in self._bad:
            return False
        if self.monitor.gate(name).hung:
            self._bad.add(name)
            return False
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._bad.update(n for n, st in self.monitor.probe().items() if not st.up)
        return name not in self._bad
