"""A pass streams: the scanner hands facts on in batches, the runtime keeps only the judgements
that need a look and counts the rest, the state recorder diffs healthy links as they come. The
results must be those of judging the whole farm at once (demo farm, real temp dirs)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from symlinkd.classifier import Tally, classify, rejudge
from symlinkd.demo import build_demo_farm
from symlinkd.errors import UnsafePlan
from symlinkd.model import (
    ActionKind,
    EntryKind,
    Judgement,
    LinkFacts,
    MountHealth,
    MountState,
    PassReport,
    PlannedAction,
    Prune,
    PruneReason,
    Verdict,
)
from symlinkd.mounts import MountMonitor
from symlinkd.planner import Plan, make_plan
from symlinkd.report import json_chunks, to_json
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.scanner import Scanner
from symlinkd.settings import Policy, Settings
from symlinkd.state import StateDB

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_demo_farm(str(tmp_path), time.time())


def test_stream_in_tiny_flushes_gives_the_facts_of_one_scan(settings: Settings) -> None:
    monitor = MountMonitor(settings.mounts, settings.timeouts)
    try:
        scanner = Scanner(settings.farm, monitor, settings.timeouts)
        mounts = monitor.probe()
        whole = scanner.scan(mounts)
        index: dict[str, set[str]] = {}
        stream = scanner.stream(mounts, flush_records=2, target_index=index)
        batches = list(stream)
    finally:
        monitor.close()
    streamed = [f for batch in batches for f in batch]
    assert len(batches) > 1
    assert sorted(streamed, key=lambda f: f.path) == sorted(whole.facts, key=lambda f: f.path)
    assert stream.result.facts == []  # the stream never holds the farm
    links = [f for f in whole.facts if f.kind is EntryKind.SYMLINK and f.resolved]
    for f in links:
        folder = f.path.rpartition("/")[0]
        assert any(folder in folders for folders in index.values())


def test_pass_keeps_problems_and_counts_every_link(settings: Settings) -> None:
    with build_runtime(settings, registry=CollectorRegistry()) as rt:
        lean = rt.run_pass(PassOptions())
        full = rt.run_pass(PassOptions(keep_all=True))
    assert lean.tally() == full.tally()
    assert lean.links_total == full.links_total == len(full.judgements)
    assert any(j.verdict is Verdict.OK for j in full.judgements)
    max_age = settings.policy.max_age_days
    for j in lean.judgements:  # kept: a problem, or a link the age policy prunes
        assert j.verdict is not Verdict.OK or (max_age > 0 and j.age_days > max_age)
    assert len(lean.judgements) < len(full.judgements)
    assert all(p.action.kind is not ActionKind.KEEP or p.judgement.verdict is not Verdict.OK
               for p in lean.planned)
    assert changes(lean) == changes(full)
    lean_doc, full_doc = to_json(lean, all_links=False), to_json(full, all_links=False)
    for key in ("counts", "counts_by_mount", "links_total", "links_listed", "exit_code"):
        assert lean_doc[key] == full_doc[key], key
    assert {d["path"] for d in lean_doc["links"]} == {d["path"] for d in full_doc["links"]}
    for report, all_links in ((lean, False), (full, True), (full, False)):
        text = "".join(json_chunks(report, all_links=all_links, batch=2))
        assert text == json.dumps(to_json(report, all_links=all_links), ensure_ascii=False,
                                  separators=(",", ":"))


def changes(report: PassReport) -> list[tuple[str, str]]:
    return sorted((p.path, repr(p.action)) for p in report.planned
                  if p.action.kind in (ActionKind.RELINK, ActionKind.PRUNE))


def facts(path: str, mount: str = "zurg", *, errno: int | None = None,
          age_days: float = 1.0) -> LinkFacts:
    target = f"/mnt/{mount}/__all__/{path.rsplit('/', 1)[-1]}"
    return LinkFacts(path, EntryKind.SYMLINK, NOW - age_days * DAY, target, target, mount,
                     errno)


@pytest.mark.parametrize(("health", "verdict"), [(MountHealth.DEGRADED, Verdict.MOUNT_DOWN),
                                                 (MountHealth.HUNG, Verdict.MOUNT_HUNG)])
def test_healthy_links_not_kept_move_with_their_mount(health: MountHealth,
                                                      verdict: Verdict) -> None:
    ok = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK),
          "torbox": MountState("torbox", "/mnt/torbox", MountHealth.OK)}
    kept = [classify(facts("/farm/gone.mkv", errno=2), ok, NOW),
            classify(facts("/farm/old.mkv", age_days=400), ok, NOW),
            classify(facts("/farm/t.mkv", "torbox", errno=2), ok, NOW)]
    counts: Tally = Counter({("zurg", Verdict.OK): 10, ("zurg", Verdict.DANGLING): 1,
                      ("torbox", Verdict.OK): 5, ("torbox", Verdict.DANGLING): 1})
    bad = dict(ok, zurg=dataclasses.replace(ok["zurg"], health=health, detail="test"))
    again = rejudge(kept, counts, bad, NOW)
    assert counts == {("zurg", verdict): 11, ("torbox", Verdict.OK): 5,
                      ("torbox", Verdict.DANGLING): 1}
    assert [j.verdict for j in again] == [verdict, verdict, Verdict.DANGLING]
    plan = make_plan(again, bad, {}, {}, Policy(max_age_days=90), "/farm", NOW)
    assert [p.path for p in plan.changes()] == []  # torbox's dangling link awaits confirmation
    assert all(p.action.kind is ActionKind.SKIP for p in plan.actions[:2])


def test_prune_ratio_counts_every_link_judged_not_only_the_planned() -> None:
    policy = Policy(max_prune=100, max_prune_ratio=0.1)
    mounts = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK)}
    prunes = Plan([PlannedAction(classify(facts(f"/farm/{i}.mkv"), mounts, NOW),
                                 Prune(PruneReason.AGE)) for i in range(5)])
    prunes.raise_if_unsafe(policy, mounts, judged=1000)  # 0.5 %
    with pytest.raises(UnsafePlan):
        prunes.raise_if_unsafe(policy, mounts, judged=20)  # 25 %
    with pytest.raises(UnsafePlan):
        prunes.raise_if_unsafe(policy, mounts)  # the plan's own 5: 100 %


def judged(f: LinkFacts, verdict: Verdict) -> Judgement:
    return Judgement(f, verdict, 1.0)


def test_recorder_writes_only_at_finish_and_drops_unseen_rows(tmp_path: Path) -> None:
    up = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.OK)}
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    a, b, gone, old = (facts(f"/farm/{n}.mkv") for n in ("a", "b", "gone", "old"))
    db.record_pass([judged(a, Verdict.OK), judged(b, Verdict.OK), judged(old, Verdict.OK),
                    judged(gone, Verdict.DANGLING)], full=True, mounts=up)
    before = db._conn.total_changes

    recorder = db.recorder()
    recorder.healthy([a, b])  # `old` is not seen this time
    assert db._conn.total_changes == before
    # the planner reads the histories between: the streak of the passes before
    assert db.histories([gone.path])[gone.path].bad_passes == 1
    recorder.finish([judged(gone, Verdict.DANGLING)], full=True, mounts=up)
    assert db.histories([gone.path])[gone.path].bad_passes == 2
    assert not db.known(old.path)
    assert db.known(a.path) and db.known(b.path)

    recorder = db.recorder()
    recorder.healthy([a, b, gone])  # `gone` is back
    recorder.finish([], full=True, mounts=up)
    assert db.histories([gone.path])[gone.path].bad_passes == 0
    before = db._conn.total_changes
    recorder = db.recorder()
    recorder.healthy([a, b, gone])
    recorder.finish([], full=True, mounts=up)
    assert db._conn.total_changes == before  # the steady state writes nothing
    db.close()


def test_healthy_link_under_a_mount_that_failed_later_records_no_target(
    tmp_path: Path,
) -> None:
    db = StateDB(str(tmp_path), clock=lambda: NOW)
    new = facts("/farm/new.mkv")
    recorder = db.recorder()
    recorder.healthy([new])
    down = {"zurg": MountState("zurg", "/mnt/zurg", MountHealth.DEGRADED, "breaker")}
    recorder.finish([], full=False, mounts=down)
    history = db.histories([new.path])[new.path]
    assert history.last_target is None and history.bad_passes == 0
    db.close()
