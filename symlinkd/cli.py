"""Command line entry point (being built: see issue 2)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("symlinkd: CLI under construction", file=sys.stderr)
    return 2
