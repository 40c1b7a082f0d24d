"""HTTP calls shared by Sonarr and Radarr v3 (``X-Api-Key`` header, ``/api/v3/command``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from symlinkd.errors import NotifierUnavailable
from symlinkd.notifiers.base import ApiRequest
from symlinkd.notifiers.client import ApiClient, RetryPolicy
from symlinkd.settings import ArrServer

# CommandStatus values after which a command will not run any more.
FINISHED = frozenset({"completed", "failed", "aborted", "cancelled", "orphaned"})


@dataclass(frozen=True, slots=True)
class Owned:
    """A series or movie: its id, title and folder (in the server's view)."""

    id: int
    title: str
    path: str


class ArrApi:
    def __init__(self, target: str, server: ArrServer, retry: RetryPolicy,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        self.client = ApiClient(target, server.url, {"X-Api-Key": server.api_key},
                                timeout=server.timeout_seconds, retry=retry, transport=transport)

    def command(self, name: str, label: str, **fields: Any) -> ApiRequest:
        # The document's CommandResource lists no command fields (seriesId, movieIds, ...);
        # the server binds them from the body by the command's class (Sonarr/Radarr source).
        return ApiRequest.with_json(self.target, "POST", "/api/v3/command",
                                    {"name": name, **fields}, label=label)

    def command_status(self, command_id: int) -> str:
        data: Any = self.client.get_json(f"/api/v3/command/{command_id}")
        return str(data.get("status", "")) if isinstance(data, dict) else ""

    def _list(self, path: str, params: tuple[tuple[str, str], ...] = ()) -> list[dict[str, Any]]:
        data: Any = self.client.get_json(path, params)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise NotifierUnavailable(f"{self.target}: unexpected answer to GET {path}")
        return data

    def _owned(self, path: str) -> list[Owned]:
        return [Owned(int(item["id"]), str(item.get("title") or ""), str(item["path"]))
                for item in self._list(path) if item.get("path") and "id" in item]

    def close(self) -> None:
        self.client.close()
