"""Path mapping between symlinkd's view and a server's view: longest prefix, whole
components only."""

from __future__ import annotations

import pytest

from symlinkd.notifiers.pathmap import PathMap, covering, is_under


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/tv/Show", "/tv", True),
        ("/tv", "/tv", True),
        ("/tv/", "/tv", True),
        ("/tv/Show", "/tv/", True),
        ("/tvshows/Show", "/tv", False),  # a prefix of the text is not a parent folder
        ("/tv", "/tv/Show", False),
        ("/anything", "/", True),
        ("/tv/../movies/x", "/tv", False),
    ],
)
def test_is_under_compares_whole_components(path: str, root: str, expected: bool) -> None:
    assert is_under(path, root) is expected


def test_covering_picks_the_deepest_root() -> None:
    roots = ["/data", "/data/tv", "/data/tv/Anime", "/data/tvx"]
    assert covering("/data/tv/Anime/Show/S1", roots) == "/data/tv/Anime"
    assert covering("/data/tv/Show", roots) == "/data/tv"
    assert covering("/data/tvx/Show", roots) == "/data/tvx"
    assert covering("/elsewhere", roots) is None


@pytest.mark.parametrize(
    ("pairs", "path", "expected"),
    [
        ((("/mnt/media", "/data"),), "/mnt/media/stream/tv/S/e.mkv", "/data/stream/tv/S/e.mkv"),
        # longest prefix wins, whatever the order in the config
        ((("/mnt/media", "/data"), ("/mnt/media/stream/tv", "/tv")),
         "/mnt/media/stream/tv/S/e.mkv", "/tv/S/e.mkv"),
        ((("/mnt/media/stream/tv", "/tv"), ("/mnt/media", "/data")),
         "/mnt/media/stream/movies/M", "/data/stream/movies/M"),
        # component-wise: /mnt/media2 is not under /mnt/media
        ((("/mnt/media", "/data"),), "/mnt/media2/x", "/mnt/media2/x"),
        ((("/mnt/media/", "/data/"),), "/mnt/media", "/data"),
        ((), "/mnt/media/x", "/mnt/media/x"),
        ((("/", "/host"),), "/mnt/x", "/host/mnt/x"),
    ],
)
def test_path_map(pairs: tuple[tuple[str, str], ...], path: str, expected: str) -> None:
    assert PathMap(pairs).to_server(path) == expected
