"""One pass's content probe, composed: read the due links, remember the reads, turn believed
failures into ``stale`` judgements (with their streaks for the planner's confirmation), and find
stale links another copy that reads."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from symlinkd.classifier import Tally
from symlinkd.contentprobe import ContentProber, ProbePass
from symlinkd.freshen import ListingRefresher
from symlinkd.metrics import Metrics
from symlinkd.model import EntryKind, Judgement, LinkFacts, LinkHistory, MountState, Verdict
from symlinkd.relink import find_candidates
from symlinkd.state import StateDB

log = structlog.get_logger("symlinkd.probe")
_DAY = 86400.0


@dataclass(slots=True)
class StaleFindings:
    probe: ProbePass
    streaks: dict[str, tuple[float, int]] = field(default_factory=dict)  # since, prior passes


def probe_links(  # noqa: PLR0917 -- one pass's parts
    prober: ContentProber,
    store: StateDB,
    judgements: list[Judgement],
    counts: Tally,
    mounts: Mapping[str, MountState],
    now: float,
) -> StaleFindings:
    """Reads this pass's due links; ``judgements`` and ``counts`` gain the stale ones."""
    skip = frozenset(j.path for j in judgements if j.verdict is not Verdict.OK)
    due = prober.due(store.probe_rows(), {n: s.up for n, s in mounts.items()}, skip)
    probe = prober.run(due, store.probes_since(now - _DAY), now)
    store.record_probes(probe.results, now)
    findings = StaleFindings(probe)
    rows = {d.row.path: d for d in due}
    index = {j.path: i for i, j in enumerate(judgements)}
    for result in probe.stale:
        d = rows[result.path]
        try:
            link_mtime = os.lstat(d.row.path).st_mtime
        except OSError:
            continue  # gone since: the next pass sees it
        facts = LinkFacts(path=d.row.path, kind=EntryKind.SYMLINK, link_mtime=link_mtime,
                          target=d.row.target, resolved=d.resolved, mount=d.mount)
        stale = Judgement(facts, Verdict.STALE, max(0.0, (now - link_mtime) / _DAY),
                          f"content read failed under {d.mount}, a healthy mount: "
                          f"{result.error}")
        if result.path in index:
            judgements[index[result.path]] = stale
        else:
            judgements.append(stale)
        counts[(d.mount, Verdict.OK)] -= 1
        counts[(d.mount, Verdict.STALE)] += 1
        findings.streaks[result.path] = (d.row.fail_since or now, d.row.fail_passes)
    return findings


def with_streaks(histories: dict[str, LinkHistory], streaks: Mapping[str, tuple[float, int]],
                 now: float) -> None:
    """The planner confirms a stale link by its failed-read streak (passes before this one)."""
    for path, (since, passes) in streaks.items():
        base = histories.get(path) or LinkHistory(first_seen=now)
        histories[path] = replace(base, bad_since=since, bad_passes=passes)


def copies_that_read(
    prober: ContentProber,
    stale: Sequence[Judgement],
    histories: Mapping[str, LinkHistory],
    mounts: Mapping[str, MountState],
    refresher: ListingRefresher | None,
) -> dict[str, list[str]]:
    """Relink candidates for stale links: found like a dangling link's (never the target that
    fails), and kept only if they read now."""
    if not stale:
        return {}
    found = find_candidates(stale, histories, prober.monitor, mounts, refresher)
    own = {j.path: j.facts.resolved for j in stale}
    others = {link: [c for c in cands if c != own.get(link)] for link, cands in found.items()}
    readable = prober.readable(sorted({c for cands in others.values() for c in cands}))
    return {link: [c for c in cands if c in readable]
            for link, cands in others.items() if any(c in readable for c in cands)}


def publish(probe: ProbePass, metrics: Metrics, notes: list[str], every_days: float) -> None:
    """Metrics, a report note and a log line for one pass's probe (its cost included)."""
    for (mount, result), n in probe.counts.items():
        metrics.probes.labels(mount=mount, result=result).inc(n)
    for mount, n in probe.unverified.items():
        metrics.links_unverified.labels(mount=mount).set(n)
    reads = sum(probe.counts.values())
    notes.append(
        f"content probe: {reads} links read ({probe.bytes_read} bytes) in "
        f"{probe.seconds:.1f} s; {len(probe.stale)} stale, "
        f"{sum(probe.unverified.values())} links not read-verified within {every_days:g} days")
    notes.extend(probe.notes)
    log.info("content probe", reads=reads, bytes=probe.bytes_read,
             seconds=round(probe.seconds, 3), stale=len(probe.stale),
             results={f"{m}:{r}": n for (m, r), n in probe.counts.items()})
