"""Missed notifications survive a restart: the outbox is the real state database."""

from __future__ import annotations

from pathlib import Path

from symlinkd.notifiers.base import Change, ChangeCause, ChangeKind
from symlinkd.state import StateDB
from tests.contract.conftest import SHOW, HubFactory, episode_link
from tests.contract.fakes import FakePlex, FakeSonarr


def test_pending_kept_in_the_state_database_across_restarts(
        tmp_path: Path, make_hub: HubFactory, plex: FakePlex, sonarr: FakeSonarr) -> None:
    changes = [Change(episode_link(s, 1), ChangeKind.MODIFIED, ChangeCause.RELINK)
               for s in (1, 2)]
    plex.script = [None, 503, 503]  # sections answer, the refreshes do not
    sonarr.script = [503, 503]
    state = StateDB(str(tmp_path))
    try:
        hub, _, _ = make_hub(plex=plex, sonarr=sonarr, store=state, retries=1)
        hub.notify(changes, dry_run=False)
        assert len(state.pending("plex")) == 2
        assert len(state.pending("sonarr")) == 1
    finally:
        state.close()

    reopened = StateDB(str(tmp_path))
    try:
        hub, _, _ = make_hub(plex=plex, sonarr=sonarr, store=reopened)
        hub.notify([], dry_run=False)
        assert reopened.pending("plex") == []
        assert reopened.pending("sonarr") == []
    finally:
        reopened.close()
    assert sorted(p for _, p in plex.refreshes())[-2:] == [
        f"/data/tv/{SHOW}/Season 01", f"/data/tv/{SHOW}/Season 02"]
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": 7}]
