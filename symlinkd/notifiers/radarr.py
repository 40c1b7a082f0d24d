"""Radarr: a pruned link inside a movie folder stands for that movie."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.arr_api import Owned
from symlinkd.notifiers.radarr_api import RadarrApi


class RadarrCatalog(RadarrApi):
    def items(self, owner: Owned, link_paths: Sequence[str]) -> list[int]:
        return [owner.id] if link_paths else []
