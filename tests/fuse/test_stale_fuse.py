"""Issue 10, "stale": a provider that still lists a file but fails every GET of it (expired).

Real rclone mount of a WebDAV server that fails the chosen files' GETs (404, 500, a dropped
connection, or no answer at all) and logs every GET. The content probe reads the links' targets
through the mount: the expired ones become ``stale`` (and stay untouched until confirmed), the
healthy ones stay ``ok``, the probe reads no more than its budget (counted at the server), and a
read that hangs costs at most the op timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fuse.rig import FuseRig
from tests.fuse.test_repair_fuse import links_by_path

pytestmark = pytest.mark.fuse

CLI_TIMEOUT_S = 120.0
GOOD = [f"torrents/Good.{i}/Good.{i}.mkv" for i in range(6)]
BAD = {"404": "torrents/Gone404/Gone404.mkv", "500": "torrents/Gone500/Gone500.mkv",
       "reset": "torrents/Reset/Reset.mkv"}


def scan(rig: FuseRig, probe: dict[str, Any], *args: str,
         policy: dict[str, Any] | None = None, op_seconds: float = 3) -> tuple[int, dict[str, Any],
                                                                           float]:
    cfg = rig.write_config(
        policy={"confirm_after_passes": 2, "confirm_after_minutes": 0, "max_prune_ratio": 1.0,
                "probe": {"enabled": True, **probe}, **(policy or {})},
        timeouts={"probe_seconds": 2, "op_seconds": op_seconds})
    started = time.monotonic()
    proc = rig.run_cli("scan", "--config", str(cfg), "--json", "--no-notify", "--all", *args,
                       timeout=CLI_TIMEOUT_S)
    seconds = time.monotonic() - started
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-3000:]}")
    return proc.returncode, doc, seconds


def farm_of(rig: FuseRig, rels: list[str]) -> None:
    for i, rel in enumerate(rels):
        rig.put("torbox", rel, b"m" * (200_000 + i))
        rig.link(f"movies/{rel.split('/')[1]}.mkv", "torbox", rel)


def file_reads(rig: FuseRig, rels: list[str]) -> int:
    wanted = {"/" + r for r in rels}
    return sum(1 for path in rig.reads("torbox") if path in wanted)


@pytest.fixture
def torbox(fuse_rig_factory: Callable[..., FuseRig]) -> FuseRig:
    # rclone retries a failed GET; one low-level retry keeps a 500 inside the op timeout.
    return fuse_rig_factory(names=("torbox",), extra_rclone_args=("--low-level-retries", "1"))


def test_expired_files_become_stale_after_confirmation_healthy_ones_stay_ok(
    torbox: FuseRig,
) -> None:
    farm_of(torbox, [*GOOD, *BAD.values()])
    code, doc, _ = scan(torbox, {"per_pass": 50})
    assert code == 0, doc["counts"]  # first sight: learned, nothing read yet
    for mode, rel in BAD.items():
        torbox.fail_reads("torbox", rel, mode)
    code, doc, _ = scan(torbox, {"per_pass": 50}, "--apply")
    links = links_by_path(doc, torbox)
    assert doc["counts"]["stale"] == len(BAD), (doc["counts"], doc["notes"])
    for rel in BAD.values():
        link = links[f"movies/{rel.split('/')[1]}.mkv"]
        assert link["verdict"] == "stale", link
        assert link["action"] == "skip" and "awaiting confirmation" in link["reason"], link
    for rel in GOOD:
        assert links[f"movies/{rel.split('/')[1]}.mkv"]["verdict"] == "ok"
    assert code == 1
    before = torbox.farm_snapshot()
    code, doc, _ = scan(torbox, {"per_pass": 50}, "--apply")
    links = links_by_path(doc, torbox)
    for rel in BAD.values():
        link = links[f"movies/{rel.split('/')[1]}.mkv"]
        assert link["verdict"] == "stale", link
        assert "no copy that reads" in link["reason"], link  # confirmed; prune_stale is off
    assert torbox.farm_snapshot() == before  # reported, never pruned by default
    assert code == 1


def test_confirmed_stale_link_is_relinked_to_a_copy_that_reads(torbox: FuseRig) -> None:
    farm_of(torbox, GOOD)
    rel = BAD["500"]
    torbox.put("torbox", rel, b"same release\n" * 1000)
    torbox.link("movies/Gone500.mkv", "torbox", rel)
    copy = "torrents/Gone500.Repack/Gone500.mkv"
    scan(torbox, {"per_pass": 50})
    torbox.fail_reads("torbox", rel, "500")
    torbox.put("torbox", copy, b"same release\n" * 1000)  # same name and size, reads fine
    scan(torbox, {"per_pass": 50}, "--apply")
    code, doc, _ = scan(torbox, {"per_pass": 50}, "--apply")
    link = links_by_path(doc, torbox)["movies/Gone500.mkv"]
    assert link["action"] == "relink", link
    assert torbox.farm_snapshot()["movies/Gone500.mkv"][0] == str(torbox["torbox"].mount_path(copy))
    assert code == 1


def test_probe_budget_per_pass_and_per_day_is_honoured_at_the_server(torbox: FuseRig) -> None:
    rels = [f"torrents/Many.{i:02d}/Many.{i:02d}.mkv" for i in range(20)]
    farm_of(torbox, rels)
    scan(torbox, {"per_pass": 5, "per_day": 8})
    assert file_reads(torbox, rels) == 0
    seen = []
    for _ in range(3):
        code, doc, _ = scan(torbox, {"per_pass": 5, "per_day": 8})
        assert code == 0, (doc["counts"], doc["notes"])
        seen.append(file_reads(torbox, rels))
    # 5 links read, then the 3 left of the day's 8, then none; one GET a link.
    assert seen == [5, 8, 8], seen


def test_a_hung_read_costs_at_most_the_op_timeout(torbox: FuseRig) -> None:
    farm_of(torbox, GOOD)
    scan(torbox, {"per_pass": 50})
    torbox.fail_reads("torbox", GOOD[0], "hang")
    code, doc, seconds = scan(torbox, {"per_pass": 50}, op_seconds=2)
    link = links_by_path(doc, torbox)[f"movies/{GOOD[0].split('/')[1]}.mkv"]
    assert link["verdict"] == "stale" and "op timeout" in link["reason"], link
    assert code == 1
    # The hung GET answers after 120 s; the pass ends within its timeouts (2 s probe of the
    # mount, 2 s for the hung read) plus the process's own start and scan.
    assert seconds < 30, seconds
    assert doc["duration_seconds"] < 10, doc["duration_seconds"]
