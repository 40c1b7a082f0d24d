"""The report's "what to do next" parts for a terminal: the per-mount summary of links under a
mount that is not ok, and one next-step line per verdict listed (texts: ``symlinkd.advice``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from symlinkd import advice
from symlinkd.model import Verdict
from symlinkd.names import printable

_QUIET = frozenset({Verdict.OK, Verdict.NOT_SYMLINK})  # report.BENIGN: nothing to do


def render_unavailable(summaries: list[advice.MountSummary], console: Console, *,
                        all_links: bool) -> None:
    if not summaries:
        return
    more = "" if all_links else " (listed one by one with --all)"
    table = Table(title=f"Mounts not ok: their links are left alone{more}",
                  title_justify="left", show_edge=False)
    for col, justify in (("mount", "left"), ("state", "left"), ("links", "right"),
                         ("reason", "left"), ("next step", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(Text(s.mount), Text(s.state, style="bold red"), str(s.links),
                      Text(printable(s.reason)), Text(printable(s.next_step)))
    console.print(table)


def render_next_steps(verdicts: Iterable[Verdict], console: Console) -> None:
    """One line per verdict the table lists: what to do about those links."""
    seen: Counter[Verdict] = Counter(verdicts)
    steps = [(v, seen[v]) for v in Verdict if seen[v] and v not in _QUIET]
    if not steps:
        return
    console.print(Text("Next steps:", style="bold"))
    for verdict, n in steps:
        console.print(Text(f"  {verdict.value} ({n}): {advice.VERDICT_NEXT_STEP[verdict]}"))
