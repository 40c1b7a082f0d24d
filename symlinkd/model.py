"""Domain types shared by every room: what a link is, what a mount is, what we decided.

Paths are ``str`` decoded with the filesystem encoding and ``surrogateescape`` (what
``os.scandir``/``os.readlink`` give for a ``str`` argument), so a name with invalid UTF-8 bytes
round-trips exactly through ``os.fsencode``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


class Verdict(enum.StrEnum):
    """Health of one farm entry (ARCHITECTURE.md, "Verdicts")."""

    OK = "ok"
    DANGLING = "dangling"
    STALE = "stale"  # listed and stat-able, but the content probe could not read it
    UNREADABLE = "unreadable"
    MOUNT_DOWN = "mount_down"
    MOUNT_HUNG = "mount_hung"
    OUTSIDE_MOUNTS = "outside_mounts"
    LOOP = "loop"
    NOT_SYMLINK = "not_symlink"


class MountHealth(enum.StrEnum):
    OK = "ok"
    DOWN = "down"
    HUNG = "hung"
    DEGRADED = "degraded"


class EntryKind(enum.StrEnum):
    SYMLINK = "symlink"
    FILE = "file"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class MountState:
    """What the monitor saw of one configured mount in this pass."""

    name: str
    path: str
    health: MountHealth
    detail: str = ""

    @property
    def up(self) -> bool:
        return self.health is MountHealth.OK


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What the scanner saw of one farm entry. Facts only; the classifier judges.

    ``target`` is the raw ``readlink`` text; ``resolved`` the absolute, normalised final target
    after following any chain of links; ``mount`` the configured mount ``resolved`` lies under
    (``None``: outside every mount). ``errno`` is the error met while resolving/statting the
    target (``None``: it resolved), ``timed_out`` says the mount did not answer in time.
    """

    path: str
    kind: EntryKind
    link_mtime: float
    target: str | None = None
    resolved: str | None = None
    mount: str | None = None
    errno: int | None = None
    timed_out: bool = False
    loop: bool = False
    target_is_dir: bool = False
    target_size: int | None = None
    chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Judgement:
    """One link with its verdict and age in days (from the link's own lstat mtime)."""

    facts: LinkFacts
    verdict: Verdict
    age_days: float
    reason: str = ""

    @property
    def path(self) -> str:
        return self.facts.path


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """A part of the farm the scanner could not read (the pass goes on)."""

    path: str
    errno: int | None
    message: str


@dataclass(slots=True)
class ScanResult:
    """Everything one scan saw: mount states, facts per entry, unreadable farm parts."""

    mounts: dict[str, MountState]
    facts: list[LinkFacts] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)


class ActionKind(enum.StrEnum):
    KEEP = "keep"
    RELINK = "relink"
    PRUNE = "prune"
    SKIP = "skip"


class PruneReason(enum.StrEnum):
    DANGLING = "dangling"
    STALE = "stale"
    AGE = "age"
    LOOP = "loop"
    OUTSIDE_MOUNTS = "outside_mounts"


@dataclass(frozen=True, slots=True)
class Keep:
    reason: str = ""
    kind: ActionKind = ActionKind.KEEP


@dataclass(frozen=True, slots=True)
class Relink:
    new_target: str
    reason: str = ""
    kind: ActionKind = ActionKind.RELINK


@dataclass(frozen=True, slots=True)
class Prune:
    why: PruneReason
    reason: str = ""
    kind: ActionKind = ActionKind.PRUNE


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str
    kind: ActionKind = ActionKind.SKIP
    held_by: str | None = None  # the undo run whose hold stopped the action (symlinkd.holds)


Action = Keep | Relink | Prune | Skip


@dataclass(frozen=True, slots=True)
class PlannedAction:
    judgement: Judgement
    action: Action

    @property
    def path(self) -> str:
        return self.judgement.facts.path


class OutcomeResult(enum.StrEnum):
    DONE = "done"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"  # link changed since the scan (another writer), left alone
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    planned: PlannedAction
    result: OutcomeResult
    message: str = ""


@dataclass(frozen=True, slots=True)
class LinkHistory:
    """What the state database remembers of one link across passes (planner input)."""

    first_seen: float
    last_target: str | None = None  # last target seen healthy
    last_size: int | None = None  # size of that target
    bad_since: float | None = None  # when it first went dangling (None: not dangling)
    bad_passes: int = 0  # consecutive passes it was dangling


@dataclass(frozen=True, slots=True)
class RenameEvent:
    """A tripped breaker explained as a mass rename: most failing links of ``mount`` have a
    verified unique candidate (``relinkable``: link -> new target), so they are relinked and
    nothing under the mount is pruned in this pass."""

    mount: str
    failing: int
    relinkable: Mapping[str, str]
    ambiguous: tuple[str, ...] = ()  # links with more than one candidate: skipped, named
    detected: bool = True  # False: the search ran but found too few (the mount stays degraded)


@dataclass(slots=True)
class PassReport:
    """One whole pass, as the report, the metrics and the notifiers see it."""

    run_id: str
    kind: str  # "full" | "subtree"
    apply: bool
    started: float
    finished: float = 0.0
    mounts: dict[str, MountState] = field(default_factory=dict)
    judgements: list[Judgement] = field(default_factory=list)
    planned: list[PlannedAction] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    refused: str | None = None  # UnsafePlan message when the whole plan was refused
    refused_reason: str | None = None  # UnsafePlan.reason (metric label)
    notes: list[str] = field(default_factory=list)  # e.g. dry-run notifications "would send"
    renames: list[RenameEvent] = field(default_factory=list)  # breaker trips searched as renames
    # Entries per (mount, verdict) of the whole pass. A streaming pass keeps in ``judgements``
    # only what needs a look (every verdict but ok, ok links the age policy prunes, new links
    # of a subtree pass, or everything when asked), so these counts are the totals; empty for
    # a report built from ``judgements`` alone, which then are the totals.
    verdict_counts: dict[tuple[str | None, Verdict], int] = field(default_factory=dict)
    # Target folder -> farm folders holding links into it (the daemon's webhook index).
    target_folders: dict[str, set[str]] = field(default_factory=dict)

    def tally(self) -> Counter[tuple[str | None, Verdict]]:
        """Entries per (mount, verdict) of the whole pass."""
        if self.verdict_counts:
            return Counter(self.verdict_counts)
        return Counter((j.facts.mount, j.verdict) for j in self.judgements)

    @property
    def links_total(self) -> int:
        """Entries the pass judged (all of them, kept in ``judgements`` or not)."""
        if self.verdict_counts:
            return sum(self.verdict_counts.values())
        return len(self.judgements)
