"""Mount state transitions as log lines: a warning when a mount stops being ok (with the reason,
how long it had been ok, and the next step), a warning when a bad state changes (down -> hung),
info when it is ok again (with how long it was not). The daemon feeds it every probe and every
pass; an unchanged state says nothing, so a dead mount is one warning, not one per probe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from symlinkd.advice import mount_next_step
from symlinkd.model import MountHealth, MountState

log = structlog.get_logger("symlinkd.daemon")


@dataclass(slots=True)
class _Seen:
    health: MountHealth
    since: float  # when it entered this state
    bad_since: float | None  # when it left ok (None while ok)


class MountTransitions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()  # the probe job and the worker both report

    def observe(self, states: Mapping[str, MountState]) -> None:
        now = self._clock()
        with self._lock:
            for state in states.values():
                self._one(state, now)

    def _one(self, state: MountState, now: float) -> None:
        seen = self._seen.get(state.name)
        if seen is not None and seen.health is state.health:
            return
        ok = state.health is MountHealth.OK
        if seen is None:
            self._seen[state.name] = _Seen(state.health, now, None if ok else now)
            if not ok:
                self._warn("mount not ok", state, was=None, was_ok_seconds=None)
            return
        if ok:
            log.info("mount ok again", mount=state.name, state=state.health.value,
                     was=seen.health.value, not_ok_seconds=_round(now - (seen.bad_since or now)))
            self._seen[state.name] = _Seen(state.health, now, None)
            return
        if seen.health is MountHealth.OK:
            self._warn("mount not ok", state, was="ok", was_ok_seconds=_round(now - seen.since))
            self._seen[state.name] = _Seen(state.health, now, now)
        else:
            self._warn("mount state changed", state, was=seen.health.value,
                       not_ok_seconds=_round(now - (seen.bad_since or now)))
            self._seen[state.name] = _Seen(state.health, now, seen.bad_since)

    @staticmethod
    def _warn(event: str, state: MountState, **fields: object) -> None:
        log.warning(event, mount=state.name, state=state.health.value, reason=state.detail,
                    next_step=mount_next_step(state), **fields)


def _round(seconds: float) -> float:
    return round(max(0.0, seconds), 1)
