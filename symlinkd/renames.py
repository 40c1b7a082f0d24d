"""Moved, not failing: a tripped breaker explained as a mass rename (invariant 3's exception).

Zurg renames torrent folders in bulk (a version upgrade, a naming option). Then most links into
the mount dangle at once and the breaker trips — rightly for an outage, wrongly for a rename. So
when the breaker trips on a mount whose anchor listed fine in this pass (its probe said ``ok``),
each failing link's file is sought as relink does (path swap, then name + remembered size, with
fresh listings). If at least ``rename_ratio`` of the failing links have a *verified* unique
candidate — the candidate's size, read through the mount's gate now, equals the size remembered
from when the link was healthy — the mount stays ``ok`` for this pass: those links are relinked
and nothing under the mount is pruned (the planner's ``rename_mounts``). A mount that came back
empty or is down or hung never gets here (its probe was not ``ok``); one that errors yields no
verified candidates, so it stays degraded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

from symlinkd.classifier import FAILING, Tally
from symlinkd.errors import MountUnavailable
from symlinkd.freshen import ListingRefresher
from symlinkd.model import Judgement, LinkHistory, MountState, RenameEvent, Verdict
from symlinkd.mounts import MountMonitor
from symlinkd.relink import find_candidates


def is_rename(failing: int, relinkable: int, ratio: float) -> bool:
    """The breaker's trip is a rename when ``relinkable`` of ``failing`` links reach ``ratio``."""
    return failing > 0 and relinkable >= ratio * failing


def tripped(scanned: Mapping[str, MountState], judged: Mapping[str, MountState]) -> list[str]:
    """Mounts ``ok`` after the scan (anchor listed, no hang) that the breaker degraded."""
    return [name for name, state in scanned.items()
            if state.up and name in judged and not judged[name].up]


def failing_links(counts: Tally, mount: str) -> int:
    return sum(n for (m, verdict), n in counts.items()
               if m == mount and verdict in FAILING)


def _size(path: str) -> int:
    return os.stat(path).st_size


def verify(
    candidates: Mapping[str, Sequence[str]],
    histories: Mapping[str, LinkHistory],
    monitor: MountMonitor,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """(link -> candidate) for unique candidates whose size now equals the remembered size, and
    the links whose candidates are ambiguous. Sizes are read through each mount's gate; a
    candidate that cannot be read in time is not verified."""
    pending: list[tuple[str, str, int, str, Future[int]]] = []
    ambiguous: list[str] = []
    for link, found in candidates.items():
        if len(found) > 1:
            ambiguous.append(link)
            continue
        history = histories.get(link)
        mount = monitor.mount_for(found[0]) if found else None
        if history is None or history.last_size is None or mount is None:
            continue
        gate = monitor.gate(mount.name)
        pending.append((link, found[0], history.last_size, mount.name,
                        gate.submit(_size, found[0])))
    verified: dict[str, str] = {}
    for link, target, size, mount_name, future in pending:
        try:
            if monitor.gate(mount_name).wait(future) == size:
                verified[link] = target
        except (MountUnavailable, OSError):
            continue
    return verified, tuple(sorted(ambiguous))


def event(
    mount: str,
    failing: int,
    *,
    candidates: Mapping[str, Sequence[str]],
    histories: Mapping[str, LinkHistory],
    monitor: MountMonitor,
    ratio: float,
) -> RenameEvent:
    verified, ambiguous = verify(candidates, histories, monitor)
    return RenameEvent(mount=mount, failing=failing, relinkable=verified, ambiguous=ambiguous,
                       detected=is_rename(failing, len(verified), ratio))


def dangling_under(judgements: Sequence[Judgement], mount: str) -> list[Judgement]:
    return [j for j in judgements if j.facts.mount == mount and j.verdict is Verdict.DANGLING]


def explain_trips(  # noqa: PLR0917 -- one pass's parts
    judgements: Sequence[Judgement],
    counts: Tally,
    scanned: Mapping[str, MountState],
    judged: Mapping[str, MountState],
    histories_of: Callable[[list[str]], Mapping[str, LinkHistory]],
    monitor: MountMonitor,
    *,
    refresher: ListingRefresher | None,
    ratio: float,
) -> tuple[list[RenameEvent], dict[str, list[str]]]:
    """Search every mount the breaker tripped for a rename; the events, and the candidates
    found on the way (so the pass does not search the same links again)."""
    events: list[RenameEvent] = []
    found: dict[str, list[str]] = {}
    for name in tripped(scanned, judged):
        dangling = dangling_under(judgements, name)
        failing = failing_links(counts, name)
        if not dangling:
            events.append(RenameEvent(name, failing, {}, detected=False))
            continue
        histories = histories_of([j.path for j in dangling])
        candidates = find_candidates(dangling, histories, monitor, scanned, refresher)
        events.append(event(name, failing, candidates=candidates, histories=histories,
                            monitor=monitor, ratio=ratio))
        found.update(candidates)
    return events, found


def describe(ev: RenameEvent) -> str:
    verb = "rename event" if ev.detected else "not a rename"
    text = (f"{verb} under mount {ev.mount}: {len(ev.relinkable)} of {ev.failing} failing "
            "links have a verified unique candidate (same name, remembered size)")
    if ev.ambiguous:
        text += f"; {len(ev.ambiguous)} ambiguous, skipped: {', '.join(ev.ambiguous[:20])}"
        if len(ev.ambiguous) > 20:
            text += ", ..."
    return text
