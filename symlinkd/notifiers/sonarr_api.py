"""Sonarr v3: the HTTP calls, and which episodes a pruned link held (matched by the episode
file's path)."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.arr_api import ArrApi, Owned
from symlinkd.notifiers.base import ApiRequest
from symlinkd.notifiers.pathmap import is_under

TARGET = "sonarr"


class SonarrApi(ArrApi):
    item_kind = "series"

    def owners(self) -> list[Owned]:
        return self._owned("/api/v3/series")

    def episode_files(self, series_id: int) -> list[tuple[int, str]]:
        return [(int(f["id"]), str(f["path"]))
                for f in self._list("/api/v3/episodefile", (("seriesId", str(series_id)),))
                if f.get("path") and "id" in f]

    def episodes(self, series_id: int) -> list[tuple[int, int]]:
        """``(episode id, episode file id)`` of every episode of the series (file id 0: none).
        One call per series instead of one ``?episodeFileId=`` call per file."""
        return [(int(e["id"]), int(e.get("episodeFileId") or 0))
                for e in self._list("/api/v3/episode", (("seriesId", str(series_id)),))
                if "id" in e]

    def rescan(self, owner: Owned) -> ApiRequest:
        return self.command("RescanSeries", f"RescanSeries {owner.title!r}", seriesId=owner.id)

    def search(self, item_ids: Sequence[int]) -> ApiRequest:
        ids = sorted(set(item_ids))
        return self.command("EpisodeSearch", f"search {len(ids)} episode(s)", episodeIds=ids)

    def unmonitor(self, item_ids: Sequence[int]) -> ApiRequest:
        ids = sorted(set(item_ids))
        return ApiRequest.with_json(self.target, "PUT", "/api/v3/episode/monitor",
                                    {"episodeIds": ids, "monitored": False},
                                    label=f"unmonitor {len(ids)} episode(s)")


class SonarrCatalog(SonarrApi):
    def items(self, owner: Owned, link_paths: Sequence[str]) -> list[int]:
        """Episode ids whose file is one of ``link_paths`` or lies under one (a pruned folder
        link). Sonarr's ``path`` is the absolute file path in its own view."""
        files = {file_id for file_id, path in self.episode_files(owner.id)
                 if any(is_under(path, link) for link in link_paths)}
        if not files:
            return []
        return [episode for episode, file_id in self.episodes(owner.id) if file_id in files]
