"""``symlinkd hold list`` and ``symlinkd hold release PATH...|--all`` (see ``symlinkd.holds``).

Exit codes: 0 done · 1 a path given had no hold · 2 usage (``PATH`` or ``--all``, not both).
No state lock is taken: a hold changes one row, and a running daemon reads the table afresh at
the start of each pass.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from symlinkd.holds import Hold
from symlinkd.report import json_name, printable
from symlinkd.settings import Settings
from symlinkd.state import StateDB


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _hold_doc(hold: Hold) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, name in (("path", hold.path), ("target", hold.target)):
        text, b64 = json_name(name)
        doc[key] = text
        if b64 is not None:
            doc[f"{key}_b64"] = b64
    doc.update(run_id=hold.run_id, undo_of=hold.undo_of, created=hold.created)
    return doc


def cmd_hold_list(settings: Settings, *, as_json: bool) -> int:
    state = StateDB(settings.state_dir)
    try:
        holds = state.holds.all()
    finally:
        state.close()
    if as_json:
        print(json.dumps([_hold_doc(h) for h in holds], indent=2, ensure_ascii=False))
        return 0
    console = _console()
    if not holds:
        console.print("No links are held.")
        return 0
    table = Table(title=f"Held links ({len(holds)}): symlinkd leaves them alone until they "
                        "change or the hold is released")
    for column in ("path", "target", "held since", "undo run", "undid run"):
        table.add_column(column, no_wrap=column.endswith("run"))
    for hold in holds:
        table.add_row(printable(hold.path), printable(hold.target or ""),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(hold.created)),
                      hold.run_id, hold.undo_of)
    console.print(table)
    return 0


def cmd_hold_release(settings: Settings, paths: Sequence[str], *, release_all: bool) -> int:
    state = StateDB(settings.state_dir)
    try:
        if release_all:
            count = state.holds.release_all()
            print(f"released {count} hold{'s' if count != 1 else ''}")
            return 0
        released = state.holds.release(paths)
    finally:
        state.close()
    for path in released:
        print(f"released the hold on {printable(path)}")
    missing = [p for p in paths if p not in released]
    for path in missing:
        print(f"no hold on {printable(path)} (see `symlinkd hold list`)", file=sys.stderr)
    return 1 if missing else 0
