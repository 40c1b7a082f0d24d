"""Planner decisions, table-driven: verdict + history + candidates + policy -> action."""

from __future__ import annotations

from dataclasses import replace

import pytest

from symlinkd.errors import UnsafePlan
from symlinkd.model import (
    ActionKind,
    EntryKind,
    Judgement,
    Keep,
    LinkFacts,
    LinkHistory,
    MountHealth,
    MountState,
    PlannedAction,
    Prune,
    PruneReason,
    Relink,
    Skip,
    Verdict,
)
from symlinkd.planner import RATIO_FLOOR, Plan, make_plan, mount_of
from symlinkd.settings import Policy

FARM = "/farm"
NOW = 1_800_000_000.0
MIN = 60.0
MOUNTS = {
    "zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK),
    "torbox": MountState("torbox", "/mnt/torbox", MountHealth.OK),
}
POLICY = Policy(max_age_days=90, confirm_after_passes=2, confirm_after_minutes=60)


def j(verdict: Verdict, *, path: str = "/farm/Show/S01/e1.mkv", mount: str | None = "zurg",
      age: float = 1.0, kind: EntryKind = EntryKind.SYMLINK) -> Judgement:
    target = "/mnt/zurg/__all__/Show/e1.mkv" if mount == "zurg" else "/elsewhere/e1.mkv"
    facts = LinkFacts(path=path, kind=kind, link_mtime=NOW - age * 86400, target=target,
                      resolved=target, mount=mount)
    return Judgement(facts, verdict, age)


def hist(passes: int, minutes_ago: float | None) -> LinkHistory:
    since = NOW - minutes_ago * MIN if minutes_ago is not None else None
    return LinkHistory(first_seen=NOW - 10 * 86400, bad_since=since, bad_passes=passes)


def plan_one(judgement: Judgement, *, policy: Policy = POLICY, history: LinkHistory | None = None,
             candidates: list[str] | None = None,
             mounts: dict[str, MountState] | None = None) -> PlannedAction:
    histories = {judgement.path: history} if history is not None else {}
    cands = {judgement.path: candidates} if candidates is not None else {}
    plan = make_plan([judgement], mounts or MOUNTS, histories, cands, policy, FARM, NOW)
    assert len(plan.actions) == 1
    return plan.actions[0]


@pytest.mark.parametrize(
    ("case", "judgement", "history", "candidates", "policy", "kind", "why"),
    [
        ("healthy young link is kept", j(Verdict.OK, age=10), None, None, POLICY,
         ActionKind.KEEP, None),
        ("healthy link past max age is pruned by age", j(Verdict.OK, age=91), None, None,
         POLICY, ActionKind.PRUNE, PruneReason.AGE),
        ("age policy off with max_age_days 0", j(Verdict.OK, age=4000), None, None,
         replace(POLICY, max_age_days=0), ActionKind.KEEP, None),
        ("exactly at max age is kept", j(Verdict.OK, age=90), None, None, POLICY,
         ActionKind.KEEP, None),
        ("dangling first sight waits", j(Verdict.DANGLING), None, None, POLICY,
         ActionKind.SKIP, None),
        ("dangling enough passes but too recent waits", j(Verdict.DANGLING), hist(5, 30), None,
         POLICY, ActionKind.SKIP, None),
        ("dangling long ago but too few passes waits", j(Verdict.DANGLING), hist(0, 600), None,
         POLICY, ActionKind.SKIP, None),
        ("dangling confirmed by passes (this one counted) and minutes", j(Verdict.DANGLING),
         hist(1, 61), None, POLICY, ActionKind.PRUNE, PruneReason.DANGLING),
        ("dangling with one candidate is relinked", j(Verdict.DANGLING), None,
         ["/mnt/torbox/torrents/Show/e1.mkv"], POLICY, ActionKind.RELINK, None),
        ("dangling with two candidates is skipped, not pruned", j(Verdict.DANGLING),
         hist(9, 6000), ["/mnt/zurg/a/e1.mkv", "/mnt/torbox/b/e1.mkv"], POLICY,
         ActionKind.SKIP, None),
        ("relink off: confirmed dangling is pruned", j(Verdict.DANGLING), hist(3, 120),
         ["/mnt/torbox/torrents/Show/e1.mkv"], replace(POLICY, relink=False),
         ActionKind.PRUNE, PruneReason.DANGLING),
        ("unreadable never acted on", j(Verdict.UNREADABLE, age=400), hist(9, 9999), None,
         POLICY, ActionKind.SKIP, None),
        ("mount_down never acted on", j(Verdict.MOUNT_DOWN, age=400), hist(9, 9999), None,
         POLICY, ActionKind.SKIP, None),
        ("mount_hung never acted on", j(Verdict.MOUNT_HUNG, age=400), hist(9, 9999), None,
         POLICY, ActionKind.SKIP, None),
        ("not a symlink is kept", j(Verdict.NOT_SYMLINK, kind=EntryKind.FILE, mount=None,
                                    age=400), None, None, POLICY, ActionKind.KEEP, None),
        ("loop reported only by default", j(Verdict.LOOP, mount=None), None, None, POLICY,
         ActionKind.SKIP, None),
        ("loop pruned when prune_loops", j(Verdict.LOOP, mount=None), None, None,
         replace(POLICY, prune_loops=True), ActionKind.PRUNE, PruneReason.LOOP),
        ("outside mounts reported only by default", j(Verdict.OUTSIDE_MOUNTS, mount=None),
         None, None, POLICY, ActionKind.SKIP, None),
        ("outside mounts pruned when configured", j(Verdict.OUTSIDE_MOUNTS, mount=None), None,
         None, replace(POLICY, prune_outside_mounts=True), ActionKind.PRUNE,
         PruneReason.OUTSIDE_MOUNTS),
        ("exclude glob stops a prune", j(Verdict.OK, age=200, path="/farm/Keep/S01/e.mkv"),
         None, None, replace(POLICY, exclude=("Keep/*",)), ActionKind.SKIP, None),
        ("include glob limits prunes to matches", j(Verdict.OK, age=200,
                                                   path="/farm/Movies/m.mkv"),
         None, None, replace(POLICY, include=("Shows/*",)), ActionKind.SKIP, None),
        ("include glob lets a match through", j(Verdict.OK, age=200, path="/farm/Shows/x.mkv"),
         None, None, replace(POLICY, include=("Shows/*",)), ActionKind.PRUNE, PruneReason.AGE),
    ],
)
def test_decision_table(case: str, judgement: Judgement, history: LinkHistory | None,
                        candidates: list[str] | None, policy: Policy, kind: ActionKind,
                        why: PruneReason | None) -> None:
    planned = plan_one(judgement, policy=policy, history=history, candidates=candidates)
    assert planned.action.kind is kind, f"{case}: {planned.action}"
    if why is not None:
        assert isinstance(planned.action, Prune)
        assert planned.action.why is why
    if kind is ActionKind.SKIP:
        assert planned.action.reason  # a skip always says why


def test_ambiguous_candidates_are_listed_in_the_reason() -> None:
    cands = ["/mnt/zurg/__all__/A/e1.mkv", "/mnt/torbox/torrents/B/e1.mkv"]
    planned = plan_one(j(Verdict.DANGLING), candidates=cands)
    assert isinstance(planned.action, Skip)
    for c in cands:
        assert c in planned.action.reason


@pytest.mark.parametrize("health", [MountHealth.DEGRADED, MountHealth.DOWN, MountHealth.HUNG])
@pytest.mark.parametrize(
    ("judgement", "history", "candidates"),
    [
        (j(Verdict.OK, age=300), None, None),  # would be an age prune
        (j(Verdict.DANGLING), hist(5, 500), None),  # would be a confirmed prune
        (j(Verdict.DANGLING), None, ["/mnt/torbox/torrents/e1.mkv"]),  # would relink
    ],
)
def test_nothing_under_a_mount_that_is_not_ok(
    health: MountHealth, judgement: Judgement, history: LinkHistory | None,
    candidates: list[str] | None,
) -> None:
    mounts = {**MOUNTS, "zurg": MountState("zurg", "/mnt/zurg", health, "breaker")}
    planned = plan_one(judgement, history=history, candidates=candidates, mounts=mounts)
    assert isinstance(planned.action, Skip)
    assert "zurg" in planned.action.reason


def test_relink_target_must_be_under_an_ok_mount() -> None:
    mounts = {**MOUNTS, "torbox": MountState("torbox", "/mnt/torbox", MountHealth.DOWN)}
    planned = plan_one(j(Verdict.DANGLING), candidates=["/mnt/torbox/torrents/e1.mkv"],
                       mounts=mounts)
    assert isinstance(planned.action, Skip)
    planned = plan_one(j(Verdict.DANGLING), candidates=["/nowhere/e1.mkv"])
    assert isinstance(planned.action, Skip)


# -- the gate ---------------------------------------------------------------------------------


def plan_of(*actions: tuple[Judgement, object]) -> Plan:
    return Plan([PlannedAction(jj, a) for jj, a in actions])  # type: ignore[arg-type]


def links(n: int, prunes: int) -> Plan:
    out = []
    for i in range(n):
        judgement = j(Verdict.OK, path=f"/farm/l{i}")
        out.append((judgement, Prune(PruneReason.AGE) if i < prunes else Keep()))
    return plan_of(*out)


@pytest.mark.parametrize(
    ("total", "prunes", "max_prune", "ratio", "refused"),
    [
        (1000, 50, 100, 0.05, None),
        (1000, 51, 100, 0.05, "max_prune_ratio"),
        (1000, 101, 100, 0.5, "max_prune"),
        (100, 5, 100, 0.05, None),
        (100, 6, 100, 0.05, "max_prune_ratio"),
        (5, RATIO_FLOOR, 100, 0.05, None),  # tiny farm: one prune passes the ratio
        (5, RATIO_FLOOR + 1, 100, 0.05, "max_prune_ratio"),
        (1, 1, 100, 0.05, None),
        (10, 2, 1, 1.0, "max_prune"),
        (10, 0, 0, 0.0, None),
    ],
)
def test_gate_limits(total: int, prunes: int, max_prune: int, ratio: float,
                     refused: str | None) -> None:
    policy = replace(POLICY, max_prune=max_prune, max_prune_ratio=ratio)
    plan = links(total, prunes)
    if refused is None:
        plan.raise_if_unsafe(policy, MOUNTS)
    else:
        with pytest.raises(UnsafePlan) as err:
            plan.raise_if_unsafe(policy, MOUNTS)
        assert err.value.reason == refused
        assert str(prunes) in str(err.value)


@pytest.mark.parametrize("health", [MountHealth.DEGRADED, MountHealth.DOWN, MountHealth.HUNG])
def test_gate_refuses_any_change_under_a_mount_not_ok(health: MountHealth) -> None:
    mounts = {**MOUNTS, "torbox": MountState("torbox", "/mnt/torbox", health)}
    relink_into_bad = plan_of((j(Verdict.DANGLING), Relink("/mnt/torbox/torrents/e1.mkv")))
    with pytest.raises(UnsafePlan) as err:
        relink_into_bad.raise_if_unsafe(POLICY, mounts)
    assert err.value.reason == "mount_not_ok"
    mounts = {**MOUNTS, "zurg": MountState("zurg", "/mnt/zurg", health)}
    prune_under_bad = plan_of((j(Verdict.OK, age=200), Prune(PruneReason.AGE)))
    with pytest.raises(UnsafePlan) as err:
        prune_under_bad.raise_if_unsafe(POLICY, mounts)
    assert err.value.reason == "mount_not_ok"
    # Keeps and skips under a bad mount are no change: the plan passes.
    plan_of((j(Verdict.MOUNT_DOWN), Skip("down"))).raise_if_unsafe(POLICY, mounts)


def test_not_symlinks_do_not_count_toward_the_ratio_denominator() -> None:
    files = [(j(Verdict.NOT_SYMLINK, path=f"/farm/f{i}", kind=EntryKind.FILE, mount=None),
              Keep()) for i in range(1000)]
    prunes = [(j(Verdict.OK, path=f"/farm/p{i}"), Prune(PruneReason.AGE)) for i in range(2)]
    keeps = [(j(Verdict.OK, path=f"/farm/k{i}"), Keep()) for i in range(8)]
    with pytest.raises(UnsafePlan):
        plan_of(*files, *prunes, *keeps).raise_if_unsafe(POLICY, MOUNTS)


def test_make_plan_is_one_action_per_judgement_in_order() -> None:
    js = [j(Verdict.OK, path=f"/farm/{i}", age=i * 10) for i in range(20)]
    plan = make_plan(js, MOUNTS, {}, {}, POLICY, FARM, NOW)
    assert [p.path for p in plan.actions] == [x.path for x in js]
    assert plan.counts() == {"keep": 10, "prune": 10}
    assert len(plan.changes()) == 10


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/mnt/zurg/__all__/x", "zurg"), ("/mnt/zurgx/a", None), ("/mnt/zurg", "zurg"),
     ("/mnt/torbox/usenet/a", "torbox"), ("/data/x", None)],
)
def test_mount_of_matches_whole_components(path: str, expected: str | None) -> None:
    assert mount_of(path, MOUNTS) == expected


# --- plain numbers in reasons (issue 13) -------------------------------------------------------


@pytest.mark.parametrize(("passes", "minutes_ago", "expected"), [
    (0, None, "dangling, awaiting confirmation: 1 of 2 passes, 0 of 60 minutes"),
    (1, 5.0, "dangling, awaiting confirmation: 2 of 2 passes, confirmed; 5 of 60 minutes"),
    # past the pass count, short of the minutes: never "pass 3 of 2"
    (4, 30.0, "dangling, awaiting confirmation: 5 passes (2 needed), confirmed; 30 of 60 minutes"),
])
def test_awaiting_confirmation_reads_as_plain_numbers(passes: int, minutes_ago: float | None,
                                                      expected: str) -> None:
    planned = plan_one(j(Verdict.DANGLING), history=hist(passes, minutes_ago))
    assert planned.action.kind is ActionKind.SKIP
    assert planned.action.reason == expected
