"""The report: JSON shape per the CLI contract, odd names that survive JSON and terminals, the
terminal table, and exit codes."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Sequence

import pytest
from rich.console import Console

from symlinkd.model import (
    Action,
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
    Relink,
    ScanProblem,
    Skip,
    Verdict,
)
from symlinkd.report import exit_code, printable, render, to_json

FARM = "/mnt/media/stream"
ZURG = MountState("zurg", "/mnt/media/zurg", MountHealth.OK)
TORBOX = MountState("torbox", "/mnt/media/torbox", MountHealth.OK)


def judged(name: str, verdict: Verdict, *, target: str | None = None,
           mount: str | None = "zurg", reason: str = "", age: float = 3.0) -> Judgement:
    kind = EntryKind.FILE if verdict is Verdict.NOT_SYMLINK else EntryKind.SYMLINK
    if target is None and kind is EntryKind.SYMLINK:
        target = f"/mnt/media/zurg/__all__/{name}"
    facts = LinkFacts(path=f"{FARM}/{name}", kind=kind, link_mtime=0.0, target=target,
                      mount=mount)
    return Judgement(facts, verdict, age, reason)


def make_report(entries: Sequence[tuple[Judgement, Action]], *, apply: bool = False,
                mounts: tuple[MountState, ...] = (ZURG, TORBOX),
                outcomes: bool = False) -> PassReport:
    planned = [PlannedAction(j, a) for j, a in entries]
    report = PassReport(run_id="run-1", kind="full", apply=apply, started=100.0, finished=101.5,
                        mounts={m.name: m for m in mounts}, judgements=[j for j, _ in entries],
                        planned=planned)
    if outcomes:
        result = OutcomeResult.DONE if apply else OutcomeResult.DRY_RUN
        report.outcomes = [Outcome(p, result) for p in planned if p.action.kind.value != "keep"]
    return report


def healthy(name: str) -> tuple[Judgement, Action]:
    return judged(name, Verdict.OK), Keep()


# --- JSON -------------------------------------------------------------------------------------


def test_json_has_the_contract_keys_and_lists_only_problems() -> None:
    moved = judged("Shows/A/e1.mkv", Verdict.DANGLING, reason="ENOENT")
    old = judged("Movies/Old/old.mkv", Verdict.OK, age=120.0)
    report = make_report([
        healthy("Shows/A/e2.mkv"),
        (moved, Relink("/mnt/media/torbox/torrents/Shows/A/e1.mkv", reason="found in torbox")),
        (old, Prune(PruneReason.AGE)),
        (judged("Movies/x.srt", Verdict.NOT_SYMLINK, mount=None), Keep("not a symlink")),
    ], outcomes=True)
    doc = to_json(report, all_links=False)
    for key in ("run_id", "mounts", "counts", "links", "actions"):
        assert key in doc
    assert doc["run_id"] == "run-1"
    assert doc["mounts"] == [
        {"name": "zurg", "path": "/mnt/media/zurg", "state": "ok", "detail": ""},
        {"name": "torbox", "path": "/mnt/media/torbox", "state": "ok", "detail": ""},
    ]
    assert doc["counts"]["ok"] == 2 and doc["counts"]["dangling"] == 1
    assert doc["counts"]["not_symlink"] == 1 and doc["counts"]["mount_down"] == 0
    assert set(doc["counts"]) == {v.value for v in Verdict}
    assert doc["actions"] == {"keep": 2, "relink": 1, "prune": 1, "skip": 0}
    links = {link["path"]: link for link in doc["links"]}
    assert set(links) == {moved.path, old.path}
    relink = links[moved.path]
    assert relink["verdict"] == "dangling" and relink["action"] == "relink"
    assert relink["new_target"] == "/mnt/media/torbox/torrents/Shows/A/e1.mkv"
    assert relink["reason"] == "found in torbox" and relink["verdict_reason"] == "ENOENT"
    assert relink["target"] == "/mnt/media/zurg/__all__/Shows/A/e1.mkv"
    assert relink["result"] == "dry_run"
    assert links[old.path]["reason"] == "prune: age"
    assert links[old.path]["new_target"] is None
    assert doc["dry_run"] is True and doc["exit_code"] == 1
    assert doc["results"] == {"relink": {"dry_run": 1}, "prune": {"dry_run": 1}}


def test_json_all_links_lists_every_entry() -> None:
    report = make_report([healthy("a.mkv"), healthy("b.mkv")])
    assert to_json(report, all_links=False)["links"] == []
    listed = to_json(report, all_links=True)["links"]
    assert [link["path"] for link in listed] == [f"{FARM}/a.mkv", f"{FARM}/b.mkv"]
    assert all(link["action"] == "keep" for link in listed)


def test_invalid_utf8_names_survive_json() -> None:
    raw = os.fsencode(FARM) + b"/Caf\xe9 \xff.mkv"
    name = os.fsdecode(raw)  # what os.scandir gives: surrogate escapes
    target = os.fsdecode(b"/mnt/media/zurg/__all__/Caf\xe9 \xff.mkv")
    j = Judgement(LinkFacts(path=name, kind=EntryKind.SYMLINK, link_mtime=0.0, target=target,
                            mount="zurg"), Verdict.DANGLING, 1.0)
    doc = to_json(make_report([(j, Skip("awaiting confirmation"))]), all_links=False)
    text = json.dumps(doc, ensure_ascii=False)
    encoded = text.encode("utf-8")  # would raise on a lone surrogate
    link = json.loads(encoded)["links"][0]
    assert link["path"] == f"{FARM}/Caf\\xe9 \\xff.mkv"
    assert base64.b64decode(link["path_b64"]) == raw
    assert base64.b64decode(link["target_b64"]) == os.fsencode(target)


def test_valid_unicode_and_newlines_are_exact_in_json() -> None:
    j = judged("Amélie ☕\nline2.mkv", Verdict.DANGLING)
    link = to_json(make_report([(j, Skip("wait"))]), all_links=False)["links"][0]
    assert link["path"] == f"{FARM}/Amélie ☕\nline2.mkv"
    assert "path_b64" not in link


# --- terminal ---------------------------------------------------------------------------------


def rendered(report: PassReport, **kwargs: object) -> str:
    buffer = io.StringIO()
    render(report, Console(file=buffer, width=300, color_system=None), farm=FARM,
           **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "shown"), [
    ("bad\nname.mkv", "bad\\nname.mkv"),
    ("esc\x1b[31mred.mkv", "esc\\x1b[31mred.mkv"),
    (os.fsdecode(b"caf\xe9.mkv"), "caf\\xe9.mkv"),
    ("evil\u202eevil.mkv", "evil\\u202eevil.mkv"),
    ("Movie [1080p] [bold].mkv", "Movie [1080p] [bold].mkv"),  # not rich markup
])
def test_odd_names_never_garble_the_terminal(name: str, shown: str) -> None:
    assert printable(name) == shown
    out = rendered(make_report([(judged(name, Verdict.DANGLING), Skip("wait"))]))
    assert shown in out
    assert "\x1b" not in out
    if name != shown:
        assert name not in out


def test_table_counts_per_mount_and_verdict() -> None:
    report = make_report([
        healthy("a.mkv"), healthy("b.mkv"),
        (judged("c.mkv", Verdict.DANGLING), Skip("wait")),
        (judged("d.mkv", Verdict.OK, mount="torbox"), Keep()),
        (judged("e.mkv", Verdict.OUTSIDE_MOUNTS, mount=None, target="/elsewhere/e.mkv"),
         Skip("reported only")),
    ])
    out = rendered(report)
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.strip().startswith(("zurg ", "torbox ", "(no"))}
    # columns: mount, ok, dangling, outside_mounts, total
    assert rows["zurg"][1:] == ["│", "2", "│", "1", "│", "0", "│", "3"]
    assert rows["torbox"][1:] == ["│", "1", "│", "0", "│", "0", "│", "1"]
    assert "c.mkv" in out and "e.mkv" in out and "a.mkv" not in out


def test_dry_run_says_what_apply_would_do() -> None:
    report = make_report([
        (judged("Shows/A/e1.mkv", Verdict.DANGLING), Relink("/mnt/media/torbox/t/e1.mkv")),
        (judged("Movies/Old/old.mkv", Verdict.OK, age=120), Prune(PruneReason.AGE)),
    ])
    out = rendered(report)
    assert "(dry run; nothing changed)" in out
    assert "With --apply, symlinkd would make 2 change(s):" in out
    assert "relink Shows/A/e1.mkv → /mnt/media/torbox/t/e1.mkv" in out
    assert "prune  Movies/Old/old.mkv (age)" in out


def test_apply_shows_results_and_failures() -> None:
    j = judged("Movies/Old/old.mkv", Verdict.OK, age=120)
    report = make_report([(j, Prune(PruneReason.AGE))], apply=True)
    report.outcomes = [Outcome(report.planned[0], OutcomeResult.FAILED, "EROFS: read-only")]
    out = rendered(report)
    assert "dry run" not in out
    assert "prune failed: 1" in out
    assert "FAILED prune  Movies/Old/old.mkv (age) into the quarantine: EROFS: read-only" in out


def test_refused_plan_is_shown_with_its_reason() -> None:
    report = make_report([(judged("x.mkv", Verdict.DANGLING), Prune(PruneReason.DANGLING))])
    report.refused, report.refused_reason = "would prune 1 of 1 links (over 5 %)", "max_prune_ratio"
    out = rendered(report)
    assert "PLAN REFUSED (max_prune_ratio): would prune 1 of 1 links (over 5 %)" in out
    assert "With --apply --force, symlinkd would make 1 change(s)" in out


def test_a_mount_not_ok_is_called_out() -> None:
    down = MountState("torbox", "/mnt/media/torbox", MountHealth.DOWN, "ENOTCONN")
    out = rendered(make_report([healthy("a.mkv")], mounts=(ZURG, down)))
    assert "mount torbox is down: nothing under it was judged by its target or changed" in out
    assert "mount zurg is" not in out


def test_problem_list_is_capped() -> None:
    entries = [(judged(f"d{i:03}.mkv", Verdict.DANGLING), Skip("wait")) for i in range(30)]
    out = rendered(make_report(entries), limit=10)
    assert "d009.mkv" in out and "d010.mkv" not in out
    assert "... and 20 more" in out


def test_scan_problems_and_notes_are_shown() -> None:
    report = make_report([healthy("a.mkv")])
    report.problems = [ScanProblem(f"{FARM}/Private", 13, "Permission denied")]
    report.notes = ["would send: plex GET /library/sections/1/refresh?path=/data/stream/Shows/A"]
    out = rendered(report)
    assert f"could not read {FARM}/Private: Permission denied" in out
    assert "  would send: plex GET /library/sections/1/refresh?path=/data/stream/Shows/A" in out


# --- exit codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), [
    ("healthy", 0),
    ("regular file only", 0),
    ("dangling", 1),
    ("old link pruned", 1),
    ("scan problem", 1),
    ("mount down", 3),
    ("mount degraded", 3),
    ("refused", 3),
])
def test_exit_codes(case: str, expected: int) -> None:
    entries = [healthy("a.mkv")]
    mounts = (ZURG, TORBOX)
    if case == "regular file only":
        entries.append((judged("a.srt", Verdict.NOT_SYMLINK, mount=None), Keep()))
    if case == "dangling":
        entries.append((judged("b.mkv", Verdict.DANGLING), Skip("wait")))
    if case == "old link pruned":
        entries.append((judged("c.mkv", Verdict.OK, age=200), Prune(PruneReason.AGE)))
    if case == "mount down":
        mounts = (ZURG, MountState("torbox", "/mnt/media/torbox", MountHealth.DOWN, "ENOTCONN"))
    if case == "mount degraded":
        mounts = (MountState("zurg", "/mnt/media/zurg", MountHealth.DEGRADED), TORBOX)
    report = make_report(entries, mounts=mounts)
    if case == "scan problem":
        report.problems = [ScanProblem(f"{FARM}/x", 13, "Permission denied")]
    if case == "refused":
        report.refused = "too many prunes"
    assert exit_code(report) == expected
    assert to_json(report, all_links=False)["exit_code"] == expected
