"""Radarr v3: the HTTP calls, and which movie a pruned link stands for (the one whose folder
holds it)."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.arr_api import ArrApi, Owned
from symlinkd.notifiers.base import ApiRequest

TARGET = "radarr"


class RadarrApi(ArrApi):
    item_kind = "movie"

    def owners(self) -> list[Owned]:
        return self._owned("/api/v3/movie")

    def rescan(self, owner: Owned) -> ApiRequest:
        return self.command("RescanMovie", f"RescanMovie {owner.title!r}", movieId=owner.id)

    def search(self, item_ids: Sequence[int]) -> ApiRequest:
        ids = sorted(set(item_ids))
        return self.command("MoviesSearch", f"search {len(ids)} movie(s)", movieIds=ids)

    def unmonitor(self, item_ids: Sequence[int]) -> ApiRequest:
        ids = sorted(set(item_ids))
        return ApiRequest.with_json(self.target, "PUT", "/api/v3/movie/editor",
                                    {"movieIds": ids, "monitored": False},
                                    label=f"unmonitor {len(ids)} movie(s)")


class RadarrCatalog(RadarrApi):
    def items(self, owner: Owned, link_paths: Sequence[str]) -> list[int]:
        return [owner.id] if link_paths else []
