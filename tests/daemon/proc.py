"""``symlinkd run`` as a real subprocess, for end-to-end tests and the benchmark: a farm with
plain-directory mounts (or a FUSE rig's), a config file, the HTTP port, a log file."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fuse.host import free_port, wait_for

__all__ = ["PLEX_TOKEN", "TOKEN", "DaemonProcess", "Farm", "free_port", "symlinkd_command",
           "wait_for", "write_config"]

TOKEN = "e2e-webhook-token-0123"
PLEX_TOKEN = "e2e-plex-token-4567"


@dataclass
class Farm:
    """``base/{farm,zurg/__all__,torbox/torrents,state,quarantine}`` with plain-dir mounts."""

    base: Path
    mounts: dict[str, tuple[Path, str]] = field(default_factory=dict)

    @classmethod
    def create(cls, base: Path) -> Farm:
        farm = cls(base=base, mounts={"zurg": (base / "zurg", "__all__"),
                                      "torbox": (base / "torbox", "torrents")})
        for path, anchor in farm.mounts.values():
            # An empty anchor reads as "unmounted": give each cloud one torrent folder.
            (path / anchor / "Seed.Torrent").mkdir(parents=True, exist_ok=True)
        (base / "farm").mkdir(parents=True, exist_ok=True)
        return farm

    @property
    def farm(self) -> Path:
        return self.base / "farm"

    def put(self, mount: str, rel: str, data: bytes = b"video\n") -> Path:
        path = self.mounts[mount][0] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def link(self, farm_rel: str, target: Path | str) -> Path:
        link = self.farm / farm_rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
        return link

    def config(self, **daemon: Any) -> dict[str, Any]:
        return {
            "farm": str(self.farm),
            "state_dir": str(self.base / "state"),
            "mounts": [
                {"name": name, "path": str(path), "anchor": anchor, "require_mountpoint": False}
                for name, (path, anchor) in self.mounts.items()
            ],
            "policy": {"quarantine_dir": str(self.base / "quarantine")},
            "daemon": {"listen": f"127.0.0.1:{free_port()}", "scan_interval_minutes": 60,
                       "probe_interval_seconds": 1, "debounce_seconds": 0.2,
                       "poll_interval_seconds": 0.5, **daemon},
        }


def write_config(base: Path, config: dict[str, Any], *, plex_url: str | None = None) -> Path:
    """Writes secrets to files (as in a pod) and the YAML config; returns its path."""
    token_file = base / "webhook-token"
    token_file.write_text(TOKEN + "\n")
    config = json.loads(json.dumps(config))
    config.setdefault("daemon", {})["webhook_token_file"] = str(token_file)
    if plex_url is not None:
        plex_token = base / "plex-token"
        plex_token.write_text(PLEX_TOKEN)
        config.setdefault("notify", {})["plex"] = {"url": plex_url,
                                                  "token_file": str(plex_token)}
    path = base / "symlinkd.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def symlinkd_command() -> list[str]:
    script = shutil.which("symlinkd")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from symlinkd.cli import main; sys.exit(main())"]


class DaemonProcess:
    def __init__(self, config_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        config = yaml.safe_load(config_path.read_text())
        self.url = "http://" + config["daemon"]["listen"]
        self.log_path = config_path.with_suffix(".log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*symlinkd_command(), "run", "--config", str(config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def wait_ready(self, timeout: float = 30) -> None:
        """Up, and the start-up full pass has finished."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.logs()}")
            try:
                answer = self.client.get("/readyz")
            except httpx.TransportError:
                return False
            return answer.status_code == 200 and answer.json()["last_pass"].startswith("ok")
        wait_for(ready, timeout, "the daemon to be ready")

    def metrics(self) -> str:
        return self.client.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float | None:
        """Value of one sample in the scrape, or None when absent."""
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(3))
        return None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (if still running) and wait; SIGKILL past ``timeout``. Returns the exit code."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)
