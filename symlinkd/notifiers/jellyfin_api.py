"""Jellyfin HTTP calls (``Authorization: MediaBrowser Token="…"``; the legacy
``X-Emby-Token`` header is off by default since Jellyfin 12)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from symlinkd.errors import NotifierUnavailable
from symlinkd.notifiers.base import ApiRequest, ChangeKind
from symlinkd.notifiers.client import ApiClient, RetryPolicy
from symlinkd.settings import MediaServer, Secret

TARGET = "jellyfin"

_UPDATE_TYPE = {ChangeKind.CREATED: "Created", ChangeKind.MODIFIED: "Modified",
                ChangeKind.DELETED: "Deleted"}


@dataclass(frozen=True, slots=True)
class VirtualFolder:
    name: str
    locations: tuple[str, ...]


class JellyfinApi:
    def __init__(self, server: MediaServer, retry: RetryPolicy,
                 transport: httpx.BaseTransport | None = None) -> None:
        header = Secret(f'MediaBrowser Token="{server.token.reveal()}"')
        self.client = ApiClient(TARGET, server.url, {"Authorization": header},
                                timeout=server.timeout_seconds, retry=retry, transport=transport)

    def virtual_folders(self) -> list[VirtualFolder]:
        data: Any = self.client.get_json("/Library/VirtualFolders")
        try:
            return [VirtualFolder(str(f.get("Name") or ""),
                                  tuple(str(p) for p in f.get("Locations") or ()))
                    for f in data]
        except (TypeError, AttributeError) as exc:
            raise NotifierUnavailable(
                f"{TARGET}: unexpected /Library/VirtualFolders answer ({exc})"
            ) from None

    @staticmethod
    def media_updated(updates: Sequence[tuple[str, ChangeKind]]) -> ApiRequest:
        # The server uses only Path (it queues a refresh of the item's folder); UpdateType is
        # sent for the record, as Sonarr/Autoscan do.
        body = {"Updates": [{"Path": path, "UpdateType": _UPDATE_TYPE[kind]}
                            for path, kind in updates]}
        return ApiRequest.with_json(TARGET, "POST", "/Library/Media/Updated", body,
                                    label=f"{len(updates)} path(s)")

    def close(self) -> None:
        self.client.close()
