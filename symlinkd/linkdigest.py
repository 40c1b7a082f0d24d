"""The state DB's in-memory digest of the ``links`` table and the writes one pass makes.

A farm of 1M links is normal: a steady-state pass must compare every healthy link with what the
database remembers without a query, an object or a row written per link. ``LinkDigest`` holds
``hash(path) -> hash(last_target)`` for every row in an open-addressing table of two
``array('q')`` (~32 bytes a row; a dict of ints took ~136). ``PassRecorder`` is ``record_pass``
for a pass that streams (see ``StateDB.recorder``).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from symlinkd.model import Judgement, LinkFacts, LinkHistory, MountState, Verdict

STEADY_BAD = 1  # digest value of a row that is dangling (bad_passes > 0)
STEADY_NONE = 0  # digest value of a row with no healthy target and no bad streak
# New healthy links a pass holds before it writes them (a first pass meets a million): each
# pending row is ~400 bytes of tuple and strings, so 50k of them bound a pass to ~20 MB.
SPILL_ROWS = 50_000

InsertRow = tuple[bytes, float, bytes | None, int | None, float | None, int]


@dataclass(slots=True)
class Writes:
    seen: int = 0
    inserts: list[InsertRow] = field(default_factory=list)
    healthy: list[tuple[bytes | None, int | None, bytes]] = field(default_factory=list)
    worse: list[tuple[float, bytes]] = field(default_factory=list)
    resets: list[tuple[bytes]] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.inserts or self.healthy or self.worse or self.resets)


class LinkDigest:
    """``hash(path) -> value`` of every row of ``links`` (value: ``hash(last_target)`` of a
    healthy row, ``STEADY_BAD`` or ``STEADY_NONE``), as an open-addressing table in two
    ``array('q')`` (linear probing, at most half full: 32 bytes a row where a dict of ints took
    ~136, and a lookup is a few array reads). Key 0 marks an empty slot, so a hash of 0 is
    stored as 1 (``link_key``). ``seen`` marks the rows this pass met (for a full pass's drop)."""

    __slots__ = ("keys", "mask", "rows", "seen", "vals")

    def __init__(self, expected_rows: int) -> None:
        size = 1 << max(10, (2 * expected_rows).bit_length())
        self.keys = array("q", bytes(8 * size))
        self.vals = array("q", bytes(8 * size))
        self.seen = bytearray(size)
        self.mask = size - 1
        self.rows = 0

    def new_pass(self) -> None:
        self.seen = bytearray(len(self.keys))

    def __len__(self) -> int:
        return self.rows

    def slot(self, key: int) -> int:
        """Where ``key`` is, or the empty slot where it would go."""
        keys, mask = self.keys, self.mask
        i = key & mask
        while True:
            k = keys[i]
            if k in (key, 0):
                return i
            i = (i + 1) & mask

    def __contains__(self, key: int) -> bool:
        return self.keys[self.slot(key)] == key

    def visit(self, key: int) -> int | None:
        """The value of ``key`` (``None``: no row), marking the row seen."""
        i = self.slot(key)
        if self.keys[i] != key:
            return None
        self.seen[i] = 1
        return self.vals[i]

    def put(self, key: int, value: int) -> None:
        i = self.slot(key)
        if self.keys[i] != key:
            if 2 * (self.rows + 1) > len(self.keys):
                self._grow()
                i = self.slot(key)
            self.keys[i] = key
            self.rows += 1
        self.vals[i] = value
        self.seen[i] = 1

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` rows in all, grown once (a first pass adds a million: doubling
        again and again re-hashed the table ~20 times)."""
        if 2 * rows > len(self.keys):
            self._grow(rows)

    def was_seen(self, key: int) -> bool:
        i = self.slot(key)
        return self.keys[i] == key and bool(self.seen[i])

    def _grow(self, rows: int = 0) -> None:
        old = (self.keys, self.vals, self.seen)
        bigger = LinkDigest(max(len(self.keys) // 2, rows))  # at least twice the slots
        for key, value, mark in zip(*old, strict=True):
            if key:
                i = bigger.slot(key)
                bigger.keys[i], bigger.vals[i], bigger.seen[i] = key, value, mark
        self.keys, self.vals, self.seen, self.mask = (bigger.keys, bigger.vals, bigger.seen,
                                                     bigger.mask)


def link_key(path: str) -> int:
    return hash(path) or 1


# A healthy link whose row must change: (key, value, had a row, path, target, size, mount)
Pending = tuple[int, int, bool, str, str | None, int | None, str | None]


class PassRecorder:
    """``record_pass`` for a pass that streams: ``healthy`` takes batches of the links judged
    ``ok`` that the pass does not keep (one hash and a probe or two each; changed rows are only
    noted), ``finish`` takes every judgement the pass kept, with the final mount states, and
    writes everything in one transaction. Nothing touches the table before ``finish``, so the
    histories the planner reads in between are those of the passes before.

    The state DB hands in what the recorder needs of it (so this module does not import it):
    the digest, the lock that guards it, the clock, and ``write(writes, digest, full)`` that
    makes the pass's rows one transaction.

    A first pass (or any pass meeting many new links) does not hold them all: every ``spill``
    pending rows, the *new* healthy links are written (``insert``, its own transaction) and only
    their keys are kept, to enter the digest at ``finish``. That breaks "nothing before finish"
    only for rows that did not exist: the planner reads histories of links that are not healthy
    in this pass, and ``known`` still says "new" for them until ``finish`` (a subtree pass
    announces new links). A mount that turns out not ``ok`` at ``finish`` gets its early rows'
    targets cleared (``rows_since``: the paths written since the pass started), as if they had
    waited."""

    def __init__(
        self, digest: LinkDigest, *, lock: AbstractContextManager[Any],
        clock: Callable[[], float],
        write: Callable[[Writes, LinkDigest, bool], None],
        insert: Callable[[list[InsertRow]], None] | None = None,
        rows_since: Callable[[float], Iterable[bytes]] | None = None,
        spill: int = SPILL_ROWS,
    ) -> None:
        self._digest = digest
        self._lock = lock
        self._clock = clock
        self._write = write
        self._insert = insert
        self._rows_since = rows_since
        self._spill_at = spill if insert is not None and rows_since is not None else 1 << 62
        self._started = clock()
        self._pending: list[Pending] = []
        # mount -> (keys, values) of the rows written early, for the digest at finish
        self._spilled: dict[str | None, tuple[array[int], array[int]]] = {}
        self._seen = 0

    def pending(self) -> int:
        """Healthy links noted and not yet written."""
        return len(self._pending)

    def _spill(self) -> None:
        """Write the pending *new* links now (see the class notes); changed rows wait."""
        assert self._insert is not None
        fsencode = os.fsencode
        rows: list[InsertRow] = []
        keep: list[Pending] = []
        spilled = self._spilled
        with self._lock:
            now = self._clock()
            for entry in self._pending:
                key, value, had, path, target, size, mount = entry
                if had:
                    keep.append(entry)
                    continue
                rows.append((fsencode(path), now, fsencode(target) if target is not None
                             else None, size, None, 0))
                got = spilled.get(mount)
                if got is None:
                    got = spilled[mount] = (array("q"), array("q"))
                got[0].append(key)
                got[1].append(value)
            self._pending = keep
            if rows:
                self._insert(rows)

    def known(self, path: str) -> bool:
        return link_key(path) in self._digest

    def known_bad(self, path: str) -> bool:
        """The DB has ``path`` on a dangling streak (``bad_passes > 0``)."""
        digest = self._digest
        i = digest.slot(link_key(path))
        return digest.keys[i] != 0 and digest.vals[i] == STEADY_BAD

    def unknown(self, path: str) -> bool:
        """``not known(path)`` in one call: the scanner asks it of every healthy link."""
        key = hash(path) or 1
        digest = self._digest
        keys, mask = digest.keys, digest.mask
        i = key & mask
        while True:  # digest.slot inlined
            k = keys[i]
            if k == key:
                return False
            if k == 0:
                return True
            i = (i + 1) & mask

    def healthy(self, batch: Iterable[LinkFacts]) -> None:
        digest = self._digest
        keys, vals, marks, mask = digest.keys, digest.vals, digest.seen, digest.mask
        pending = self._pending
        seen = 0
        for facts in batch:  # the steady state: a hash, a probe, a compare (digest.visit inlined)
            seen += 1
            key = hash(facts.path) or 1
            i = key & mask
            while True:
                k = keys[i]
                if k in (key, 0):
                    break
                i = (i + 1) & mask
            have: int | None = None
            if k == key:
                marks[i] = 1
                have = vals[i]
            value = hash(facts.target)
            if have != value:
                pending.append((key, value, have is not None, facts.path, facts.target,
                                facts.target_size, facts.mount))
        self._seen += seen
        if len(pending) >= self._spill_at:
            self._spill()

    def healthy_records(self, mount: str, records: Sequence[tuple[str, str, str, float]],
                        sizes: Sequence[int] | None = None) -> None:
        """``healthy`` for the scanner's records (path, target, absolute target, mtime) of
        links into ``mount`` whose target resolved: no ``LinkFacts`` made for them.
        ``sizes``: their targets' sizes, when the scanner took them (new links)."""
        digest = self._digest
        keys, vals, marks, mask = digest.keys, digest.vals, digest.seen, digest.mask
        pending = self._pending
        seen = 0
        for n, (path, target, _full, _mtime) in enumerate(records):  # healthy(), inlined
            seen += 1
            key = hash(path) or 1
            i = key & mask
            while True:
                k = keys[i]
                if k in (key, 0):
                    break
                i = (i + 1) & mask
            have: int | None = None
            if k == key:
                marks[i] = 1
                have = vals[i]
            value = hash(target)
            if have != value:
                pending.append((key, value, have is not None, path, target,
                                sizes[n] if sizes is not None else None, mount))
        self._seen += seen
        if len(pending) >= self._spill_at:
            self._spill()

    def finish(
        self,
        judgements: Sequence[Judgement],
        *,
        full: bool,
        mounts: Mapping[str, MountState] | None = None,
        histories: Mapping[str, LinkHistory] | None = None,
        saturate: int | None = None,
    ) -> None:
        """``judgements``: the rest of the pass (any verdict). ``mounts``: the final states; a
        healthy link noted under a mount that is no longer ``ok`` is recorded as the old code
        recorded its ``mount_down`` verdict (a new row without a target, nothing else).
        ``saturate`` (with the ``histories`` the planner read): a dangling streak already at
        that many passes is not counted further (the planner only asks "passes >= N"), so a
        link that stays dangling costs no UPDATE per pass."""
        with self._lock:
            digest = self._digest
            now = self._clock()
            writes = Writes(seen=self._seen)
            # Room for the rows that may be new (a first pass), grown once; known rows need
            # none (a reserve for every judgement doubled a full table: +100 MB at 1M).
            spilled = sum(len(keys) for keys, _v in self._spilled.values())
            fresh = sum(1 for entry in self._pending if not entry[2])
            digest.reserve(digest.rows + fresh + spilled)
            fsencode = os.fsencode
            for key, value, had, path, target, size, mount in self._pending:
                if mounts is not None and not mount_up(mount, mounts):
                    if not had:
                        writes.inserts.append((fsencode(path), now, None, None, None, 0))
                        digest.put(key, STEADY_NONE)
                    continue
                enc = fsencode(path)
                raw = fsencode(target) if target is not None else None
                if had:
                    writes.healthy.append((raw, size, enc))
                else:
                    writes.inserts.append((enc, now, raw, size, None, 0))
                digest.put(key, value)
            self._pending = []
            self._settle_spilled(digest, mounts, writes)
            done = _saturated(histories, saturate)
            diff(judgements, digest, now, mounts, writes, saturated=done)
            self._write(writes, digest, full)


    def _settle_spilled(self, digest: LinkDigest, mounts: Mapping[str, MountState] | None,
                        writes: Writes) -> None:
        """The early rows enter the digest; those under a mount that is no longer ``ok`` lose
        their target (one pass over the rows written since the pass began: a rare case)."""
        cleared: set[int] = set()
        for mount, (keys, values) in self._spilled.items():
            if mounts is not None and not mount_up(mount, mounts):
                cleared.update(keys)
                for key in keys:
                    digest.put(key, STEADY_NONE)
            else:
                for key, value in zip(keys, values, strict=True):
                    digest.put(key, value)
        self._spilled = {}
        if cleared and self._rows_since is not None:
            fsdecode = os.fsdecode
            writes.healthy.extend(
                (None, None, path) for path in self._rows_since(self._started)
                if link_key(fsdecode(path)) in cleared
            )


def _saturated(histories: Mapping[str, LinkHistory] | None,
               saturate: int | None) -> Callable[[str], bool] | None:
    if histories is None or saturate is None:
        return None

    def done(path: str) -> bool:
        history = histories.get(path)
        return history is not None and history.bad_passes >= saturate

    return done


def mount_up(mount: str | None, mounts: Mapping[str, MountState]) -> bool:
    state = mounts.get(mount or "")
    return state is not None and state.up


def diff(
    judgements: Sequence[Judgement],
    digest: LinkDigest,
    now: float,
    mounts: Mapping[str, MountState] | None,
    out: Writes,
    *,
    saturated: Callable[[str], bool] | None = None,
) -> None:
    """Add the rows this pass changes to ``out`` (and update the digest to match). The healthy
    steady state costs one hash and a probe per link, and no SQL."""
    fsencode = os.fsencode
    for j in judgements:
        verdict = j.verdict
        if verdict is Verdict.NOT_SYMLINK:
            continue
        out.seen += 1
        facts = j.facts
        key = link_key(facts.path)
        have = digest.visit(key)
        if verdict is Verdict.OK:
            value = hash(facts.target)
            if have == value:
                continue
            enc = fsencode(facts.path)
            target = fsencode(facts.target) if facts.target is not None else None
            if have is None:
                out.inserts.append((enc, now, target, facts.target_size, None, 0))
            else:
                out.healthy.append((target, facts.target_size, enc))
            digest.put(key, value)
        elif verdict is Verdict.DANGLING and streak_counts(j, mounts):
            if have == STEADY_BAD and saturated is not None and saturated(facts.path):
                continue  # the streak is as long as it needs to be: nothing changes
            if have is None:
                out.inserts.append((fsencode(facts.path), now, None, None, now, 1))
            else:
                out.worse.append((now, fsencode(facts.path)))
            digest.put(key, STEADY_BAD)
        elif have is None:
            out.inserts.append((fsencode(facts.path), now, None, None, None, 0))
            digest.put(key, STEADY_NONE)
        elif have == STEADY_BAD and verdict in (Verdict.LOOP, Verdict.OUTSIDE_MOUNTS):
            # The target resolved to something (a loop, a path outside every mount): it is no
            # longer a missing file, so the dangling streak ends.
            out.resets.append((fsencode(facts.path),))
            digest.put(key, STEADY_NONE)


def streak_counts(j: Judgement, mounts: Mapping[str, MountState] | None) -> bool:
    if mounts is None:
        return True
    state = mounts.get(j.facts.mount or "")
    return state is not None and state.up
