"""Fixtures: fake servers (stopped after each test, their contract mismatches asserted empty),
an in-memory pending store, and a hub wired to the fakes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from symlinkd.metrics import Metrics
from symlinkd.notifiers.client import RetryPolicy
from symlinkd.notifiers.hub import NotifierHub
from symlinkd.settings import ArrServer, MediaServer, NotifySettings, Secret
from tests.contract.contract import CONTRACTS
from tests.contract.fakes import FakeJellyfin, FakePlex, FakeRadarr, FakeServer, FakeSonarr

FARM = "/mnt/media/stream"
PLEX_TOKEN = "plex-SECRET-token-4f9a2c"
JELLYFIN_TOKEN = "jf-SECRET-token-77ab01"
SONARR_KEY = "sonarr-SECRET-key-0d1e2f"
RADARR_KEY = "radarr-SECRET-key-9c8b7a"
SECRETS = (PLEX_TOKEN, JELLYFIN_TOKEN, SONARR_KEY, RADARR_KEY)
SHOW = "Show Name (2020)"
SERIES_ID = 7
MOVIE_ID = 42


class MemoryStore:
    """The PendingStore protocol in memory (StateDB provides the real one)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, str]] = {}
        self._next = 1

    def add_pending(self, target: str, payload: str) -> None:
        self.rows[self._next] = (target, payload)
        self._next += 1

    def pending(self, target: str) -> list[tuple[int, str]]:
        return [(i, p) for i, (t, p) in sorted(self.rows.items()) if t == target]

    def ack_pending(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.rows.pop(i, None)


def episode_link(season: int, episode: int) -> str:
    return (f"{FARM}/tv/{SHOW}/Season {season:02d}/"
            f"{SHOW} - S{season:02d}E{episode:02d}.mkv")


@pytest.fixture(scope="session", autouse=True)
def _contract_documents() -> None:
    if not CONTRACTS.is_dir():
        warnings.warn(
            f"{CONTRACTS} is absent: fake servers run WITHOUT the OpenAPI document check",
            stacklevel=1,
        )


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started: list[FakeServer] = []
    yield started
    for server in started:
        server.stop()
    mismatches = [m for s in started for m in s.mismatches]
    assert mismatches == [], "requests off contract:\n" + "\n".join(mismatches)


@pytest.fixture
def plex(servers: list[FakeServer]) -> FakePlex:
    server = FakePlex(PLEX_TOKEN, [("1", "TV Shows", ["/data/tv"]),
                                   ("2", "Movies", ["/data/movies"])])
    servers.append(server.start())
    return server


@pytest.fixture
def jellyfin(servers: list[FakeServer]) -> FakeJellyfin:
    server = FakeJellyfin(JELLYFIN_TOKEN, [("Shows", ["/media/tv"]),
                                           ("Films", ["/media/movies"])])
    servers.append(server.start())
    return server


def _series_tables() -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]],
                              dict[int, list[dict[str, Any]]]]:
    series = [{"id": SERIES_ID, "title": "Show Name", "path": f"/tv/{SHOW}"},
              {"id": 8, "title": "Other", "path": "/tv/Other (2019)"}]
    files, episodes = [], []
    for season in (1, 2):
        for number in range(1, 11):
            file_id = season * 100 + number
            files.append({"id": file_id, "seriesId": SERIES_ID, "seasonNumber": season,
                          "path": episode_link(season, number).replace(f"{FARM}/tv", "/tv")})
            episodes.append({"id": 5000 + file_id, "seriesId": SERIES_ID,
                             "seasonNumber": season, "episodeNumber": number,
                             "episodeFileId": file_id, "hasFile": True, "monitored": True})
    return series, {SERIES_ID: files}, {SERIES_ID: episodes}


@pytest.fixture
def sonarr(servers: list[FakeServer]) -> FakeSonarr:
    server = FakeSonarr(SONARR_KEY, *_series_tables())
    servers.append(server.start())
    return server


@pytest.fixture
def radarr(servers: list[FakeServer]) -> FakeRadarr:
    server = FakeRadarr(RADARR_KEY, [
        {"id": MOVIE_ID, "title": "Film", "path": "/movies/Film (2021)"},
        {"id": 43, "title": "Other Film", "path": "/movies/Other Film (2022)"},
    ])
    servers.append(server.start())
    return server


HubFactory = Callable[..., tuple[NotifierHub, MemoryStore, CollectorRegistry]]


@pytest.fixture
def make_hub() -> Iterator[HubFactory]:
    hubs: list[NotifierHub] = []

    def build(*, plex: FakePlex | None = None, jellyfin: FakeJellyfin | None = None,
              sonarr: FakeSonarr | None = None, radarr: FakeRadarr | None = None,
              store: MemoryStore | None = None, timeout: float = 5.0, retries: int = 2,
              max_paths: int = 50, reacquire: bool = True, plex_token: str | None = None,
              plex_url: str | None = None, sonarr_url: str | None = None,
              ) -> tuple[NotifierHub, MemoryStore, CollectorRegistry]:
        def media(url: str, token: str, path_map: tuple[tuple[str, str], ...]) -> MediaServer:
            return MediaServer(url=url, token=Secret(token), path_map=path_map,
                               timeout_seconds=timeout, max_paths_per_section=max_paths)

        def arr(url: str, key: str, path_map: tuple[tuple[str, str], ...]) -> ArrServer:
            return ArrServer(url=url, api_key=Secret(key), path_map=path_map,
                             timeout_seconds=timeout, reacquire=reacquire)

        settings = NotifySettings(
            plex=media(plex_url or plex.url, plex_token or PLEX_TOKEN, ((FARM, "/data"),))
            if plex or plex_url else None,
            jellyfin=media(jellyfin.url, JELLYFIN_TOKEN, ((FARM, "/media"),))
            if jellyfin else None,
            sonarr=arr(sonarr_url or sonarr.url, SONARR_KEY, ((f"{FARM}/tv", "/tv"),))
            if sonarr or sonarr_url else None,
            radarr=arr(radarr.url, RADARR_KEY, ((f"{FARM}/movies", "/movies"),))
            if radarr else None,
            retries=retries,
        )
        registry = CollectorRegistry()
        pending = store if store is not None else MemoryStore()
        hub = NotifierHub(settings, store=pending, metrics=Metrics(registry),
                          logger=structlog.get_logger("test.notify"),
                          retry=RetryPolicy(retries=retries, initial_wait=0.05, max_wait=0.2,
                                            jitter=0.05))
        hubs.append(hub)
        return hub, pending, registry

    yield build
    for hub in hubs:
        hub.close()


def counted(registry: CollectorRegistry, target: str, result: str) -> float:
    value = registry.get_sample_value("symlinkd_notifications_total",
                                      {"target": target, "result": result})
    return value or 0.0
