"""The composed pass (symlinkd.runtime) on the demo farm: metrics, the safety gate, --force,
subtree passes and what reaches the notifier. Real temp dirs, a private metrics registry."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from symlinkd.demo import build_demo_farm
from symlinkd.model import ActionKind, OutcomeResult, Verdict
from symlinkd.notifiers.base import Change, ChangeCause
from symlinkd.runtime import PassOptions, Runtime, build_runtime
from symlinkd.settings import Settings

MOVED = "Shows/ShowX/Season 01/ShowX.S01E03.1080p.mkv"
OLD = "Movies/Old Film (2001)/Old.Film.2001.mkv"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_demo_farm(str(tmp_path), time.time())


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def links_snapshot(farm: str) -> dict[str, tuple[str, float]]:
    snap: dict[str, tuple[str, float]] = {}
    for root, _dirs, files in os.walk(farm):
        for name in files + _dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                snap[path] = (os.readlink(path), os.lstat(path).st_mtime)
    return snap


def test_dry_run_pass_sets_metrics_and_changes_nothing(settings: Settings) -> None:
    registry = CollectorRegistry()
    before = links_snapshot(settings.farm)
    with build_runtime(settings, registry=registry) as rt:
        report = rt.run_pass(PassOptions())
    assert links_snapshot(settings.farm) == before
    assert {o.result for o in report.outcomes} <= {OutcomeResult.DRY_RUN}
    kinds = {p.action.kind for p in report.planned}
    assert {ActionKind.RELINK, ActionKind.PRUNE} <= kinds
    assert sample(registry, "symlinkd_mount_up", mount="zurg") == 1
    assert sample(registry, "symlinkd_links", mount="zurg", verdict="dangling") >= 1
    assert sample(registry, "symlinkd_actions_total", action="relink", result="dry_run") == 1
    assert sample(registry, "symlinkd_last_scan_timestamp_seconds", kind="full") > 0
    assert sample(registry, "symlinkd_scan_duration_seconds_count", kind="full") == 1


def test_unsafe_plan_is_refused_and_counted_then_force_applies(settings: Settings) -> None:
    tight = dataclasses.replace(
        settings, policy=dataclasses.replace(settings.policy, max_prune=0)
    )
    registry = CollectorRegistry()
    before = links_snapshot(tight.farm)
    with build_runtime(tight, registry=registry) as rt:
        refused = rt.run_pass(PassOptions(apply=True))
        assert refused.refused is not None
        assert refused.outcomes == []
        assert links_snapshot(tight.farm) == before
        assert sample(registry, "symlinkd_unsafe_plans_total", reason="max_prune") == 1

        forced = rt.run_pass(PassOptions(apply=True, force=True))
    assert forced.refused is None
    done = {o.planned.path: o.planned.action.kind for o in forced.outcomes
            if o.result is OutcomeResult.DONE}
    assert done.get(os.path.join(tight.farm, OLD)) is ActionKind.PRUNE
    assert not os.path.lexists(os.path.join(tight.farm, OLD))


def test_subtree_pass_sees_only_its_subtree_and_reports_outside_paths(
    settings: Settings,
) -> None:
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        report = rt.run_pass(
            PassOptions(paths=("Shows", "/etc"), kind="subtree")
        )
    seen = {j.path for j in report.judgements}
    assert seen, "the Shows subtree has links"
    assert all(p.startswith(os.path.join(settings.farm, "Shows")) for p in seen)
    assert [p.path for p in report.problems] == ["/etc"]


class RecordingNotifier:
    """Stands in for the NotifierHub: records what the pass hands over."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Change], bool]] = []

    def notify(self, changes: Sequence[Change], *, dry_run: bool) -> list[str]:
        self.calls.append((list(changes), dry_run))
        return []

    def close(self) -> None:
        pass


def test_new_link_found_by_a_subtree_pass_is_announced(settings: Settings) -> None:
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        rt.run_pass(PassOptions())  # the state DB now knows the farm
        recorder = RecordingNotifier()
        rt.notifier = recorder  # type: ignore[assignment]
        target = _any_healthy_target(rt)
        new = os.path.join(settings.farm, "Shows", "New Show", "S01E01.mkv")
        os.makedirs(os.path.dirname(new))
        os.symlink(target, new)
        rt.run_pass(PassOptions(paths=(os.path.dirname(new),), kind="subtree", apply=True))
        rt.run_pass(PassOptions(paths=(os.path.dirname(new),), kind="subtree", apply=True))
    (first, first_dry), (second, _) = recorder.calls
    assert not first_dry
    assert [(c.path, c.cause) for c in first] == [(new, ChangeCause.NEW)]
    assert second == [], "a link already announced is not announced again"


def test_dry_run_hands_changes_to_the_notifier_as_dry_run(settings: Settings) -> None:
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        recorder = RecordingNotifier()
        rt.notifier = recorder  # type: ignore[assignment]
        rt.run_pass(PassOptions())
        rt.run_pass(PassOptions(notify=False))
    [(changes, dry_run)] = recorder.calls
    assert dry_run
    assert {c.cause for c in changes} >= {ChangeCause.RELINK, ChangeCause.PRUNE_AGE}


def test_pass_with_a_mount_down_changes_nothing_under_it(settings: Settings) -> None:
    zurg = next(m for m in settings.mounts if m.name == "zurg")
    os.rename(zurg.anchor_path, zurg.anchor_path + ".gone")  # anchor missing -> down
    before = links_snapshot(settings.farm)
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        report = rt.run_pass(PassOptions(apply=True))
    assert report.mounts["zurg"].up is False
    under_zurg = [j for j in report.judgements if j.facts.mount == "zurg"]
    assert under_zurg and all(j.verdict is Verdict.MOUNT_DOWN for j in under_zurg)
    changed = {p for p, v in links_snapshot(settings.farm).items() if before.get(p) != v}
    changed |= set(before) - set(links_snapshot(settings.farm))
    assert not any(p in changed for p in (j.path for j in under_zurg))


def _any_healthy_target(rt: Runtime) -> str:
    for root, _dirs, files in os.walk(rt.settings.mounts[0].anchor_path):
        for name in files:
            return os.path.join(root, name)
    raise AssertionError("demo zurg mount has files")


def test_breaker_degrades_a_mount_and_its_links_are_judged_by_it(settings: Settings) -> None:
    zurg = next(m for m in settings.mounts if m.name == "zurg")
    for n in range(30):  # far more dead links into zurg than breaker_ratio allows
        link = os.path.join(settings.farm, "Shows", "Expired", f"E{n:02d}.mkv")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.join(zurg.anchor_path, "Expired", f"E{n:02d}.mkv"), link)
    loose = dataclasses.replace(
        settings,
        policy=dataclasses.replace(
            settings.policy, confirm_after_passes=1, confirm_after_minutes=0,
            max_prune=1000, max_prune_ratio=1.0,
        ),
    )
    before = links_snapshot(loose.farm)
    with build_runtime(loose, registry=CollectorRegistry()) as rt:
        report = rt.run_pass(PassOptions(apply=True))
    assert report.mounts["zurg"].health.value == "degraded"
    under = [j for j in report.judgements if j.facts.mount == "zurg"]
    assert under and not any(j.verdict is Verdict.DANGLING for j in under)
    touched = {o.planned.path for o in report.outcomes if o.result is OutcomeResult.DONE}
    assert not touched & {j.path for j in under}
    assert all(links_snapshot(loose.farm).get(j.path) == before[j.path] for j in under)


def test_history_remembers_what_was_done_not_what_was_planned(settings: Settings) -> None:
    tight = dataclasses.replace(
        settings, policy=dataclasses.replace(settings.policy, max_prune=0)
    )
    with build_runtime(tight, registry=CollectorRegistry()) as rt:
        refused = rt.run_pass(PassOptions(apply=True))
        done = rt.run_pass(PassOptions(apply=True, force=True))
        runs = {r.id: r for r in rt.state.runs()}
    assert refused.refused is not None
    assert not any(k.startswith("action:") for k in runs[refused.run_id].counts)
    assert runs[done.run_id].counts.get("action:prune") == 1
    assert runs[done.run_id].counts.get("action:relink") == 1
