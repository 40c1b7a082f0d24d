"""counts_after (issue 10, finding 6): the farm as a pass left it, from what it found and what
it did. Only actions carried out move a link; a dry run or a failed action leaves it."""

from __future__ import annotations

from collections import Counter

import pytest

from symlinkd.aftercounts import counts_after
from symlinkd.model import (
    EntryKind,
    Judgement,
    LinkFacts,
    MountHealth,
    MountState,
    Outcome,
    OutcomeResult,
    PlannedAction,
    Prune,
    PruneReason,
    Relink,
    Verdict,
)

MOUNTS = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK),
          "torbox": MountState("torbox", "/mnt/torbox", MountHealth.OK)}
FOUND = {("zurg", Verdict.DANGLING): 2, ("zurg", Verdict.OK): 5, ("torbox", Verdict.OK): 3}


def outcome(action: Relink | Prune, verdict: Verdict, result: OutcomeResult) -> Outcome:
    facts = LinkFacts(path="/farm/a.mkv", kind=EntryKind.SYMLINK, link_mtime=0.0,
                      target="/mnt/zurg/a.mkv", resolved="/mnt/zurg/a.mkv", mount="zurg")
    return Outcome(PlannedAction(Judgement(facts, verdict, 1.0), action), result)


RELINK = Relink("/mnt/torbox/torrents/a.mkv")
PRUNE = Prune(PruneReason.DANGLING)


@pytest.mark.parametrize(("done", "changes"), [
    ([outcome(RELINK, Verdict.DANGLING, OutcomeResult.DONE)],
     {("zurg", Verdict.DANGLING): -1, ("torbox", Verdict.OK): +1}),
    ([outcome(PRUNE, Verdict.DANGLING, OutcomeResult.DONE)], {("zurg", Verdict.DANGLING): -1}),
    ([outcome(Prune(PruneReason.AGE), Verdict.OK, OutcomeResult.DONE)], {("zurg", Verdict.OK): -1}),
    ([outcome(RELINK, Verdict.DANGLING, OutcomeResult.DRY_RUN),
      outcome(PRUNE, Verdict.DANGLING, OutcomeResult.FAILED),
      outcome(PRUNE, Verdict.DANGLING, OutcomeResult.SKIPPED)], {}),
])
def test_counts_after_actions(done: list[Outcome],
                              changes: dict[tuple[str, Verdict], int]) -> None:
    expected = Counter(FOUND)
    expected.update(changes)
    assert counts_after(FOUND, done, MOUNTS) == expected


def test_a_verdict_emptied_by_the_pass_stays_as_zero() -> None:
    both = [outcome(RELINK, Verdict.DANGLING, OutcomeResult.DONE),
            outcome(PRUNE, Verdict.DANGLING, OutcomeResult.DONE)]
    after = counts_after(FOUND, both, MOUNTS)
    assert ("zurg", Verdict.DANGLING) in after
    assert after[("zurg", Verdict.DANGLING)] == 0
