"""The contract check itself must be able to fail: requests that are off the documents are
reported, requests real clients send (and the documented quirks) are not."""

from __future__ import annotations

import json

import pytest

from tests.contract.contract import CONTRACTS, SeenRequest
from tests.contract.fakes import FakeJellyfin, FakePlex, FakeSonarr

pytestmark = pytest.mark.skipif(
    not CONTRACTS.is_dir(),
    reason=f"{CONTRACTS} absent: the OpenAPI document check cannot run (fakes still do)",
)

PLEX_HEADERS = {"X-Plex-Token": "t", "X-Plex-Client-Identifier": "symlinkd"}


def seen(method: str, path: str, query: tuple[tuple[str, str], ...] = (),
         headers: dict[str, str] | None = None, body: object = None) -> SeenRequest:
    data = b"" if body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data:
        hdrs["Content-Type"] = "application/json"
    return SeenRequest(method, path, query, hdrs, data)


def test_plex_quirks_accepted_and_mistakes_reported() -> None:
    checker = FakePlex("t", []).checker
    assert checker.check(seen("GET", "/library/sections/1/refresh", (("path", "/data/tv"),),
                              PLEX_HEADERS)) == []
    assert checker.check(seen("POST", "/library/sections/1/refresh", (("path", "/d"),),
                              PLEX_HEADERS)) == []
    assert checker.check(seen("GET", "/library/sections", (), PLEX_HEADERS)) == []
    assert checker.check(seen("GET", "/library/sections/1/refresh", (("path", "/d"),),
                              {"X-Plex-Client-Identifier": "x"}))  # no token
    assert checker.check(seen("GET", "/library/sections/1/refresh", (("path", "/d"),),
                              {"X-Plex-Token": "t"}))  # no client identifier
    assert checker.check(seen("GET", "/library/sections/1/refresh", (("dir", "/d"),),
                              PLEX_HEADERS))  # undeclared parameter
    assert checker.check(seen("GET", "/library/sections/movies/refresh", (("path", "/d"),),
                              PLEX_HEADERS))  # sectionId must be an integer


def test_arr_command_bodies_checked_beyond_the_document() -> None:
    checker = FakeSonarr("k", [], {}, {}).checker
    key = {"X-Api-Key": "k"}
    assert checker.check(seen("POST", "/api/v3/command", (), key,
                              {"name": "RescanSeries", "seriesId": 3})) == []
    assert checker.check(seen("POST", "/api/v3/command", (), key,
                              {"name": "EpisodeSearch", "episodeIds": [1, 2]})) == []
    assert checker.check(seen("POST", "/api/v3/command", (), key,
                              {"name": "RescanSeries", "seriesId": "3"}))
    assert checker.check(seen("POST", "/api/v3/command", (), key,
                              {"name": "EpisodeSearch", "episodeId": 1}))
    assert checker.check(seen("POST", "/api/v3/command", (), {},
                              {"name": "RescanSeries", "seriesId": 3}))  # no key
    assert checker.check(seen("GET", "/api/v3/episodefile", (("seriesId", "x"),), key))
    assert checker.check(seen("PUT", "/api/v3/episode/monitor", (), key,
                              {"episodeIds": [1], "monitored": "no"}))


def test_jellyfin_body_and_auth_form() -> None:
    checker = FakeJellyfin("t", []).checker
    auth = {"Authorization": 'MediaBrowser Token="t"'}
    good = {"Updates": [{"Path": "/media/tv/x", "UpdateType": "Created"}]}
    assert checker.check(seen("POST", "/Library/Media/Updated", (), auth, good)) == []
    assert checker.check(seen("POST", "/Library/Media/Updated", (), {"X-Emby-Token": "t"},
                              good))
    assert checker.check(seen("POST", "/Library/Media/Updated", (), auth,
                              {"Updates": [{"Path": "/x", "Kind": "Created"}]}))
