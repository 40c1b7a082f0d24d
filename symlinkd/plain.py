"""Numbers as a person reads them in a report or a log line: "5 s", not "4.99999 s"."""

from __future__ import annotations


def seconds(value: float) -> str:
    """A duration to a tenth of a second (hundredths below one second), trailing zeros
    dropped. Timeouts are often what is left of a deadline (4.99999), so the raw float would
    be noise."""
    rounded = round(value, 1) if value >= 1 else round(value, 2)
    return f"{rounded:g} s" if rounded < 1e6 else f"{rounded:.0f} s"
