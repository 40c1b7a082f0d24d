"""``symlinkd scan`` (and the demo's pass): build the runtime, run one pass with a progress line
on a terminal, print the report (table or JSON), return the exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from symlinkd.model import PassReport
from symlinkd.report import exit_code, json_chunks, render, to_json
from symlinkd.runtime import PassOptions, build_runtime
from symlinkd.settings import Settings
from symlinkd.statefail import StatePassError


def run_scan(settings: Settings, paths: tuple[str, ...], args: argparse.Namespace) -> int:
    options = PassOptions(paths=paths, apply=args.apply, force=args.force,
                          notify=not args.no_notify, kind="subtree" if paths else "full",
                          keep_all=args.all, target_index=False)
    try:
        report = run_pass(settings, options, show_progress=not args.json)
    except StatePassError as failed:
        # The changes made before the state disk failed are reported; the CLI adds the line.
        if isinstance(failed.report, PassReport):
            show(failed.report, settings, as_json=args.json, all_links=args.all)
        raise
    show(report, settings, as_json=args.json, all_links=args.all)
    return exit_code(report)


def run_pass(settings: Settings, options: PassOptions, *, show_progress: bool) -> PassReport:
    with build_runtime(settings) as runtime:
        if options.apply:
            # One mutator per farm: a running daemon holds this lock, and `scan --apply` beside
            # it is refused (StateLocked -> exit 3) rather than racing its passes.
            runtime.state.lock_exclusive()
        with progress_line(settings.farm, show_progress) as tick:
            return runtime.run_pass(options, progress=tick)


def show(report: PassReport, settings: Settings, *, as_json: bool, all_links: bool) -> None:
    if as_json and not sys.stdout.isatty():
        # Compact into a pipe, written as it is encoded: 100k problem links stay cheap.
        sys.stdout.flush()
        out = sys.stdout.buffer
        for chunk in json_chunks(report, all_links=all_links):
            out.write(chunk.encode("utf-8"))
        out.write(b"\n")
        out.flush()
    elif as_json:
        write_json(to_json(report, all_links=all_links))
    else:
        render(report, stdout_console(), farm=settings.farm, all_links=all_links)


def write_json(document: dict[str, Any] | list[Any]) -> None:
    """UTF-8 whatever the locale: names in the document are valid Unicode (see report.py).
    Indented for a person on a terminal; compact into a pipe, where json's indenting encoder
    (pure Python) would take ~8x longer on a farm with 100k problem links."""
    text = (json.dumps(document, ensure_ascii=False, indent=2) if sys.stdout.isatty()
            else json.dumps(document, ensure_ascii=False, separators=(",", ":")))
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def stdout_console() -> Console:
    # A pipe gets rich's 80 columns unless told otherwise; a report read from a file or a
    # `kubectl logs` is easier with room for paths.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=160 if wide else None)


class _Seen:
    """The progress renderable: reads the latest count when rich refreshes (4 times a second),
    so the scanner's callback costs one attribute store."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, farm: str) -> None:
        self.count = 0
        self.started = time.monotonic()
        self.farm = farm

    def tick(self, count: int) -> None:
        self.count = count

    def __rich__(self) -> RenderableType:
        elapsed = time.monotonic() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        frame = self.FRAMES[int(elapsed * 10) % len(self.FRAMES)]
        # one line whatever the terminal width: the farm path goes last and is cut first
        return Text(f"{frame} scanning: {self.count:,} entries, {elapsed:.0f}s "
                    f"({rate:,.0f}/s) {self.farm}", no_wrap=True, overflow="ellipsis")


@contextmanager
def progress_line(farm: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A live line on stderr while the pass runs — only when stderr is a terminal, so logs,
    pipes and --json never see it; removed when the pass ends."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    seen = _Seen(farm)
    console = Console(stderr=True)
    with Live(seen, console=console, transient=True, refresh_per_second=4,
              redirect_stdout=False, redirect_stderr=False):
        yield seen.tick
