"""Finding 3 of issue 9, the reload part: a SIGHUP that brings a config with a URL password or
an API key in a query string logs its refusal without them (the problems are redacted where
they are made, and the log applies the same rule)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from tests.daemon.proc import DaemonProcess, Farm, wait_for, write_config

pytestmark = pytest.mark.slow

SECRET = "rel0ad-pa55word"


def test_a_refused_reload_does_not_log_url_secrets(tmp_path: Path) -> None:
    farm = Farm.create(tmp_path)
    config_path = write_config(tmp_path, farm.config(watch="off"))
    with DaemonProcess(config_path) as daemon:
        daemon.wait_ready()
        config = yaml.safe_load(config_path.read_text())
        token_file = str(config["daemon"]["webhook_token_file"])
        config["notify"] = {
            "plex": {"url": f"plex:32400/?X-Plex-Token={SECRET}", "token_file": token_file},
            "sonarr": {"url": f"ftp://admin:{SECRET}@sonarr:8989", "api_key_file": token_file},
        }
        config_path.write_text(yaml.safe_dump(config))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: '"new configuration refused' in daemon.logs(), 30, "the refusal")
        logs = daemon.logs()
        assert "notify.plex.url" in logs and "notify.sonarr.url" in logs
        assert SECRET not in logs
        assert daemon.proc.poll() is None
