"""What the admin should do next: one line per mount state, verdict and refusal, and the
per-mount summary of links under a mount that is not ok. Pure: the report and the daemon's
logs print these; docs/verdicts.md holds the same words as tables (a test compares them).

A dead mount makes every one of its links ``mount_down`` for the same reason; listing them one
by one (34 identical rows, or the 200-row cap on a large library) hides the one thing to do,
which is about the mount, not the links.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from symlinkd.model import MountHealth, MountState, Verdict

MOUNT_NEXT_STEP: Mapping[MountHealth, str] = {
    MountHealth.OK: "nothing to do",
    MountHealth.DOWN: (
        "restart the rclone sidecar / remount: `fusermount3 -uz PATH`, then start "
        "`rclone mount` again; its links are left alone until it is ok"
    ),
    MountHealth.HUNG: (
        "rclone is not answering: check its log, then restart the rclone sidecar "
        "(`fusermount3 -uz PATH` frees stuck readers); its links are left alone until it is ok"
    ),
    MountHealth.DEGRADED: (
        "the mount answers with errors or most of its links failed at once: check the rclone "
        "log and the provider's status; its links are left alone until it is ok"
    ),
}

VERDICT_NEXT_STEP: Mapping[Verdict, str] = {
    Verdict.OK: "nothing to do",
    Verdict.DANGLING: (
        "nothing: relinked when the file turns up under a mount, else pruned into the "
        "quarantine once confirmed; to replace it, search for it again in Sonarr/Radarr"
    ),
    Verdict.UNREADABLE: (
        "the provider answers with an error for this file (expired or broken): symlinkd never "
        "acts on it; search for it again in Sonarr/Radarr if it stays"
    ),
    Verdict.STALE: (
        "the provider lists this file but its content does not read (expired): relinked to "
        "another copy that reads once confirmed, else reported (pruned for reacquire only with "
        "`policy.prune_stale: true`); search for it again in Sonarr/Radarr"
    ),
    Verdict.MOUNT_DOWN: "see the mount's next step above",
    Verdict.MOUNT_HUNG: "see the mount's next step above",
    Verdict.LOOP: "fix or remove the link by hand (or set `policy.prune_loops: true`)",
    Verdict.OUTSIDE_MOUNTS: (
        "add the mount it points into to `mounts`, or remove the link by hand "
        "(or set `policy.prune_outside_mounts: true`)"
    ),
    Verdict.NOT_SYMLINK: "nothing to do: files in the farm are never touched",
}

REFUSAL_NEXT_STEP: Mapping[str, str] = {
    "mount_not_ok": "wait until the mount is ok again (see its next step); nothing was done",
    "max_prune": (
        "check the prunes listed; if they are right, run `symlinkd scan --apply --force` once, "
        "or raise `policy.max_prune`"
    ),
    "max_prune_ratio": (
        "check the prunes listed; if they are right, run `symlinkd scan --apply --force` once, "
        "or raise `policy.max_prune_ratio`"
    ),
    "max_relink": (
        "check the relinks listed (a mass rename?); if they are right, run "
        "`symlinkd scan --apply --force` once, or raise `policy.max_relink`"
    ),
    "max_relink_ratio": (
        "check the relinks listed (a mass rename?); if they are right, run "
        "`symlinkd scan --apply --force` once, or raise `policy.max_relink_ratio`"
    ),
}

# The verdicts a mount that is not ok gives its links (the classifier's word for "not judged").
UNAVAILABLE = frozenset({Verdict.MOUNT_DOWN, Verdict.MOUNT_HUNG})


def mount_next_step(state: MountState) -> str:
    return MOUNT_NEXT_STEP[state.health].replace("PATH", state.path)


def refusal_next_step(reason: str | None) -> str:
    return REFUSAL_NEXT_STEP.get(reason or "", "fix the cause shown above; nothing was done")


@dataclass(frozen=True, slots=True)
class MountSummary:
    """The links under one mount that is not ok, as one line of the report."""

    mount: str
    path: str
    state: str
    reason: str
    links: int
    counts: dict[str, int]  # verdict -> links (mount_down, mount_hung)
    next_step: str


def unavailable_mounts(
    mounts: Mapping[str, MountState], tally: Mapping[tuple[str | None, Verdict], int]
) -> list[MountSummary]:
    """One summary per mount that is not ok, in configuration order (from the pass's counts,
    so links the pass only counted are in it too)."""
    per: dict[str, Counter[Verdict]] = {}
    for (mount, verdict), n in tally.items():
        if mount is not None and verdict in UNAVAILABLE and n:
            per.setdefault(mount, Counter())[verdict] += n
    return [
        MountSummary(
            mount=state.name, path=state.path, state=state.health.value, reason=state.detail,
            links=sum(per.get(state.name, Counter()).values()),
            counts={v.value: n for v, n in sorted(per.get(state.name, Counter()).items())},
            next_step=mount_next_step(state),
        )
        for state in mounts.values() if state.health is not MountHealth.OK
    ]


def summarised(verdict: Verdict, mount: str | None, unavailable: Iterable[str]) -> bool:
    """True for a link the per-mount summary stands for (not listed without ``--all``)."""
    return verdict in UNAVAILABLE and mount is not None and mount in unavailable
