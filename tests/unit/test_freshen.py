"""The candidate-folder refresher's bounds: once a folder a pass, at most N folders and T
seconds a pass, and what the report says when a listing may be stale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from symlinkd.errors import MountUnavailable
from symlinkd.freshen import ListingRefresher
from symlinkd.mounts import MountMonitor


class FakeMonitor:
    def __init__(self, rc: dict[str, bool], fail: bool = False) -> None:
        self.rc = rc
        self.fail = fail
        self.calls: list[tuple[str, list[str]]] = []

    def has_rc(self, name: str) -> bool:
        return self.rc[name]

    def refresh(self, mount: str, directories: Sequence[str]) -> None:
        if self.fail:
            raise MountUnavailable("rc down")
        self.calls.append((mount, list(directories)))


def refresher(monitor: FakeMonitor, *, dirs: int = 3, seconds: float = 10.0,
              clock: Any = None) -> ListingRefresher:
    return ListingRefresher(cast(MountMonitor, monitor), max_dirs=dirs, max_seconds=seconds,
                            clock=clock or (lambda: 0.0))


def test_each_folder_once_and_the_folder_budget() -> None:
    monitor = FakeMonitor({"zurg": True})
    r = refresher(monitor)
    assert r.refresh("zurg", ["/a", "/b"]) is True
    assert r.refresh("zurg", ["/a"]) is True  # already fresh: no second call
    assert r.refresh("zurg", ["/c", "/d"]) is False  # only one more fits
    assert monitor.calls == [("zurg", ["/a", "/b"]), ("zurg", ["/c"])]
    assert any("refresh budget" in note for note in r.notes())


def test_time_budget() -> None:
    now = [0.0]
    monitor = FakeMonitor({"zurg": True})
    r = refresher(monitor, dirs=100, seconds=5, clock=lambda: now[0])
    assert r.refresh("zurg", ["/a"]) is True
    now[0] = 6.0
    assert r.refresh("zurg", ["/b"]) is False
    assert monitor.calls == [("zurg", ["/a"])]


def test_without_rc_the_report_says_listings_may_be_stale() -> None:
    r = refresher(FakeMonitor({"plain": False}))
    assert r.refresh("plain", ["/x"]) is False
    assert r.notes() == ["candidate search under mount plain used rclone's cached listings "
                         "(no rc_url): a file moved recently may have been missed"]


def test_rc_failure_is_noted_and_not_retried() -> None:
    monitor = FakeMonitor({"zurg": True}, fail=True)
    r = refresher(monitor)
    assert r.refresh("zurg", ["/a"]) is False
    monitor.fail = False
    assert r.refresh("zurg", ["/b"]) is False  # one failure a pass is enough
    assert monitor.calls == []
    assert any("rc refresh failed" in note for note in r.notes())
