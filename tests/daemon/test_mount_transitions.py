"""The daemon says when a mount goes bad and when it comes back (issue 13): a warning on
ok -> down/hung/degraded with the reason and how long it had been ok, info on the way back with
how long it was out; nothing while the state holds."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
import structlog

from symlinkd.daemon.transitions import MountTransitions
from symlinkd.demo import build_demo_farm
from symlinkd.model import MountHealth, MountState
from symlinkd.runtime import PassOptions, build_runtime
from tests.daemon.proc import DaemonProcess, Farm, wait_for, write_config

OK = MountState("zurg", "/mnt/zurg", MountHealth.OK)
DOWN = MountState("zurg", "/mnt/zurg", MountHealth.DOWN, "not connected (ENOTCONN)")
HUNG = MountState("zurg", "/mnt/zurg", MountHealth.HUNG, "no answer within 5 s")
TORBOX = MountState("torbox", "/mnt/torbox", MountHealth.OK)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def observe(tracker: MountTransitions, *states: MountState) -> list[dict[str, object]]:
    with structlog.testing.capture_logs() as logs:
        tracker.observe({s.name: s for s in states})
    return logs


def test_transitions_are_logged_once_with_reason_and_duration() -> None:
    clock = Clock()
    tracker = MountTransitions(clock=clock)
    assert observe(tracker, OK, TORBOX) == []  # healthy from the start: nothing to say
    clock.now += 120.0
    assert observe(tracker, OK, TORBOX) == []
    clock.now += 30.04
    [down] = observe(tracker, DOWN, TORBOX)
    assert down["event"] == "mount not ok" and down["log_level"] == "warning"
    assert down["mount"] == "zurg" and down["state"] == "down" and down["was"] == "ok"
    assert down["reason"] == "not connected (ENOTCONN)"
    assert down["was_ok_seconds"] == 150.0
    assert "fusermount3 -uz /mnt/zurg" in str(down["next_step"])
    clock.now += 10.0
    assert observe(tracker, DOWN, TORBOX) == []  # still down: no repeat
    clock.now += 5.0
    [hung] = observe(tracker, HUNG, TORBOX)
    assert hung["event"] == "mount state changed" and hung["log_level"] == "warning"
    assert (hung["was"], hung["state"], hung["reason"]) == ("down", "hung", "no answer within 5 s")
    clock.now += 45.0
    [back] = observe(tracker, OK, TORBOX)
    assert back["event"] == "mount ok again" and back["log_level"] == "info"
    assert back["was"] == "hung" and back["not_ok_seconds"] == 60.0  # since it left ok


def test_a_mount_not_ok_at_start_is_a_warning() -> None:
    [first] = observe(MountTransitions(clock=Clock()), DOWN)
    assert first["event"] == "mount not ok" and first["was"] is None
    assert first["was_ok_seconds"] is None


@pytest.mark.slow
def test_daemon_logs_a_mount_going_down_and_coming_back(tmp_path: Path) -> None:
    farm = Farm.create(tmp_path)
    farm.link("Movies/A/A.mkv", farm.put("zurg", "__all__/A/A.mkv"))
    config = write_config(tmp_path, farm.config(watch="off"))
    anchor = farm.mounts["zurg"][0] / "__all__"
    with DaemonProcess(config, env={"SYMLINKD_LOG_FORMAT": "json"}) as daemon:
        daemon.wait_ready()

        def event(name: str) -> dict[str, object] | None:
            return next((e for e in daemon.events() if e.get("event") == name), None)

        os.rename(anchor, anchor.with_name("gone"))  # the probe now finds the anchor missing
        wait_for(lambda: event("mount not ok") is not None, 20, "the mount-down warning")
        down = event("mount not ok")
        assert down is not None
        assert down["level"] == "warning" and down["mount"] == "zurg" and down["state"] == "down"
        assert "missing" in str(down["reason"])
        os.rename(anchor.with_name("gone"), anchor)
        wait_for(lambda: event("mount ok again") is not None, 20, "the mount-back info line")
        back = event("mount ok again")
        assert back is not None and back["level"] == "info" and back["was"] == "down"
        assert isinstance(back["not_ok_seconds"], float)


def test_a_refused_plan_is_a_warning_with_its_reason(tmp_path: Path) -> None:
    """The daemon applies every pass: a plan the gate refuses must stand out in its log."""
    settings = build_demo_farm(str(tmp_path), time.time())
    settings = dataclasses.replace(settings,
                                   policy=dataclasses.replace(settings.policy, max_prune=0))
    with build_runtime(settings) as runtime, structlog.testing.capture_logs() as logs:
        report = runtime.run_pass(PassOptions(apply=True, notify=False))
    assert report.refused_reason == "max_prune"
    [refused] = [e for e in logs if e["event"] == "plan refused"]
    assert refused["log_level"] == "warning" and refused["reason"] == "max_prune"
    assert "max_prune=0" in str(refused["detail"])
