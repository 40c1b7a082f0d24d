"""Pure planning: judgements + policy + remembered history -> typed actions, and the safety gate.

``make_plan`` decides per link (``Keep`` / ``Relink`` / ``Prune`` / ``Skip``); it never touches
the filesystem or the clock (``now`` is a parameter). ``Plan.raise_if_unsafe`` is the single gate
in front of the executor (octoDNS style): the caller skips it only for ``--force``.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from symlinkd.errors import UnsafePlan
from symlinkd.model import (
    Action,
    ActionKind,
    Judgement,
    Keep,
    LinkHistory,
    MountState,
    PlannedAction,
    Prune,
    PruneReason,
    Relink,
    Skip,
    Verdict,
)
from symlinkd.settings import Policy

if TYPE_CHECKING:
    from symlinkd.holds import Hold

_KEEP = Keep()
_KEEP_NOT_SYMLINK = Keep(reason="not a symlink; never touched")
_MUTATING = (ActionKind.RELINK, ActionKind.PRUNE)
# The ratio limit never refuses a plan that prunes only this many links: on a farm of five links
# one confirmed prune is 20 % — the ratio exists to catch mass deletion, not a single dead link.
RATIO_FLOOR = 1


@dataclass(slots=True)
class Plan:
    actions: list[PlannedAction]

    def counts(self) -> dict[str, int]:
        return dict(Counter(p.action.kind.value for p in self.actions))

    def changes(self) -> list[PlannedAction]:
        """The actions that would change the farm (relink, prune)."""
        return [p for p in self.actions if p.action.kind in _MUTATING]

    def raise_if_unsafe(self, policy: Policy, mounts: Mapping[str, MountState], *,
                        judged: int | None = None) -> None:
        """Refuse the whole plan (``UnsafePlan``) when it would act under a mount that is not
        ``ok``, or prune more than ``max_prune`` links, or more than ``max_prune_ratio`` of the
        links judged (a plan pruning ``RATIO_FLOOR`` links or fewer passes the ratio).
        ``judged``: links (not other entries) the pass judged, when the plan holds actions for
        only some of them (a streaming pass plans nothing for healthy links); default: the
        plan's own judgements."""
        changes = self.changes()
        for planned in changes:
            for name in _mounts_touched(planned, mounts):
                state = mounts.get(name)
                if state is None or not state.up:
                    health = state.health.value if state is not None else "unknown"
                    raise UnsafePlan(
                        "mount_not_ok",
                        f"{planned.action.kind.value} of {planned.path!r} touches mount "
                        f"{name!r}, which is {health}",
                    )
        prunes = sum(1 for p in changes if p.action.kind is ActionKind.PRUNE)
        if judged is None:
            judged = sum(
                1 for p in self.actions if p.judgement.verdict is not Verdict.NOT_SYMLINK
            )
        relinks = len(changes) - prunes
        _refuse_over("prune", prunes, judged, limit=policy.max_prune,
                     ratio=policy.max_prune_ratio)
        _refuse_over("relink", relinks, judged, limit=policy.max_relink,
                     ratio=policy.max_relink_ratio)


def _refuse_over(key: str, n: int, judged: int, *, limit: int | None, ratio: float) -> None:
    """``UnsafePlan`` when ``n`` changes of one kind exceed ``max_<key>`` (None: no limit) or,
    past ``RATIO_FLOOR``, ``max_<key>_ratio`` of the links judged."""
    if limit is not None and n > limit:
        raise UnsafePlan(
            f"max_{key}",
            f"the plan {key}s {n} links, over max_{key}={limit}; nothing was done "
            "(--force applies it)",
        )
    if n > RATIO_FLOOR and judged and n / judged > ratio:
        raise UnsafePlan(
            f"max_{key}_ratio",
            f"the plan {key}s {n} of {judged} links ({n / judged:.1%}), over "
            f"max_{key}_ratio={ratio:.1%}; nothing was done (--force applies it)",
        )


def make_plan(  # noqa: PLR0917 -- the agreed positional signature (interfaces.md)
    judgements: Sequence[Judgement],
    mounts: Mapping[str, MountState],
    histories: Mapping[str, LinkHistory],
    candidates: Mapping[str, Sequence[str]],
    policy: Policy,
    farm: str,
    now: float,
    *,
    holds: Mapping[str, Hold] | None = None,
    rename_mounts: Collection[str] = frozenset(),
) -> Plan:
    """One action per judgement (a streaming pass gives only the judgements it kept: healthy
    links need no action). ``histories`` describe the passes *before* this one (the runtime
    reads them before ``record_pass``); this pass is counted here. ``holds``: links an admin
    put back with ``undo`` (still as the undo left them): whatever would be done to one is a
    ``Skip`` naming the hold. Under a mount in ``rename_mounts`` (a rename event this pass,
    invariant 3) nothing is pruned."""
    farm_root = os.path.normpath(farm)
    actions: list[PlannedAction] = []
    append = actions.append
    ok = Verdict.OK
    max_age = policy.max_age_days if policy.max_age_days > 0 else math.inf
    for j in judgements:
        if j.verdict is ok and j.age_days <= max_age:
            append(PlannedAction(j, _KEEP))  # the 1M-links fast path: no call, no lookup
            continue
        action = _decide(j, histories.get(j.facts.path), candidates, policy, now)
        if action.kind is ActionKind.PRUNE and j.facts.mount in rename_mounts:
            action = Skip(f"rename event under mount {j.facts.mount}: nothing under it is "
                          f"pruned in this pass (would have: {action.reason})")
        hold = holds.get(j.facts.path) if holds else None
        if hold is not None and action.kind is not ActionKind.KEEP:
            action = _held(action, hold)
        elif action.kind in _MUTATING:
            action = _gate(j, action, mounts, policy, farm_root)
        append(PlannedAction(j, action))
    return Plan(actions)


def _too_old(j: Judgement, policy: Policy) -> bool:
    return policy.max_age_days > 0 and j.age_days > policy.max_age_days


def _decide(
    j: Judgement,
    history: LinkHistory | None,
    candidates: Mapping[str, Sequence[str]],
    policy: Policy,
    now: float,
) -> Action:
    verdict = j.verdict
    if verdict is Verdict.OK:
        return Prune(
            PruneReason.AGE,
            reason=f"link is {j.age_days:.1f} days old (max_age_days={policy.max_age_days:g})",
        )
    if verdict is Verdict.DANGLING:
        return _dangling(j, history, candidates.get(j.facts.path, ()), policy, now)
    if verdict is Verdict.STALE:
        return _stale(j, history, candidates.get(j.facts.path, ()), policy, now)
    if verdict is Verdict.LOOP:
        if policy.prune_loops:
            return Prune(PruneReason.LOOP, reason="symlink loop (prune_loops is on)")
        return Skip("symlink loop; reported only (prune_loops is off)")
    if verdict is Verdict.OUTSIDE_MOUNTS:
        if policy.prune_outside_mounts:
            return Prune(
                PruneReason.OUTSIDE_MOUNTS,
                reason="target under no configured mount (prune_outside_mounts is on)",
            )
        return Skip("target under no configured mount; reported only")
    if verdict is Verdict.NOT_SYMLINK:
        return _KEEP_NOT_SYMLINK
    # unreadable, mount_down, mount_hung: the target's state is unknown, so never act.
    detail = f": {j.reason}" if j.reason else ""
    return Skip(f"{verdict.value}; never acted on{detail}")


def _dangling(
    j: Judgement,
    history: LinkHistory | None,
    found: Sequence[str],
    policy: Policy,
    now: float,
) -> Action:
    if policy.relink and len(found) == 1:
        return Relink(found[0], reason=f"target found at {found[0]}")
    if len(found) > 1:
        listed = ", ".join(found)
        return Skip(f"dangling; {len(found)} relink candidates, ambiguous: {listed}")
    passes, minutes = _streak(history, now)
    if _confirmed(passes, minutes, policy):
        return Prune(
            PruneReason.DANGLING,
            reason=f"dangling for {passes} passes over {_minutes(minutes)} minutes",
        )
    return Skip(_awaiting("dangling", passes, minutes, policy))


def _stale(
    j: Judgement,
    history: LinkHistory | None,
    found: Sequence[str],
    policy: Policy,
    now: float,
) -> Action:
    """A target that is listed but does not read. Unlike a dangling link, even a relink waits
    for confirmation: one failed read may be a provider hiccup, and the link still plays."""
    passes, minutes = _streak(history, now)
    if not _confirmed(passes, minutes, policy):
        return Skip(_awaiting("stale", passes, minutes, policy) + f" ({j.reason})")
    if policy.relink and len(found) == 1:
        return Relink(found[0], reason=f"stale; a copy that reads is at {found[0]}")
    if len(found) > 1:
        return Skip(f"stale; {len(found)} copies that read, ambiguous: {', '.join(found)}")
    if policy.prune_stale:
        return Prune(PruneReason.STALE,
                     reason=f"stale for {passes} passes over {_minutes(minutes)} minutes, "
                            "no copy that reads (prune_stale is on)")
    return Skip(f"stale for {passes} passes, no copy that reads; reported only "
                f"(prune_stale is off): {j.reason}")


def _streak(history: LinkHistory | None, now: float) -> tuple[int, float]:
    """Passes (this one included) and minutes the link has been bad."""
    passes = (history.bad_passes if history is not None else 0) + 1
    since = history.bad_since if history is not None and history.bad_since is not None else now
    return passes, max(0.0, (now - since) / 60.0)


def _confirmed(passes: int, minutes: float, policy: Policy) -> bool:
    return passes >= policy.confirm_after_passes and minutes >= policy.confirm_after_minutes


def _awaiting(what: str, passes: int, minutes: float, policy: Policy) -> str:
    return (f"{what}, awaiting confirmation: {_passes(passes, policy.confirm_after_passes)}"
            f"{_minutes(minutes)} of {policy.confirm_after_minutes:g} minutes")


def _held(action: Action, hold: Hold) -> Skip:
    what = action.reason or action.kind.value
    return Skip(f"{hold.describe()}; would {action.kind.value}: {what}; "
                "`symlinkd hold release PATH` lets it", held_by=hold.run_id)


def _passes(seen: int, needed: int) -> str:
    """"1 of 2 passes, "; once the count is met "2 of 2 passes, confirmed; " (the minutes are
    what is still awaited) — never "pass 3 of 2"."""
    if seen < needed:
        return f"{seen} of {needed} passes, "
    if seen == needed:
        return f"{seen} of {needed} passes, confirmed; "
    return f"{seen} passes ({needed} needed), confirmed; "


def _minutes(value: float) -> str:
    return str(math.floor(value))


def _gate(
    j: Judgement, action: Action, mounts: Mapping[str, MountState], policy: Policy, farm: str
) -> Action:
    """Turn a mutating action into ``Skip`` where the plan may not act: a mount not ``ok``
    (down, hung, or degraded by the breaker), or a path outside include / inside exclude."""
    for name in _mounts_touched(PlannedAction(j, action), mounts):
        state = mounts.get(name)
        if state is None or not state.up:
            health = state.health.value if state is not None else "unknown"
            return Skip(f"would {action.kind.value}, but mount {name!r} is {health}")
    rel = os.path.relpath(j.facts.path, farm)
    if policy.include and not any(fnmatch.fnmatchcase(rel, g) for g in policy.include):
        return Skip(f"would {action.kind.value}, but the path matches no include glob")
    for glob in policy.exclude:
        if fnmatch.fnmatchcase(rel, glob):
            return Skip(f"would {action.kind.value}, but the path matches exclude {glob!r}")
    return action


def _mounts_touched(planned: PlannedAction, mounts: Mapping[str, MountState]) -> list[str]:
    """Names of the mounts an action depends on: the link's own, and a relink's new target's.
    A new target under no known mount names itself, so the gate refuses it."""
    names: list[str] = []
    if planned.judgement.facts.mount is not None:
        names.append(planned.judgement.facts.mount)
    action = planned.action
    if isinstance(action, Relink):
        names.append(mount_of(action.new_target, mounts) or f"<none: {action.new_target}>")
    return names


def mount_of(path: str, mounts: Mapping[str, MountState]) -> str | None:
    """The mount ``path`` lies under (longest component-wise prefix), or ``None``."""
    best: tuple[int, str] | None = None
    norm = os.path.normpath(path)
    for state in mounts.values():
        root = os.path.normpath(state.path)
        if (norm == root or norm.startswith(root.rstrip(os.sep) + os.sep)) and (
            best is None or len(root) > best[0]
        ):
            best = (len(root), state.name)
    return best[1] if best is not None else None
