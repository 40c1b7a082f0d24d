"""Client for rclone's remote control API (``rclone mount ... --rc``), as shipped in 1.60.

Oddities of that API this client hides (recorded in ``../shared/contracts/``):
- every call is ``POST`` (``GET`` answers 404);
- ``vfs/refresh`` takes ``dir``, ``dir2``, ``dir3``, ... relative to the remote root, and
  ``recursive`` must be the *string* ``"true"`` (a JSON ``true`` is a 500);
- per-directory failures come back with HTTP 200 inside ``{"result": {dir: "OK" | error}}``;
- errors are an HTTP status plus ``{"error", "input", "path", "status"}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from symlinkd.errors import MountUnavailable


class RcError(MountUnavailable):
    """rclone's rc did not do what was asked (unreachable, or an error status)."""

    def __init__(self, method: str, status: int | None, message: str) -> None:
        self.method = method
        self.status = status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"rclone rc {method}: {where}: {message}")


def _numbered(key: str, values: Sequence[str]) -> dict[str, str]:
    """``dir``, ``dir2``, ``dir3``, ...: how rc takes several values for one parameter."""
    return {key if i == 0 else f"{key}{i + 1}": v for i, v in enumerate(values)}


def _relative(path: str) -> str:
    # rc paths are relative to the remote root; a leading "/" would name nothing.
    return path.strip("/")


class RcClient:
    def __init__(
        self, url: str, *, timeout: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport)

    def _call(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            response = self._http.post(f"/{method}", json=dict(params))
        except httpx.HTTPError as exc:
            raise RcError(method, None, str(exc) or type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            raise RcError(method, response.status_code, str(message or response.text[:200]))
        if not isinstance(body, dict):
            raise RcError(method, response.status_code, "answer is not a JSON object")
        return body

    def refresh(self, dirs: Sequence[str], *, recursive: bool = False) -> dict[str, str]:
        """Re-read ``dirs`` from the remote; returns ``{dir: "OK" | error text}`` per directory.

        An empty ``dirs`` refreshes the remote root. A directory rclone does not know answers
        ``"file does not exist"`` (with HTTP 200), which callers treat as "gone".
        """
        params = _numbered("dir", [_relative(d) for d in dirs])
        if recursive:
            params["recursive"] = "true"
        body = self._call("vfs/refresh", params)
        result = body.get("result")
        if not isinstance(result, dict):
            raise RcError("vfs/refresh", 200, "answer has no 'result' object")
        return {str(k): str(v) for k, v in result.items()}

    def forget(self, paths: Sequence[str], *, dirs: Sequence[str] = ()) -> None:
        """Drop ``paths`` (files) and ``dirs`` from rclone's directory cache.

        Nothing given -> nothing sent: an empty ``vfs/forget`` forgets the *whole* cache.
        """
        if not paths and not dirs:
            return
        params = _numbered("file", [_relative(p) for p in paths])
        params.update(_numbered("dir", [_relative(d) for d in dirs]))
        self._call("vfs/forget", params)

    def noop(self) -> bool:
        """True when the rc server answers at all (``rc/noop`` echoes its input)."""
        try:
            self._call("rc/noop", {})
        except RcError:
            return False
        return True

    def close(self) -> None:
        self._http.close()
