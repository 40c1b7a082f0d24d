"""What the notifiers are told (``Change``) and what they send (``ApiRequest``).

A ``Change`` is one farm entry a pass changed, in symlinkd's view of the filesystem. Targets
turn changes into ``ApiRequest`` values (already path-mapped into the server's view) so that
batching, de-duplication, dry-run lines and the pending outbox all work on one plain type.
"""

from __future__ import annotations

import enum
import json
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


class ChangeKind(enum.StrEnum):
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"


class ChangeCause(enum.StrEnum):
    RELINK = "relink"
    PRUNE_DANGLING = "prune_dangling"
    PRUNE_AGE = "prune_age"
    NEW = "new"
    UNDO = "undo"


@dataclass(frozen=True, slots=True)
class Change:
    """One link (or folder link, ``is_dir``) a pass created, changed or removed."""

    path: str
    kind: ChangeKind
    cause: ChangeCause
    is_dir: bool = False

    @property
    def folder(self) -> str:
        """The folder a media server should rescan: the link's parent directory, or the link
        itself when it is a folder link (a whole movie/season folder) that still exists. A
        removed folder link is seen from its parent: Plex's partial scan needs a folder that
        exists to notice what left it."""
        path = posixpath.normpath(self.path)
        if self.is_dir and self.kind is not ChangeKind.DELETED:
            return path
        return posixpath.dirname(path)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind.value, "cause": self.cause.value,
                "is_dir": self.is_dir}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(path=str(data["path"]), kind=ChangeKind(data["kind"]),
                   cause=ChangeCause(data["cause"]), is_dir=bool(data.get("is_dir", False)))


def _quote(value: str) -> str:
    # A file name with invalid UTF-8 bytes arrives as surrogate escapes; the server wants the
    # original bytes, percent-encoded, not a UnicodeEncodeError.
    return quote(value.encode("utf-8", "surrogateescape"), safe="/")


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request to one target, in the server's path view. Hashable: equal requests
    within one notify call are sent once. ``body`` is canonical JSON text (sorted keys)."""

    target: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    label: str = ""  # what it means, for people ("RescanSeries 'Show'")

    @classmethod
    def with_json(cls, target: str, method: str, path: str, payload: Any, *,
                  params: tuple[tuple[str, str], ...] = (), label: str = "") -> ApiRequest:
        return cls(target, method, path, params, json.dumps(payload, sort_keys=True), label)

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...], str | None]:
        return (self.method, self.path, self.params, self.body)

    def url_path(self) -> str:
        """Path plus the encoded query, as it goes on the wire."""
        if not self.params:
            return self.path
        return self.path + "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in self.params)

    def describe(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        text = f"{self.target} {self.method} {self.path}" + (f"?{query}" if query else "")
        if self.body is not None:
            text += f" {self.body}"
        return text + (f" ({self.label})" if self.label else "")

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "method": self.method, "path": self.path,
                "params": [list(p) for p in self.params], "body": self.body,
                "label": self.label}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiRequest:
        params = tuple((str(k), str(v)) for k, v in data.get("params", []))
        body = data.get("body")
        return cls(str(data["target"]), str(data["method"]), str(data["path"]), params,
                   None if body is None else str(body), str(data.get("label", "")))
