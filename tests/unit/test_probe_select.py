"""The content probe's choice of links to read, table-driven (pure: no mount, no clock)."""

from __future__ import annotations

import pytest

from symlinkd.contentprobe import Due, is_verified, select
from symlinkd.probestate import ProbeRow

NOW = 1_800_000_000.0
DAY = 86400.0


def due(name: str, mount: str = "zurg", *, last_ok_days: float | None = None,
        failing: int = 0) -> Due:
    last_ok = NOW - last_ok_days * DAY if last_ok_days is not None else None
    row = ProbeRow(f"/farm/{name}", f"/mnt/{mount}/{name}", last_ok=last_ok,
                   fail_since=NOW - 3600 if failing else None, fail_passes=failing)
    return Due(row, mount, row.target)


def names(chosen: list[Due]) -> list[str]:
    return [d.row.path.rsplit("/", 1)[1] for d in chosen]


@pytest.mark.parametrize(
    ("rows", "budgets", "expected"),
    [
        # failing first (confirmation needs a read a pass), then never read, then oldest
        ([due("old", last_ok_days=40), due("new"), due("bad", last_ok_days=50, failing=1)],
         {"zurg": 3}, ["bad", "new", "old"]),
        # verified within probe_every_days (30): not due at all
        ([due("fresh", last_ok_days=2), due("older", last_ok_days=31)], {"zurg": 5}, ["older"]),
        # the budget cuts the oldest-verified first order
        ([due("a", last_ok_days=90), due("b", last_ok_days=60), due("c", last_ok_days=45)],
         {"zurg": 2}, ["a", "b"]),
        # budgets are per mount; a mount with no budget is not read
        ([due("z1"), due("z2"), due("t1", "torbox"), due("t2", "torbox")],
         {"zurg": 1, "torbox": 0}, ["z1"]),
        ([due("z1"), due("t1", "torbox")], {}, []),
    ],
)
def test_select(rows: list[Due], budgets: dict[str, int], expected: list[str]) -> None:
    assert names(select(rows, budgets, NOW, 30.0)) == expected


@pytest.mark.parametrize(
    ("row", "verified"),
    [
        (due("never").row, False),
        (due("recent", last_ok_days=1).row, True),
        (due("expired", last_ok_days=30.5).row, False),
        (due("failing", last_ok_days=1, failing=1).row, False),
    ],
)
def test_verified_means_read_ok_within_probe_every_days(row: ProbeRow, verified: bool) -> None:
    assert is_verified(row, NOW, 30.0) is verified
