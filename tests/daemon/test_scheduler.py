"""Timed triggers: the full pass only enqueues, the probe keeps running through its own errors."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from symlinkd.daemon.queue import ScanQueue
from symlinkd.daemon.scheduler import Schedule, full_pass_trigger
from symlinkd.errors import ConfigError
from symlinkd.settings import DaemonSettings


def test_cron_or_interval_and_bad_values_are_config_errors() -> None:
    cron = full_pass_trigger(DaemonSettings(scan_cron="*/15 * * * *"))
    assert type(cron).__name__ == "CronTrigger"
    assert type(full_pass_trigger(DaemonSettings())).__name__ == "IntervalTrigger"
    with pytest.raises(ConfigError) as bad:
        full_pass_trigger(DaemonSettings(scan_cron="every tuesday"))
    assert bad.value.problems[0][0] == "daemon.scan_cron"
    with pytest.raises(ConfigError):
        full_pass_trigger(DaemonSettings(scan_interval_minutes=0))


def test_jobs_enqueue_full_passes_and_probe_despite_probe_errors() -> None:
    queue = ScanQueue()
    probes = 0
    probed_enough = threading.Event()

    def probe() -> None:
        nonlocal probes
        probes += 1
        if probes >= 3:
            probed_enough.set()
        raise OSError("Transport endpoint is not connected")

    daemon = DaemonSettings(scan_interval_minutes=0.3 / 60, probe_interval_seconds=0.2)
    schedule = Schedule(daemon, enqueue=queue.put, probe=probe)
    with capture_logs() as logs:
        schedule.start()
        try:
            request = queue.get(timeout=10)
            assert probed_enough.wait(10)
        finally:
            schedule.shutdown()
    assert request is not None and request.full and request.source == "schedule"
    assert any(e["event"] == "mount probe failed" and e["log_level"] == "error" for e in logs)


def test_reschedule_moves_the_next_full_pass() -> None:
    queue = ScanQueue()
    schedule = Schedule(DaemonSettings(scan_interval_minutes=600, probe_interval_seconds=0),
                        enqueue=queue.put, probe=lambda: None)
    schedule.start()
    try:
        later = schedule.next_full_pass()
        schedule.reschedule(DaemonSettings(scan_interval_minutes=1, probe_interval_seconds=0))
        sooner = schedule.next_full_pass()
    finally:
        schedule.shutdown()
    assert later is not None and sooner is not None and sooner < later
