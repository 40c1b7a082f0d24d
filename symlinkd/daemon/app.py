"""``symlinkd run``: the composition root of the daemon.

One queue, one worker; the scheduler, the watcher and the HTTP webhooks only enqueue. Signals:
SIGTERM/SIGINT stop (the action in hand finishes, nothing new starts, exit 0 within
``_STOP_SECONDS`` even when a pass is stuck in a hung mount); SIGHUP reloads the configuration
(a bad one is refused and the old one stays).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from types import FrameType
from typing import Any

import structlog

from symlinkd.config import load_settings
from symlinkd.daemon.http import HttpContext, HttpServer
from symlinkd.daemon.queue import ScanQueue, ScanRequest, Worker
from symlinkd.daemon.scheduler import Schedule, full_pass_trigger
from symlinkd.daemon.transitions import MountTransitions
from symlinkd.daemon.watcher import FarmWatcher
from symlinkd.daemon.webhooks import TargetIndex
from symlinkd.errors import ConfigError, StateLocked
from symlinkd.farmcache import FolderCache
from symlinkd.logs import configure_logging, settings_secrets
from symlinkd.model import ActionKind, OutcomeResult, PassReport
from symlinkd.notifiers.hub import NotifierHub
from symlinkd.runtime import PassOptions, Runtime, build_runtime
from symlinkd.settings import Settings

log = structlog.get_logger("symlinkd.daemon")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_LOCKED = 3  # refused for safety: another symlinkd owns this state_dir (and so the farm)

# Kubernetes sends SIGKILL 30 s after SIGTERM by default; we promise far less.
_STOP_SECONDS = 8.0

# Keys a SIGHUP cannot change in a running process (they shape threads, sockets and open files).
_RESTART_KEYS = ("farm", "state_dir", "mounts", "timeouts")
_RESTART_DAEMON_KEYS = ("listen", "watch", "poll_interval_seconds", "debounce_seconds")


def run_daemon(settings: Settings, config_path: str | None) -> int:
    _configure_logging(settings)
    try:
        full_pass_trigger(settings.daemon)
    except ConfigError as exc:
        print(f"symlinkd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    runtime = build_runtime(settings)
    # Between passes the daemon remembers unchanged farm folders (symlinkd.farmcache).
    runtime.scanner.folder_cache = FolderCache(
        rewalk_seconds=settings.daemon.full_rewalk_hours * 3600.0)
    try:
        runtime.state.lock_exclusive()
    except StateLocked as exc:
        runtime.close()
        print(f"symlinkd: not starting: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    try:
        daemon = Daemon(settings, config_path, runtime)
    except OSError as exc:  # the port is taken, or the address is not ours
        runtime.close()
        print(f"symlinkd: cannot listen on {settings.daemon.listen}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        daemon.start()
    except Exception:
        log.exception("daemon failed to start")
        daemon.stop()
        raise
    return daemon.serve()


class Daemon:
    def __init__(self, settings: Settings, config_path: str | None, runtime: Runtime) -> None:
        self.settings = settings
        self.config_path = config_path
        self.runtime = runtime
        self._next_settings: Settings | None = None  # applied by the worker between passes
        self.queue = ScanQueue(farm=settings.farm)
        self.targets = TargetIndex()
        self.transitions = MountTransitions()  # a warning when a mount goes bad, info when back
        self.worker = Worker(self.queue, self._run_request, on_report=self.targets.update)
        self.http = HttpServer(settings.daemon.listen, HttpContext(
            registry=runtime.metrics.registry, settings=lambda: self.settings,
            enqueue=self.queue.put, healthy=self._healthy, ready=self._ready,
            targets=self.targets,
        ))
        self.schedule = Schedule(settings.daemon, enqueue=self.queue.put,
                                 probe=self._probe)
        self.watcher = FarmWatcher(settings.farm, settings.daemon, self.queue.put)
        self._wake = threading.Event()
        self._stopping = False
        self._reload = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.worker.start()
        self.http.start()
        self.queue.put(ScanRequest.full_pass("start"))
        self.schedule.start()
        try:
            self.watcher.start()
        except OSError as exc:
            # The farm missing or unreadable at start (an NFS export not there yet): the passes
            # report it; the schedule and webhooks still work.
            log.error("cannot watch the farm; watcher off", farm=self.settings.farm,  # noqa: TRY400
                      error=str(exc))
            self.watcher.mode, self.watcher.why = "off", f"cannot watch the farm: {exc}"
        log.info("daemon started", listen=self.settings.daemon.listen, port=self.http.port,
                 watch=self.watcher.mode, farm=self.settings.farm, pid=os.getpid())

    def serve(self) -> int:
        while not self._stopping:
            self._wake.wait(1.0)
            self._wake.clear()
            if self._reload and not self._stopping:
                self._reload = False
                self.reload()
        return self.stop()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # A second SIGTERM/SIGINT: the operator means it.
            os._exit(EXIT_OK)
        self._stopping = True
        # Before anything else: the executor stops after the action in hand.
        self.runtime.stop.set()
        self._wake.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self._wake.set()

    def stop(self) -> int:
        started = time.monotonic()
        log.info("stopping")
        self.runtime.stop.set()
        self.queue.close()  # webhooks now answer 503; pending requests are dropped
        self.schedule.shutdown()
        self.watcher.stop()
        left = _STOP_SECONDS - (time.monotonic() - started)
        finished = self.worker.join(max(0.5, left))
        self.http.close()
        if finished:
            self.runtime.close()  # also drops the state_dir lock
        else:
            # The pass is stuck in a hung mount (a blocked stat cannot be cancelled). The farm is
            # safe: the executor saw the stop flag. The state database is WAL; the OS drops the
            # lock with the process.
            log.warning("pass still running at exit; abandoned", seconds=_STOP_SECONDS)
        log.info("stopped", seconds=round(time.monotonic() - started, 3))
        _flush_logs()
        if not finished or _stuck_threads():
            # A thread that never returns (FUSE) would hold up interpreter exit forever.
            os._exit(EXIT_OK)
        return EXIT_OK

    # -- work ----------------------------------------------------------------------------------
    def _run_request(self, request: ScanRequest) -> PassReport | None:
        if self._next_settings is not None:
            self._swap_runtime(self._next_settings)
            self._next_settings = None
        runtime = self.runtime
        if request.refresh:
            by_mount: dict[str, list[str]] = defaultdict(list)
            for mount, directory in request.refresh:
                by_mount[mount].append(directory)
            for mount, directories in by_mount.items():
                try:
                    runtime.monitor.refresh(mount, directories)
                except Exception as exc:  # noqa: BLE001 - the pass still runs and judges safely
                    log.warning("rclone refresh failed", mount=mount, error=repr(exc))
        if not request.full and not request.paths:
            return None
        options = PassOptions(
            paths=tuple(sorted(request.paths)), apply=True, notify=True,
            kind="full" if request.full else "subtree",
        )
        log.info("pass queued", kind=options.kind, source=request.source,
                 paths=len(options.paths))
        report = runtime.run_pass(options)
        self.transitions.observe(report.mounts)  # the pass's final states (breaker included)
        _log_outcomes(report, stopping=runtime.stop.is_set())
        return report

    # -- reload --------------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            fresh = load_settings(self.config_path, os.environ)
            full_pass_trigger(fresh.daemon)
        except ConfigError as exc:
            log.error("new configuration refused; keeping the running one",  # noqa: TRY400
                      problems=[f"{k}: {m}" for k, m in exc.problems])
            return
        fresh, restart = _live_part(self.settings, fresh)
        if restart:
            log.warning("these settings need a restart; kept as they were", keys=restart)
        _configure_logging(fresh)
        self.settings = fresh  # the HTTP handlers read this on each request (token, body limit)
        self.schedule.reschedule(fresh.daemon)
        self._next_settings = fresh
        log.info("configuration reloaded")

    def _swap_runtime(self, fresh: Settings) -> None:
        """Between passes, on the worker thread: a runtime with the new policy and notifiers,
        sharing the metrics, state database and mount monitor (those need a restart)."""
        old = self.runtime
        notifier = NotifierHub(fresh.notify, store=old.state, metrics=old.metrics)
        runtime = Runtime(fresh, clock=old.clock, metrics=old.metrics, state=old.state,
                          monitor=old.monitor, notifier=notifier)
        cache = runtime.scanner.folder_cache = old.scanner.folder_cache
        if cache is not None:
            cache.rewalk_seconds = fresh.daemon.full_rewalk_hours * 3600.0
        if old.stop.is_set():
            runtime.stop.set()
        self.runtime = runtime
        old.notifier.close()

    # -- probes --------------------------------------------------------------------------------
    def _probe(self) -> None:
        # the runtime of the moment: a reload swaps it
        self.transitions.observe(self.runtime.probe_mounts())

    def _healthy(self) -> tuple[bool, dict[str, Any]]:
        alive = self.worker.alive()
        full, paths = self.queue.pending()
        upcoming = self.schedule.next_full_pass()
        return alive, {
            "worker": "alive" if alive else "dead", "passes": self.worker.passes,
            "busy": self.queue.busy, "pending": {"full": full, "subtree_paths": paths},
            "next_full_pass": upcoming.isoformat() if upcoming is not None else None,
            "watch": self.watcher.mode,
        }

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        state_dir = self.settings.state_dir
        db = os.path.join(state_dir, "state.sqlite3")
        writable = os.access(state_dir, os.W_OK) and (
            not os.path.exists(db) or os.access(db, os.W_OK)
        )
        last = self.worker.last
        checks: dict[str, Any] = {
            "config": "loaded",
            "state_db": "writable" if writable else "not writable",
            "last_pass": "none yet" if last is None else (
                f"crashed: {last.error}" if last.crashed else f"ok ({last.kind}, {last.run_id})"
            ),
            "stopping": self._stopping,
        }
        ok = writable and not self._stopping and (last is None or not last.crashed)
        return ok, checks


def _configure_logging(settings: Settings) -> None:
    """``SYMLINKD_LOG_LEVEL`` (debug, info, warning, error) and ``SYMLINKD_LOG_FORMAT`` (json,
    console; default: JSON unless stderr is a terminal) are process switches, not configuration."""
    level = logging.getLevelName(os.environ.get("SYMLINKD_LOG_LEVEL", "info").upper())
    form = os.environ.get("SYMLINKD_LOG_FORMAT", "").lower()
    configure_logging(secrets=settings_secrets(settings),
                      level=level if isinstance(level, int) else logging.INFO,
                      json={"json": True, "console": False}.get(form))


def _log_outcomes(report: PassReport, *, stopping: bool) -> None:
    """One log event per action on a link, with its reason (the daemon has no report table)."""
    not_started = 0
    with structlog.contextvars.bound_contextvars(run_id=report.run_id):
        for outcome in report.outcomes:
            action = outcome.planned.action
            if action.kind is ActionKind.KEEP:
                continue
            if stopping and outcome.result is OutcomeResult.SKIPPED:
                not_started += 1  # one line for all of them, below
                continue
            # Skips repeat every pass (a link awaiting confirmation): debug, not info.
            level = (logging.WARNING if outcome.result is OutcomeResult.FAILED
                     else logging.DEBUG if action.kind is ActionKind.SKIP else logging.INFO)
            log.log(level, "link action", path=outcome.planned.path, action=action.kind.value,
                    result=outcome.result.value, reason=action.reason,
                    verdict=outcome.planned.judgement.verdict.value,
                    new_target=getattr(action, "new_target", None), message=outcome.message)
        if not_started:
            log.info("actions not started: stopping", count=not_started)


def _live_part(running: Settings, fresh: Settings) -> tuple[Settings, list[str]]:
    """The fresh settings with the restart-only keys kept at their running values."""
    restart = [k for k in _RESTART_KEYS if getattr(running, k) != getattr(fresh, k)]
    restart += [
        f"daemon.{k}" for k in _RESTART_DAEMON_KEYS
        if getattr(running.daemon, k) != getattr(fresh.daemon, k)
    ]
    daemon = dataclasses.replace(
        fresh.daemon, **{k: getattr(running.daemon, k) for k in _RESTART_DAEMON_KEYS}
    )
    kept = dataclasses.replace(
        fresh, daemon=daemon, **{k: getattr(running, k) for k in _RESTART_KEYS}
    )
    return kept, restart


def _stuck_threads() -> bool:
    return any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    )


def _flush_logs() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to save
            stream.flush()
