"""Holds (issue 10, finding 5), the pure parts: the planner skips a held link whatever it would
have done, naming the undo run; a hold ends when its link changes."""

from __future__ import annotations

import pytest

from symlinkd.holds import Hold, sort_holds, still_held
from symlinkd.model import (
    ActionKind,
    EntryKind,
    Judgement,
    LinkFacts,
    LinkHistory,
    MountHealth,
    MountState,
    Skip,
    Verdict,
)
from symlinkd.planner import make_plan
from symlinkd.settings import Policy

FARM = "/farm"
NOW = 1_800_000_000.0
MOUNTS = {
    "zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK),
    "torbox": MountState("torbox", "/mnt/torbox", MountHealth.OK),
}
POLICY = Policy(max_age_days=90, confirm_after_passes=1, confirm_after_minutes=0)
LINK = "/farm/Show/S01/e1.mkv"
HOLD = Hold(LINK, "/mnt/zurg/__all__/Show/e1.mkv", 42, "undo-run", "apply-run", NOW - 60)


def judged(verdict: Verdict, age: float = 1.0) -> Judgement:
    facts = LinkFacts(path=LINK, kind=EntryKind.SYMLINK, link_mtime=NOW - age * 86400,
                      target=HOLD.target, resolved=HOLD.target, mount="zurg")
    return Judgement(facts, verdict, age)


@pytest.mark.parametrize(("judgement", "candidates", "unheld"), [
    (judged(Verdict.DANGLING), {LINK: ["/mnt/torbox/torrents/e1.mkv"]}, ActionKind.RELINK),
    (judged(Verdict.DANGLING), {}, ActionKind.PRUNE),
    (judged(Verdict.OK, age=120), {}, ActionKind.PRUNE),
])
def test_a_held_link_is_skipped_naming_the_undo_run(
    judgement: Judgement, candidates: dict[str, list[str]], unheld: ActionKind
) -> None:
    history = {LINK: LinkHistory(first_seen=NOW - 86400, bad_since=NOW - 3600, bad_passes=3)}
    free = make_plan([judgement], MOUNTS, history, candidates, POLICY, FARM, NOW)
    assert free.actions[0].action.kind is unheld  # what the hold prevents

    plan = make_plan([judgement], MOUNTS, history, candidates, POLICY, FARM, NOW,
                     holds={LINK: HOLD})

    action = plan.actions[0].action
    assert isinstance(action, Skip)
    assert action.held_by == "undo-run"
    assert "held" in action.reason and "undo-run" in action.reason
    assert plan.changes() == []


def test_holds_on_other_links_change_nothing() -> None:
    other = Hold("/farm/other.mkv", "/x", 1, "undo-run", "apply-run", NOW)
    plan = make_plan([judged(Verdict.DANGLING)], MOUNTS, {}, {}, POLICY, FARM, NOW,
                     holds={other.path: other})
    assert plan.actions[0].action.kind is ActionKind.PRUNE


@pytest.mark.parametrize(("identity", "held"), [
    ((HOLD.target, 42), True),
    (("/mnt/torbox/torrents/e1.mkv", 42), False),  # someone pointed it elsewhere
    ((HOLD.target, 43), False),  # replaced by a new link to the same target
    (None, False),  # gone
])
def test_a_hold_ends_when_its_link_changes(identity: tuple[str, int] | None,
                                           held: bool) -> None:
    assert still_held(HOLD, identity) is held
    active, changed = sort_holds([HOLD], {LINK: identity})
    assert (LINK in active) is held
    assert (changed == [HOLD]) is not held
