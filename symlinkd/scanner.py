"""Walk the farm and collect the facts of every entry; judging is the classifier's job.

Two phases per pass, each in its own module:

1. *Walk* the farm (``symlinkd.farmwalk``): ``os.scandir`` on directory fds, symlinked
   directories never followed; each link's target is made absolute and normal and filed under
   its parent directory.
2. *Resolve* (``symlinkd.targets``) by listing each unique target parent directory once,
   through the gate of the mount it lies in, instead of one ``stat`` per link. Links into a
   mount that is not ``ok`` are not touched at all. Before believing a target is gone under a
   mount with rclone rc, its parent is refreshed (``vfs/refresh``) and listed again.

The walk hands its links on every ``FLUSH_RECORDS`` entries, so a pass never holds the farm.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

from symlinkd.farmcache import FolderCache
from symlinkd.farmwalk import FLUSH_RECORDS, FarmWalk, Record
from symlinkd.model import LinkFacts, MountState, ScanResult
from symlinkd.mounts import MountMonitor
from symlinkd.rcmemo import RefreshMemo
from symlinkd.settings import Timeouts
from symlinkd.targets import HealthySink, Listing, Outcome, TargetResolver, list_dir

__all__ = [
    "FLUSH_RECORDS",
    "HealthySink",
    "Listing",
    "Outcome",
    "Record",
    "ScanStream",
    "Scanner",
    "list_dir",
]


class Scanner:
    def __init__(self, farm: str, monitor: MountMonitor, timeouts: Timeouts) -> None:
        self.farm = os.path.normpath(farm)
        self.monitor = monitor
        self.timeouts = timeouts
        # The daemon's memory of unchanged farm folders across passes (None: read them all).
        self.folder_cache: FolderCache | None = None

    def scan(
        self,
        mounts: Mapping[str, MountState],
        paths: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        size_wanted: Callable[[str], bool] | None = None,
    ) -> ScanResult:
        """Facts of every entry of the farm (``paths=()``) or of the given subtrees/links.
        ``ScanResult.mounts`` is ``mounts`` updated with what the pass met (a gate that timed
        out -> hung, ENOTCONN -> down, rc refresh failing -> degraded)."""
        stream = self.stream(mounts, paths, progress, size_wanted)
        facts = stream.result.facts
        for batch in stream:
            facts.extend(batch)
        return stream.result

    def stream(
        self,
        mounts: Mapping[str, MountState],
        paths: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
        size_wanted: Callable[[str], bool] | None = None,
        *,
        flush_records: int = FLUSH_RECORDS,
        target_index: dict[str, set[str]] | None = None,
        healthy: HealthySink | None = None,
        refresh_memo: RefreshMemo | None = None,
    ) -> ScanStream:
        """The same facts as ``scan``, in batches, so a pass never holds the whole farm.
        ``ScanStream.result.mounts`` changes while the batches come (a mount that hangs
        mid-pass); ``result.problems`` is complete once the iteration ends. ``result.facts``
        stays empty. ``target_index``, when given, is filled with target folder (the
        absolute target's parent, before any chain is followed) -> farm folders linking
        into it. ``healthy``, when given, is offered the links whose target resolved (a file
        or a folder, no error) under a mount, per target folder, as ``Record`` tuples instead
        of ``LinkFacts``: it returns those it did not take, which become facts as usual (a
        pass takes the healthy links it only counts, and a million objects are never made).
        ``refresh_memo``, when given, decides which folders holding a missing target are
        refreshed through rclone rc (see ``symlinkd.rcmemo``); without it, all of them."""
        scan = _Pass(self, mounts, progress=progress, size_wanted=size_wanted,
                     flush_records=flush_records, target_index=target_index, healthy=healthy,
                     memo=refresh_memo)
        return ScanStream(scan, paths)


class ScanStream:
    """Iterate for ``list[LinkFacts]`` batches; ``result`` holds the mounts and problems."""

    def __init__(self, scan: _Pass, paths: Sequence[str]) -> None:
        self.result = scan.result
        self._batches = scan.batches(paths)

    def __iter__(self) -> Iterator[list[LinkFacts]]:
        return self._batches


class _Pass:
    """One scan: the walk, and the resolution of what it walked at every flush."""

    def __init__(self, scanner: Scanner, mounts: Mapping[str, MountState], *,
                 progress: Callable[[int], None] | None,
                 size_wanted: Callable[[str], bool] | None,
                 flush_records: int,
                 target_index: dict[str, set[str]] | None,
                 healthy: HealthySink | None,
                 memo: RefreshMemo | None = None) -> None:
        self.result = ScanResult(mounts=dict(mounts))
        self.walk = FarmWalk(scanner.farm, scanner.monitor, self.result, progress=progress,
                             flush_records=flush_records, target_index=target_index,
                             cache=scanner.folder_cache)
        self.resolver = TargetResolver(scanner.monitor, self.result,
                                       scanner.timeouts.workers_per_mount, size_wanted, healthy,
                                       memo=memo)

    def batches(self, paths: Sequence[str]) -> Iterator[list[LinkFacts]]:
        """Walk; every ``flush_records`` links, resolve what was walked and hand it on."""
        for _ in self.walk.walk(paths):
            yield from self.flush()
        yield from self.flush()

    def flush(self) -> Iterator[list[LinkFacts]]:
        """Hand what the walk gathered since the last flush to the resolver; the walk starts
        afresh, so a flushed group's records are freed as soon as they became facts."""
        walk = self.walk
        groups, walked = walk.groups, walk.out
        walk.groups, walk.out = {}, []
        return self.resolver.flush(groups, walked)
