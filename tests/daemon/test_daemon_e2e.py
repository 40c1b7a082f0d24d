"""``symlinkd run`` as a real subprocess: a farm over plain-directory mounts, a fake Plex on
127.0.0.1 (tests/contract/fakes.py, requests checked against the Plex OpenAPI document when
../shared is present), the real HTTP port, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.contract.fakes import FakePlex
from tests.daemon.proc import (
    PLEX_TOKEN,
    TOKEN,
    DaemonProcess,
    Farm,
    symlinkd_command,
    wait_for,
    write_config,
)
from tests.promtool import promtool_path

pytestmark = pytest.mark.slow


@pytest.fixture
def plex(tmp_path: Path) -> Iterator[FakePlex]:
    farm = tmp_path / "farm"
    server = FakePlex(PLEX_TOKEN, [("1", "TV Shows", [str(farm / "Shows")]),
                                   ("2", "Movies", [str(farm / "Movies")])]).start()
    yield server
    server.stop()
    assert server.mismatches == [], "requests off the Plex contract"


def _refreshed(plex: FakePlex, link: Path) -> bool:
    """Plex was asked to refresh a folder holding ``link`` (or the link's own path)."""
    return any(
        path is not None and (str(link) == path or str(link).startswith(path.rstrip("/") + "/"))
        for _, path in plex.refreshes()
    )


def _subtree_passes(daemon: DaemonProcess) -> float:
    return daemon.metric("symlinkd_scan_duration_seconds_count", kind="subtree") or 0.0


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_new_link_is_checked_and_refreshed_in_plex(
    tmp_path: Path, plex: FakePlex, mode: str
) -> None:
    farm = Farm.create(tmp_path)
    old = farm.put("zurg", "__all__/Old.Show.S01/e1.mkv")
    farm.link("Shows/Old Show/Season 01/e1.mkv", old)
    config = write_config(tmp_path, farm.config(watch=mode), plex_url=plex.url)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        assert plex.refreshes() == [], "the start-up full pass announces nothing"
        before = _subtree_passes(daemon)
        target = farm.put("zurg", "__all__/New.Show.S01/New.Show.S01E01.mkv")
        link = farm.link("Shows/New Show/Season 01/New.Show.S01E01.mkv", target)
        # The full-pass interval is an hour: only the watcher can make this happen.
        wait_for(lambda: _refreshed(plex, link), 30, f"a Plex refresh covering {link}")
        # The pass records its duration after notifying.
        wait_for(lambda: _subtree_passes(daemon) > before, 30, "the subtree pass metric")
        assert not _refreshed(plex, tmp_path / "farm/Shows/Old Show/Season 01/e1.mkv")
        assert daemon.stop() == 0
    assert '"watcher started"' in daemon.logs() and f'"mode": "{mode}"' in daemon.logs()


@pytest.fixture
def webhook_daemon(tmp_path: Path, plex: FakePlex) -> Iterator[tuple[DaemonProcess, Farm]]:
    """A daemon that does not watch the farm: only webhooks can trigger a pass."""
    farm = Farm.create(tmp_path)
    config = write_config(tmp_path, farm.config(watch="off"), plex_url=plex.url)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        yield daemon, farm


def test_sonarr_download_rechecks_that_series_folder(
    webhook_daemon: tuple[DaemonProcess, Farm], plex: FakePlex
) -> None:
    daemon, farm = webhook_daemon
    series = farm.farm / "Shows" / "Peacemaker"
    target = farm.put("torbox", "torrents/Peacemaker.S02/Peacemaker.S02E05.mkv")
    link = farm.link("Shows/Peacemaker/Season 02/Peacemaker.S02E05.mkv", target)
    other = farm.link("Shows/Elsewhere/e1.mkv", farm.put("zurg", "__all__/Elsewhere/e1.mkv"))
    before = _subtree_passes(daemon)
    payload = {
        "eventType": "Download",
        "series": {"id": 7, "title": "Peacemaker", "path": str(series)},
        "episodes": [{"id": 70, "episodeNumber": 5, "seasonNumber": 2}],
        "episodeFile": {"id": 9, "relativePath": "Season 02/Peacemaker.S02E05.mkv",
                        "path": str(link)},
        "isUpgrade": False,
    }
    answer = daemon.client.post("/webhook/sonarr", json=payload, headers={"X-Api-Key": TOKEN})
    assert answer.status_code == 202
    assert answer.json()["queued"] == [str(series)]
    wait_for(lambda: _refreshed(plex, link), 30, "Plex refresh of the series folder")
    wait_for(lambda: _subtree_passes(daemon) == before + 1, 30, "the subtree pass metric")
    assert not _refreshed(plex, other), "a folder outside the series was not scanned"


def test_webhook_answers_test_bad_token_garbage_and_oversize(
    webhook_daemon: tuple[DaemonProcess, Farm],
) -> None:
    daemon, _ = webhook_daemon
    before = _subtree_passes(daemon)
    test_event = {"eventType": "Test", "series": {"id": 1, "title": "Test Title",
                                                  "path": "C:\\testpath"}}
    answer = daemon.client.post("/webhook/sonarr", json=test_event, headers={"X-Api-Key": TOKEN})
    assert answer.status_code == 200
    answer = daemon.client.post("/webhook/radarr?token=nope", json=test_event)
    assert answer.status_code == 401
    answer = daemon.client.post("/webhook/sonarr", content=b"\x00{garbage",
                                headers={"X-Api-Key": TOKEN, "Content-Type": "application/json"})
    assert answer.status_code == 400
    answer = daemon.client.post("/webhook/sonarr", content=b"{" * (10 * 1024 * 1024),
                                headers={"X-Api-Key": TOKEN})
    assert answer.status_code == 413
    health = daemon.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["watch"] == "off" and health.json()["next_full_pass"] is not None
    assert _subtree_passes(daemon) == before
    assert TOKEN not in daemon.logs()


def test_metrics_scrape_passes_promtool(webhook_daemon: tuple[DaemonProcess, Farm]) -> None:
    promtool = promtool_path()
    daemon, _ = webhook_daemon
    scrape = daemon.metrics()
    for name in ("symlinkd_links", "symlinkd_mount_up", "symlinkd_mount_state",
                 "symlinkd_scan_duration_seconds", "symlinkd_last_scan_timestamp_seconds",
                 "symlinkd_actions_total", "symlinkd_unsafe_plans_total",
                 "symlinkd_notifications_total", "symlinkd_build_info"):
        assert f"# TYPE {name.removesuffix('_total')} " in scrape or f"# TYPE {name} " in scrape
    checked = subprocess.run([promtool, "check", "metrics"], input=scrape, text=True,
                             capture_output=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


def test_second_instance_on_the_same_state_dir_refuses(
    webhook_daemon: tuple[DaemonProcess, Farm], tmp_path: Path
) -> None:
    daemon, _ = webhook_daemon
    config = yaml.safe_load(daemon.config_path.read_text())
    config["daemon"]["listen"] = "127.0.0.1:0"
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(config))
    done = subprocess.run([*symlinkd_command(), "run", "--config", str(second)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert "another symlinkd holds" in done.stderr
    assert daemon.client.get("/healthz").status_code == 200


def test_sighup_reloads_and_refuses_a_bad_config(
    webhook_daemon: tuple[DaemonProcess, Farm],
) -> None:
    daemon, _ = webhook_daemon
    token_file = daemon.config_path.parent / "webhook-token"
    good = daemon.config_path.read_text()

    token_file.write_text("rotated-token-999\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: '"configuration reloaded"' in daemon.logs(), 30, "the reload")
    assert daemon.client.post("/api/v1/scan", headers={"X-Api-Key": TOKEN}).status_code == 401
    answer = daemon.client.post("/api/v1/scan", headers={"X-Api-Key": "rotated-token-999"})
    assert answer.status_code == 202

    daemon.config_path.write_text(good + "\npolicy: {max_prune: -5}\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: '"new configuration refused' in daemon.logs(), 30, "the refusal")
    answer = daemon.client.post("/api/v1/scan", headers={"X-Api-Key": "rotated-token-999"})
    assert answer.status_code == 202, "the running configuration stays"
    assert daemon.proc.poll() is None


def test_sigterm_during_a_large_pass_exits_cleanly_without_half_made_links(
    tmp_path: Path,
) -> None:
    farm = Farm.create(tmp_path)
    count = 20000  # relinks run at a few thousand a second here: a pass of several seconds
    moved: dict[str, tuple[str, str]] = {}
    for i in range(count):
        rel = f"Show.{i:05d}/e.mkv"
        new = farm.put("torbox", f"torrents/{rel}")  # the file moved from zurg to torbox
        old = farm.mounts["zurg"][0] / "__all__" / rel
        link = farm.link(f"Shows/Show {i:05d}/e.mkv", old)
        moved[str(link)] = (str(old), str(new))
    config = farm.config(watch="off")
    # Every link into zurg is dangling: let the breaker and the limits allow the repair.
    config["policy"].update({"breaker_ratio": 1.0, "max_prune_ratio": 1.0, "max_prune": count})
    with DaemonProcess(write_config(tmp_path, config)) as daemon:
        def relinked(links: list[str]) -> int:
            return sum(1 for link in links if os.readlink(link) == moved[link][1])

        sample = sorted(moved)[::100]
        wait_for(lambda: relinked(sample) > 0, 120, "the first relinks", interval=0.01)
        daemon.signal(signal.SIGTERM)
        started = time.monotonic()
        code = daemon.proc.wait(timeout=30)
        took = time.monotonic() - started
    assert code == 0
    assert took < 10, f"exit took {took:.1f} s"
    # Every link is whole: the old target or the new one, nothing else, no temporary names.
    names = {str(p) for p in farm.farm.rglob("*") if p.is_symlink() or p.is_file()}
    assert names == set(moved)
    for link, (old, new) in moved.items():
        assert os.readlink(link) in (old, new)
    done = relinked(list(moved))
    print(f"relinked {done} of {count} before the stop")


def test_sigterm_on_an_idle_daemon_exits_0_and_closes_the_port(
    webhook_daemon: tuple[DaemonProcess, Farm],
) -> None:
    daemon, _ = webhook_daemon
    assert daemon.stop() == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(daemon.url + "/healthz", timeout=2)
