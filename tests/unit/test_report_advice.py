"""The report tells the admin what to do (issue 13): links under a mount that is not ok are
summarised per mount with the one thing to do, each verdict and refusal has a next step, and an
applied run ends with the command that reverts it. A golden file pins the dead-mount report."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

from symlinkd import advice
from symlinkd.model import (
    EntryKind,
    Judgement,
    Keep,
    LinkFacts,
    MountHealth,
    MountState,
    Outcome,
    OutcomeResult,
    PassReport,
    PlannedAction,
    Prune,
    PruneReason,
    Skip,
    Verdict,
)
from symlinkd.report import render, to_json

FARM = "/mnt/media/stream"
GOLDEN = Path(__file__).parent / "golden" / "dead_mount_report.txt"
DOCS = Path(__file__).parents[2] / "docs" / "verdicts.md"
ZURG_DOWN = MountState("zurg", "/mnt/media/zurg", MountHealth.DOWN,
                       "not connected (ENOTCONN): rclone is not running")
TORBOX = MountState("torbox", "/mnt/media/torbox", MountHealth.OK)
DEAD = 34


def link(rel: str, verdict: Verdict, mount: str, reason: str = "") -> Judgement:
    target = f"/mnt/media/{mount}/{'__all__' if mount == 'zurg' else 'torrents'}/{rel}"
    facts = LinkFacts(path=f"{FARM}/{rel}", kind=EntryKind.SYMLINK, link_mtime=0.0,
                      target=target, mount=mount)
    return Judgement(facts, verdict, 3.0, reason)


def dead_mount_report(*, apply: bool = False) -> PassReport:
    """34 episodes under a dead zurg, 3 healthy movies and 1 gone under torbox."""
    entries: list[tuple[Judgement, object]] = []
    for i in range(1, DEAD + 1):
        j = link(f"Shows/Big Show/Season 01/Big.Show.S01E{i:02}.mkv", Verdict.MOUNT_DOWN, "zurg",
                 f"mount zurg is down: {ZURG_DOWN.detail}")
        entries.append((j, Skip(f"mount_down; never acted on: mount zurg is down: "
                                f"{ZURG_DOWN.detail}")))
    for name in ("A", "B", "C"):
        entries.append((link(f"Movies/{name}/{name}.mkv", Verdict.OK, "torbox"), Keep()))
    entries.append((link("Movies/Gone/Gone.mkv", Verdict.DANGLING, "torbox", "ENOENT"),
                    Skip("dangling, awaiting confirmation: 1 of 2 passes, 0 of 60 minutes")))
    planned = [PlannedAction(j, a) for j, a in entries]  # type: ignore[arg-type]
    return PassReport(run_id="20261206T020000Z-dead01", kind="full", apply=apply,
                      started=100.0, finished=104.99999,
                      mounts={"zurg": ZURG_DOWN, "torbox": TORBOX},
                      judgements=[j for j, _ in entries], planned=planned)


def rendered(report: PassReport, *, width: int = 140, **kwargs: object) -> str:
    buffer = io.StringIO()
    render(report, Console(file=buffer, width=width, color_system=None), farm=FARM,
           **kwargs)  # type: ignore[arg-type]
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def flat(text: str) -> str:
    """Whitespace-insensitive text: rich wraps long lines to the console width."""
    return " ".join(text.split())


# --- the dead mount ---------------------------------------------------------------------------


def test_dead_mount_report_matches_the_golden_file() -> None:
    out = rendered(dead_mount_report())
    if os.environ.get("SYMLINKD_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(out, encoding="utf-8")
    assert out == GOLDEN.read_text(encoding="utf-8")


def test_dead_mount_is_one_summary_line_not_34_rows() -> None:
    out = rendered(dead_mount_report(), width=400)
    assert "Big.Show.S01E" not in out  # no per-link row for the dead mount
    summary = [line for line in out.splitlines() if line.lstrip().startswith("zurg ")
               and "restart" in line]
    assert summary, out
    assert summary[0].split("│")[2].strip() == "34"
    assert summary[0].split("│")[4].strip() == (
        "restart the rclone sidecar / remount: `fusermount3 -uz /mnt/media/zurg`, then start "
        "`rclone mount` again; its links are left alone until it is ok")
    assert "--all" in out  # says how to see them one by one
    # the link under the healthy mount is still listed, with its next step
    assert "Movies/Gone/Gone.mkv" in out
    assert flat(advice.VERDICT_NEXT_STEP[Verdict.DANGLING]) in flat(out)
    assert "5 s" in out and "4.99" not in out


def test_all_lists_the_dead_mounts_links_one_by_one() -> None:
    out = rendered(dead_mount_report(), all_links=True)
    assert len(re.findall(r"Big\.Show\.S01E\d\d\.mkv", out)) >= DEAD


def test_json_keeps_every_link_and_adds_the_per_mount_summary() -> None:
    doc = to_json(dead_mount_report(), all_links=False)
    # the CLI contract: `links` holds every link that is not ok, summarised or not
    assert sum(1 for link_doc in doc["links"] if link_doc["verdict"] == "mount_down") == DEAD
    assert doc["mounts_not_ok"] == [{
        "mount": "zurg", "path": "/mnt/media/zurg", "state": "down",
        "reason": ZURG_DOWN.detail, "links": DEAD, "counts": {"mount_down": DEAD},
        "next_step": advice.mount_next_step(ZURG_DOWN),
    }]
    assert doc["next_steps"] == {
        "dangling": advice.VERDICT_NEXT_STEP[Verdict.DANGLING],
        "mount_down": advice.VERDICT_NEXT_STEP[Verdict.MOUNT_DOWN],
    }
    assert doc["undo"] is None


# --- refusals and undo ------------------------------------------------------------------------


def test_a_refusal_carries_its_next_step() -> None:
    report = dead_mount_report()
    report.refused, report.refused_reason = "the plan prunes 120 links", "max_prune"
    out = rendered(report)
    assert "PLAN REFUSED (max_prune): the plan prunes 120 links" in out
    assert flat(f"Next step: {advice.REFUSAL_NEXT_STEP['max_prune']}") in flat(out)
    assert to_json(report, all_links=False)["refused_next_step"] == (
        advice.REFUSAL_NEXT_STEP["max_prune"])


def test_apply_ends_with_the_undo_line() -> None:
    report = dead_mount_report(apply=True)
    old = link("Movies/Old/Old.mkv", Verdict.OK, "torbox")
    prune = PlannedAction(old, Prune(PruneReason.AGE))
    report.planned.append(prune)
    report.outcomes = [Outcome(prune, OutcomeResult.DONE)]
    out = rendered(report)
    assert "symlinkd undo 20261206T020000Z-dead01" in out
    assert out.rstrip().splitlines()[-1].strip() == (
        "To revert this run: symlinkd undo 20261206T020000Z-dead01")
    assert to_json(report, all_links=False)["undo"] == "symlinkd undo 20261206T020000Z-dead01"


@pytest.mark.parametrize("case", ["dry run", "nothing done", "all failed"])
def test_no_undo_line_when_nothing_changed(case: str) -> None:
    report = dead_mount_report(apply=case != "dry run")
    old = link("Movies/Old/Old.mkv", Verdict.OK, "torbox")
    prune = PlannedAction(old, Prune(PruneReason.AGE))
    report.planned.append(prune)
    if case == "dry run":
        report.outcomes = [Outcome(prune, OutcomeResult.DRY_RUN)]
    elif case == "all failed":
        report.outcomes = [Outcome(prune, OutcomeResult.FAILED, "EROFS")]
    assert "symlinkd undo" not in rendered(report)
    assert to_json(report, all_links=False)["undo"] is None


# --- the docs say the same --------------------------------------------------------------------


def _doc_table(title: str) -> dict[str, str]:
    """First-column key (backticks stripped) -> next-step cell of the docs table under
    ``### title``."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split(f"### {title}\n", 1)[1].split("\n#", 1)[0]
    table: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and not set(cells[1]) <= set("-") and cells[1] != "next step":
            table[cells[0].strip("`")] = cells[1]
    return table


def test_docs_next_step_tables_match_the_code() -> None:
    assert _doc_table("Per mount state") == {
        h.value: text for h, text in advice.MOUNT_NEXT_STEP.items()}
    assert _doc_table("Per verdict") == {
        v.value: text for v, text in advice.VERDICT_NEXT_STEP.items()}
    refusals = _doc_table("Per refusal")
    assert {k: refusals[k] for k in advice.REFUSAL_NEXT_STEP} == dict(advice.REFUSAL_NEXT_STEP)
