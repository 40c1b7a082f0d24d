"""One pass, composed: probe → scan → classify → breaker → plan → gate → execute → record →
notify → metrics. The CLI and the daemon both build a ``Runtime`` here and nowhere else."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import httpx
import structlog
from prometheus_client import CollectorRegistry

from symlinkd.classifier import apply_breaker, classify, reclassify
from symlinkd.errors import UnsafePlan
from symlinkd.executor import Executor, MountRecheck
from symlinkd.metrics import Metrics
from symlinkd.model import (
    ActionKind,
    Judgement,
    MountState,
    PassReport,
    ScanProblem,
    Verdict,
)
from symlinkd.mounts import MountMonitor
from symlinkd.notifiers.base import Change, ChangeCause, ChangeKind
from symlinkd.notifiers.hub import NotifierHub, changes_from_outcomes
from symlinkd.planner import make_plan
from symlinkd.relink import find_candidates
from symlinkd.scanner import Scanner
from symlinkd.settings import Settings
from symlinkd.state import StateDB

log = structlog.get_logger("symlinkd")


@dataclass(frozen=True, slots=True)
class PassOptions:
    paths: tuple[str, ...] = ()  # empty: the whole farm
    apply: bool = False
    force: bool = False
    notify: bool = True
    kind: str = "full"  # "full" | "subtree" (metrics label)


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
            run_id = self.state.begin_run(options.kind, options.apply)
            with _bound(run_id=run_id):
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
        result = self.scanner.scan(
            mounts, paths, progress, size_wanted=lambda p: not state.known(p)
        )
        report.problems.extend(result.problems)
        now = self.clock()
        judgements = [classify(facts, result.mounts, now) for facts in result.facts]
        mounts = apply_breaker(
            judgements, result.mounts, policy.breaker_ratio, policy.breaker_min_links
        )
        if mounts != result.mounts:
            # The breaker just degraded a mount: its links are judged by the mount's state now.
            judgements = reclassify(judgements, mounts, now)
        report.mounts = mounts
        report.judgements = judgements
        self.metrics.observe_mounts(mounts)

        unseen = [j for j in judgements if not state.known(j.path)] if paths else []
        watch = [j.path for j in judgements if j.verdict is not Verdict.OK]
        histories = state.histories(watch)
        dangling = [
            j for j in judgements
            if j.verdict is Verdict.DANGLING and j.facts.mount in mounts
            and mounts[j.facts.mount].up
        ]
        candidates = (
            find_candidates(dangling, histories, self.monitor, mounts)
            if dangling and policy.relink else {}
        )
        plan = make_plan(
            judgements, mounts, histories, candidates, policy, self.settings.farm, now
        )
        report.planned = plan.actions
        try:
            plan.raise_if_unsafe(policy, mounts)
        except UnsafePlan as unsafe:
            self.metrics.unsafe_plans.labels(reason=unsafe.reason).inc()
            report.refused_reason = unsafe.reason
            if options.force and options.apply:
                log.warning("unsafe plan forced", reason=unsafe.reason, detail=str(unsafe))
                report.notes.append(f"forced past the safety gate: {unsafe}")
            else:
                report.refused = str(unsafe)
                log.warning("plan refused", reason=unsafe.reason, detail=str(unsafe))

        if report.refused is None:
            executor = Executor(
                state, self.settings.farm, policy.quarantine_dir, dry_run=not options.apply,
                # Re-probes between actions: a mount that dies mid-apply stops its actions.
                mounts_ok=MountRecheck(self.monitor, mounts), stop=self.stop,
                mount_of=self._mount_name,
            )
            report.outcomes = executor.execute(plan, run_id)
            self.metrics.observe_outcomes(report.outcomes)
        # A walk that could not read part of the farm must not forget the links it missed.
        state.record_pass(judgements, full=not paths and not result.problems, mounts=mounts)
        if not paths:
            self.metrics.observe_links(judgements, [m.name for m in self.settings.mounts])

        if options.notify:
            changes = changes_from_outcomes(report.outcomes)
            changes.extend(_new_link_changes(unseen))
            lines = self.notifier.notify(changes, dry_run=not options.apply)
            report.notes.extend(lines)
        return self._finish(report, options)

    def _finish(self, report: PassReport, options: PassOptions) -> PassReport:
        report.finished = self.clock()
        counts: dict[str, int] = {}
        for j in report.judgements:
            counts[j.verdict.value] = counts.get(j.verdict.value, 0) + 1
        for p in report.planned:
            if p.action.kind is not ActionKind.KEEP:
                key = f"action:{p.action.kind.value}"
                counts[key] = counts.get(key, 0) + 1
        self.state.finish_run(report.run_id, counts, report.refused)
        self.metrics.scan_duration.labels(kind=options.kind).observe(
            max(0.0, report.finished - report.started)
        )
        self.metrics.last_scan.labels(kind=options.kind).set(report.finished)
        seconds = round(report.finished - report.started, 3)
        log.info("pass finished", kind=options.kind, seconds=seconds,
                 refused=report.refused_reason, **counts)
        return report


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
