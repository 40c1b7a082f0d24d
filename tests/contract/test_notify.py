"""Notifications end to end against fake servers that check every request against the real
OpenAPI documents (a mismatch fails the test in the ``servers`` fixture)."""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from symlinkd.notifiers.base import Change, ChangeCause, ChangeKind
from tests.contract.conftest import (
    FARM,
    JELLYFIN_TOKEN,
    MOVIE_ID,
    SECRETS,
    SERIES_ID,
    SHOW,
    HubFactory,
    counted,
    episode_link,
)
from tests.contract.fakes import FakeJellyfin, FakePlex, FakeRadarr, FakeServer, FakeSonarr


def relinks(count: int, seasons: int = 5) -> list[Change]:
    per_season = count // seasons
    return [Change(episode_link(s, e), ChangeKind.MODIFIED, ChangeCause.RELINK)
            for s in range(1, seasons + 1) for e in range(1, per_season + 1)]


def test_500_relinks_of_one_series_coalesce(make_hub: HubFactory, plex: FakePlex,
                                            jellyfin: FakeJellyfin, sonarr: FakeSonarr,
                                            radarr: FakeRadarr) -> None:
    hub, store, registry = make_hub(plex=plex, jellyfin=jellyfin, sonarr=sonarr, radarr=radarr)
    changes = relinks(500)
    assert len(changes) == 500

    lines = hub.notify(changes, dry_run=False)

    seasons = [f"/data/tv/{SHOW}/Season {s:02d}" for s in range(1, 6)]
    assert sorted(plex.refreshes()) == [("1", p) for p in seasons]
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert sorted(jellyfin.updated_paths()) == [p.replace("/data", "/media") for p in seasons]
    assert len(jellyfin.seen("POST", "/Library/Media/Updated")) == 1
    assert radarr.commands() == []  # a TV folder is not Radarr's business
    assert counted(registry, "radarr", "unmapped") == 0
    sent = [(r.method, r.path, r.query) for s in (plex, sonarr, jellyfin) for r in s.requests]
    assert [k for k, n in Counter(sent).items() if n > 1] == []
    assert store.rows == {}
    assert counted(registry, "plex", "ok") == 5
    assert sum("ok" in line for line in lines) == 5 + 1 + 1


def test_over_the_limit_one_refresh_of_the_section_location(
        make_hub: HubFactory, plex: FakePlex, jellyfin: FakeJellyfin) -> None:
    hub, _, _ = make_hub(plex=plex, jellyfin=jellyfin, max_paths=3)

    hub.notify(relinks(500), dry_run=False)

    assert plex.refreshes() == [("1", "/data/tv")]
    assert jellyfin.updated_paths() == ["/media/tv"]


def test_path_mapping_longest_prefix_and_folder_links(make_hub: HubFactory, plex: FakePlex,
                                                       radarr: FakeRadarr) -> None:
    hub, _, _ = make_hub(plex=plex, radarr=radarr)
    movie = f"{FARM}/movies/Film (2021)"

    hub.notify([Change(movie, ChangeKind.MODIFIED, ChangeCause.RELINK, is_dir=True),
                Change(f"{movie}/Film.mkv", ChangeKind.MODIFIED, ChangeCause.RELINK)],
               dry_run=False)

    # The folder link is its own folder; the file link's folder is the movie folder too.
    assert plex.refreshes() == [("2", "/data/movies/Film (2021)")]
    assert radarr.commands() == [{"name": "RescanMovie", "movieId": MOVIE_ID}]


def test_folder_outside_every_library_is_counted_not_sent(
        make_hub: HubFactory, plex: FakePlex, jellyfin: FakeJellyfin, sonarr: FakeSonarr) -> None:
    hub, store, registry = make_hub(plex=plex, jellyfin=jellyfin, sonarr=sonarr)
    changes = [Change(f"{FARM}/anime/Thing/ep{i}.mkv", ChangeKind.MODIFIED, ChangeCause.RELINK)
               for i in range(20)]
    changes.append(Change(f"{FARM}/tv/Unknown Show/Season 01/e.mkv", ChangeKind.MODIFIED,
                          ChangeCause.RELINK))

    with capture_logs() as logs:
        hub.notify(changes, dry_run=False)

    assert plex.refreshes() == [("1", "/data/tv/Unknown Show/Season 01")]
    assert counted(registry, "plex", "unmapped") == 1
    assert counted(registry, "jellyfin", "unmapped") == 1
    # Under Sonarr's root folder but no series has it: unmapped; the anime folder is outside
    # every Sonarr folder, not Sonarr's business.
    assert counted(registry, "sonarr", "unmapped") == 1
    assert sonarr.commands() == []
    unmapped_logs = [e for e in logs if "not covered" in e["event"] and e["target"] == "plex"]
    assert [e["folder"] for e in unmapped_logs] == ["/data/anime/Thing"]
    assert store.rows == {}


def test_401_is_rejected_logged_without_the_token_and_kept(
        make_hub: HubFactory, plex: FakePlex, sonarr: FakeSonarr) -> None:
    store_hub, store, registry = make_hub(plex=plex, sonarr=sonarr,
                                          plex_token="wrong-token-value-123")
    with capture_logs() as logs:
        lines = store_hub.notify(relinks(10, seasons=1), dry_run=False)

    assert plex.refreshes() == []
    assert len(plex.seen("GET", "/library/sections")) == 1  # 4xx is not retried
    assert counted(registry, "plex", "rejected") == 1
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    rejected = [e for e in logs if e.get("target") == "plex" and e["log_level"] != "info"]
    assert rejected, logs
    assert "wrong-token-value-123" not in repr(logs) + repr(lines)
    assert [t for t, _ in store.rows.values()] == ["plex"]

    fixed, _, _ = make_hub(plex=plex, store=store)
    fixed.notify([], dry_run=False)
    assert plex.refreshes() == [("1", f"/data/tv/{SHOW}/Season 01")]
    assert store.rows == {}


def test_503_that_recovers_is_retried(make_hub: HubFactory, plex: FakePlex,
                                      sonarr: FakeSonarr) -> None:
    hub, store, registry = make_hub(plex=plex, sonarr=sonarr, retries=3)
    plex.script = [503, None, 503, 503]  # sections: 1 failure; the refresh: 2 failures
    sonarr.script = [502]

    hub.notify(relinks(10, seasons=1), dry_run=False)

    assert plex.refreshes() == [("1", f"/data/tv/{SHOW}/Season 01")] * 3
    assert len(plex.seen("GET", "/library/sections")) == 2
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert counted(registry, "plex", "ok") == 1
    assert counted(registry, "plex", "failed") == 0
    assert store.rows == {}


def test_server_that_never_answers_costs_only_its_timeouts(
        make_hub: HubFactory, plex: FakePlex, sonarr: FakeSonarr) -> None:
    hub, store, registry = make_hub(plex=plex, sonarr=sonarr, timeout=0.5, retries=1)
    plex.hang = True
    started = time.monotonic()

    lines = hub.notify(relinks(50), dry_run=False)

    # 2 attempts x 0.5 s plus backoff; a hang would hold for the fake's 120 s.
    assert time.monotonic() - started < 20
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert counted(registry, "plex", "failed") == 1
    assert any(line.startswith("plex:") and "kept" in line for line in lines)
    assert [t for t, _ in store.rows.values()] == ["plex"]

    plex.hang = False
    hub.notify([], dry_run=False)
    assert sorted(p for _, p in plex.refreshes()) == [
        f"/data/tv/{SHOW}/Season {s:02d}" for s in range(1, 6)]
    assert store.rows == {}


def test_missed_requests_are_sent_on_the_next_call(make_hub: HubFactory, plex: FakePlex,
                                                   sonarr: FakeSonarr) -> None:
    hub, store, registry = make_hub(plex=plex, sonarr=sonarr, retries=1)
    plex.script = [None, 503, 503]  # sections fine, then the first refresh fails for good
    sonarr.script = [503, 503]  # the series lookup fails for good

    hub.notify(relinks(30, seasons=3), dry_run=False)

    assert plex.refreshes() == [("1", f"/data/tv/{SHOW}/Season 01")] * 2
    assert sonarr.commands() == []
    assert sorted(t for t, _ in store.rows.values()) == ["plex", "plex", "plex", "sonarr"]

    lines = hub.notify([Change(episode_link(1, 1), ChangeKind.MODIFIED, ChangeCause.RELINK)],
                       dry_run=False)

    refreshed = [p for _, p in plex.refreshes()][2:]
    assert sorted(refreshed) == [f"/data/tv/{SHOW}/Season {s:02d}" for s in (1, 2, 3)]
    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert store.rows == {}
    assert counted(registry, "plex", "ok") == 3
    assert all("ok" in line for line in lines), lines


def test_dry_run_sends_nothing_and_says_what_it_would(
        make_hub: HubFactory, plex: FakePlex, jellyfin: FakeJellyfin, sonarr: FakeSonarr,
        radarr: FakeRadarr) -> None:
    hub, store, registry = make_hub(plex=plex, jellyfin=jellyfin, sonarr=sonarr, radarr=radarr)
    store.add_pending("plex", "{}")

    film = Change(f"{FARM}/movies/Film (2021)/Film.mkv", ChangeKind.DELETED,
                  ChangeCause.PRUNE_DANGLING)
    lines = hub.notify([*relinks(20, seasons=2), film], dry_run=True)

    assert [s.requests for s in (plex, jellyfin, sonarr, radarr)] == [[], [], [], []]
    text = "\n".join(lines)
    assert f"plex GET /library/sections/{{section}}/refresh?path=/data/tv/{SHOW}/Season 02" in text
    assert "/media/movies/Film (2021)" in text
    assert "search again for /movies/Film (2021)/Film.mkv" in text
    assert "1 notification(s) pending" in text
    assert len(store.rows) == 1
    assert b"symlinkd_notifications_total{" not in generate_latest(registry)


def test_dangling_prune_searches_again_after_the_rescan(
        make_hub: HubFactory, sonarr: FakeSonarr, radarr: FakeRadarr) -> None:
    hub, store, _ = make_hub(sonarr=sonarr, radarr=radarr)
    pruned = [Change(episode_link(2, e), ChangeKind.DELETED, ChangeCause.PRUNE_DANGLING)
              for e in (3, 4, 5)]
    pruned.append(Change(f"{FARM}/movies/Film (2021)/Film.mkv", ChangeKind.DELETED,
                         ChangeCause.PRUNE_DANGLING))

    hub.notify(pruned, dry_run=False)

    assert sonarr.commands() == [
        {"name": "RescanSeries", "seriesId": SERIES_ID},
        {"name": "EpisodeSearch", "episodeIds": [5203, 5204, 5205]},
    ]
    assert radarr.commands() == [{"name": "RescanMovie", "movieId": MOVIE_ID},
                                 {"name": "MoviesSearch", "movieIds": [MOVIE_ID]}]
    # Files were looked up before the rescan, the search only once it had finished.
    order = [(r.method, r.path) for r in sonarr.requests]
    assert order.index(("GET", "/api/v3/episodefile")) < order.index(("POST", "/api/v3/command"))
    assert order[-1] == ("POST", "/api/v3/command")
    assert any(m == "GET" and p.startswith("/api/v3/command/") for m, p in order)
    assert store.rows == {}


def test_age_prune_unmonitors_first(make_hub: HubFactory, sonarr: FakeSonarr,
                                    radarr: FakeRadarr) -> None:
    hub, _, _ = make_hub(sonarr=sonarr, radarr=radarr)
    aged = [Change(episode_link(1, 9), ChangeKind.DELETED, ChangeCause.PRUNE_AGE),
            Change(f"{FARM}/movies/Film (2021)", ChangeKind.DELETED, ChangeCause.PRUNE_AGE,
                   is_dir=True)]

    hub.notify(aged, dry_run=False)

    monitor = sonarr.seen("PUT", "/api/v3/episode/monitor")
    assert [r.json() for r in monitor] == [{"episodeIds": [5109], "monitored": False}]
    editor = radarr.seen("PUT", "/api/v3/movie/editor")
    assert [r.json() for r in editor] == [{"movieIds": [MOVIE_ID], "monitored": False}]
    assert [c["name"] for c in sonarr.commands()] == ["RescanSeries"]
    assert sonarr.requests.index(monitor[0]) < len(sonarr.requests) - 1


def test_jellyfin_without_admin_rights_sends_every_folder(
        make_hub: HubFactory, servers: list[FakeServer]) -> None:
    jellyfin = FakeJellyfin(JELLYFIN_TOKEN, [], folders_status=403)
    servers.append(jellyfin.start())
    hub, store, _ = make_hub(jellyfin=jellyfin)

    hub.notify(relinks(4, seasons=2), dry_run=False)

    assert sorted(jellyfin.updated_paths()) == [f"/media/tv/{SHOW}/Season {s:02d}"
                                                for s in (1, 2)]
    assert store.rows == {}


def test_secrets_never_reach_logs_lines_metrics_or_reprs(
        make_hub: HubFactory, plex: FakePlex, jellyfin: FakeJellyfin, sonarr: FakeSonarr,
        radarr: FakeRadarr, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx/httpcore log through the standard library
    hub, store, registry = make_hub(plex=plex, jellyfin=jellyfin, sonarr=sonarr, radarr=radarr,
                                    retries=1)
    plex.script = [401]
    jellyfin.script = [503, 503]
    sonarr.script = [403]
    film = Change(f"{FARM}/movies/Film (2021)/Film.mkv", ChangeKind.DELETED,
                  ChangeCause.PRUNE_DANGLING)
    changes = [*relinks(10, seasons=1), film]
    with capture_logs() as logs:
        lines = hub.notify(changes, dry_run=False)
        lines += hub.notify(changes, dry_run=True)

    everything = "\n".join([repr(logs), caplog.text, *lines,
                            generate_latest(registry).decode(), repr(hub), repr(hub.targets),
                            *(p for _, p in store.rows.values())])
    for secret in SECRETS:
        assert secret not in everything
    assert counted(registry, "plex", "rejected") == 1
    assert counted(registry, "sonarr", "rejected") == 1
    assert counted(registry, "jellyfin", "failed") == 1
    assert counted(registry, "radarr", "ok") == 2


def test_search_waits_for_the_rescan_or_goes_out_next_pass(
        make_hub: HubFactory, sonarr: FakeSonarr) -> None:
    hub, store, _ = make_hub(sonarr=sonarr, timeout=0.6)
    sonarr.command_polls_before_done = 10**6  # the rescan never finishes in this pass
    pruned = [Change(episode_link(1, 2), ChangeKind.DELETED, ChangeCause.PRUNE_DANGLING)]

    lines = hub.notify(pruned, dry_run=False)

    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert any("EpisodeSearch" in line and "deferred" in line for line in lines), lines
    assert [t for t, _ in store.rows.values()] == ["sonarr"]

    hub.notify([], dry_run=False)

    assert sonarr.commands()[-1] == {"name": "EpisodeSearch", "episodeIds": [5102]}
    assert store.rows == {}


def test_connection_refused_is_kept_without_delaying_others(
        make_hub: HubFactory, sonarr: FakeSonarr) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    hub, store, registry = make_hub(plex_url=closed, sonarr=sonarr, retries=1)

    lines = hub.notify(relinks(10, seasons=2), dry_run=False)

    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID}]
    assert counted(registry, "plex", "failed") == 1
    assert any(line.startswith("plex:") and "ConnectError" in line for line in lines), lines
    assert [t for t, _ in store.rows.values()] == ["plex"]


def test_a_long_outage_keeps_one_row_of_changes(make_hub: HubFactory,
                                                sonarr: FakeSonarr) -> None:
    hub, store, _ = make_hub(sonarr=sonarr, retries=1)
    sonarr.script = [503] * 6  # three calls, two attempts each
    hub.notify([Change(episode_link(1, 1), ChangeKind.MODIFIED, ChangeCause.RELINK)],
               dry_run=False)
    hub.notify([Change(f"{FARM}/tv/Other (2019)/e.mkv", ChangeKind.MODIFIED,
                       ChangeCause.RELINK)], dry_run=False)
    hub.notify([Change(episode_link(2, 1), ChangeKind.MODIFIED, ChangeCause.RELINK)],
               dry_run=False)
    assert len(store.rows) == 1

    hub.notify([], dry_run=False)

    assert sonarr.commands() == [{"name": "RescanSeries", "seriesId": SERIES_ID},
                                 {"name": "RescanSeries", "seriesId": 8}]
    assert store.rows == {}
