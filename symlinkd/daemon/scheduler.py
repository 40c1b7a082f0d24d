"""Timed triggers (APScheduler 3): the full pass on an interval or a cron expression, and the mount
probe that keeps ``symlinkd_mount_up`` fresh between passes. The full-pass job only enqueues; the
probe runs in the scheduler's pool because it is read-only and each mount is bounded by
``timeouts.probe_seconds``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from symlinkd.daemon.queue import ScanRequest
from symlinkd.errors import ConfigError
from symlinkd.settings import DaemonSettings

log = structlog.get_logger("symlinkd.scheduler")

_FULL_JOB = "full-pass"
_PROBE_JOB = "mount-probe"


def full_pass_trigger(daemon: DaemonSettings) -> Any:
    """``daemon.scan_cron`` (crontab syntax, UTC) when set, else every ``scan_interval_minutes``.
    A bad cron expression is a ConfigError (SIGHUP refuses it, start-up exits 2)."""
    if daemon.scan_cron:
        try:
            return CronTrigger.from_crontab(daemon.scan_cron, timezone=dt.UTC)
        except ValueError as exc:
            raise ConfigError([("daemon.scan_cron", str(exc))]) from exc
    if daemon.scan_interval_minutes <= 0:
        raise ConfigError([("daemon.scan_interval_minutes", "must be greater than 0")])
    return IntervalTrigger(minutes=daemon.scan_interval_minutes, timezone=dt.UTC)


class Schedule:
    def __init__(
        self,
        daemon: DaemonSettings,
        *,
        enqueue: Callable[[ScanRequest], bool],
        probe: Callable[[], object],
    ) -> None:
        self._enqueue = enqueue
        self._probe = probe
        # Two pool threads: the probe and the enqueue never wait on each other.
        self._scheduler = BackgroundScheduler(
            timezone=dt.UTC, executors={"default": {"type": "threadpool", "max_workers": 2}}
        )
        self._add_jobs(daemon)

    def _add_jobs(self, daemon: DaemonSettings) -> None:
        trigger = full_pass_trigger(daemon)
        # coalesce: a pass missed while the process was suspended runs once, not once per miss;
        # the grace time lets a late pass still run rather than be skipped.
        self._scheduler.add_job(
            self._full, trigger, id=_FULL_JOB, replace_existing=True, coalesce=True,
            max_instances=1, misfire_grace_time=max(60, int(daemon.scan_interval_minutes * 60)),
        )
        if daemon.probe_interval_seconds > 0:
            self._scheduler.add_job(
                self._run_probe, IntervalTrigger(seconds=daemon.probe_interval_seconds,
                                                 timezone=dt.UTC),
                id=_PROBE_JOB, replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=max(1, int(daemon.probe_interval_seconds)),
            )
        elif self._scheduler.get_job(_PROBE_JOB) is not None:
            self._scheduler.remove_job(_PROBE_JOB)

    def start(self) -> None:
        self._scheduler.start()

    def reschedule(self, daemon: DaemonSettings) -> None:
        """New intervals after SIGHUP (the caller validated them with ``full_pass_trigger``)."""
        self._add_jobs(daemon)

    def next_full_pass(self) -> dt.datetime | None:
        job = self._scheduler.get_job(_FULL_JOB)
        return None if job is None else job.next_run_time

    def shutdown(self) -> None:
        # wait=False: a probe stuck in a hung FUSE mount must not hold up the exit.
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _full(self) -> None:
        self._enqueue(ScanRequest.full_pass("schedule"))

    def _run_probe(self) -> None:
        try:
            self._probe()
        except Exception:  # a probe bug must not unschedule the probe
            log.exception("mount probe failed")
