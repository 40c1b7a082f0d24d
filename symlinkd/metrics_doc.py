"""The metrics table of docs/metrics.md, generated from the daemon's own registry so the page
cannot drift from what ``/metrics`` exports (tests/unit/test_metrics_doc.py compares).

    python -m symlinkd.metrics_doc            # print the table
    python -m symlinkd.metrics_doc --write    # rewrite it in docs/metrics.md
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from symlinkd.metrics import Metrics

BEGIN = ("<!-- BEGIN metrics table: generated from the registry by "
         "`python -m symlinkd.metrics_doc --write`; do not edit by hand -->")
END = "<!-- END metrics table -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


@dataclass(frozen=True, slots=True)
class Family:
    exposed: str  # the name a scrape shows (counters get _total)
    kind: str
    labels: tuple[str, ...]
    help: str


def daemon_registry() -> CollectorRegistry:
    """A registry holding every family ``symlinkd run`` registers: the pass metrics and the
    HTTP server's request counter (made by starting that server on a free loopback port)."""
    from symlinkd.daemon.http import HttpContext, HttpServer  # noqa: PLC0415 -- daemon only
    from symlinkd.daemon.webhooks import TargetIndex  # noqa: PLC0415

    registry = CollectorRegistry()
    Metrics(registry)

    def unused(*_args: Any) -> Any:
        raise AssertionError("never called: the server only registers its counter")

    server = HttpServer("127.0.0.1:0", HttpContext(
        registry=registry, settings=unused, enqueue=unused, healthy=unused, ready=unused,
        targets=TargetIndex(),
    ))
    server.start()
    server.close()
    return registry


def families(registry: CollectorRegistry) -> list[Family]:
    """Every family in the registry, by its exposed name. Label names are not part of
    prometheus_client's public API before a first sample, hence the private attributes."""
    found = []
    for collector in list(registry._collector_to_names):
        kind = str(getattr(collector, "_type", "untyped"))
        name = str(getattr(collector, "_name", ""))
        found.append(Family(
            exposed=f"{name}_total" if kind == "counter" else name, kind=kind,
            labels=tuple(getattr(collector, "_labelnames", ())),
            help=str(getattr(collector, "_documentation", "")),
        ))
    return sorted(found, key=lambda f: f.exposed)


def table(registry: CollectorRegistry | None = None) -> str:
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for f in families(registry or daemon_registry()):
        labels = ", ".join(f"`{label}`" for label in f.labels) or "—"
        rows.append(f"| `{f.exposed}` | {f.kind} | {labels} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def replace_table(text: str, new_table: str) -> str:
    """``text`` with the block between the markers replaced by ``new_table``."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), flags=re.S)
    if not pattern.search(text):
        raise ValueError(f"no generated metrics table in the text (markers: {BEGIN!r})")
    return pattern.sub(lambda _m: f"{BEGIN}\n{new_table}{END}", text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m symlinkd.metrics_doc")
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC}")
    args = parser.parse_args()
    if args.write:
        DOC.write_text(replace_table(DOC.read_text(encoding="utf-8"), table()), encoding="utf-8")
    else:
        print(table(), end="")


if __name__ == "__main__":
    main()
