"""Plex: changed folders -> partial scans of the sections whose locations hold them."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.base import Change
from symlinkd.notifiers.batching import changed_folders, plan_library_scans
from symlinkd.notifiers.client import ApiClient
from symlinkd.notifiers.delivery import Courier
from symlinkd.notifiers.pathmap import PathMap
from symlinkd.notifiers.plex_api import TARGET, PlexApi


class PlexTarget:
    name = TARGET

    def __init__(self, api: PlexApi, path_map: PathMap, max_paths_per_section: int) -> None:
        self.api = api
        self.path_map = path_map
        self.max_paths = max_paths_per_section

    @property
    def client(self) -> ApiClient:
        return self.api.client

    def preview(self, changes: Sequence[Change]) -> list[str]:
        # The section key needs a lookup, and a dry run sends nothing at all.
        return [
            PlexApi.refresh("{section}", folder.folder).describe()
            for folder in changed_folders(changes, self.path_map)
        ]

    def deliver(self, changes: Sequence[Change], courier: Courier) -> None:
        folders = changed_folders(changes, self.path_map)
        if not folders:
            return
        sections = self.api.sections()
        titles = {s.key: s.title for s in sections}
        batch = plan_library_scans(folders, {s.key: s.locations for s in sections},
                                   self.max_paths)
        for folder in batch.unmapped:
            courier.unmapped(folder, "no Plex section location covers it")
        for scan in batch.scans:
            courier.send(PlexApi.refresh(scan.library, scan.path, titles.get(scan.library, "")))

    def close(self) -> None:
        self.api.close()
