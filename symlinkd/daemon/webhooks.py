"""What a webhook means for the farm: Sonarr/Radarr payloads and Zurg library updates turned into
farm paths to scan. Pure functions plus the target index; the HTTP layer is in ``http``."""

from __future__ import annotations

import json
import posixpath
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from symlinkd.model import PassReport
from symlinkd.settings import MountSettings

# Events that change files on disk. Grab, Health, SeriesAdd, ApplicationUpdate, ... do not.
_FILE_EVENTS = {
    "Download", "Rename", "EpisodeFileDelete", "MovieFileDelete", "SeriesDelete", "MovieDelete",
}


# Webhook payloads are a few levels deep; anything much deeper is an attack or a bug.
MAX_JSON_DEPTH = 32


class PayloadError(ValueError):
    """The body is not what the sender documents (HTTP 400)."""


def load_json(body: bytes, *, strict: bool = True) -> Any:
    """A request body as JSON: UTF-8, well-formed, at most ``MAX_JSON_DEPTH`` levels deep;
    anything else is a ``PayloadError`` (never a RecursionError: that was a 500). ``strict``
    False lets control characters (a newline) stand unescaped inside strings."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8") from exc
    try:
        value = json.loads(text, strict=strict)
    except RecursionError as exc:
        raise PayloadError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise PayloadError(f"malformed JSON: {exc}") from exc
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise PayloadError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


_FS_ENCODING = sys.getfilesystemencoding()  # what os.fsencode uses (with surrogateescape)


def _encodable(path: str) -> bool:
    """A name the file system can be asked about (a lone surrogate from JSON ``\\ud800`` is
    not)."""
    try:
        path.encode(_FS_ENCODING, "surrogateescape")
    except UnicodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class WebhookMeaning:
    event: str
    paths: tuple[str, ...] = ()  # in symlinkd's view, inside the farm
    ignored: str = ""  # why nothing is scanned (Test, an event that changes no file, ...)

    @property
    def test(self) -> bool:
        return self.event == "Test"


def reverse_map(path: str, path_map: Sequence[tuple[str, str]]) -> str:
    """A path in a server's view → symlinkd's view. ``path_map`` pairs are (symlinkd prefix,
    server prefix), the same setting the notifier uses the other way round; the longest matching
    server prefix wins, matched whole components only (``/tv`` does not match ``/tvshows``)."""
    best: tuple[str, str] | None = None
    for ours, theirs in path_map:
        prefix = theirs.rstrip("/") or "/"
        if _under(path, prefix) and (best is None or len(prefix) > len(best[1])):
            best = (ours, prefix)
    if best is None:
        return path
    ours, theirs = best
    rest = path[len(theirs):].lstrip("/") if theirs != "/" else path.lstrip("/")
    return posixpath.join(ours, rest) if rest else ours


def _under(path: str, prefix: str) -> bool:
    return prefix in ("/", path) or path.startswith(prefix + "/")


def farm_paths(paths: Iterable[str], farm: str) -> tuple[list[str], list[str]]:
    """(normalised absolute paths inside the farm, the rest)."""
    root = posixpath.normpath(farm)
    inside: list[str] = []
    outside: list[str] = []
    for raw in paths:
        if "\x00" in raw or not raw.startswith("/") or not _encodable(raw):
            outside.append(raw)
            continue
        # normpath is the slow part of a 40,000-path request; most paths are normal already.
        normal = "//" not in raw and "/." not in raw and (raw == "/" or not raw.endswith("/"))
        path = raw if normal else posixpath.normpath(raw)
        if _under(path, root):
            inside.append(path)
        else:
            outside.append(raw)
    return list(dict.fromkeys(inside)), outside


def arr_event(
    payload: Any, *, path_map: Sequence[tuple[str, str]], farm: str
) -> WebhookMeaning:
    """Sonarr or Radarr webhook (v3 payloads; camelCase, nulls omitted)."""
    if not isinstance(payload, Mapping):
        raise PayloadError("expected a JSON object")
    event = payload.get("eventType")
    if not isinstance(event, str) or not event:
        raise PayloadError("missing eventType")
    if event == "Test":
        return WebhookMeaning(event=event, ignored="test event")
    if event not in _FILE_EVENTS:
        return WebhookMeaning(event=event, ignored=f"{event} changes no file")
    theirs = _arr_paths(payload)
    if not theirs:
        return WebhookMeaning(event=event, ignored="payload names no path")
    ours = [reverse_map(p, path_map) for p in theirs]
    inside, outside = farm_paths(ours, farm)
    if not inside:
        return WebhookMeaning(event=event, ignored=f"not inside the farm: {', '.join(outside)}")
    return WebhookMeaning(event=event, paths=tuple(inside))


def _arr_paths(payload: Mapping[str, Any]) -> list[str]:
    """The folder of the series/movie (a subtree pass covers every file in it), plus any file
    path outside it (a file moved to another root folder)."""
    folders: list[str] = []
    series = payload.get("series")
    if isinstance(series, Mapping):
        folders.append(_text(series.get("path")))
    movie = payload.get("movie")
    if isinstance(movie, Mapping):
        folders.append(_text(movie.get("folderPath")) or _text(movie.get("path")))
    files: list[str] = []
    for key in ("episodeFile", "movieFile"):
        entry = payload.get(key)
        if isinstance(entry, Mapping):
            files.append(_text(entry.get("path")))
    for key in ("episodeFiles", "deletedFiles", "renamedEpisodeFiles", "renamedMovieFiles"):
        entries = payload.get(key)
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, Mapping):
                    files.append(_text(entry.get("path")))
                    files.append(_text(entry.get("previousPath")))
    folders = [f for f in folders if f]
    extra = [
        f for f in files if f and not any(_under(posixpath.normpath(f), d) for d in folders)
    ]
    return list(dict.fromkeys([*folders, *extra]))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def zurg_dirs(directories: Iterable[str], mount: MountSettings) -> list[str]:
    """Zurg's ``on_library_update`` directories (relative to its WebDAV root, e.g.
    ``__all__/<torrent>``) → absolute paths under the rclone mount of that WebDAV root."""
    found: list[str] = []
    for raw in directories:
        # Names are kept exactly, spaces and newlines included: a torrent folder may end in a
        # space, and a stripped name silently matches nothing.
        rel = raw.strip("/")
        if not rel:
            continue
        parts = rel.split("/")
        if "\x00" in rel or ".." in parts or not _encodable(rel):
            raise PayloadError(f"not a directory under the WebDAV root: {raw!r}")
        found.append(posixpath.join(mount.path, posixpath.normpath(rel)))
    return list(dict.fromkeys(found))


def zurg_names(body: bytes, content_type: str) -> list[str]:
    """The directories of a Zurg ``on_library_update`` post. Zurg runs a command with one
    argument per directory; a hook script posts them as a JSON array of names (exact: spaces and
    newlines kept), ``{"directories": [...]}``, text with one name per line, or form fields
    ``dir``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8") from exc
    if content_type == "application/json" or text.lstrip().startswith(("[", "{")):
        try:
            # Not strict: a shell hook quotes names without escaping their newlines or tabs.
            payload = load_json(body, strict=False)
        except PayloadError:
            if content_type == "application/json":
                raise
            payload = None  # a line that merely starts with "[" (a release group tag)
        else:
            if isinstance(payload, dict):
                payload = payload.get("directories")
            if not isinstance(payload, list) or not all(isinstance(d, str) for d in payload):
                raise PayloadError("expected a JSON list of directories")
            return payload
    if content_type == "application/x-www-form-urlencoded" and text.startswith("dir="):
        return parse_qs(text).get("dir", [])
    # One name per line: only "\n" ends a line (an optional "\r" before it goes too), so a
    # name keeps its trailing spaces; blank lines are skipped.
    lines = (line.removesuffix("\r") for line in text.split("\n"))
    return [line for line in lines if line.strip()]


def scan_paths(body: bytes, farm: str) -> tuple[list[str], list[str]]:
    """``POST /api/v1/scan``: no body or no path is a full pass (``([], [])``); else
    ``{"path": p}`` or ``{"paths": [...]}``, relative to the farm or absolute inside it →
    (normalised paths inside the farm, the paths that are not)."""
    payload = load_json(body) if body.strip() else {}
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object")
    raw = payload.get("paths", [payload["path"]] if "path" in payload else [])
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise PayloadError("path must be a string, paths a list of strings")
    absolute = [p if p.startswith("/") else f"{farm.rstrip('/')}/{p}" for p in raw]
    return farm_paths(absolute, farm)


class TargetIndex:
    """Which farm folders hold links into which target directory, from the passes the worker
    ran: a Zurg update names *target* directories, and this finds the farm folders to re-check
    without a full pass. Keyed by target directory (one per torrent folder), valued by farm
    folders, so it stays small next to the number of links."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: dict[str, set[str]] = {}
        self.ready = False  # a full pass has filled it

    def update(self, report: PassReport) -> None:
        # A streaming pass keeps few judgements; it hands the whole index as target_folders.
        fresh: dict[str, set[str]] = {k: set(v) for k, v in report.target_folders.items()}
        for j in report.judgements:
            target = j.facts.resolved or (j.facts.target if j.facts.target else None)
            if not target or not target.startswith("/"):
                continue
            fresh.setdefault(posixpath.dirname(target), set()).add(posixpath.dirname(j.path))
        with self._lock:
            if report.kind == "full":
                self._dirs = fresh
                self.ready = True
            else:
                for key, folders in fresh.items():
                    self._dirs.setdefault(key, set()).update(folders)

    def farm_dirs(self, target_dirs: Iterable[str]) -> set[str]:
        wanted = [d.rstrip("/") for d in target_dirs]
        with self._lock:
            return {
                folder
                for key, folders in self._dirs.items()
                if any(_under(key, d) for d in wanted)
                for folder in folders
            }
