"""Settle journal entries a crash (kill -9, OOM, power) left ``pending``.

Each entry was committed before its action began, so the farm is in one of two states for it:
the action did not happen, or it did. Looking at the filesystem tells which; the entry is then
marked ``done`` or ``failed``, and the debris of a half-made action (a ``.symlinkd-tmp-*`` link,
a quarantine copy whose original still exists) is removed. After this the journal says exactly
what happened, and undo can trust it.

Paths in the journal are input like any other: a row that fails the containment rule (a journal
edited to point outside the farm) is marked ``failed`` with the reason, and nothing is touched.
"""

from __future__ import annotations

import os

from symlinkd.containment import Zone, journal_refusal
from symlinkd.journal import JournalAction, JournalEntry, JournalState, JournalStore


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _settle(entry: JournalEntry) -> tuple[JournalState, str]:
    action = entry.action
    if action is JournalAction.RELINK:
        if entry.tmp_path and os.path.islink(entry.tmp_path):
            os.unlink(entry.tmp_path)
        if _readlink(entry.path) == entry.new_target:
            return JournalState.DONE, "completed just before a crash"
        return JournalState.FAILED, "interrupted by a crash before the swap; link unchanged"
    if action is JournalAction.PRUNE:
        return _settle_prune(entry)
    if action is JournalAction.RMDIR:
        if os.path.isdir(entry.path):
            return JournalState.FAILED, "interrupted by a crash; folder kept"
        return JournalState.DONE, "completed just before a crash"
    if action is JournalAction.RESTORE:
        if entry.tmp_path and os.path.islink(entry.tmp_path):
            os.unlink(entry.tmp_path)
        if _readlink(entry.path) == entry.old_target:
            return JournalState.DONE, "completed just before a crash"
        return JournalState.FAILED, "interrupted by a crash"
    if os.path.isdir(entry.path):  # MKDIR
        return JournalState.DONE, "completed just before a crash"
    return JournalState.FAILED, "interrupted by a crash"


def _settle_prune(entry: JournalEntry) -> tuple[JournalState, str]:
    here = os.path.lexists(entry.path)
    quarantine = entry.quarantine_path or ""
    quarantined = bool(quarantine) and os.path.islink(quarantine)
    if not here and quarantined:
        return JournalState.DONE, "completed just before a crash"
    if here and quarantined:
        if _readlink(entry.path) != entry.old_target:
            return JournalState.DONE, "completed before a crash; a new link took its place since"
        # Cross-filesystem move cut between the copy and the unlink: the original stays.
        os.unlink(quarantine)
    if here:
        return JournalState.FAILED, "interrupted by a crash; link left in the farm"
    return JournalState.FAILED, (
        "interrupted by a crash; link found neither in the farm nor in quarantine "
        "(removed by someone else?)"
    )


def recover_pending(store: JournalStore, zone: Zone) -> list[JournalEntry]:
    """Settle every pending entry; returns the entries that were pending."""
    pending = store.journal_pending()
    for entry in pending:
        refused = journal_refusal(zone, entry)
        if refused is not None:
            store.journal_mark(entry.run_id, entry.seq, JournalState.FAILED, refused)
            continue
        state, message = _settle(entry)
        store.journal_mark(entry.run_id, entry.seq, state, message)
    return pending
