"""The state DB and its digest must not import each other (issue 13): the digest takes what it
needs of the DB as parameters, so it can be read, tested and reused on its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "symlinkd"


def _imports(module: str) -> set[str]:
    """Every ``symlinkd.*`` module named by an import in ``module``, TYPE_CHECKING ones too."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("symlinkd.")}


def test_linkdigest_does_not_import_state() -> None:
    assert "symlinkd.state" not in _imports("linkdigest")


def test_state_uses_linkdigest_one_way() -> None:
    assert "symlinkd.linkdigest" in _imports("state")
