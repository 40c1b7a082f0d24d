"""What a pass found and did, for people (a rich table) and for programs (``--json``).

Names are shown exactly but safely: a file name can hold a newline, an escape sequence or bytes
that are not UTF-8, and printing it raw would garble a terminal or break a JSON parser. On screen
such characters are escaped (``\\n``, ``\\x1b``, ``\\xff``). In JSON a name that is valid UTF-8 is
given as is; one that is not gets its bytes escaped the same way in ``path`` plus the exact bytes
in ``path_b64`` (base64), so a program can still find the file.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from symlinkd import advice, plain
from symlinkd.aftercounts import by_mount, report_after
from symlinkd.model import (
    ActionKind,
    Judgement,
    MountHealth,
    Outcome,
    OutcomeResult,
    PassReport,
    PlannedAction,
    Prune,
    Relink,
    Skip,
    Verdict,
)
from symlinkd.names import fs_bytes as _raw  # the names' escaping lives in symlinkd.names
from symlinkd.names import json_name as json_name  # noqa: PLC0414 -- re-exported (was here)
from symlinkd.names import printable as printable  # noqa: PLC0414 -- re-exported (was here)
from symlinkd.names import put_name as _put_name
from symlinkd.report_steps import render_next_steps, render_unavailable

# Shown by default; the rest only with --json --all. A regular file in the farm (a subtitle
# Bazarr wrote next to the link, an .nfo) is counted but is not a problem: it is never touched.
BENIGN = frozenset({Verdict.OK, Verdict.NOT_SYMLINK})
OUTSIDE = "(no mount)"
_VERDICT_STYLE = {
    Verdict.OK: "green", Verdict.DANGLING: "red", Verdict.UNREADABLE: "yellow",
    Verdict.STALE: "yellow",
    Verdict.MOUNT_DOWN: "bold red", Verdict.MOUNT_HUNG: "bold red",
    Verdict.OUTSIDE_MOUNTS: "magenta", Verdict.LOOP: "magenta", Verdict.NOT_SYMLINK: "dim",
}
_HEALTH_STYLE = {MountHealth.OK: "green", MountHealth.DEGRADED: "yellow",
                 MountHealth.DOWN: "bold red", MountHealth.HUNG: "bold red"}


@dataclass(frozen=True, slots=True)
class LinkRow:
    judgement: Judgement
    planned: PlannedAction | None
    outcome: Outcome | None

    @property
    def action(self) -> ActionKind | None:
        return self.planned.action.kind if self.planned else None

    @property
    def new_target(self) -> str | None:
        action = self.planned.action if self.planned else None
        return action.new_target if isinstance(action, Relink) else None

    @property
    def held_by(self) -> str | None:
        action = self.planned.action if self.planned else None
        return action.held_by if isinstance(action, Skip) else None

    @property
    def reason(self) -> str:
        action = self.planned.action if self.planned else None
        if action is not None and action.kind is not ActionKind.KEEP:
            if action.reason:
                return action.reason
            if isinstance(action, Prune):
                return f"prune: {action.why.value}"
        return self.judgement.reason

    @property
    def interesting(self) -> bool:
        return self.judgement.verdict not in BENIGN or self.action not in (None, ActionKind.KEEP)


def rows(report: PassReport, *, all_links: bool = True) -> Iterator[LinkRow]:
    """One row per farm entry (only the interesting ones unless ``all_links``). Built lazily
    from the plan, which holds every judgement: a 1M-link farm gets no 1M-entry index here."""
    outcomes = {o.planned.path: o for o in report.outcomes
                if o.planned.action.kind is not ActionKind.KEEP}
    keep = ActionKind.KEEP
    if report.planned:
        return (LinkRow(p.judgement, p, outcomes.get(p.path)) for p in report.planned
                if all_links or p.judgement.verdict not in BENIGN or p.action.kind is not keep)
    # the pass ended before planning
    return (LinkRow(j, None, None) for j in report.judgements
            if all_links or j.verdict not in BENIGN)


def tally(report: PassReport) -> Counter[tuple[str | None, Verdict]]:
    """Entries per (mount, verdict) of the whole pass (also those the report did not keep)."""
    return report.tally()


def exit_code(report: PassReport) -> int:
    """3: refused for safety or a mount not ok; 1: problems found (or fixed); else 0."""
    if report.refused or any(m.health is not MountHealth.OK for m in report.mounts.values()):
        return 3
    if report.problems or any(True for _ in rows(report, all_links=False)):
        return 1
    return 0


# --- JSON -------------------------------------------------------------------------------------


def to_json(report: PassReport, *, all_links: bool) -> dict[str, Any]:
    doc = _json_head(report, all_links=all_links)
    doc["links"] = [_link_json(row) for row in rows(report, all_links=all_links)]
    return doc


def json_chunks(report: PassReport, *, all_links: bool, batch: int = 1000) -> Iterator[str]:
    """``to_json`` as compact JSON text, in pieces: the links are encoded ``batch`` at a time,
    so a farm with 100k problem links never holds 100k dicts (nor one 50 MB string)."""
    head = json.dumps(_json_head(report, all_links=all_links), ensure_ascii=False,
                      separators=(",", ":"))
    # A quote inside a JSON string is escaped, so this exact text can only be the key itself.
    before, _, after = head.partition(f'"links":{_LINKS_MARK}')
    yield before + '"links":['
    listed = rows(report, all_links=all_links)
    first = True
    while True:
        docs = [_link_json(row) for row in itertools.islice(listed, batch)]
        if not docs:
            break
        text = json.dumps(docs, ensure_ascii=False, separators=(",", ":"))[1:-1]
        yield text if first else "," + text
        first = False
    yield "]" + after


_LINKS_VALUE = "\x00links\x00"  # placeholder in the head, replaced by the links
_LINKS_MARK = json.dumps(_LINKS_VALUE)  # as encoded in the head


def _json_head(report: PassReport, *, all_links: bool) -> dict[str, Any]:
    counts = tally(report)
    after = report_after(report)
    verdicts: Counter[Verdict] = Counter()
    for (_, verdict), n in counts.items():
        verdicts[verdict] += n
    verdicts_after: Counter[Verdict] = Counter()
    for (_, verdict), n in after.items():
        verdicts_after[verdict] += n
    actions = Counter(p.action.kind for p in report.planned)
    results: dict[str, dict[str, int]] = {}
    for outcome in report.outcomes:
        per = results.setdefault(outcome.planned.action.kind.value, {})
        per[outcome.result.value] = per.get(outcome.result.value, 0) + 1
    return {
        "run_id": report.run_id,
        "kind": report.kind,
        "apply": report.apply,
        "dry_run": not report.apply,
        "started": report.started,
        "finished": report.finished,
        "duration_seconds": round(max(0.0, report.finished - report.started), 3),
        "exit_code": exit_code(report),
        "mounts": [_mount_json(m.name, m.path, m.health.value, m.detail)
                   for m in report.mounts.values()],
        "counts": {v.value: verdicts[v] for v in Verdict},  # as found
        # as the pass left the farm: relinked links ok, pruned ones gone (dry run: as found)
        "counts_after": {v.value: verdicts_after[v] for v in Verdict},
        "counts_by_mount": by_mount(counts, after),
        "actions": {a.value: actions[a] for a in ActionKind},
        # skips because an admin's undo holds the link (`symlinkd hold list`)
        "held": sum(1 for p in report.planned
                    if isinstance(p.action, Skip) and p.action.held_by),
        "results": results,
        "refused": report.refused,
        "refused_reason": report.refused_reason,
        # What to do next (issue 13). Additive: `links` still lists every link (CLI contract);
        # `mounts_not_ok` is the per-mount summary the table shows instead of those rows.
        "refused_next_step": (advice.refusal_next_step(report.refused_reason)
                              if report.refused else None),
        "mounts_not_ok": [_summary_json(s)
                          for s in advice.unavailable_mounts(report.mounts, counts)],
        "next_steps": {v.value: advice.VERDICT_NEXT_STEP[v] for v in Verdict
                       if verdicts[v] and v not in BENIGN},
        "undo": undo_command(report),
        "links_total": report.links_total,
        "links_listed": sum(1 for _ in rows(report, all_links=all_links)),
        "links": _LINKS_VALUE,
        "problems": [_problem_json(p.path, p.errno, p.message) for p in report.problems],
        "notes": list(report.notes),
        "rename_events": [
            {"mount": e.mount, "detected": e.detected, "failing": e.failing,
             "relinkable": len(e.relinkable), "ambiguous": [json_name(p)[0] for p in e.ambiguous]}
            for e in report.renames
        ],
    }


def undo_command(report: PassReport) -> str | None:
    """The command that reverts an applied run, when it changed something."""
    if report.apply and any(o.result is OutcomeResult.DONE for o in report.outcomes):
        return f"symlinkd undo {report.run_id}"
    return None


def _summary_json(summary: advice.MountSummary) -> dict[str, Any]:
    doc: dict[str, Any] = {"mount": summary.mount}
    _put_name(doc, "path", summary.path)
    doc.update(state=summary.state, reason=summary.reason, links=summary.links,
               counts=summary.counts, next_step=summary.next_step)
    return doc


def _mount_json(name: str, path: str, state: str, detail: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name}
    _put_name(doc, "path", path)
    doc.update(state=state, detail=detail)
    return doc


def _link_json(row: LinkRow) -> dict[str, Any]:
    j = row.judgement
    doc: dict[str, Any] = {}
    _put_name(doc, "path", j.path)
    _put_name(doc, "target", j.facts.target)
    doc["verdict"] = j.verdict.value
    doc["action"] = row.action.value if row.action else None
    _put_name(doc, "new_target", row.new_target)
    doc["reason"] = row.reason
    doc["held_by"] = row.held_by
    doc["verdict_reason"] = j.reason
    doc["mount"] = j.facts.mount
    doc["age_days"] = round(j.age_days, 2)
    doc["result"] = row.outcome.result.value if row.outcome else None
    doc["message"] = row.outcome.message if row.outcome else ""
    return doc


def _problem_json(path: str, errno: int | None, message: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    _put_name(doc, "path", path)
    doc.update(errno=errno, message=message)
    return doc


# --- terminal ---------------------------------------------------------------------------------


def render(
    report: PassReport,
    console: Console,
    *,
    farm: str | None = None,
    limit: int = 200,
    all_links: bool = False,
) -> None:
    """The report for a person: mounts, counts per mount and verdict, problem links (every entry
    with ``all_links``; at most ``limit``), what was (or would be) done, refusals in red.
    ``farm``: show link paths relative to it."""
    dry = not report.apply
    title = f"symlinkd {report.kind} pass {report.run_id}"
    console.print(Text(title + ("  (dry run; nothing changed)" if dry else ""), style="bold"))
    _render_mounts(report, console)
    _render_counts(report, console)
    problems = sum(1 for _ in rows(report, all_links=False))
    unavailable = advice.unavailable_mounts(report.mounts, tally(report))
    render_unavailable(unavailable, console, all_links=all_links)
    listed = _listed(report, unavailable, all_links=all_links)
    total = report.links_total if all_links else sum(1 for _ in listed())
    # the first `limit` by path without sorting a million rows (a whole mount down)
    first = heapq.nsmallest(limit, listed(), key=lambda row: _raw(row.judgement.path))
    if first:
        title = f"{'Links' if all_links else 'Problem links'} ({total})"
        _render_links(first, console, farm, title)
        if total > limit:
            console.print(Text(f"... and {total - limit} more (all of them: --json)"))
    render_next_steps((row.judgement.verdict for row in listed()), console)
    for problem in report.problems:
        console.print(Text(f"could not read {printable(problem.path)}: {problem.message}",
                           style="yellow"))
    if report.refused:
        console.print(Text(
            f"PLAN REFUSED ({report.refused_reason or 'unsafe'}): {report.refused}\n"
            f"Nothing was changed. Next step: "
            f"{advice.refusal_next_step(report.refused_reason)}", style="bold red"))
    _render_actions(report, console, farm, limit)
    if report.notes:  # notifications ("would send: ..." in a dry run) and forced-gate notes
        console.print(Text("Notes:", style="bold"))
        for note in report.notes:
            console.print(Text(f"  {printable(note)}", style="cyan"))
    _render_summary(report, problems, console)
    undo = undo_command(report)
    if undo:
        console.print(Text(f"To revert this run: {undo}", style="bold"))


def _listed(report: PassReport, unavailable: list[advice.MountSummary], *,
            all_links: bool) -> Callable[[], Iterator[LinkRow]]:
    """The rows the table lists: without ``all_links``, the links a mount summary stands for
    are left out (a fresh iterator per call: the rows are built lazily)."""
    down = {s.mount for s in unavailable}

    def listed() -> Iterator[LinkRow]:
        for row in rows(report, all_links=all_links):
            j = row.judgement
            if all_links or not advice.summarised(j.verdict, j.facts.mount, down):
                yield row
    return listed


def _render_mounts(report: PassReport, console: Console) -> None:
    table = Table(title="Mounts", title_justify="left", show_edge=False)
    for col in ("mount", "path", "state", "detail"):
        table.add_column(col, overflow="fold")
    for m in report.mounts.values():
        table.add_row(Text(m.name), Text(printable(m.path)),
                      Text(m.health.value, style=_HEALTH_STYLE[m.health]), Text(m.detail))
    console.print(table)


def _render_counts(report: PassReport, console: Console) -> None:
    per: dict[str, Counter[Verdict]] = {name: Counter() for name in report.mounts}
    for (mount, verdict), n in tally(report).items():
        per.setdefault(mount or OUTSIDE, Counter())[verdict] += n
    left: dict[str, Counter[Verdict]] = {}
    for (mount, verdict), n in report_after(report).items():
        left.setdefault(mount or OUTSIDE, Counter())[verdict] += n
    seen = [v for v in Verdict if any(c[v] for c in per.values())] or [Verdict.OK]
    table = Table(title="Links by mount and verdict", title_justify="left", show_edge=False)
    table.add_column("mount")
    for verdict in seen:
        table.add_column(Text(verdict.value, style=_VERDICT_STYLE[verdict]), justify="right")
    table.add_column("total", justify="right")
    for mount, counts in per.items():
        table.add_row(Text(mount), *(str(counts[v]) for v in seen), str(sum(counts.values())))
        now = left.get(mount, Counter())
        if +now != +counts:  # the pass's actions changed this mount's links: show the result
            table.add_row(Text("  after the actions", style="dim"),
                          *(str(now[v]) for v in seen), str(sum(now.values())))
    console.print(table)


def _short(path: str | None, farm: str | None) -> str:
    if path is None:
        return ""
    if farm and path.startswith(farm.rstrip("/") + "/"):
        path = path[len(farm.rstrip("/")) + 1:]
    return printable(path)


def _render_links(listed: list[LinkRow], console: Console, farm: str | None, title: str) -> None:
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("path", "target", "verdict", "action", "reason"):
        table.add_column(col, overflow="fold")
    for row in listed:
        verdict = row.judgement.verdict
        action = "held" if row.held_by else row.action.value if row.action else "-"
        if row.new_target and row.new_target not in row.reason:
            action += f" → {printable(row.new_target)}"
        table.add_row(Text(_short(row.judgement.path, farm)),
                      Text(printable(row.judgement.facts.target or "")),
                      Text(verdict.value, style=_VERDICT_STYLE[verdict]),
                      Text(action), Text(printable(row.reason)))
    console.print(table)


def _render_actions(report: PassReport, console: Console, farm: str | None, limit: int) -> None:
    changes = [p for p in report.planned if p.action.kind in (ActionKind.RELINK, ActionKind.PRUNE)]
    if not changes or (report.refused and report.apply):
        return
    if not report.apply:
        flags = "--apply --force" if report.refused else "--apply"
        console.print(Text(f"With {flags}, symlinkd would make {len(changes)} change(s):",
                           style="bold"))
        for p in changes[:limit]:
            console.print(Text("  " + _describe(p, farm)))
        if len(changes) > limit:
            console.print(Text(f"  ... and {len(changes) - limit} more"))
        return
    results = Counter((o.planned.action.kind.value, o.result.value) for o in report.outcomes)
    summary = ", ".join(f"{kind} {result}: {n}" for (kind, result), n in sorted(results.items()))
    console.print(Text(f"Actions: {summary or 'none'}", style="bold"))
    for o in report.outcomes:
        if o.result.value == "failed":
            console.print(Text(f"  FAILED {_describe(o.planned, farm)}: {printable(o.message)}",
                               style="red"))


def _describe(planned: PlannedAction, farm: str | None) -> str:
    action = planned.action
    path = _short(planned.path, farm)
    if isinstance(action, Relink):
        return f"relink {path} → {printable(action.new_target)}"
    if isinstance(action, Prune):
        return f"prune  {path} ({action.why.value}) into the quarantine"
    return f"{action.kind.value} {path}"


def _render_summary(report: PassReport, problems: int, console: Console) -> None:
    seconds = max(0.0, report.finished - report.started)
    code = exit_code(report)
    for m in report.mounts.values():
        if m.health is not MountHealth.OK:
            console.print(Text(f"mount {m.name} is {m.health.value}: nothing under it was "
                               "judged by its target or changed", style="bold red"))
    style = {0: "green", 1: "yellow"}.get(code, "bold red")
    line = f"{report.links_total} entries, {problems} need attention, {plain.seconds(seconds)}"
    if not report.apply:
        line += " (dry run; nothing changed)"
        if any(p.action.kind in (ActionKind.RELINK, ActionKind.PRUNE) for p in report.planned):
            line += " — run again with --apply to make these changes"
    console.print(Text(line, style=style))
