"""Sonarr v3 HTTP calls."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.arr_api import ArrApi, Owned
from symlinkd.notifiers.base import ApiRequest

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
