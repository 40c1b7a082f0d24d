"""Metrics after actions (issue 10, finding 6): the link gauges a pass publishes describe the
farm after its actions — a relinked link counts under its new mount as ok, a pruned link is
gone — and the report shows both what the pass found and what is left."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from io import StringIO
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console

from symlinkd.demo import build_demo_farm
from symlinkd.model import OutcomeResult, Verdict
from symlinkd.report import render, to_json
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import Settings

MOVED = "Shows/ShowX/Season 01/ShowX.S01E03.1080p.mkv"  # zurg, dangling; relinkable to torbox
OLD = "Movies/Old Film (2001)/Old.Film.2001.mkv"  # torbox, ok, 120 days old: pruned by age
GONE = "Movies/Gone Girl (2014)/Gone.Girl.2014.mkv"  # zurg, dangling, awaiting confirmation


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = build_demo_farm(str(tmp_path), time.time())
    return replace(base, policy=replace(base.policy, max_prune_ratio=1.0))


def links(registry: CollectorRegistry, mount: str, verdict: str) -> float:
    value = registry.get_sample_value("symlinkd_links", {"mount": mount, "verdict": verdict})
    assert value is not None
    return value


def test_a_relinked_link_counts_as_ok_right_after_the_pass(settings: Settings) -> None:
    for rel in (GONE, OLD):
        os.unlink(os.path.join(settings.farm, rel))
    registry = CollectorRegistry()
    with build_runtime(settings, registry=registry) as runtime:
        dry = runtime.run_pass(PassOptions(apply=False, notify=False))
        # a dry run changed nothing: the gauges are what it found
        assert links(registry, "zurg", "dangling") == 1
        ok_before = links(registry, "torbox", "ok")

        report = runtime.run_pass(PassOptions(apply=True, notify=False))

    assert [o.result for o in report.outcomes] == [OutcomeResult.DONE]
    assert links(registry, "zurg", "dangling") == 0
    assert links(registry, "torbox", "ok") == ok_before + 1
    doc = to_json(report, all_links=False)
    assert doc["counts"]["dangling"] == 1  # what the pass found
    assert doc["counts_after"]["dangling"] == 0
    assert doc["counts_after"]["ok"] == doc["counts"]["ok"] + 1
    by_mount = {m["mount"]: m for m in doc["counts_by_mount"]}
    assert by_mount["zurg"]["counts"]["dangling"] == 1
    assert by_mount["zurg"]["after"].get("dangling", 0) == 0
    assert by_mount["torbox"]["after"]["ok"] == by_mount["torbox"]["counts"]["ok"] + 1
    dry_doc = to_json(dry, all_links=False)
    assert dry_doc["counts_after"] == dry_doc["counts"]  # nothing was done
    out = StringIO()
    render(report, Console(file=out, width=200), farm=settings.farm)
    assert "after" in out.getvalue()


def test_a_pruned_link_leaves_the_gauges(settings: Settings) -> None:
    for rel in (GONE, MOVED):
        os.unlink(os.path.join(settings.farm, rel))
    registry = CollectorRegistry()
    with build_runtime(settings, registry=registry) as runtime:
        report = runtime.run_pass(PassOptions(apply=True, notify=False))
    found = report.tally()
    assert [o.result for o in report.outcomes] == [OutcomeResult.DONE]
    assert links(registry, "torbox", "ok") == found[("torbox", Verdict.OK)] - 1
