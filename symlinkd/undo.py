"""Put every link a run changed back exactly as it was (target, mtime, owner), and the folders
it removed (with their mtime). The undo is itself a journaled run (``kind="undo"``).

Idempotent: entries already undone are skipped, and a link already back as it was counts as
restored. It never overwrites: a path that now holds something the run did not leave there is
reported as a conflict and left alone. A journal row that fails the containment rule (a path
outside the farm, a quarantine copy outside its run's folder) is refused whole and counted;
nothing is created, retargeted or deleted for it, and it is never marked undone.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
from dataclasses import dataclass, field

from symlinkd.containment import TMP_PREFIX, Area, Zone, journal_refusal
from symlinkd.journal import JournalAction, JournalEntry, JournalState
from symlinkd.linkops import describe_os_error, place_link, signals_held
from symlinkd.recovery import recover_pending
from symlinkd.state import StateDB


class UndoResult(enum.StrEnum):
    RESTORED = "restored"
    ALREADY = "already_restored"
    CONFLICT = "conflict"
    FAILED = "failed"
    REFUSED = "refused"  # the journal row fails the containment rule; nothing done for it


@dataclass(frozen=True, slots=True)
class UndoItem:
    path: str
    action: str
    result: UndoResult
    message: str = ""


@dataclass(slots=True)
class UndoReport:
    run_id: str  # the undo run (empty when nothing was left to undo)
    undo_of: str
    items: list[UndoItem] = field(default_factory=list)

    def tally(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item.result.value] = out.get(item.result.value, 0) + 1
        return out

    @property
    def clean(self) -> bool:
        return all(i.result in (UndoResult.RESTORED, UndoResult.ALREADY) for i in self.items)


_UNDOABLE = (JournalAction.RELINK, JournalAction.PRUNE, JournalAction.RMDIR)


def undo_run(state: StateDB, run_id: str, zone: Zone) -> UndoReport:
    """Undo ``run_id`` inside ``zone``. The caller holds the state lock. ``KeyError`` for an
    unknown run, ``ValueError`` for an undo run (undo is not redo)."""
    run = state.run(run_id)
    if run is None:
        raise KeyError(run_id)
    if run.kind == "undo":
        raise ValueError(f"{run_id} is itself an undo (of {run.undo_of}); it cannot be undone")
    recover_pending(state, zone)
    todo = [
        e for e in state.journal(run_id)
        if e.action in _UNDOABLE and e.state is JournalState.DONE
    ]
    if not todo:
        return UndoReport(run_id="", undo_of=run_id)
    undo_id = state.begin_run("undo", True, undo_of=run_id)
    report = UndoReport(run_id=undo_id, undo_of=run_id)
    folders = [e for e in reversed(todo) if e.action is JournalAction.RMDIR]  # parents first
    made: list[JournalEntry] = []
    refused = {e.seq: why for e in todo if (why := journal_refusal(zone, e)) is not None}
    for entry in folders:
        if entry.seq in refused:
            report.items.append(UndoItem(entry.path, "rmdir", UndoResult.REFUSED,
                                         refused[entry.seq]))
            continue
        with signals_held():
            item = _recreate_folder(state, undo_id, entry)
        report.items.append(item)
        if item.result is UndoResult.RESTORED:
            made.append(entry)
    for entry in reversed(todo):
        if entry.action is JournalAction.RMDIR:
            continue
        if entry.seq in refused:
            report.items.append(UndoItem(entry.path, entry.action.value, UndoResult.REFUSED,
                                         refused[entry.seq]))
            continue
        with signals_held():
            report.items.append(_restore_link(state, undo_id, entry, zone))
    for entry in reversed(made):  # deepest first; adding links above changed their mtimes
        if entry.old_mtime_ns is not None:
            with contextlib.suppress(OSError):
                os.utime(entry.path, ns=(entry.old_mtime_ns, entry.old_mtime_ns))
    # The admin undid these: the daemon must not redo them (symlinkd.holds).
    state.holds.record(
        (i.path for i in report.items
         if i.action != "rmdir" and i.result in (UndoResult.RESTORED, UndoResult.ALREADY)),
        run_id=undo_id, undo_of=run_id,
    )
    state.finish_run(undo_id, report.tally(), None)
    return report


def _recreate_folder(state: StateDB, undo_id: str, entry: JournalEntry) -> UndoItem:
    path = entry.path
    if os.path.isdir(path) and not os.path.islink(path):
        state.journal_mark(entry.run_id, entry.seq, JournalState.UNDONE, f"by {undo_id}")
        return UndoItem(path, "rmdir", UndoResult.ALREADY, "folder exists")
    if os.path.lexists(path):
        return UndoItem(path, "rmdir", UndoResult.CONFLICT,
                        "something that is not a folder now has this name; left alone")
    seq = state.journal_begin(undo_id, path, JournalAction.MKDIR,
                              old_mtime_ns=entry.old_mtime_ns, old_mode=entry.old_mode)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkdir(path, entry.old_mode if entry.old_mode is not None else 0o755)
        if entry.old_mode is not None:
            os.chmod(path, entry.old_mode)  # mkdir's mode is filtered by the umask
        if entry.old_uid is not None and entry.old_gid is not None and os.geteuid() == 0:
            os.chown(path, entry.old_uid, entry.old_gid)
    except OSError as exc:
        message = describe_os_error(exc)
        state.journal_mark(undo_id, seq, JournalState.FAILED, message)
        return UndoItem(path, "rmdir", UndoResult.FAILED, message)
    state.journal_mark(undo_id, seq, JournalState.DONE)
    state.journal_mark(entry.run_id, entry.seq, JournalState.UNDONE, f"by {undo_id}")
    return UndoItem(path, "rmdir", UndoResult.RESTORED)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _restore_link(state: StateDB, undo_id: str, entry: JournalEntry, zone: Zone) -> UndoItem:
    path, old = entry.path, entry.old_target
    action = entry.action.value
    if old is None or entry.old_mtime_ns is None:
        return UndoItem(path, action, UndoResult.FAILED, "journal entry lacks the old link")
    now = _readlink(path)
    there = os.path.lexists(path)
    if now == old:
        _drop_quarantine_copy(entry, zone)
        state.journal_mark(entry.run_id, entry.seq, JournalState.UNDONE, f"by {undo_id}")
        return UndoItem(path, action, UndoResult.ALREADY, "link already as it was")
    # What the run left at the path: the new target after a relink, nothing after a prune.
    expected_left = entry.new_target if entry.action is JournalAction.RELINK else None
    if there and (expected_left is None or now != expected_left):
        found = f"a link to {now!r}" if now is not None else "something that is not a symlink"
        return UndoItem(path, action, UndoResult.CONFLICT, f"path now holds {found}; left alone")
    if not there and expected_left is not None:
        return UndoItem(path, action, UndoResult.CONFLICT,
                        "the relinked link is gone (removed since); not recreated")
    tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + secrets.token_hex(6))
    if not zone.allows(tmp, Area.FARM):  # its folder passed the rule: only a race gets here
        return UndoItem(path, action, UndoResult.REFUSED,
                        "its folder no longer passes the containment rule; left alone")
    seq = state.journal_begin(
        undo_id, path, JournalAction.RESTORE, old_target=old, old_mtime_ns=entry.old_mtime_ns,
        new_target=now, tmp_path=tmp, old_uid=entry.old_uid, old_gid=entry.old_gid,
    )
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        place_link(tmp, old, mtime_ns=entry.old_mtime_ns, uid=entry.old_uid, gid=entry.old_gid)
        if there:
            os.replace(tmp, path)  # atomic swap back over the link this run made
        else:
            # A hard link of the finished temporary link fails with EEXIST if a writer took
            # the name meanwhile: never overwrite, and the mtime is right from the first instant.
            try:
                os.link(tmp, path, follow_symlinks=False)
            finally:
                os.unlink(tmp)
    except OSError as exc:
        with contextlib.suppress(OSError):
            if os.path.islink(tmp):
                os.unlink(tmp)
        message = describe_os_error(exc)
        state.journal_mark(undo_id, seq, JournalState.FAILED, message)
        result = UndoResult.CONFLICT if isinstance(exc, FileExistsError) else UndoResult.FAILED
        return UndoItem(path, action, result, message)
    state.journal_mark(undo_id, seq, JournalState.DONE)
    state.journal_mark(entry.run_id, entry.seq, JournalState.UNDONE, f"by {undo_id}")
    _drop_quarantine_copy(entry, zone)
    return UndoItem(path, action, UndoResult.RESTORED)


def _drop_quarantine_copy(entry: JournalEntry, zone: Zone) -> None:
    """The restored link's quarantine copy (and the folders that held only it) go away."""
    copy = entry.quarantine_path
    if not copy or not os.path.islink(copy) or _readlink(copy) != entry.old_target:
        return
    run_folder = os.path.join(zone.quarantine, entry.run_id)
    with contextlib.suppress(OSError):
        os.unlink(copy)
        folder = os.path.dirname(copy)
        # (journal_refusal put the copy below its run's folder; never climb past that)
        while (folder == run_folder or folder.startswith(run_folder + os.sep)) \
                and not os.listdir(folder):
            os.rmdir(folder)
            if folder == run_folder:
                break
            folder = os.path.dirname(folder)
