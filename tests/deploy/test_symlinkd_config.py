"""The ConfigMap's config passes `symlinkd config check`, with the Secret's files where the pod
has them (here: temp files, through the documented SYMLINKD_* overrides of the *_file keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.manifests import DEPLOY

CONFIG = DEPLOY / "base" / "symlinkd" / "symlinkd.yaml"
SECRET_FILE_KEYS = {  # key path in the config -> its SYMLINKD_* override
    ("notify", "plex", "token_file"): "SYMLINKD_NOTIFY__PLEX__TOKEN_FILE",
    ("notify", "sonarr", "api_key_file"): "SYMLINKD_NOTIFY__SONARR__API_KEY_FILE",
    ("notify", "radarr", "api_key_file"): "SYMLINKD_NOTIFY__RADARR__API_KEY_FILE",
    ("daemon", "webhook_token_file"): "SYMLINKD_DAEMON__WEBHOOK_TOKEN_FILE",
}


def _config_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from symlinkd.cli import main; sys.exit(main())",
         "config", "check", "--config", str(config)],
        capture_output=True, text=True, env={**clean, **env}, timeout=60, check=False)


def _secret_files(config: dict[str, object]) -> dict[tuple[str, ...], str]:
    found = {}
    for key in SECRET_FILE_KEYS:
        node: object = config
        for part in key:
            assert isinstance(node, dict), key
            node = node.get(part)
        if node is not None:
            found[key] = str(node)
    return found


def _placeholders(tmp_path: Path, config: dict[str, object]) -> dict[str, str]:
    env = {}
    for key, path in _secret_files(config).items():
        placeholder = tmp_path / Path(path).name
        placeholder.write_text(f"placeholder-{placeholder.name}-value\n")
        env[SECRET_FILE_KEYS[key]] = str(placeholder)
    return env


def test_deploy_config_passes_config_check(tmp_path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    done = _config_check(CONFIG, _placeholders(tmp_path, config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configuration is valid" in done.stdout
    assert "placeholder-" not in done.stdout  # secrets redacted


def test_secret_files_are_the_keys_of_symlinkd_secrets() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    files = _secret_files(config)
    assert set(files) == set(SECRET_FILE_KEYS)  # every notifier and the webhook use a secret
    assert {os.path.dirname(p) for p in files.values()} == {"/secrets"}
    example = {d["metadata"]["name"]: d for d in
               yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text()) if d}
    assert {os.path.basename(p) for p in files.values()} == set(
        example["symlinkd-secrets"]["stringData"])


def test_config_check_rejects_a_broken_deploy_config(tmp_path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    config["policy"]["breaker_ratio"] = 2
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    done = _config_check(broken, _placeholders(tmp_path, config))
    assert done.returncode == 2
    assert "policy.breaker_ratio" in done.stderr
