"""The verdict table of ARCHITECTURE.md, row by row, and the breaker."""

from __future__ import annotations

import errno
import itertools
from typing import Any

import pytest

from symlinkd.classifier import apply_breaker, classify, reclassify
from symlinkd.model import EntryKind, LinkFacts, MountHealth, MountState, Verdict

NOW = 1_800_000_000.0
DAY = 86400.0
OK, DOWN, HUNG, DEGRADED = (MountHealth.OK, MountHealth.DOWN, MountHealth.HUNG,
                            MountHealth.DEGRADED)


def facts(**kw: Any) -> LinkFacts:
    base: dict[str, Any] = {
        "path": "/farm/Shows/A/Season 01/A S01E01.mkv",
        "kind": EntryKind.SYMLINK,
        "link_mtime": NOW - 3 * DAY,
        "target": "/mnt/zurg/__all__/A S01/A S01E01.mkv",
        "resolved": "/mnt/zurg/__all__/A S01/A S01E01.mkv",
        "mount": "zurg",
    }
    base.update(kw)
    return LinkFacts(**base)


def states(health: MountHealth, detail: str = "") -> dict[str, MountState]:
    return {
        "zurg": MountState("zurg", "/mnt/zurg", health, detail),
        "torbox": MountState("torbox", "/mnt/torbox", OK),
    }


TABLE = [
    # id, facts overrides, zurg health, verdict
    ("resolves to a file", {}, OK, Verdict.OK),
    ("resolves to a folder (show linked whole)", {"target_is_dir": True}, OK, Verdict.OK),
    ("ENOENT under ok mount", {"errno": errno.ENOENT}, OK, Verdict.DANGLING),
    ("ENOTDIR under ok mount", {"errno": errno.ENOTDIR}, OK, Verdict.DANGLING),
    ("ENOTCONN under ok mount", {"errno": errno.ENOTCONN}, OK, Verdict.MOUNT_DOWN),
    ("EIO", {"errno": errno.EIO}, OK, Verdict.UNREADABLE),
    ("ESTALE", {"errno": errno.ESTALE}, OK, Verdict.UNREADABLE),
    ("EACCES", {"errno": errno.EACCES}, OK, Verdict.UNREADABLE),
    ("unexpected errno", {"errno": errno.ENAMETOOLONG}, OK, Verdict.UNREADABLE),
    ("ELOOP", {"errno": errno.ELOOP}, OK, Verdict.LOOP),
    ("chain cycles", {"loop": True, "chain": ("/farm/b",)}, OK, Verdict.LOOP),
    ("timed out", {"timed_out": True}, OK, Verdict.MOUNT_HUNG),
    ("outside every mount", {"mount": None, "resolved": "/srv/x.mkv"}, OK,
     Verdict.OUTSIDE_MOUNTS),
    ("outside and missing", {"mount": None, "errno": errno.ENOENT}, OK, Verdict.OUTSIDE_MOUNTS),
    ("regular file in the farm", {"kind": EntryKind.FILE, "target": None, "resolved": None,
                                  "mount": None}, OK, Verdict.NOT_SYMLINK),
    ("fifo in the farm", {"kind": EntryKind.OTHER, "target": None, "mount": None}, OK,
     Verdict.NOT_SYMLINK),
    ("mount down, not touched", {}, DOWN, Verdict.MOUNT_DOWN),
    ("mount down, ENOENT seen", {"errno": errno.ENOENT}, DOWN, Verdict.MOUNT_DOWN),
    ("mount hung, not touched", {}, HUNG, Verdict.MOUNT_HUNG),
    ("mount hung, ENOENT seen", {"errno": errno.ENOENT}, HUNG, Verdict.MOUNT_HUNG),
    ("mount degraded, not touched", {}, DEGRADED, Verdict.MOUNT_DOWN),
    ("mount degraded, ENOENT seen", {"errno": errno.ENOENT}, DEGRADED, Verdict.MOUNT_DOWN),
    ("mount without a state", {"mount": "elsewhere"}, OK, Verdict.MOUNT_DOWN),
]


@pytest.mark.parametrize(("overrides", "health", "verdict"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_verdict_table(overrides: dict[str, Any], health: MountHealth, verdict: Verdict) -> None:
    judgement = classify(facts(**overrides), states(health), NOW)
    assert judgement.verdict is verdict
    if verdict is not Verdict.OK:
        assert judgement.reason  # a human reads why


NAMED_ERRNOS = [errno.ENOENT, errno.ENOTDIR, errno.ENOTCONN, errno.EIO, errno.ESTALE,
                errno.EACCES, errno.ELOOP, None]


@pytest.mark.parametrize(
    ("code", "health", "timed_out"),
    list(itertools.product(NAMED_ERRNOS, [DOWN, HUNG, DEGRADED], [False, True])),
)
def test_never_dangling_unless_mount_ok(code: int | None, health: MountHealth,
                                        timed_out: bool) -> None:
    judgement = classify(facts(errno=code, timed_out=timed_out), states(health), NOW)
    assert judgement.verdict is not Verdict.DANGLING


@pytest.mark.parametrize("code", [errno.ENOTCONN, errno.EIO, errno.ESTALE, errno.EACCES, None])
def test_only_gone_errnos_are_dangling_under_a_healthy_mount(code: int | None) -> None:
    for timed_out in (False, True):
        judgement = classify(facts(errno=code, timed_out=timed_out), states(OK), NOW)
        assert judgement.verdict is not Verdict.DANGLING


def test_dangling_reason_names_errno_and_mount() -> None:
    judgement = classify(facts(errno=errno.ENOENT), states(OK), NOW)
    assert "ENOENT" in judgement.reason
    assert "zurg" in judgement.reason


def test_mount_reason_carries_the_monitor_detail() -> None:
    judgement = classify(facts(), states(DOWN, "ENOTCONN on /mnt/zurg/__all__"), NOW)
    assert "ENOTCONN on /mnt/zurg/__all__" in judgement.reason


@pytest.mark.parametrize(("mtime", "age"), [(NOW - 90.5 * DAY, 90.5), (NOW, 0.0),
                                            (NOW + 5 * DAY, 0.0)])
def test_age_in_days_from_link_mtime(mtime: float, age: float) -> None:
    assert classify(facts(link_mtime=mtime), states(OK), NOW).age_days == pytest.approx(age)


def _judged(n_ok: int, n_bad: int, mount: str = "zurg") -> list[Any]:
    st = states(OK)
    good = [classify(facts(path=f"/farm/ok{i}", mount=mount), st, NOW) for i in range(n_ok)]
    bad = [classify(facts(path=f"/farm/bad{i}", mount=mount, errno=errno.ENOENT), st, NOW)
           for i in range(n_bad)]
    return good + bad


@pytest.mark.parametrize(("n_ok", "n_bad", "ratio", "min_links", "tripped"), [
    (4, 6, 0.5, 10, True),     # 60 % failed > 50 %
    (5, 5, 0.5, 10, False),    # exactly the ratio is not over it
    (4, 6, 0.5, 20, False),    # too few links to judge the mount
    (0, 1, 0.5, 0, True),      # min_links 0 still needs a link
    (90, 10, 0.05, 10, True),
])
def test_breaker(n_ok: int, n_bad: int, ratio: float, min_links: int, tripped: bool) -> None:
    judged = _judged(n_ok, n_bad)
    after = apply_breaker(judged, states(OK), ratio, min_links)
    assert (after["zurg"].health is DEGRADED) is tripped
    assert after["torbox"].health is OK  # other mounts carry on
    if tripped:
        assert "breaker" in after["zurg"].detail


def test_breaker_leaves_down_and_hung_alone_and_ignores_loops_and_outside() -> None:
    st = states(DOWN)
    judged = [classify(facts(path=f"/farm/l{i}", loop=True), st, NOW) for i in range(20)]
    judged += [classify(facts(path=f"/farm/o{i}", mount=None), st, NOW) for i in range(20)]
    after = apply_breaker(judged, st, 0.1, 1)
    assert after["zurg"].health is DOWN
    assert after["torbox"].health is OK


def test_reclassify_after_breaker_turns_dangling_into_mount_down() -> None:
    judged = _judged(2, 18)
    after = apply_breaker(judged, states(OK), 0.5, 10)
    again = reclassify(judged, after, NOW)
    assert {j.verdict for j in again} == {Verdict.MOUNT_DOWN}
    assert [j.path for j in again] == [j.path for j in judged]
