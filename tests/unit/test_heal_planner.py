"""Issue 10, the pure parts: rename decision, prunes held back under a rename event, the
``stale`` verdict's actions, and the relink limits of the safety gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from symlinkd.errors import UnsafePlan
from symlinkd.model import (
    ActionKind,
    MountHealth,
    MountState,
    PlannedAction,
    PruneReason,
    Relink,
    Verdict,
)
from symlinkd.planner import Plan, make_plan
from symlinkd.renames import is_rename, tripped
from tests.unit.test_planner import FARM, MOUNTS, NOW, POLICY, hist, j, plan_one


@pytest.mark.parametrize(
    ("failing", "relinkable", "ratio", "rename"),
    [
        (51, 50, 0.8, True),    # the 50 of 51
        (100, 80, 0.8, True),   # exactly the ratio
        (100, 79, 0.8, False),
        (500, 400, 0.8, True),
        (500, 0, 0.8, False),   # an outage: nothing found anywhere
        (0, 0, 0.8, False),     # nothing failing: no event
        (10, 10, 1.0, True),
        (10, 9, 1.0, False),
    ],
)
def test_rename_decision(failing: int, relinkable: int, ratio: float, rename: bool) -> None:
    assert is_rename(failing, relinkable, ratio) is rename


def test_only_mounts_the_breaker_degraded_are_searched_for_a_rename() -> None:
    scanned = {
        "zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK),
        "torbox": MountState("torbox", "/mnt/torbox", MountHealth.OK),
        "empty": MountState("empty", "/mnt/empty", MountHealth.DOWN, "anchor is empty"),
        "hung": MountState("hung", "/mnt/hung", MountHealth.HUNG),
    }
    judged = {**scanned, "zurg": replace(scanned["zurg"], health=MountHealth.DEGRADED)}
    assert tripped(scanned, judged) == ["zurg"]


def test_nothing_is_pruned_under_a_rename_mount_in_that_pass() -> None:
    old = j(Verdict.OK, path="/farm/old.mkv", age=200)
    gone = j(Verdict.DANGLING, path="/farm/gone.mkv")
    moved = j(Verdict.DANGLING, path="/farm/moved.mkv")
    other = replace(j(Verdict.DANGLING, path="/farm/tb.mkv", mount="torbox"),
                    facts=replace(gone.facts, path="/farm/tb.mkv", mount="torbox",
                                  resolved="/mnt/torbox/torrents/x.mkv"))
    histories = {p.path: hist(5, 600) for p in (gone, moved, other)}
    cands = {moved.path: ["/mnt/zurg/__all__/New/e1.mkv"]}
    plan = make_plan([old, gone, moved, other], MOUNTS, histories, cands, POLICY, FARM, NOW,
                     rename_mounts=frozenset({"zurg"}))
    kinds = {p.path: p.action.kind for p in plan.actions}
    assert kinds == {old.path: ActionKind.SKIP, gone.path: ActionKind.SKIP,
                     moved.path: ActionKind.RELINK, other.path: ActionKind.PRUNE}
    assert "rename event" in plan.actions[1].action.reason


STALE_CASES = [
    # (case, history, candidates, prune_stale, expected kind, prune reason)
    ("first sight", None, ["/mnt/torbox/torrents/e1.mkv"], True, ActionKind.SKIP, None),
    ("confirmed, a copy reads", hist(1, 120), ["/mnt/torbox/torrents/e1.mkv"], False,
     ActionKind.RELINK, None),
    ("confirmed, ambiguous", hist(1, 120), ["/mnt/a/e1.mkv", "/mnt/b/e1.mkv"], True,
     ActionKind.SKIP, None),
    ("confirmed, no copy, report only", hist(1, 120), [], False, ActionKind.SKIP, None),
    ("confirmed, no copy, prune_stale", hist(1, 120), [], True, ActionKind.PRUNE,
     PruneReason.STALE),
    ("passes but not minutes", hist(3, 5), [], True, ActionKind.SKIP, None),
]


@pytest.mark.parametrize(("case", "history", "candidates", "prune_stale", "kind", "why"),
                         STALE_CASES, ids=[c[0] for c in STALE_CASES])
def test_stale_decision_table(case: str, history: object, candidates: list[str],
                              prune_stale: bool, kind: ActionKind,
                              why: PruneReason | None) -> None:
    policy = replace(POLICY, prune_stale=prune_stale)
    planned = plan_one(j(Verdict.STALE), policy=policy, history=history,  # type: ignore[arg-type]
                       candidates=candidates)
    assert planned.action.kind is kind, (case, planned.action)
    if why is not None:
        assert getattr(planned.action, "why", None) is why


def test_stale_under_a_mount_not_ok_is_never_acted_on() -> None:
    mounts = {**MOUNTS, "zurg": replace(MOUNTS["zurg"], health=MountHealth.DEGRADED)}
    planned = plan_one(j(Verdict.STALE), policy=replace(POLICY, prune_stale=True),
                       history=hist(5, 600), candidates=[], mounts=mounts)
    assert planned.action.kind is ActionKind.SKIP


def relinks(n: int) -> Plan:
    return Plan([PlannedAction(j(Verdict.DANGLING, path=f"/farm/{i}.mkv"),
                               Relink(f"/mnt/torbox/torrents/{i}.mkv")) for i in range(n)])


@pytest.mark.parametrize(
    ("judged", "n", "max_relink", "ratio", "refused"),
    [
        (500, 400, None, 1.0, None),           # defaults: a rename event relinks in bulk
        (500, 400, 399, 1.0, "max_relink"),
        (500, 400, 400, 1.0, None),
        (500, 400, None, 0.5, "max_relink_ratio"),
        (500, 250, None, 0.5, None),
        (5, 1, None, 0.0, None),               # one relink passes any ratio
    ],
)
def test_relink_limits(judged: int, n: int, max_relink: int | None, ratio: float,
                       refused: str | None) -> None:
    policy = replace(POLICY, max_relink=max_relink, max_relink_ratio=ratio)
    plan = relinks(n)
    if refused is None:
        plan.raise_if_unsafe(policy, MOUNTS, judged=judged)
    else:
        with pytest.raises(UnsafePlan) as err:
            plan.raise_if_unsafe(policy, MOUNTS, judged=judged)
        assert err.value.reason == refused


def test_every_verdict_and_refusal_has_a_next_step() -> None:
    from symlinkd import advice  # noqa: PLC0415

    assert set(advice.VERDICT_NEXT_STEP) == set(Verdict)
    assert {"max_relink", "max_relink_ratio"} <= set(advice.REFUSAL_NEXT_STEP)
