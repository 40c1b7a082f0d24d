"""Which folders to ask rclone to re-read (``vfs/refresh``) before believing a target is gone.

A refresh is one remote listing per folder (~10 ms each on a WebDAV backend, one after the
other inside rclone 1.60): refreshing every folder that holds a missing target on every pass
made a warm pass with ``rc_url`` ~5x slower than ``find`` (issue 12). A refresh only matters
where a decision rests on "gone", so a folder is refreshed

- when one of its links is *first seen* with a missing target (it may only be missing from
  rclone's directory cache: the refresh tells before the link's dangling streak starts), and
- when a link's *confirmation is due* (the pass where the planner would prune or relink it),
  unless the folder was refreshed since that moment; while a confirmed link stays (a dry run,
  a refused plan) its folder is refreshed again at most once per ``recheck_seconds``.

In between, a known dangling link's streak goes on from the mount's cached listing: nothing is
done to it until its confirmation is due, and then its folder is re-read first. The time of
each folder's last refresh is kept in the state DB (``rc_refreshes``), so a fresh CLI process
knows it too.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from symlinkd.model import LinkHistory

RECHECK_SECONDS = 3600.0  # a due (confirmed) link's folder is re-read at most this often
KEEP_SECONDS = 30 * 86400.0  # a folder's last refresh is remembered this long


class RefreshMemo:
    """One pass's view: ``due`` picks the folders to refresh, ``refreshed`` notes them."""

    def __init__(
        self, *,
        known_bad: Callable[[str], bool],
        histories: Callable[[Iterable[str]], Mapping[str, LinkHistory]],
        last_refresh: Mapping[str, float],
        save: Callable[[Sequence[str], float], None],
        now: float,
        confirm_after_passes: int,
        confirm_after_minutes: float,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._known_bad = known_bad
        self._histories = histories
        self._last = last_refresh
        self._save = save
        self.now = now
        self._passes = confirm_after_passes
        self._wait = 60.0 * confirm_after_minutes
        self._recheck = max(recheck_seconds, self._wait)

    def due(self, suspects: Sequence[tuple[str, Sequence[str]]]) -> set[str]:
        """The folders of ``suspects`` (folder, links whose target is missing in it) that must
        be refreshed before this pass believes their targets are gone."""
        wanted: set[str] = set()
        ask: list[tuple[str, Sequence[str]]] = []
        for folder, links in suspects:
            if any(not self._known_bad(link) for link in links):
                wanted.add(folder)  # first seen dangling
            else:
                ask.append((folder, links))
        if not ask:
            return wanted
        histories = self._histories(link for _f, links in ask for link in links)
        for folder, links in ask:
            last = self._last.get(folder)
            for link in links:
                history = histories.get(link)
                since = history.bad_since if history is not None else None
                if history is None or since is None or self._refresh(history, since, last):
                    wanted.add(folder)
                    break
        return wanted

    def _refresh(self, history: LinkHistory, since: float, last: float | None) -> bool:
        due_at = since + self._wait
        if history.bad_passes + 1 < self._passes or self.now < due_at:
            return False  # not due yet: the cached listing carries the streak on
        # Due: refreshed since it came due (<=: a refresh in the pass that started the streak
        # has the streak's own time, and must not count as "since")? then only a recheck.
        return last is None or last <= due_at or self.now - last >= self._recheck

    def refreshed(self, folders: Sequence[str]) -> None:
        self._save(folders, self.now)


class RefreshTable:
    """The state DB's ``rc_refreshes`` table (folder -> when it was last refreshed), loaded once
    per handle (a few rows: only folders that held a missing target), then kept in memory."""

    def __init__(self, conn: sqlite3.Connection, lock: AbstractContextManager[Any]) -> None:
        self._conn = conn
        self._lock = lock
        self._memo: dict[str, float] | None = None

    def load(self) -> dict[str, float]:
        with self._lock:
            if self._memo is None:
                self._memo = {
                    os.fsdecode(folder): float(at)
                    for folder, at in self._conn.execute("SELECT folder, at FROM rc_refreshes")
                }
            return self._memo

    def note(self, folders: Sequence[str], at: float) -> None:
        """Remember that ``folders`` were refreshed at ``at``; rows older than ``KEEP_SECONDS``
        go (their folders were refreshed again since, or hold nothing missing any more)."""
        if not folders:
            return
        with self._lock:
            memo = self.load()
            memo.update(dict.fromkeys(folders, at))
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT OR REPLACE INTO rc_refreshes (folder, at) VALUES (?, ?)",
                    [(os.fsencode(f), at) for f in folders],
                )
                cur.execute("DELETE FROM rc_refreshes WHERE at < ?", (at - KEEP_SECONDS,))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            for folder in [f for f, when in memo.items() if when < at - KEEP_SECONDS]:
                del memo[folder]
