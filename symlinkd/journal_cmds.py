"""``symlinkd undo RUN_ID``, ``symlinkd history``, ``symlinkd quarantine purge``.

Each prints its result (a table on a terminal, or JSON) and returns the exit code:
0 done / nothing to do, 1 something could not be done (a conflict, a failure), 2 a usage
problem (unknown run), 3 refused (another symlinkd holds the state directory).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from symlinkd.containment import RUN_ID, Area, OutsideZone, Zone
from symlinkd.errors import StateLocked
from symlinkd.linkops import describe_os_error
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
        # A pass the state disk cut short carries that error line (symlinkd.statefail).
        stopped = run.refused.startswith("state database ")
        return run.refused if stopped else f"refused: {run.refused}"
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
            report = undo_run(state, run_id, Zone.from_settings(settings))
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


@dataclass
class _Sweep:
    """One run folder's purge (invariant 11): symlinks and the folders they leave empty go;
    anything else is kept and named."""

    zone: Zone
    run_folder: str
    dev: int
    apply: bool
    links: int = 0
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def folder(self, folder: str) -> bool:
        """Sweep ``folder``; True when it is (or, dry, would be) empty afterwards."""
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            self.failed.append(f"{folder}: {describe_os_error(exc)}")
            return False
        empty = True
        for name in names:
            empty = self._entry(os.path.join(folder, name)) and empty
        if not empty or not self.apply:
            return empty
        try:
            self.zone.check(folder, Area.QUARANTINE)
            os.rmdir(folder)
        except OutsideZone as why:
            self.kept.append(f"{folder}: {why}")
            return False
        except OSError as exc:
            self.failed.append(f"{folder}: {describe_os_error(exc)}")
            return False
        return True

    def _entry(self, path: str) -> bool:
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.failed.append(f"{path}: {describe_os_error(exc)}")
            return False
        if st.st_dev != self.dev:
            self.kept.append(f"{path}: on another device (a mount); left alone")
            return False
        if stat.S_ISDIR(st.st_mode):
            return self.folder(path)
        if not stat.S_ISLNK(st.st_mode):
            self.kept.append(f"{path}: not a symlink, so not something symlinkd put there; "
                             "left alone")
            return False
        try:
            self.zone.check(path, Area.QUARANTINE, under=self.run_folder)
        except OutsideZone as why:
            self.kept.append(f"{path}: {why}; left alone")
            return False
        if self.apply:
            try:
                os.unlink(path)
            except OSError as exc:
                self.failed.append(f"{path}: {describe_os_error(exc)}")
                return False
        self.links += 1
        return True


def _run_folders(root: str, state: StateDB, cutoff: float) -> tuple[list[str], list[str]]:
    """(run folders older than ``cutoff``, what else lies in the quarantine). A run folder is
    named like a run id, is a run in the journal, and is a real folder on the quarantine's
    device; the name is checked first so nothing else (a hung mount) is even statted."""
    old: list[str] = []
    other: list[str] = []
    root_dev = os.stat(root).st_dev
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        run = state.run(name) if RUN_ID.fullmatch(name) else None
        if run is None:
            other.append(f"{folder}: not the folder of a run in the journal; left alone")
            continue
        try:
            st = os.lstat(folder)
        except OSError as exc:
            other.append(f"{folder}: {describe_os_error(exc)}")
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_dev != root_dev:
            other.append(f"{folder}: not a folder on the quarantine's device; left alone")
        elif run.started < cutoff:
            old.append(folder)
    return old, other


def cmd_quarantine_purge(settings: Settings, *, older_than_days: float, apply: bool) -> int:
    """Delete what symlinkd put in the quarantine folders of runs older than ``older_than_days``
    (a dry run unless ``apply``): their symlinks and the folders that then are empty. Anything
    else — a regular file, a folder not named after a run in the journal, a mount, the state
    dir — is reported and left alone (invariant 11). Undo still works afterwards: the journal
    holds every target and mtime."""
    root = settings.policy.quarantine_dir
    console = _console()
    if not os.path.isdir(root):
        console.print(f"Quarantine {root} is empty (it does not exist yet).")
        return 0
    zone = Zone.from_settings(settings)
    state = StateDB(settings.state_dir)
    try:
        old, other = _run_folders(root, state, time.time() - older_than_days * 86400.0)
    finally:
        state.close()
    root_dev = os.stat(root).st_dev
    for line in other:
        console.print(line)
    trouble = 0
    for folder in old:
        sweep = _Sweep(zone, folder, root_dev, apply)
        gone = sweep.folder(folder)
        for line in sweep.kept + sweep.failed:
            console.print(("could not purge " if line in sweep.failed else "") + line)
        trouble += len(sweep.kept) + len(sweep.failed)
        if not apply:
            rest = "" if gone else ", the rest kept"
            console.print(f"would delete {folder} ({sweep.links} links{rest}) (dry run; not "
                          "actually deleted; add --apply)")
        elif gone:
            console.print(f"deleted {folder} ({sweep.links} links)")
        else:
            console.print(f"deleted {sweep.links} links from {folder}; kept what is listed above")
    if not old:
        console.print(f"Nothing in {root} is older than {older_than_days:g} days.")
    return 1 if trouble else 0
