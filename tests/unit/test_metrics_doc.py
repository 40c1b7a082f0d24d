"""docs/metrics.md cannot drift from what the daemon exports: its table is generated from the
daemon's registry (``python -m symlinkd.metrics_doc --write``), and this test compares both
ways — every exported family is documented, every documented family is exported."""

from __future__ import annotations

import re
from pathlib import Path

from symlinkd import metrics_doc

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


def documented_families(text: str) -> set[str]:
    return set(re.findall(r"^\| `(symlinkd_[a-z_]+)` \|", text, flags=re.M))


def test_every_exported_family_is_documented_and_every_documented_one_exported() -> None:
    families = metrics_doc.families(metrics_doc.daemon_registry())
    exported = {f.exposed for f in families}
    assert "symlinkd_http_requests_total" in exported  # the HTTP server's own counter too
    assert documented_families(DOC.read_text(encoding="utf-8")) == exported


def test_the_docs_table_is_the_generated_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert metrics_doc.replace_table(text, metrics_doc.table()) == text, (
        "docs/metrics.md is stale: run `python -m symlinkd.metrics_doc --write`")


def test_a_documented_family_nobody_exports_is_caught() -> None:
    stale = "| `symlinkd_gone_total` | counter | `x` | removed long ago |\n"
    assert "symlinkd_gone_total" in documented_families(stale)
    assert "symlinkd_gone_total" not in {
        f.exposed for f in metrics_doc.families(metrics_doc.daemon_registry())}


def test_no_action_skip_is_promised() -> None:
    """The executor has no outcome for a skip, so ``action="skip"`` is never exported."""
    assert 'skip`' not in DOC.read_text(encoding="utf-8").split("symlinkd_actions_total")[1][:200]
