"""Property-based tests (hypothesis) of the webhook and /api/v1/scan body parsers: whatever the
body, the answer is a value or a 400 (never an exception that would be a 500), and nothing
accepted lies outside the farm or the mount."""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symlinkd.daemon.webhooks import (
    PayloadError,
    arr_event,
    load_json,
    scan_paths,
    zurg_dirs,
    zurg_names,
)
from symlinkd.settings import MountSettings
from tests.daemon.http_rig import FARM, TOKEN, Rig, http_rig

ZURG = MountSettings(name="zurg", path="/m/zurg", anchor="__all__")
FAST = settings(max_examples=150, deadline=None)

# Path-ish text: separators, dots, NULs, spaces, newlines, unicode and lone surrogates.
_pieces = st.sampled_from(["/", "..", ".", "", " ", "\n", "\x00", "Shows", "é", "\ud800",
                           "\udcff", "__all__", "//", "../..", FARM, FARM + "/..", "a b "])
path_text = st.one_of(st.text(max_size=40), st.lists(_pieces, max_size=8).map("".join))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | path_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(path_text, inner, max_size=4),
    max_leaves=20,
)
content_types = st.sampled_from(["application/json", "text/plain", "",
                                 "application/x-www-form-urlencoded"])


def _inside_farm(path: str) -> bool:
    return (path == FARM or path.startswith(FARM + "/")) and posixpath.normpath(path) == path


def _encodable(path: str) -> bool:
    try:
        os.fsencode(path)
    except UnicodeError:
        return False
    return "\x00" not in path


@FAST
@given(st.binary(max_size=300))
def test_load_json_answers_a_value_or_payload_error(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        load_json(body)


@FAST
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"a":']))
def test_any_nesting_is_a_value_or_payload_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = (opener * depth + "1" + closer * depth).encode()
    try:
        load_json(body)
    except PayloadError:
        assert depth > 32


@FAST
@given(st.one_of(st.binary(max_size=300),
                 st.fixed_dictionaries({"paths": st.lists(path_text, max_size=6)}).map(
                     lambda d: json.dumps(d).encode()),
                 path_text.map(lambda p: json.dumps({"path": p}).encode())))
def test_scan_body_accepts_only_paths_inside_the_farm(body: bytes) -> None:
    try:
        inside, _ = scan_paths(body, FARM)
    except PayloadError:
        return
    for path in inside:
        assert _inside_farm(path), path
        assert _encodable(path), path
    assert len(set(inside)) == len(inside)


@FAST
@given(st.binary(max_size=300), content_types)
def test_zurg_body_is_names_or_payload_error(body: bytes, content_type: str) -> None:
    try:
        names = zurg_names(body, content_type)
    except PayloadError:
        return
    assert all(isinstance(n, str) for n in names)
    try:
        dirs = zurg_dirs(names, ZURG)
    except PayloadError:
        return
    for path in dirs:
        assert path.startswith("/m/zurg/") and _encodable(path), path
        assert ".." not in path.split("/")


@FAST
@given(st.lists(st.text(min_size=1, max_size=30).filter(
    lambda s: "/" not in s and s not in (".", "..") and "\x00" not in s), max_size=5))
def test_zurg_json_array_names_are_kept_exactly(names: list[str]) -> None:
    named = [f"__all__/{n}" for n in names]
    assert zurg_names(json.dumps(named).encode(), "application/json") == named
    try:
        dirs = zurg_dirs(named, ZURG)
    except PayloadError:
        assert not all(_encodable(n) for n in named)
        return
    assert dirs == list(dict.fromkeys(f"/m/zurg/{n}" for n in named))


@FAST
@given(json_values, st.sampled_from(["Download", "Rename", "Test", "Grab", "MovieDelete"]))
def test_arr_event_never_leaves_the_farm(payload: Any, event: str) -> None:
    for shaped in (payload, {"eventType": event, "series": {"path": payload}},
                   {"eventType": event, "movie": {"folderPath": payload},
                    "episodeFiles": [{"path": payload}]}):
        try:
            meaning = arr_event(shaped, path_map=(("/srv", "/data"),), farm=FARM)
        except PayloadError:
            continue
        for path in meaning.paths:
            assert _inside_farm(path) and _encodable(path), path


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with http_rig() as made:
        yield made


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/webhook/sonarr", "/webhook/radarr", "/webhook/zurg", "/api/v1/scan"]),
       st.one_of(st.binary(max_size=400), json_values.map(lambda v: json.dumps(v).encode())),
       content_types)
def test_no_body_makes_the_server_answer_500(
    rig: Rig, route: str, body: bytes, content_type: str
) -> None:
    headers = {"X-Api-Key": TOKEN}
    if content_type:
        headers["Content-Type"] = content_type
    answer = rig.client.post(route, content=body, headers=headers)
    assert answer.status_code in (200, 202, 400), (answer.status_code, answer.text)
    while rig.queue.get(timeout=0) is not None:  # drain without waiting
        rig.queue.done()
