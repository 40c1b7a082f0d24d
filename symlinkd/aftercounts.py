"""The farm after a pass's actions, as counts per (mount, verdict): what the link gauges and the
report's "after" show. Pure: the pass's counts as found, minus what its actions took away, plus
what they made. Only actions carried out (``done``) count; a dry run leaves the farm as found.

A relinked link leaves (its mount, its verdict) and counts as ``ok`` under the mount of its new
target: the relink was verified against a listing of that mount in this very pass. A pruned link
leaves the farm (it sits in the quarantine now)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from symlinkd.model import (
    ActionKind,
    MountState,
    Outcome,
    OutcomeResult,
    PassReport,
    Relink,
    Verdict,
)
from symlinkd.planner import mount_of

__all__ = ["Tally", "by_mount", "counts_after", "report_after"]

Tally = Counter[tuple[str | None, Verdict]]


def counts_after(
    found: Mapping[tuple[str | None, Verdict], int],
    outcomes: Iterable[Outcome],
    mounts: Mapping[str, MountState],
) -> Tally:
    after: Tally = Counter(found)
    for outcome in outcomes:
        if outcome.result is not OutcomeResult.DONE:
            continue
        action = outcome.planned.action
        judgement = outcome.planned.judgement
        if isinstance(action, Relink):
            after[(judgement.facts.mount, judgement.verdict)] -= 1
            after[(mount_of(action.new_target, mounts), Verdict.OK)] += 1
        elif action.kind is ActionKind.PRUNE:
            after[(judgement.facts.mount, judgement.verdict)] -= 1
    # a pair that dropped to zero stays (a gauge of 0 is news); never below zero
    return Counter({key: max(0, n) for key, n in after.items()})


def report_after(report: PassReport) -> Tally:
    """``counts_after`` of a finished pass."""
    return counts_after(report.tally(), report.outcomes, report.mounts)


def by_mount(counts: Tally, after: Tally) -> list[dict[str, Any]]:
    """The report's ``counts_by_mount``: per mount, the counts found and after the actions."""
    def per_mount(tallied: Tally) -> dict[str | None, Any]:
        per: dict[str | None, dict[str, int]] = {}
        # a stable order (mounts by name, "no mount" last; verdicts as declared), whatever
        # order the pass met them in
        for (mount, verdict), n in sorted(tallied.items(), key=_mount_verdict_order):
            if n or (mount, verdict) in counts:
                per.setdefault(mount, {})[verdict.value] = n
        return per

    found, left = per_mount(counts), per_mount(after)
    mounts = sorted(found.keys() | left.keys(), key=lambda m: (m is None, m or ""))
    return [{"mount": m, "counts": found.get(m, {}), "after": left.get(m, {})} for m in mounts]


_ORDER = {v: i for i, v in enumerate(Verdict)}


def _mount_verdict_order(kv: tuple[tuple[str | None, Verdict], int]) -> tuple[bool, str, int]:
    (mount, verdict), _n = kv
    return mount is None, mount or "", _ORDER[verdict]
