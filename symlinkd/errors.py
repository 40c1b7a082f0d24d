"""Typed errors; turned into exit codes or metrics at the edge, once."""

from __future__ import annotations


class SymlinkdError(Exception):
    """Base of every error symlinkd raises on purpose."""


class ConfigError(SymlinkdError):
    """The configuration is invalid. ``problems`` holds every problem, each ``(key_path, msg)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"At '{key}': {msg}" if key else msg for key, msg in problems]
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {ln}" for ln in lines))


class MountUnavailable(SymlinkdError):
    """A mount did not answer (down or hung) for an operation that needed it."""


class UnsafePlan(SymlinkdError):
    """The plan breaks a safety limit; nothing is done unless forced."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class NotifierUnavailable(SymlinkdError):
    """A media server could not be reached (connect error, timeout, 5xx after retries)."""


class NotifierRejected(SymlinkdError):
    """A media server refused our request (401/403 or another 4xx)."""


class StateLocked(SymlinkdError):
    """Another symlinkd already holds the state directory."""
