"""Issue 13, Config: `config check` prints a config that `config check` accepts — secret files by
path, secret values never — and `demo --keep` writes only documented keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from symlinkd.config import load_settings
from symlinkd.demo import build_demo_farm

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "symlinkd.yaml"


def config_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    return subprocess.run(
        [sys.executable, "-m", "symlinkd", "config", "check", "--config", str(config)],
        capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False)


def test_config_check_output_is_accepted_by_config_check(tmp_path: Path) -> None:
    for name in ("plex-token", "hook-token"):
        (tmp_path / name).write_text(f"{name}-s3cret-value\n")
    config = tmp_path / "symlinkd.yaml"
    config.write_text(f"""\
farm: {tmp_path}/farm
state_dir: {tmp_path}/state
mounts:
  - {{name: zurg, path: {tmp_path}/zurg, rc_url: 'http://rc:rc-pa55word@127.0.0.1:5572',
     require_mountpoint: false}}
policy: {{quarantine_dir: {tmp_path}/state/quarantine, max_prune: 7}}
notify:
  plex: {{url: 'http://plex:32400', token_file: {tmp_path}/plex-token}}
daemon: {{webhook_token_file: {tmp_path}/hook-token}}
""")
    env = {"SYMLINKD_NOTIFY__SONARR__URL": "http://sonarr:8989",
           "SYMLINKD_NOTIFY__SONARR__API_KEY": "env-sonarr-s3cret-value"}
    first = config_check(config, env)
    assert first.returncode == 0, first.stderr
    for secret in ("plex-token-s3cret", "hook-token-s3cret", "env-sonarr-s3cret", "rc-pa55word"):
        assert secret not in first.stdout + first.stderr

    shown = yaml.safe_load(first.stdout)
    assert shown["notify"]["plex"]["token_file"] == f"{tmp_path}/plex-token"
    assert "token" not in shown["notify"]["plex"]
    assert shown["daemon"]["webhook_token_file"] == f"{tmp_path}/hook-token"
    assert "webhook_token" not in shown["daemon"]
    assert "api_key" not in shown["notify"]["sonarr"]  # from the environment: named, not shown
    assert "# notify.sonarr.api_key: from SYMLINKD_NOTIFY__SONARR__API_KEY" in first.stdout
    assert shown["mounts"][0]["rc_url"] == "http://rc:<redacted>@127.0.0.1:5572"

    again = tmp_path / "effective.yaml"
    again.write_text(first.stdout)
    second = config_check(again, env)
    assert second.returncode == 0, second.stderr
    body = [ln for ln in first.stdout.splitlines() if not ln.startswith("# source:")]
    assert [ln for ln in second.stdout.splitlines() if not ln.startswith("# source:")] == body
    # the loaded settings are the same, URL credentials aside (those are never printed)
    assert load_settings(str(again), env).notify == load_settings(str(config), env).notify


def test_without_the_environment_the_output_says_what_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("notify: {sonarr: {url: 'http://sonarr:8989'}}\n")
    env = {"SYMLINKD_NOTIFY__SONARR__API_KEY": "env-s3cret"}
    first = config_check(config, env)
    assert first.returncode == 0, first.stderr
    again = tmp_path / "effective.yaml"
    again.write_text(first.stdout)
    assert config_check(again, env).returncode == 0
    alone = config_check(again, {})
    assert alone.returncode == 2
    assert "SYMLINKD_NOTIFY__SONARR__API_KEY" in alone.stderr


def _leaves(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and not prefix.endswith("path_map"):
        return {leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix
                                                                   else str(k))}
    if isinstance(node, list) and node and isinstance(node[0], dict):
        return {leaf for v in node for leaf in _leaves(v, f"{prefix}[]")}
    return {prefix}


def test_demo_keep_writes_only_documented_keys(tmp_path: Path) -> None:
    settings = build_demo_farm(str(tmp_path), 1_700_000_000.0)
    written = yaml.safe_load((tmp_path / "symlinkd.yaml").read_text())
    documented = _leaves(yaml.safe_load(SAMPLE.read_text()))
    assert _leaves(written) <= documented, _leaves(written) - documented
    assert "webhook_token" not in written["daemon"]
    assert load_settings(str(tmp_path / "symlinkd.yaml"), {}) == settings
