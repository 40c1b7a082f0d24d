"""Sonarr: which episodes a pruned link held (matched by the episode file's path)."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.arr_api import Owned
from symlinkd.notifiers.pathmap import is_under
from symlinkd.notifiers.sonarr_api import SonarrApi


class SonarrCatalog(SonarrApi):
    def items(self, owner: Owned, link_paths: Sequence[str]) -> list[int]:
        """Episode ids whose file is one of ``link_paths`` or lies under one (a pruned folder
        link). Sonarr's ``path`` is the absolute file path in its own view."""
        files = {file_id for file_id, path in self.episode_files(owner.id)
                 if any(is_under(path, link) for link in link_paths)}
        if not files:
            return []
        return [episode for episode, file_id in self.episodes(owner.id) if file_id in files]
