"""One HTTP client per target: auth header, timeouts, connection limits, retries.

Retries (tenacity, exponential backoff with jitter) cover what a later attempt can fix: connect
errors, timeouts and 5xx. A 4xx is final. Errors carry the target name, method and path, never
headers, so a token cannot leak through an exception message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from symlinkd.errors import NotifierRejected, NotifierUnavailable
from symlinkd.notifiers.base import ApiRequest
from symlinkd.settings import Secret


class _Transient(Exception):
    """A failure worth another attempt (internal to the retry loop)."""


class RequestRefused(NotifierRejected):
    """The server answered 4xx. ``status`` 401/403 means our credentials were refused."""

    def __init__(self, target: str, what: str, status: int) -> None:
        self.status = status
        self.auth = status in (401, 403)
        why = "refused the credentials" if self.auth else "refused the request"
        super().__init__(f"{target} {why}: {what} -> HTTP {status}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 3
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5


class ApiClient:
    """A target's shared ``httpx.Client``. ``auth`` maps header name to secret; ``headers``
    are plain ones every request carries."""

    def __init__(self, target: str, base_url: str, auth: Mapping[str, Secret], *,
                 timeout: float, retry: RetryPolicy,
                 transport: httpx.BaseTransport | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.target = target
        self._retry = retry
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={**(headers or {}),
                     **{name: secret.reveal() for name, secret in auth.items()}},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.target!r}, {str(self._client.base_url)!r})"

    def close(self) -> None:
        self._client.close()

    def send(self, request: ApiRequest) -> httpx.Response:
        """Send with retries. Raises ``NotifierUnavailable`` (down, after retries) or
        ``RequestRefused`` (4xx, at once)."""
        what = f"{request.method} {request.path}"
        headers = {"Accept": "application/json"}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        retrying = Retrying(
            stop=stop_after_attempt(self._retry.retries + 1),
            # exponential + random jitter (wait_exponential_jitter renamed its arguments
            # between tenacity 8 and 9; these two are stable in both).
            wait=wait_exponential(multiplier=self._retry.initial_wait, max=self._retry.max_wait)
            + wait_random(0, self._retry.jitter),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(request, headers, what)
        except _Transient as exc:
            raise NotifierUnavailable(f"{self.target} unavailable: {what}: {exc}") from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _once(self, request: ApiRequest, headers: dict[str, str], what: str) -> httpx.Response:
        try:
            response = self._client.request(
                request.method, request.url_path(), headers=headers,
                content=request.body.encode() if request.body is not None else None,
            )
        except httpx.TransportError as exc:
            # The message of a transport error names the failure, not our headers.
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise RequestRefused(self.target, what, response.status_code)
        return response

    def get_json(self, path: str, params: tuple[tuple[str, str], ...] = ()) -> Any:
        response = self.send(ApiRequest(self.target, "GET", path, params))
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotifierUnavailable(
                f"{self.target} answered GET {path} with something that is not JSON: {exc}"
            ) from None
