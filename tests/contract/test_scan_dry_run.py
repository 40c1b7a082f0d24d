"""`symlinkd scan --dry-run` (issue 10, finding 1): the admin's habit is accepted, writes nothing
(farm, journal) and tells no media server; `--dry-run --apply` is a usage error (exit 2)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import yaml

from symlinkd.demo import build_demo_farm
from tests.contract.conftest import PLEX_TOKEN
from tests.contract.fakes import FakePlex, FakeServer
from tests.fs.test_cli import cli, snapshot


def _config(tmp_path: Path, plex_url: str) -> tuple[str, str, str]:
    settings = build_demo_farm(str(tmp_path), time.time())
    token = tmp_path / "plex-token"
    token.write_text(PLEX_TOKEN)
    config = {
        "farm": settings.farm,
        "state_dir": settings.state_dir,
        "mounts": [{"name": m.name, "path": m.path, "anchor": m.anchor,
                    "require_mountpoint": False} for m in settings.mounts],
        "policy": {"quarantine_dir": settings.policy.quarantine_dir,
                   # the demo's dangling link is pruned in this very pass when applied
                   "confirm_after_passes": 1, "confirm_after_minutes": 0,
                   "max_prune_ratio": 1.0},
        "notify": {"plex": {"url": plex_url, "token_file": str(token),
                            "path_map": {settings.farm: "/data"}}},
    }
    path = tmp_path / "symlinkd.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path), settings.farm, settings.state_dir


def _journal_rows(state_dir: str) -> int:
    db = os.path.join(state_dir, "state.sqlite3")
    if not os.path.exists(db):
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])


def test_scan_dry_run_changes_nothing_and_notifies_nobody(
    tmp_path: Path, servers: list[FakeServer]
) -> None:
    plex = FakePlex(PLEX_TOKEN, [("1", "Everything", ["/data"])])
    servers.append(plex.start())
    config, farm, state_dir = _config(tmp_path, plex.url)
    before = snapshot(farm)

    proc = cli("scan", "--dry-run", "--config", config)

    assert proc.returncode == 1, proc.stderr  # the demo farm has problems to report
    assert "dry run" in proc.stdout
    assert snapshot(farm) == before
    assert _journal_rows(state_dir) == 0
    assert plex.requests == []
    # The same config really does change the farm and call Plex: the dry run is the difference.
    applied = cli("scan", "--apply", "--config", config)
    assert applied.returncode == 1, applied.stderr
    assert snapshot(farm) != before
    assert _journal_rows(state_dir) > 0
    assert plex.refreshes()


def test_dry_run_with_apply_is_a_usage_error(tmp_path: Path) -> None:
    config, farm, state_dir = _config(tmp_path, "http://127.0.0.1:9")
    before = snapshot(farm)

    proc = cli("scan", "--dry-run", "--apply", "--config", config)

    assert proc.returncode == 2
    assert "--dry-run" in proc.stderr and "--apply" in proc.stderr
    assert snapshot(farm) == before
    assert _journal_rows(state_dir) == 0


def test_scan_help_names_dry_run() -> None:
    proc = cli("scan", "--help")
    assert proc.returncode == 0
    assert "--dry-run" in proc.stdout
