"""Verdict of each link from its facts and the state of its mount. Pure: no I/O, no clock.

The one rule everything else leans on (ARCHITECTURE.md, safety invariant 2): only ENOENT or
ENOTDIR met under a mount that is ``ok`` in this pass makes a link ``dangling``. A mount that is
down, hung or degraded, ENOTCONN, EIO, ESTALE, EACCES and timeouts never do.

Every link into a mount that is not ``ok`` gets ``mount_down`` (down or degraded) or
``mount_hung`` (hung), whatever its own facts say: the scanner does not touch such a mount, so
there is nothing per link to believe. A *degraded* mount (EIO on the anchor, rc refresh failing,
the breaker tripped) is reported as ``mount_down`` with the reason "degraded: ...": it answers,
but not well enough to tell "gone" from "not answering properly", so nothing under it is acted
on — the same promise ``mount_down`` makes.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from symlinkd.model import (
    EntryKind,
    Judgement,
    LinkFacts,
    MountHealth,
    MountState,
    Verdict,
)

_DAY = 86400.0
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR})
# Verdicts that count as a failure of the mount for the breaker (loops, outside links and
# non-links say nothing about the mount's health).
FAILING = frozenset({Verdict.DANGLING, Verdict.UNREADABLE, Verdict.MOUNT_DOWN,
                     Verdict.MOUNT_HUNG})
_FAILING = FAILING


def _name(code: int) -> str:
    return errno.errorcode.get(code, f"errno {code}")


def _verdict(facts: LinkFacts, mounts: Mapping[str, MountState]) -> tuple[Verdict, str]:
    if facts.kind is not EntryKind.SYMLINK:
        return Verdict.NOT_SYMLINK, f"{facts.kind.value} in the farm; never touched"
    if facts.loop or facts.errno == errno.ELOOP:
        return Verdict.LOOP, "symlink chain loops (or is longer than 40 hops)"
    if facts.mount is None:
        return Verdict.OUTSIDE_MOUNTS, "target is under no configured mount"
    state = mounts.get(facts.mount)
    if state is None:
        return Verdict.MOUNT_DOWN, f"no state for mount {facts.mount}; not trusted"
    why = f": {state.detail}" if state.detail else ""
    if state.health is MountHealth.DOWN:
        return Verdict.MOUNT_DOWN, f"mount {facts.mount} is down{why}"
    if state.health is MountHealth.DEGRADED:
        return Verdict.MOUNT_DOWN, f"mount {facts.mount} is degraded{why}; not trusted"
    if state.health is MountHealth.HUNG or facts.timed_out:
        return Verdict.MOUNT_HUNG, f"mount {facts.mount} did not answer in time{why}"
    code = facts.errno
    if code is None:
        return Verdict.OK, ""
    if code == errno.ENOTCONN:
        return Verdict.MOUNT_DOWN, f"ENOTCONN under {facts.mount} (rclone not connected)"
    if code in _GONE:
        return Verdict.DANGLING, f"{_name(code)} under {facts.mount}, a healthy mount"
    # EIO, ESTALE, EACCES and anything unexpected: the target is there but cannot be read
    # (provider expiry, backend error). Never acted on at first sight.
    return Verdict.UNREADABLE, f"{_name(code)} on the target under {facts.mount}"


def classify(facts: LinkFacts, mounts: Mapping[str, MountState], now: float) -> Judgement:
    """One link's verdict and age in days (from the link's own lstat mtime; never negative)."""
    age = (now - facts.link_mtime) / _DAY
    age = max(age, 0.0)
    # The healthy link under a healthy mount is nearly every link of a farm: decide it first.
    if (facts.errno is None and facts.mount is not None and not facts.timed_out
            and not facts.loop and facts.kind is EntryKind.SYMLINK):
        state = mounts.get(facts.mount)
        if state is not None and state.health is MountHealth.OK:
            return Judgement(facts, Verdict.OK, age, "")
    verdict, reason = _verdict(facts, mounts)
    return Judgement(facts, verdict, age, reason)


Tally = Counter[tuple[str | None, Verdict]]  # entries per (mount, verdict)


def apply_breaker(
    judgements: Sequence[Judgement], mounts: Mapping[str, MountState],
    ratio: float, min_links: int,
) -> dict[str, MountState]:
    """Mount states with ``ok`` turned ``degraded`` where more than ``ratio`` of the links
    into that mount failed (from ``min_links`` links up). Other states pass through."""
    counts: Tally = Counter(
        (j.facts.mount, j.verdict) for j in judgements if j.facts.kind is EntryKind.SYMLINK
    )
    return breaker(counts, mounts, ratio, min_links)


def breaker(counts: Mapping[tuple[str | None, Verdict], int], mounts: Mapping[str, MountState],
            ratio: float, min_links: int) -> dict[str, MountState]:
    """``apply_breaker`` from the counts of a pass (links per mount and verdict)."""
    total: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for (mount, verdict), n in counts.items():
        if mount is None or verdict is Verdict.NOT_SYMLINK:
            continue
        total[mount] += n
        if verdict in _FAILING:
            failed[mount] += n
    result = dict(mounts)
    for name, state in mounts.items():
        n, bad = total[name], failed[name]
        if state.health is MountHealth.OK and n >= max(1, min_links) and bad > ratio * n:
            detail = (f"breaker: {bad} of {n} links failed ({bad / n:.0%} > {ratio:.0%}); "
                      "nothing under it is acted on")
            result[name] = replace(state, health=MountHealth.DEGRADED, detail=detail)
    return result


def reclassify(judgements: Sequence[Judgement], mounts: Mapping[str, MountState],
               now: float) -> list[Judgement]:
    """Judge again after mount states changed (e.g. by ``apply_breaker``). Only links into a
    mount that is not ``ok`` can change verdict, so only those are judged again."""
    suspect = {name for name, s in mounts.items() if s.health is not MountHealth.OK}
    return [classify(j.facts, mounts, now) if j.facts.mount in suspect else j
            for j in judgements]


def rejudge(kept: Sequence[Judgement], counts: Tally, mounts: Mapping[str, MountState],
            now: float) -> list[Judgement]:
    """``reclassify`` for a pass that kept only some judgements: the kept ones are judged again,
    and ``counts`` move with them. The ``ok`` links that were not kept, under a mount that is no
    longer ``ok``, are counted as that mount's ``mount_hung``/``mount_down`` — what ``classify``
    gives every link of such a mount. They were not kept because nothing was planned for them,
    and nothing ever will be in this pass (the planner never sees them)."""
    bad = {name: s for name, s in mounts.items() if s.health is not MountHealth.OK}
    if not bad:
        return list(kept)
    out: list[Judgement] = []
    for j in kept:
        if j.facts.mount not in bad:
            out.append(j)
            continue
        again = classify(j.facts, mounts, now)
        if again.verdict is not j.verdict:
            counts[(j.facts.mount, j.verdict)] -= 1
            counts[(j.facts.mount, again.verdict)] += 1
        out.append(again)
    for name, state in bad.items():
        healthy = counts.pop((name, Verdict.OK), 0)
        if healthy:
            verdict = Verdict.MOUNT_HUNG if state.health is MountHealth.HUNG else Verdict.MOUNT_DOWN
            counts[(name, verdict)] += healthy
    for key in [k for k, n in counts.items() if n <= 0]:
        del counts[key]
    return out
