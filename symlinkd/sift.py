"""What a pass keeps of each batch of facts: the judgements the rest of the pass needs (not ok,
old, new on a subtree pass, or all with ``--all``); the healthy rest only goes to the state
recorder and the counts. And the pass's pause of the cycle collector."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from symlinkd.classifier import Tally, classify
from symlinkd.model import EntryKind, Judgement, LinkFacts, MountHealth, MountState

_DAY = 86400.0


class Keeper:
    """Sorts a batch of judgements: those the rest of the pass needs are kept, the healthy
    rest only goes to the state recorder (and the counts)."""

    def __init__(self, *, keep_all: bool, subtree: bool, known: Callable[[str], bool],
                 max_age: float) -> None:
        self.judgements: list[Judgement] = []
        self.keep_all = keep_all
        self.subtree = subtree  # new links of a subtree pass are announced: keep them
        self.known = known
        self.max_age = max_age  # older ok links are pruned by age: keep them

    def sift(self, batch: list[LinkFacts], mounts: Mapping[str, MountState], now: float,
             counts: Tally) -> list[LinkFacts]:
        """The facts of the healthy links the pass does not keep (not counted yet; nearly every
        link of a farm: no Judgement is made for them). The rest is judged, kept and
        counted. The healthy test is ``classify``'s own first one."""
        up = {name for name, s in mounts.items() if s.health is MountHealth.OK}
        if self.keep_all or not up:
            judged = [classify(facts, mounts, now) for facts in batch]
            counts.update([(j.facts.mount, j.verdict) for j in judged])
            self.judgements.extend(judged)
            return []
        symlink = EntryKind.SYMLINK
        max_age = self.max_age  # an older link is pruned by age: keep it
        subtree, known = self.subtree, self.known
        healthy: list[LinkFacts] = []
        keep = self.judgements.append
        for facts in batch:
            if (facts.errno is None and facts.mount in up and facts.kind is symlink
                    and not facts.timed_out and not facts.loop
                    and (now - facts.link_mtime) / _DAY <= max_age
                    and not (subtree and not known(facts.path))):
                healthy.append(facts)
                continue
            j = classify(facts, mounts, now)
            counts[(facts.mount, j.verdict)] += 1
            keep(j)
        return healthy


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a pass. A pass allocates millions of short-lived
    tuples and strings, which keep triggering collections that walk every live object: ~10 %
    of a 1M-link pass. Nothing a pass makes needs the cycle collector; plain reference counting
    still frees it all, and the cycles of other threads wait a pass at most."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
