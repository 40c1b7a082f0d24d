"""Path mapping between symlinkd's view of the farm and each server's view, and component-wise
"is this path inside that folder" tests (``/tv/Show`` is not inside ``/tv/Sh``)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence


def _norm(path: str) -> str:
    # normpath keeps a leading "//"; a server never means anything special by it.
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def is_under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or inside it, comparing whole path components."""
    path, root = _norm(path), _norm(root)
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def covering(path: str, roots: Iterable[str]) -> str | None:
    """The deepest of ``roots`` that ``path`` lies under (``None``: none does)."""
    best: str | None = None
    for root in roots:
        if is_under(path, root) and (best is None or len(_norm(root)) > len(_norm(best))):
            best = root
    return best


class PathMap:
    """``(symlinkd prefix, server prefix)`` pairs; the longest matching prefix wins. A path no
    prefix matches is passed through unchanged (the server sees the same filesystem)."""

    def __init__(self, pairs: Sequence[tuple[str, str]] = ()) -> None:
        self._pairs = sorted(((_norm(a), _norm(b)) for a, b in pairs),
                             key=lambda pair: len(pair[0]), reverse=True)

    def to_server(self, path: str) -> str:
        path = _norm(path)
        for local, remote in self._pairs:
            if is_under(path, local):
                rest = path[len(local):].lstrip("/") if local != "/" else path.lstrip("/")
                return posixpath.join(remote, rest) if rest else remote
        return path

    def __repr__(self) -> str:
        return f"PathMap({self._pairs!r})"
