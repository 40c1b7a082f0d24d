"""Log output: JSON lines off a TTY, run_id on every line of a pass, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from symlinkd.logs import configure_logging, settings_secrets
from symlinkd.settings import (
    ArrServer,
    DaemonSettings,
    MediaServer,
    NotifySettings,
    Secret,
    Settings,
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_run_id_bound_for_a_pass() -> None:
    stream = io.StringIO()  # not a TTY
    configure_logging(stream=stream)
    log = structlog.get_logger("symlinkd")
    with structlog.contextvars.bound_contextvars(run_id="20261127-abc"):
        log.info("pass started", kind="full")
        logging.getLogger("symlinkd.executor").warning("prune %s", "/farm/x")  # stdlib too
    log.info("idle")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["pass started", "prune /farm/x", "idle"]
    assert [line.get("run_id") for line in lines] == ["20261127-abc", "20261127-abc", None]
    assert all("timestamp" in line and "level" in line for line in lines)


def test_secrets_are_redacted_everywhere() -> None:
    settings = Settings(
        notify=NotifySettings(
            plex=MediaServer(url="http://plex:32400", token=Secret("plex-token-123")),
            sonarr=ArrServer(url="http://sonarr:8989", api_key=Secret("sonarr-key-456")),
        ),
        daemon=DaemonSettings(webhook_token=Secret("hook-token-789")),
    )
    secrets = settings_secrets(settings)
    assert sorted(secrets) == ["hook-token-789", "plex-token-123", "sonarr-key-456"]
    stream = io.StringIO()
    configure_logging(stream=stream, secrets=secrets)
    log = structlog.get_logger("symlinkd")
    log.info("request", url="http://plex:32400/library?X-Plex-Token=plex-token-123",
             key=Secret("anything"), nested={"headers": ["X-Api-Key: sonarr-key-456"]})
    try:
        raise RuntimeError("rejected hook-token-789")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    for secret in [*secrets, "anything"]:
        assert secret not in text
    assert "X-Plex-Token=***" in text


def test_console_renderer_when_asked() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=False)
    structlog.get_logger("symlinkd").info("daemon started", port=9090)
    text = stream.getvalue()
    assert "daemon started" in text and "port=9090" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
