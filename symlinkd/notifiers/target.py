"""What every notification target offers the hub."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from symlinkd.notifiers.base import Change
from symlinkd.notifiers.client import ApiClient
from symlinkd.notifiers.delivery import Courier


class Target(Protocol):
    name: str

    @property
    def client(self) -> ApiClient: ...

    def preview(self, changes: Sequence[Change]) -> list[str]:
        """Dry run: what would be sent, without a single network call."""
        ...

    def deliver(self, changes: Sequence[Change], courier: Courier) -> None:
        """Look up what is needed and send through ``courier``. A failed lookup raises
        ``NotifierUnavailable`` / ``NotifierRejected``; failed sends are the courier's job."""
        ...

    def close(self) -> None: ...
