"""SIGHUP: which settings a running daemon takes over, and which wait for a restart."""

from __future__ import annotations

from dataclasses import replace

from symlinkd.daemon.app import _live_part
from symlinkd.settings import DaemonSettings, Policy, Secret, Settings


def test_live_settings_are_taken_and_restart_only_ones_kept() -> None:
    running = Settings(farm="/farm", daemon=DaemonSettings(listen="0.0.0.0:9090", watch="poll"))
    fresh = replace(
        running,
        farm="/elsewhere",
        policy=Policy(max_prune=7),
        daemon=DaemonSettings(listen="0.0.0.0:9999", watch="inotify", scan_interval_minutes=5,
                              webhook_token=Secret("new")),
    )
    kept, restart = _live_part(running, fresh)
    assert sorted(restart) == ["daemon.listen", "daemon.watch", "farm"]
    assert kept.farm == "/farm"
    assert kept.daemon.listen == "0.0.0.0:9090" and kept.daemon.watch == "poll"
    assert kept.policy.max_prune == 7
    assert kept.daemon.scan_interval_minutes == 5
    assert kept.daemon.webhook_token == Secret("new")


def test_nothing_to_restart_when_only_live_keys_change() -> None:
    running = Settings()
    fresh = replace(running, policy=Policy(max_age_days=30))
    kept, restart = _live_part(running, fresh)
    assert restart == []
    assert kept == fresh
