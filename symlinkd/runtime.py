"""One pass, composed: probe → scan → classify → breaker → plan → gate → execute → record →
notify → metrics. The CLI and the daemon both build a ``Runtime`` here and nowhere else."""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from operator import attrgetter
from types import TracebackType

import httpx
import structlog
from prometheus_client import CollectorRegistry

from symlinkd.aftercounts import counts_after
from symlinkd.classifier import Tally, breaker, rejudge
from symlinkd.containment import Zone
from symlinkd.contentprobe import ContentProber
from symlinkd.errors import UnsafePlan
from symlinkd.executor import Executor, MountRecheck
from symlinkd.freshen import ListingRefresher
from symlinkd.holds import Hold, current_holds
from symlinkd.metrics import Metrics
from symlinkd.model import (
    ActionKind,
    Judgement,
    LinkHistory,
    MountHealth,
    MountState,
    OutcomeResult,
    PassReport,
    ScanProblem,
    Skip,
    Verdict,
)
from symlinkd.mounts import MountMonitor
from symlinkd.notifiers.base import Change, ChangeCause, ChangeKind
from symlinkd.notifiers.hub import NotifierHub, changes_from_outcomes
from symlinkd.planner import Plan, make_plan
from symlinkd.rcmemo import RefreshMemo
from symlinkd.relink import find_candidates
from symlinkd.renames import describe, explain_trips
from symlinkd.scanner import Record, Scanner
from symlinkd.settings import Settings
from symlinkd.sift import Keeper, gc_paused
from symlinkd.stale import copies_that_read, probe_links, publish, with_streaks
from symlinkd.state import PassRecorder, StateDB
from symlinkd.statefail import StateError, StatePassError, release_reserve, state_error

log = structlog.get_logger("symlinkd")
_DAY = 86400.0
_MOUNT = attrgetter("mount")


@dataclass(frozen=True, slots=True)
class PassOptions:
    paths: tuple[str, ...] = ()  # empty: the whole farm
    apply: bool = False
    force: bool = False
    notify: bool = True
    kind: str = "full"  # "full" | "subtree" (metrics label)
    # Keep every judgement in the report (`scan --all`); otherwise only those needing a look.
    keep_all: bool = False
    # Fill PassReport.target_folders (the daemon's webhook index); `symlinkd scan` needs none.
    target_index: bool = True


class Runtime:
    """Long-lived parts of symlinkd, shared by every pass of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        metrics: Metrics,
        state: StateDB,
        monitor: MountMonitor,
        notifier: NotifierHub,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.state = state
        self.monitor = monitor
        self.notifier = notifier
        self.scanner = Scanner(settings.farm, monitor, settings.timeouts)
        self.prober = ContentProber(monitor, settings.policy.probe, settings.timeouts.op_seconds,
                                    settings.policy.breaker_ratio)
        # Set by the daemon on SIGTERM: the executor finishes the action in hand and stops.
        self.stop = threading.Event()
        self._pass_lock = threading.Lock()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.prober.close()
        self.notifier.close()
        self.monitor.close()
        self.state.close()

    def _mount_name(self, path: str) -> str | None:
        mount = self.monitor.mount_for(path)
        return mount.name if mount is not None else None

    def probe_mounts(self) -> dict[str, MountState]:
        states = self.monitor.probe()
        self.metrics.observe_mounts(states)
        return states

    def run_pass(
        self, options: PassOptions, progress: Callable[[int], None] | None = None
    ) -> PassReport:
        with self._pass_lock:
            try:
                run_id = self.state.begin_run(options.kind, options.apply)
            except sqlite3.Error as exc:
                raise state_error(exc, self.state.path) from exc
            with _bound(run_id=run_id), gc_paused():
                try:
                    return self._run_pass(run_id, options, progress)
                except Exception:
                    self.metrics.pass_errors.labels(kind=options.kind).inc()
                    log.exception("pass crashed", kind=options.kind)
                    raise

    def _run_pass(
        self, run_id: str, options: PassOptions, progress: Callable[[int], None] | None
    ) -> PassReport:
        policy = self.settings.policy
        started = self.clock()
        report = PassReport(run_id=run_id, kind=options.kind, apply=options.apply, started=started)
        paths, outside = _inside_farm(self.settings.farm, options.paths)
        report.problems.extend(
            ScanProblem(path=p, errno=None, message="not inside the farm; ignored") for p in outside
        )
        if options.paths and not paths:
            return self._finish(report, options)

        mounts = self.probe_mounts()
        log.info("pass started", kind=options.kind, apply=options.apply, paths=len(paths),
                 mounts={m.name: m.health.value for m in mounts.values()})
        state = self.state
        recorder = state.recorder()
        known = recorder.known
        now = self.clock()
        refresher = ListingRefresher(self.monitor, max_dirs=policy.candidate_refresh_dirs,
                                     max_seconds=policy.candidate_refresh_seconds)
        judgements, counts, mounts, found = self._judge(report, options, paths, mounts, recorder,
                                                        now, progress, refresher)
        streaks: dict[str, tuple[float, int]] = {}
        if policy.probe.enabled and not paths:  # full passes only: the budget is per pass
            streaks = self._probe(report, judgements, counts, mounts, now)
        report.mounts = mounts
        report.judgements = judgements
        report.verdict_counts = dict(counts)
        links_judged = sum(n for (_m, v), n in counts.items() if v is not Verdict.NOT_SYMLINK)
        self.metrics.observe_mounts(mounts)

        unseen = [j for j in judgements if not known(j.path)] if paths else []
        # Holds come in as data: the planner stays pure; a changed link's hold ends here.
        holds, hold_notes = current_holds(state.holds, release=options.apply)
        report.notes.extend(hold_notes)
        plan, histories = self._plan(report, judgements, mounts, found, refresher, now, holds,
                                     streaks)
        report.planned = plan.actions
        self._check(report, plan, options, links_judged)

        if report.refused is None:
            executor = Executor(
                state, self.settings.farm, policy.quarantine_dir, dry_run=not options.apply,
                # Re-probes between actions: a mount that dies mid-apply stops its actions.
                mounts_ok=MountRecheck(self.monitor, mounts), stop=self.stop,
                mount_of=self._mount_name, zone=Zone.from_settings(self.settings),
            )
            report.outcomes = executor.execute(plan, run_id)
            self.metrics.observe_outcomes(report.outcomes)
        # A walk that could not read part of the farm must not forget the links it missed.
        failure = self._record(recorder, judgements, full=not paths and not report.problems,
                               mounts=mounts, histories=histories)
        if not paths:
            # The farm as the pass leaves it: a relinked link is ok now, a pruned one gone.
            self.metrics.observe_link_counts(counts_after(counts, report.outcomes, mounts),
                                             [m.name for m in self.settings.mounts])

        if options.notify:
            changes = changes_from_outcomes(report.outcomes)
            changes.extend(_new_link_changes(unseen))
            failure = self._notify(report, changes, options, failure)
        return self._finish(report, options, failure)

    def _notify(self, report: PassReport, changes: list[Change], options: PassOptions,
                failure: StateError | None) -> StateError | None:
        """Tell the media servers; a server that is down gets its changes kept in the outbox,
        and when the state disk cannot take them either, the report says so."""
        try:
            report.notes.extend(self.notifier.notify(changes, dry_run=not options.apply))
        except sqlite3.Error as exc:
            failure = failure or state_error(exc, self.state.path)
            report.notes.append(
                f"notifications for {len(changes)} change(s) could not be kept in the outbox "
                f"({failure}); a media server that missed them sees them at its own next scan"
            )
        return failure

    def _probe(self, report: PassReport, judgements: list[Judgement], counts: Tally,
               mounts: Mapping[str, MountState], now: float) -> dict[str, tuple[float, int]]:
        """The content probe of this pass: stale links join ``judgements``; their streaks."""
        try:
            findings = probe_links(self.prober, self.state, judgements, counts, mounts, now)
        except sqlite3.Error as exc:
            # The probe is a nicety: a state disk that cannot take its memory skips it.
            report.notes.append(f"content probe skipped: {state_error(exc, self.state.path)}")
            return {}
        publish(findings.probe, self.metrics, report.notes,
                self.settings.policy.probe.probe_every_days)
        return findings.streaks

    def _check(self, report: PassReport, plan: Plan, options: PassOptions, judged: int) -> None:
        """The safety gate; ``--force --apply`` goes past it, saying so."""
        policy = self.settings.policy
        relinks = sum(1 for p in plan.changes() if p.action.kind is ActionKind.RELINK)
        if relinks > policy.max_prune:
            # A bulk relink is allowed by default (max_relink*), but never silent.
            log.warning("bulk relink", relinks=relinks, judged=judged,
                        max_relink=policy.max_relink, max_relink_ratio=policy.max_relink_ratio)
        try:
            plan.raise_if_unsafe(policy, report.mounts, judged=judged)
        except UnsafePlan as unsafe:
            self.metrics.unsafe_plans.labels(reason=unsafe.reason).inc()
            report.refused_reason = unsafe.reason
            if options.force and options.apply:
                log.warning("unsafe plan forced", reason=unsafe.reason, detail=str(unsafe))
                report.notes.append(f"forced past the safety gate: {unsafe}")
            else:
                report.refused = str(unsafe)
                log.warning("plan refused", reason=unsafe.reason, detail=str(unsafe))

    def _plan(  # noqa: PLR0917 -- one pass's parts, split for reading
        self, report: PassReport, judgements: list[Judgement], mounts: dict[str, MountState],
        found: dict[str, list[str]], refresher: ListingRefresher, now: float,
        holds: Mapping[str, Hold],
        streaks: Mapping[str, tuple[float, int]],
    ) -> tuple[Plan, dict[str, LinkHistory]]:
        """Histories, relink candidates (those the rename search found are not sought again),
        then the plan (and the histories, which the recorder reads too)."""
        policy = self.settings.policy
        watch = [j.path for j in judgements if j.verdict is not Verdict.OK]
        histories = self.state.histories(watch)
        with_streaks(histories, streaks, now)
        dangling = [
            j for j in judgements
            if j.verdict is Verdict.DANGLING and j.facts.mount in mounts
            and mounts[j.facts.mount].up and j.path not in found
        ]
        candidates = (
            find_candidates(dangling, histories, self.monitor, mounts, refresher)
            if dangling and policy.relink else {}
        )
        candidates.update(found)
        stale = [j for j in judgements if j.verdict is Verdict.STALE]
        if stale and policy.relink:
            candidates.update(copies_that_read(self.prober, stale, histories, mounts, refresher))
        report.notes.extend(refresher.notes())
        return make_plan(
            judgements, mounts, histories, candidates, policy, self.settings.farm, now,
            holds=holds, rename_mounts=frozenset(e.mount for e in report.renames if e.detected),
        ), histories

    def _judge(  # noqa: PLR0917 -- one pass's parts, split for reading
        self, report: PassReport, options: PassOptions, paths: tuple[str, ...],
        mounts: dict[str, MountState], recorder: PassRecorder, now: float,
        progress: Callable[[int], None] | None, refresher: ListingRefresher,
    ) -> tuple[list[Judgement], Tally, dict[str, MountState], dict[str, list[str]]]:
        """Scan and classify batch by batch: counts of everything, the judgements the rest of
        the pass needs, healthy links straight to the recorder; then the breaker."""
        policy = self.settings.policy
        known = recorder.known
        counts: Tally = Counter()
        kept = Keeper(
            keep_all=options.keep_all, subtree=bool(paths), known=known,
            max_age=policy.max_age_days if policy.max_age_days > 0 else math.inf,
        )
        live: dict[str, MountState] = {}
        now_ok = MountHealth.OK
        day = _DAY

        def take(mount: str, records: list[Record], _folders: bool,
                 sizes: list[int] | None) -> list[Record]:
            """The scanner's resolved links under an ``ok`` mount that the pass only counts
            (``Keeper.sift``'s test, on the records themselves)."""
            state = live.get(mount)
            if kept.keep_all or state is None or state.health is not now_ok:
                return records
            max_age, subtree = kept.max_age, kept.subtree
            rest: list[Record] = []
            taken: list[Record] = []
            taken_sizes: list[int] | None = [] if sizes is not None else None
            for i, r in enumerate(records):
                old_or_new = (now - r[3]) / day > max_age or (subtree and not known(r[0]))
                if old_or_new:
                    rest.append(r)
                    continue
                taken.append(r)
                if taken_sizes is not None and sizes is not None:
                    taken_sizes.append(sizes[i])
            if taken:
                counts[(mount, Verdict.OK)] += len(taken)
                recorder.healthy_records(mount, taken, taken_sizes)
            return rest

        stream = self.scanner.stream(
            mounts, paths, progress, size_wanted=recorder.unknown,
            target_index=report.target_folders if options.target_index else None,
            healthy=take, refresh_memo=self._refresh_memo(recorder, now),
        )
        live = stream.result.mounts  # the scanner marks a mount hung/down mid-pass in here
        for batch in stream:
            healthy = kept.sift(batch, live, now, counts)
            for mount, n in Counter(map(_MOUNT, healthy)).items():
                counts[(mount, Verdict.OK)] += n
            recorder.healthy(healthy)
        report.problems.extend(stream.result.problems)
        # Judge again by the final states: a mount that hung mid-pass, then the breaker.
        scanned = stream.result.mounts
        judgements = rejudge(kept.judgements, counts, scanned, now)
        mounts = breaker(counts, scanned, policy.breaker_ratio, policy.breaker_min_links)
        found: dict[str, list[str]] = {}
        if mounts != scanned and policy.relink:
            report.renames, found = explain_trips(
                judgements, counts, scanned, mounts, self.state.histories, self.monitor,
                refresher=refresher, ratio=policy.rename_ratio)
            self._announce_renames(report, scanned, mounts)
        if mounts != scanned:
            # The breaker just degraded a mount: its links are judged by the mount's state now.
            judgements = rejudge(judgements, counts, mounts, now)
        return judgements, counts, mounts, found

    def _announce_renames(self, report: PassReport, scanned: Mapping[str, MountState],
                          mounts: dict[str, MountState]) -> None:
        """A detected rename keeps its mount ``ok`` for this pass (relink, never prune)."""
        for ev in report.renames:
            text = describe(ev)
            report.notes.append(text)
            if ev.detected:
                mounts[ev.mount] = replace(scanned[ev.mount], detail=text)
                self.metrics.rename_events.labels(mount=ev.mount).inc()
                log.warning("rename event", mount=ev.mount, failing=ev.failing,
                            relinkable=len(ev.relinkable), ambiguous=list(ev.ambiguous))
            else:
                log.info("breaker trip is not a rename", mount=ev.mount, failing=ev.failing,
                         relinkable=len(ev.relinkable))

    def _refresh_memo(self, recorder: PassRecorder, now: float) -> RefreshMemo:
        """rclone refreshes that pay once: first sight of a missing target, then when due."""
        state, policy = self.state, self.settings.policy
        return RefreshMemo(
            known_bad=recorder.known_bad, histories=state.histories,
            last_refresh=state.last_refreshes(), save=state.note_refreshes, now=now,
            confirm_after_passes=policy.confirm_after_passes,
            confirm_after_minutes=policy.confirm_after_minutes,
        )

    def _finish(self, report: PassReport, options: PassOptions,
                failure: StateError | None = None) -> PassReport:
        report.finished = self.clock()
        counts: dict[str, int] = {}
        for (_mount, verdict), n in report.tally().items():
            counts[verdict.value] = counts.get(verdict.value, 0) + n
        # What was done (or, in a dry run, would be), not what was planned: a refused plan or a
        # pass stopped by SIGTERM must not be remembered as having relinked everything.
        for outcome in report.outcomes:
            kind = outcome.planned.action.kind.value
            done = outcome.result in (OutcomeResult.DONE, OutcomeResult.DRY_RUN)
            key = f"action:{kind}" if done else f"action:{kind} {outcome.result.value}"
            counts[key] = counts.get(key, 0) + 1
        # Links an undo holds: in `history` and the "pass finished" log line (the daemon's report).
        held = sum(1 for p in report.planned if isinstance(p.action, Skip) and p.action.held_by)
        if held:
            counts["action:held"] = held
        if failure is not None:
            self._record_failure(report, counts, failure)
        self.state.finish_run(report.run_id, counts, report.refused)
        self.metrics.scan_duration.labels(kind=options.kind).observe(
            max(0.0, report.finished - report.started)
        )
        self.metrics.last_scan.labels(kind=options.kind).set(report.finished)
        seconds = round(report.finished - report.started, 3)
        log.info("pass finished", kind=options.kind, seconds=seconds,
                 refused=report.refused_reason, **counts)
        return report


    def _record(self, recorder: PassRecorder, judgements: list[Judgement], *, full: bool,
                mounts: dict[str, MountState],
                histories: dict[str, LinkHistory]) -> StateError | None:
        """Remember the pass; a full or read-only state disk is returned, not raised, so what
        was done is still reported and announced. A dangling streak stops at the
        confirmation count (``saturate``): the planner only asks "passes >= N"."""
        try:
            recorder.finish(judgements, full=full, mounts=mounts, histories=histories,
                            saturate=self.settings.policy.confirm_after_passes)
        except sqlite3.Error as exc:
            failure = state_error(exc, self.state.path)
            log.error("state database write failed", error=str(failure))  # noqa: TRY400
            return failure
        return None

    def _record_failure(self, report: PassReport, counts: dict[str, int],
                        failure: StateError) -> None:
        """Mark the run (in the space the reserve frees) so ``history`` shows the pass and why
        it stopped recording; then raise with the report of what was done."""
        release_reserve(self.state.state_dir)
        try:
            self.state.finish_run(report.run_id, counts, str(failure))
        except sqlite3.Error:
            report.notes.append("this run could not be marked in the state database either; "
                                "`symlinkd history` shows it unfinished")
        raise StatePassError(str(failure), report)


def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
    http_transport: httpx.BaseTransport | None = None,
) -> Runtime:
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    state = StateDB(settings.state_dir, clock=clock)
    monitor = MountMonitor(settings.mounts, settings.timeouts, rc_transport=http_transport)
    notifier = NotifierHub(
        settings.notify, store=state, metrics=metrics, transport=http_transport
    )
    return Runtime(
        settings, clock=clock, metrics=metrics, state=state, monitor=monitor, notifier=notifier
    )


def _inside_farm(farm: str, paths: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """Absolute, normalised subtree paths inside the farm; the rest is reported, not scanned."""
    root = os.path.normpath(farm)
    inside: list[str] = []
    outside: list[str] = []
    for raw in paths:
        path = os.path.normpath(os.path.join(root, raw))
        if path == root or path.startswith(root + os.sep):
            inside.append(path)
        else:
            outside.append(raw)
    return tuple(dict.fromkeys(inside)), outside


def _new_link_changes(unseen: list[Judgement]) -> list[Change]:
    """Links a subtree pass saw for the first time (the watcher / a webhook found them): media
    servers are told about the healthy ones so they do not wait for their own periodic scan."""
    return [
        Change(path=j.path, kind=ChangeKind.CREATED, cause=ChangeCause.NEW,
               is_dir=j.facts.target_is_dir)
        for j in unseen
        if j.verdict is Verdict.OK
    ]


@contextmanager
def _bound(**values: str) -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(**values):
        yield
