"""Coalescing of one pass's changes into few requests, and what a pass's outcomes mean for the
servers."""

from __future__ import annotations

import pytest

from symlinkd.model import (
    EntryKind,
    Judgement,
    Keep,
    LinkFacts,
    Outcome,
    OutcomeResult,
    PlannedAction,
    Prune,
    PruneReason,
    Relink,
    Skip,
    Verdict,
)
from symlinkd.notifiers.base import ApiRequest, Change, ChangeCause, ChangeKind
from symlinkd.notifiers.batching import (
    FolderChange,
    changed_folders,
    group_by_owner,
    plan_library_scans,
)
from symlinkd.notifiers.hub import changes_from_outcomes
from symlinkd.notifiers.pathmap import PathMap

M = ChangeKind.MODIFIED


def change(path: str, kind: ChangeKind = M, *, is_dir: bool = False) -> Change:
    return Change(path, kind, ChangeCause.RELINK, is_dir=is_dir)


def test_changed_folders_one_per_folder_mapped() -> None:
    changes = [change(f"/farm/tv/S/Season 01/e{i}.mkv") for i in range(300)]
    changes += [change("/farm/tv/S/Season 02/e1.mkv"),
                change("/farm/movies/M (2020)", ChangeKind.CREATED, is_dir=True)]
    folders = changed_folders(changes, PathMap((("/farm", "/data"),)))
    assert folders == [FolderChange("/data/tv/S/Season 01", M),
                       FolderChange("/data/tv/S/Season 02", M),
                       FolderChange("/data/movies/M (2020)", ChangeKind.CREATED)]


def test_folder_link_kinds() -> None:
    changes = [change("/m/A", ChangeKind.CREATED, is_dir=True),
               change("/m/A/x.mkv", ChangeKind.DELETED),
               change("/m/B", ChangeKind.CREATED, is_dir=True),
               # a removed folder link is rescanned from its parent, which still exists
               change("/m/C/D", ChangeKind.DELETED, is_dir=True)]
    assert changed_folders(changes, PathMap()) == [
        FolderChange("/m/A", M), FolderChange("/m/B", ChangeKind.CREATED),
        FolderChange("/m/C", M)]


LIBRARIES = {"1": ["/data/tv"], "2": ["/data/movies", "/data/movies4k"], "3": ["/data/tv"]}


def test_scans_per_folder_per_library_and_unmapped() -> None:
    folders = [FolderChange("/data/tv/S/Season 01", M), FolderChange("/data/movies4k/M", M),
               FolderChange("/data/anime/X", M)]
    batch = plan_library_scans(folders, LIBRARIES, 50)
    assert [(s.library, s.path) for s in batch.scans] == [
        ("1", "/data/tv/S/Season 01"), ("3", "/data/tv/S/Season 01"),  # shared location
        ("2", "/data/movies4k/M"),
    ]
    assert batch.unmapped == ["/data/anime/X"]


@pytest.mark.parametrize(("limit", "expected"), [
    (5, [("2", f"/data/movies/M{i}") for i in range(4)] + [("2", "/data/movies4k/N")]),
    (4, [("2", "/data/movies"), ("2", "/data/movies4k")]),
])
def test_over_the_limit_scans_the_locations_with_changes(
        limit: int, expected: list[tuple[str, str]]) -> None:
    folders = [FolderChange(f"/data/movies/M{i}", M) for i in range(4)]
    folders.append(FolderChange("/data/movies4k/N", M))
    batch = plan_library_scans(folders, {"2": LIBRARIES["2"]}, limit)
    assert sorted((s.library, s.path) for s in batch.scans) == sorted(expected)


def test_group_by_owner_deepest_folder() -> None:
    owners = {"/tv/Show": 1, "/tv/Show Two": 2, "/tv/Show/Specials": 3}
    grouped = group_by_owner(["/tv/Show/S1/e.mkv", "/tv/Show Two/e.mkv",
                              "/tv/Show/Specials/x.mkv", "/tv/Nope/e.mkv"], owners)
    assert grouped == {1: ["/tv/Show/S1/e.mkv"], 2: ["/tv/Show Two/e.mkv"],
                       3: ["/tv/Show/Specials/x.mkv"]}


def _outcome(path: str, action: Keep | Relink | Prune | Skip, result: OutcomeResult,
             *, is_dir: bool = False) -> Outcome:
    facts = LinkFacts(path=path, kind=EntryKind.SYMLINK, link_mtime=0.0, target="/t",
                      target_is_dir=is_dir)
    return Outcome(PlannedAction(Judgement(facts, Verdict.OK, 1.0), action), result)


def test_changes_from_outcomes() -> None:
    outcomes = [
        _outcome("/f/a", Relink("/new"), OutcomeResult.DONE),
        _outcome("/f/b", Prune(PruneReason.DANGLING), OutcomeResult.DRY_RUN),
        _outcome("/f/c", Prune(PruneReason.AGE), OutcomeResult.DONE, is_dir=True),
        _outcome("/f/d", Prune(PruneReason.LOOP), OutcomeResult.DONE),
        _outcome("/f/e", Relink("/new"), OutcomeResult.FAILED),
        _outcome("/f/f", Relink("/new"), OutcomeResult.SKIPPED),
        _outcome("/f/g", Keep(), OutcomeResult.DONE),
        _outcome("/f/h", Skip("mount down"), OutcomeResult.DONE),
    ]
    assert changes_from_outcomes(outcomes) == [
        Change("/f/a", ChangeKind.MODIFIED, ChangeCause.RELINK),
        Change("/f/b", ChangeKind.DELETED, ChangeCause.PRUNE_DANGLING),
        Change("/f/c", ChangeKind.DELETED, ChangeCause.PRUNE_AGE, is_dir=True),
        Change("/f/d", ChangeKind.DELETED, ChangeCause.PRUNE_DANGLING),
    ]


def test_request_round_trips_and_encodes_odd_names() -> None:
    name = "/data/tv/Caf\udce9 S01"  # an invalid UTF-8 byte, as os.scandir gives it
    request = ApiRequest("plex", "GET", "/library/sections/1/refresh", (("path", name),))
    assert request.url_path() == "/library/sections/1/refresh?path=/data/tv/Caf%E9%20S01"
    assert ApiRequest.from_json(request.to_json()) == request
    body = ApiRequest.with_json("sonarr", "POST", "/api/v3/command", {"b": 1, "a": 2})
    assert body.body == '{"a": 2, "b": 1}'
    assert Change.from_json(change("/x", is_dir=True).to_json()) == change("/x", is_dir=True)
