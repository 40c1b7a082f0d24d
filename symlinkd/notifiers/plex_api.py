"""Plex Media Server HTTP calls (``X-Plex-Token`` header)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from symlinkd import __version__
from symlinkd.errors import NotifierUnavailable
from symlinkd.notifiers.base import ApiRequest
from symlinkd.notifiers.client import ApiClient, RetryPolicy
from symlinkd.settings import MediaServer

TARGET = "plex"


@dataclass(frozen=True, slots=True)
class PlexSection:
    key: str
    title: str
    locations: tuple[str, ...]


class PlexApi:
    def __init__(self, server: MediaServer, retry: RetryPolicy,
                 transport: httpx.BaseTransport | None = None) -> None:
        # The spec marks X-Plex-Client-Identifier required; Plex lists the client by it.
        identity = {"X-Plex-Client-Identifier": "symlinkd", "X-Plex-Product": "symlinkd",
                    "X-Plex-Version": __version__}
        self.client = ApiClient(TARGET, server.url, {"X-Plex-Token": server.token},
                                timeout=server.timeout_seconds, retry=retry, transport=transport,
                                headers=identity)

    def sections(self) -> list[PlexSection]:
        # Without "Accept: application/json" Plex answers XML (the client always sends it).
        data: Any = self.client.get_json("/library/sections")
        try:
            directories = data["MediaContainer"].get("Directory", [])
            return [
                PlexSection(
                    key=str(d["key"]),  # a string in JSON ("1"), an int in the community spec
                    title=str(d.get("title", "")),
                    locations=tuple(str(loc["path"]) for loc in d.get("Location", [])),
                )
                for d in directories
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise NotifierUnavailable(
                f"{TARGET}: unexpected /library/sections answer ({type(exc).__name__}: {exc})"
            ) from None

    @staticmethod
    def refresh(section: str, path: str, title: str = "") -> ApiRequest:
        # GET, as Sonarr's Plex notifier, Autoscan and zurg's plex_update.sh send it; the
        # community spec models the same operation as POST.
        return ApiRequest(TARGET, "GET", f"/library/sections/{section}/refresh",
                          (("path", path),), label=f"section {title!r}" if title else "")

    def close(self) -> None:
        self.client.close()
