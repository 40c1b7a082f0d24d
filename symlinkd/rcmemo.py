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

from collections.abc import Callable, Iterable, Mapping, Sequence

from symlinkd.model import LinkHistory

RECHECK_SECONDS = 3600.0  # a due (confirmed) link's folder is re-read at most this often


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
