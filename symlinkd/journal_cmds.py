"""``symlinkd undo RUN_ID``, ``symlinkd history``, ``symlinkd quarantine purge``.

Each prints its result (a table on a terminal, or JSON) and returns the exit code:
0 done / nothing to do, 1 something could not be done (a conflict, a failure), 2 a usage
problem (unknown run), 3 refused (another symlinkd holds the state directory).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from symlinkd.errors import StateLocked
from symlinkd.metrics import Metrics
from symlinkd.notifiers.base import Change, ChangeCause, ChangeKind
from symlinkd.notifiers.hub import NotifierHub
from symlinkd.scan_cmd import write_json
from symlinkd.settings import Settings
from symlinkd.state import RunSummary, StateDB
from symlinkd.undo import UndoReport, UndoResult, undo_run

LOCK_WAIT_SECONDS = 30.0  # undo waits this long for a running pass to finish


def _console() -> Console:
    # Piped output (a pod log, `| less`) gets room for the table instead of rich's 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, soft_wrap=True, width=width)


def _split_counts(run: RunSummary) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """A run's stored counts as (verdict -> links, action -> result -> links).

    A pass stores verdicts by name and actions as ``action:KIND`` (done, or ``dry_run`` in a
    dry run) or ``action:KIND RESULT`` (skipped, failed); an undo stores its results
    (restored, conflict, ...), which are the results of one action, ``undo``."""
    if run.kind == "undo":
        return {}, ({"undo": dict(sorted(run.counts.items()))} if run.counts else {})
    verdicts: dict[str, int] = {}
    actions: dict[str, dict[str, int]] = {}
    plain_result = "done" if run.mode == "apply" else "dry_run"
    for key, n in sorted(run.counts.items()):
        if not key.startswith("action:"):
            verdicts[key] = n
            continue
        kind, _, result = key.removeprefix("action:").partition(" ")
        if kind == "held" and not result:  # links an undo holds: skipped, not acted on
            kind, result = "skip", "held"
        per = actions.setdefault(kind, {})
        per[result or plain_result] = per.get(result or plain_result, 0) + n
    return verdicts, actions


def _note(run: RunSummary, verdicts: dict[str, int]) -> str:
    """Why a run did less than it could: refused, an undo, unfinished, or links left alone
    under a mount that was not ok (exit 3 without a refused plan)."""
    if run.refused:
        return f"refused: {run.refused}"
    if run.undo_of:
        return f"undo of {run.undo_of}"
    if run.finished is None:
        return "unfinished: crashed, killed, or still running"
    alone = {v: verdicts[v] for v in ("mount_down", "mount_hung") if verdicts.get(v)}
    if alone:
        detail = ", ".join(f"{v} {n}" for v, n in alone.items())
        return (f"{sum(alone.values())} links under a mount that was not ok, left alone "
                f"({detail})")
    return ""


def _joined(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items())


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_undo(settings: Settings, run_id: str, *, as_json: bool) -> int:
    state = StateDB(settings.state_dir)
    try:
        try:
            state.lock_exclusive(wait_seconds=LOCK_WAIT_SECONDS)
        except StateLocked as exc:
            print(f"symlinkd undo: refused: {exc}", file=sys.stderr)
            return 3
        try:
            report = undo_run(state, run_id)
            notes = _notify_undo(settings, state, report)
        except KeyError:
            print(f"symlinkd undo: no run {run_id!r} in the journal "
                  "(see `symlinkd history`)", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"symlinkd undo: {exc}", file=sys.stderr)
            return 2
    finally:
        state.close()
    _print_undo(report, as_json, notes)
    return 0 if report.clean else 1


def _notify_undo(settings: Settings, state: StateDB, report: UndoReport) -> list[str]:
    """Media servers hear about restored links like about any change (never raises for a
    server that is down: what it misses waits in the outbox for the next pass)."""
    changes = [
        Change(item.path, ChangeKind.MODIFIED if item.action == "relink" else ChangeKind.CREATED,
               ChangeCause.UNDO)
        for item in report.items
        if item.result is UndoResult.RESTORED and item.action != "rmdir"
    ]
    if not changes:
        return []
    hub = NotifierHub(settings.notify, store=state, metrics=Metrics(CollectorRegistry()))
    try:
        return hub.notify(changes, dry_run=False)
    finally:
        hub.close()


def _print_undo(report: UndoReport, as_json: bool, notes: list[str]) -> None:
    if as_json:
        doc = {
            "run_id": report.run_id or None,
            "undo_of": report.undo_of,
            "counts": report.tally(),
            "notifications": notes,
            "items": [
                {"path": i.path, "action": i.action, "result": i.result.value,
                 "message": i.message}
                for i in report.items
            ],
        }
        print(json.dumps(doc, indent=2))
        return
    console = _console()
    if not report.items:
        console.print(f"Nothing to undo in run {report.undo_of} (already undone, or it changed "
                      "nothing).")
        return
    table = Table(title=f"undo of {report.undo_of} (journaled as run {report.run_id})")
    for column in ("path", "was", "result", "message"):
        table.add_column(column)
    for item in report.items:
        table.add_row(repr(item.path)[1:-1], item.action, item.result.value, item.message)
    console.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.tally().items()))
    console.print(counts)
    for line in notes:
        console.print(line)


def _run_doc(run: RunSummary, holds: int) -> dict[str, Any]:
    verdicts, actions = _split_counts(run)
    duration = (round(max(0.0, run.finished - run.started), 3)
                if run.finished is not None else None)
    return {
        "id": run.id, "kind": run.kind, "mode": run.mode, "started": run.started,
        "finished": run.finished, "duration_seconds": duration, "verdicts": verdicts,
        "actions": actions, "journal": run.journal, "refused": run.refused,
        "undo_of": run.undo_of, "note": _note(run, verdicts),
        "holds": holds,  # links this (undo) run still holds (`symlinkd hold list`)
    }


def cmd_history(settings: Settings, *, as_json: bool, limit: int) -> int:
    state = StateDB(settings.state_dir)
    try:
        runs = state.runs(limit)
        holds = state.holds.count_by_run()
    finally:
        state.close()
    if as_json:
        # compact into a pipe, indented on a terminal
        write_json([_run_doc(r, holds.get(r.id, 0)) for r in runs])
        return 0
    console = _console()
    if not runs:
        console.print("No runs recorded yet.")
        return 0
    table = Table(title=f"symlinkd runs (newest first, at most {limit})")
    table.add_column("run", no_wrap=True)  # an id is copied into `symlinkd undo` whole
    table.add_column("kind")
    table.add_column("mode")
    table.add_column("started", no_wrap=True)
    table.add_column("seconds", justify="right")
    for column in ("links", "actions", "journal", "note"):
        table.add_column(column)
    for run in runs:
        seconds = f"{run.finished - run.started:.1f}" if run.finished else "unfinished"
        verdicts, actions = _split_counts(run)
        done = ", ".join(f"{kind} {_joined(results)}" for kind, results in actions.items())
        journal = _joined(dict(sorted(run.journal.items())))
        note = _note(run, verdicts)
        if holds.get(run.id):
            note += f"; {holds[run.id]} link(s) held"
        table.add_row(run.id, run.kind, run.mode, _when(run.started), seconds,
                      _joined(verdicts), done, journal, note)
    console.print(table)
    held = sum(holds.values())
    if held:
        console.print(f"{held} link(s) held: symlinkd leaves them alone until they change "
                      "(`symlinkd hold list`, `symlinkd hold release PATH|--all`)")
    return 0


def _count_links(folder: str) -> int:
    total = 0
    for where, dirs, files in os.walk(folder):
        total += len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(where, d)))
    return total


def cmd_quarantine_purge(settings: Settings, *, older_than_days: float, apply: bool) -> int:
    """Delete quarantine folders of runs older than ``older_than_days`` (a dry run unless
    ``apply``). Undo still works afterwards: the journal holds every target and mtime."""
    root = settings.policy.quarantine_dir
    console = _console()
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        console.print(f"Quarantine {root} is empty (it does not exist yet).")
        return 0
    state = StateDB(settings.state_dir)
    try:
        cutoff = time.time() - older_than_days * 86400.0
        old: list[tuple[str, int]] = []
        for name in names:
            folder = os.path.join(root, name)
            if not os.path.isdir(folder) or os.path.islink(folder):
                continue
            run = state.run(name)
            when = run.started if run is not None else os.lstat(folder).st_mtime
            if when < cutoff:
                old.append((folder, _count_links(folder)))
    finally:
        state.close()
    failed = 0
    for folder, links in old:
        if not apply:
            console.print(f"would delete {folder} ({links} links) (dry run; not actually "
                          "deleted; add --apply)")
            continue
        try:
            shutil.rmtree(folder)  # never follows the quarantined symlinks
        except OSError as exc:
            failed += 1
            console.print(f"could not delete {folder}: {exc}")
        else:
            console.print(f"deleted {folder} ({links} links)")
    if not old:
        console.print(f"Nothing in {root} is older than {older_than_days:g} days.")
    return 1 if failed else 0
