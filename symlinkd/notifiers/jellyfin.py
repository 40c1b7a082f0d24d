"""Jellyfin: changed folders -> ``POST /Library/Media/Updated`` (batched)."""

from __future__ import annotations

from collections.abc import Sequence

from symlinkd.notifiers.base import Change, ChangeKind
from symlinkd.notifiers.batching import FolderChange, changed_folders, plan_library_scans
from symlinkd.notifiers.client import ApiClient, RequestRefused
from symlinkd.notifiers.delivery import Courier
from symlinkd.notifiers.jellyfin_api import TARGET, JellyfinApi
from symlinkd.notifiers.pathmap import PathMap

# Paths per POST: keeps one request body small while still being one request per pass for any
# ordinary pass.
_PATHS_PER_REQUEST = 100


class JellyfinTarget:
    name = TARGET

    def __init__(self, api: JellyfinApi, path_map: PathMap, max_paths_per_library: int) -> None:
        self.api = api
        self.path_map = path_map
        self.max_paths = max_paths_per_library

    @property
    def client(self) -> ApiClient:
        return self.api.client

    def preview(self, changes: Sequence[Change]) -> list[str]:
        folders = changed_folders(changes, self.path_map)
        return [JellyfinApi.media_updated([(f.folder, f.kind)]).describe() for f in folders]

    def deliver(self, changes: Sequence[Change], courier: Courier) -> None:
        folders = changed_folders(changes, self.path_map)
        if not folders:
            return
        updates = self._updates(folders, courier)
        for start in range(0, len(updates), _PATHS_PER_REQUEST):
            courier.send(JellyfinApi.media_updated(updates[start:start + _PATHS_PER_REQUEST]))

    def _updates(self, folders: list[FolderChange],
                 courier: Courier) -> list[tuple[str, ChangeKind]]:
        try:
            libraries = {f.name: f.locations for f in self.api.virtual_folders()}
        except RequestRefused as exc:
            if exc.status != 403:
                raise
            # Listing libraries needs an administrator's key; Media/Updated does not. Without
            # the list, every folder is sent and the server sorts it out.
            courier.log.info("cannot list Jellyfin libraries (HTTP 403); sending all folders")
            return [(f.folder, f.kind) for f in folders]
        batch = plan_library_scans(folders, libraries, self.max_paths)
        for folder in batch.unmapped:
            courier.unmapped(folder, "no Jellyfin library location covers it")
        return list(dict.fromkeys((scan.path, scan.kind) for scan in batch.scans))

    def close(self) -> None:
        self.api.close()
