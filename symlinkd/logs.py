"""structlog set-up: JSON lines when stderr is not a terminal (a pod's log), a readable console
on a terminal. ``run_id`` reaches every line of a pass through contextvars (the runtime binds it);
secrets never reach the output."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from symlinkd.redact import redact
from symlinkd.settings import Secret, Settings

REDACTED = "***"


class SecretRedactor:
    """Replaces ``Secret`` values, any occurrence of a known secret string (a token that made it
    into a URL or an error message) and whatever the one redaction rule (``symlinkd.redact``:
    URL userinfo, credential-looking parameters) calls a secret with ``***``, in every value of
    the event, nested too. The rule covers secrets the logger was never told about, such as
    those of a configuration a reload refused."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secrets)

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        for key, value in list(event.items()):
            event[key] = self._clean(value)
        return event

    def _clean(self, value: Any) -> Any:
        if isinstance(value, Secret):
            return REDACTED
        if isinstance(value, str):
            return redact(value, self._secrets, REDACTED)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        return value


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret string of the configuration (tokens, API keys, the webhook token)."""
    found: list[str] = []
    notify = settings.notify
    for media in (notify.plex, notify.jellyfin):
        if media is not None:
            found.append(media.token.reveal())
    for arr in (notify.sonarr, notify.radarr):
        if arr is not None:
            found.append(arr.api_key.reveal())
    if settings.daemon.webhook_token is not None:
        found.append(settings.daemon.webhook_token.reveal())
    return found


def _drop_color_message(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)
    return event


def configure_logging(
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    json: bool | None = None,
    level: int = logging.INFO,
) -> None:
    """Configure structlog (and route stdlib ``logging`` records, e.g. APScheduler's, through the
    same renderer). ``json`` None: JSON unless ``stream`` is a TTY."""
    out = stream if stream is not None else sys.stderr
    as_json = json if json is not None else not out.isatty()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        # Tracebacks become text before redaction: an exception message can carry a token.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job run at INFO; a probe every few seconds would drown the log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

