"""Webhook payloads → the farm paths a pass re-checks (payload shapes from SOURCES.md: Sonarr/Radarr
v3 webhooks, Zurg's on_library_update)."""

from __future__ import annotations

from typing import Any

import pytest

from symlinkd.daemon.webhooks import (
    PayloadError,
    TargetIndex,
    arr_event,
    reverse_map,
    zurg_dirs,
)
from symlinkd.model import EntryKind, Judgement, LinkFacts, PassReport, Verdict
from symlinkd.settings import MountSettings

FARM = "/mnt/media/stream"
SERIES = f"{FARM}/Shows/Peacemaker"
MOVIE = f"{FARM}/Movies/Heat (1995)"


@pytest.mark.parametrize(
    ("payload", "paths", "ignored"),
    [
        pytest.param(
            {"eventType": "Test",
             "series": {"id": 1, "title": "Test Title", "path": "C:\\testpath"},
             "episodes": [{"id": 123}]},
            (), "test event", id="sonarr-test",
        ),
        pytest.param(
            {"eventType": "Download", "series": {"id": 7, "path": SERIES},
             "episodeFile": {"id": 1, "relativePath": "S02/S02E05.mkv",
                             "path": f"{SERIES}/S02/S02E05.mkv"},
             "isUpgrade": False},
            (SERIES,), "", id="sonarr-download-series-folder",
        ),
        pytest.param(
            {"eventType": "Download", "series": {"id": 7, "path": SERIES},
             "episodeFiles": [{"path": f"{SERIES}/S02/a.mkv"}, {"path": f"{SERIES}/S02/b.mkv"}]},
            (SERIES,), "", id="sonarr-import-complete",
        ),
        pytest.param(
            {"eventType": "Download", "movie": {"id": 3, "folderPath": MOVIE},
             "movieFile": {"relativePath": "Heat.mkv", "path": f"{MOVIE}/Heat.mkv"}},
            (MOVIE,), "", id="radarr-download",
        ),
        pytest.param(
            {"eventType": "Rename", "series": {"path": SERIES},
             "renamedEpisodeFiles": [{"path": f"{FARM}/Other/new.mkv",
                                      "previousPath": f"{SERIES}/old.mkv"}]},
            (SERIES, f"{FARM}/Other/new.mkv"), "", id="rename-keeps-file-outside-folder",
        ),
        pytest.param(
            {"eventType": "MovieFileDelete", "movie": {"folderPath": MOVIE},
             "movieFile": {"path": f"{MOVIE}/Heat.mkv"}},
            (MOVIE,), "", id="radarr-file-delete",
        ),
        pytest.param(
            {"eventType": "EpisodeFileDelete", "episodeFile": {"path": f"{SERIES}/S01/e1.mkv"}},
            (f"{SERIES}/S01/e1.mkv",), "", id="file-delete-without-series",
        ),
        pytest.param(
            {"eventType": "Grab", "series": {"path": SERIES}},
            (), "Grab changes no file", id="grab-ignored",
        ),
        pytest.param(
            {"eventType": "Download", "series": {"path": "/mnt/media/archive/Shows/X"}},
            (), "not inside the farm: /mnt/media/archive/Shows/X", id="archive-not-farm",
        ),
        pytest.param(
            {"eventType": "Download", "series": {"path": f"{FARM}/../archive/X"}},
            (), "not inside the farm", id="dotdot-escape",
        ),
        pytest.param({"eventType": "Download"}, (), "payload names no path", id="no-path"),
    ],
)
def test_arr_event(payload: dict[str, Any], paths: tuple[str, ...], ignored: str) -> None:
    meaning = arr_event(payload, path_map=(), farm=FARM)
    assert meaning.paths == paths
    assert meaning.ignored.startswith(ignored)
    assert meaning.event == payload["eventType"]


@pytest.mark.parametrize("payload", [[], "Download", {"series": {}}, {"eventType": 5}])
def test_arr_event_rejects_what_is_not_a_webhook(payload: Any) -> None:
    with pytest.raises(PayloadError):
        arr_event(payload, path_map=(), farm=FARM)


def test_arr_paths_are_mapped_back_into_symlinkds_view() -> None:
    # The notifier maps symlinkd's /mnt/media to Sonarr's /data; the webhook goes the other way.
    path_map = (("/mnt/media", "/data"), ("/mnt/media/stream/Shows", "/tv"))
    meaning = arr_event(
        {"eventType": "Download", "series": {"path": "/tv/Peacemaker"}},
        path_map=path_map, farm=FARM,
    )
    assert meaning.paths == (SERIES,)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/stream/Movies/X", "/mnt/media/stream/Movies/X"),
        ("/data", "/mnt/media"),
        ("/datas/stream", "/datas/stream"),  # whole components only
        ("/elsewhere/x", "/elsewhere/x"),
    ],
)
def test_reverse_map(path: str, expected: str) -> None:
    assert reverse_map(path, (("/mnt/media", "/data"),)) == expected


ZURG = MountSettings(name="zurg", path="/mnt/media/zurg", anchor="__all__")


def test_zurg_dirs_resolve_under_the_mount() -> None:
    assert zurg_dirs(["__all__/Show.S01", "/__all__/Movie (2020)/", "", "__all__/Show.S01"],
                     ZURG) == [
        "/mnt/media/zurg/__all__/Show.S01", "/mnt/media/zurg/__all__/Movie (2020)",
    ]


@pytest.mark.parametrize("bad", ["__all__/../../etc", "../x", "a/\x00b"])
def test_zurg_dirs_refuse_escapes(bad: str) -> None:
    with pytest.raises(PayloadError):
        zurg_dirs([bad], ZURG)


def _judged(path: str, resolved: str) -> Judgement:
    facts = LinkFacts(path=path, kind=EntryKind.SYMLINK, link_mtime=0.0, target=resolved,
                      resolved=resolved, mount="zurg")
    return Judgement(facts=facts, verdict=Verdict.OK, age_days=1.0)


def test_target_index_finds_the_farm_folders_linking_into_a_torrent() -> None:
    index = TargetIndex()
    assert not index.ready
    full = PassReport(run_id="1", kind="full", apply=True, started=0.0, judgements=[
        _judged(f"{SERIES}/S02/e1.mkv", "/mnt/media/zurg/__all__/PM.S02/e1.mkv"),
        _judged(f"{SERIES}/S02/e2.mkv", "/mnt/media/zurg/__all__/PM.S02/sub/e2.mkv"),
        _judged(f"{MOVIE}/Heat.mkv", "/mnt/media/zurg/__all__/Heat.1995/Heat.mkv"),
    ])
    index.update(full)
    assert index.ready
    assert index.farm_dirs(["/mnt/media/zurg/__all__/PM.S02"]) == {f"{SERIES}/S02"}
    assert index.farm_dirs(["/mnt/media/zurg/__all__/PM.S0"]) == set()  # not a prefix match
    sub = PassReport(run_id="2", kind="subtree", apply=True, started=0.0, judgements=[
        _judged(f"{FARM}/Movies/New/n.mkv", "/mnt/media/zurg/__all__/Heat.1995/n.mkv"),
    ])
    index.update(sub)
    assert index.farm_dirs(["/mnt/media/zurg/__all__/Heat.1995"]) == {
        MOVIE, f"{FARM}/Movies/New",
    }
    # A full pass replaces the index: links gone from the farm are forgotten.
    index.update(PassReport(run_id="3", kind="full", apply=True, started=0.0))
    assert index.farm_dirs(["/mnt/media/zurg/__all__"]) == set()
