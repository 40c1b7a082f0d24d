"""Scanner on real temp directories: odd names, link shapes, broken farms, hung mounts."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from symlinkd.classifier import classify
from symlinkd.model import EntryKind, Judgement, MountHealth, MountState, ScanResult, Verdict
from symlinkd.mounts import MountMonitor
from symlinkd.scanner import Scanner
from symlinkd.settings import MountSettings, Timeouts

GENEROUS = 30.0


@dataclass
class Media:
    root: Path
    farm: Path
    zurg: Path  # the anchor, <root>/mnt/zurg/__all__
    torbox: Path

    def mounts(self, rc_url: str | None = None) -> list[MountSettings]:
        return [
            MountSettings("zurg", str(self.zurg.parent), "__all__", rc_url=rc_url,
                          require_mountpoint=False),
            MountSettings("torbox", str(self.torbox.parent), "torrents",
                          require_mountpoint=False),
        ]

    def cloud_file(self, rel: str, base: Path | None = None) -> Path:
        path = (base or self.zurg) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 7)
        return path

    def link(self, rel: str, target: str | Path) -> Path:
        path = self.farm / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        return path


@pytest.fixture
def media(tmp_path: Path) -> Media:
    m = Media(tmp_path, tmp_path / "farm", tmp_path / "mnt" / "zurg" / "__all__",
              tmp_path / "mnt" / "torbox" / "torrents")
    for d in (m.farm, m.zurg, m.torbox):
        d.mkdir(parents=True)
    m.cloud_file("keep-anchor-nonempty")
    m.cloud_file("keep-anchor-nonempty", m.torbox)
    return m


def run_scan(media: Media, *, states: dict[str, MountState] | None = None,
             timeouts: Timeouts | None = None, rc: httpx.MockTransport | None = None,
             rc_url: str | None = None, **kw: Any) -> tuple[dict[str, Judgement], ScanResult]:
    t = timeouts or Timeouts()
    monitor = MountMonitor(media.mounts(rc_url), t, rc_transport=rc)
    try:
        mounts = states if states is not None else monitor.probe()
        result = Scanner(str(media.farm), monitor, t).scan(mounts, **kw)
    finally:
        monitor.close()
    now = time.time()
    return {f.path: classify(f, result.mounts, now) for f in result.facts}, result


def key(path: Path) -> str:
    return str(path)


def test_healthy_dangling_outside_and_files(media: Media) -> None:
    good = media.link("Shows/A/Season 01/A S01E01.mkv", media.cloud_file("A S01/A S01E01.mkv"))
    gone = media.link("Shows/A/Season 01/A S01E02.mkv", media.zurg / "A S01/A S01E02.mkv")
    no_parent = media.link("Shows/A/Season 01/A S01E03.mkv", media.zurg / "Nope/x.mkv")
    file_parent = media.link("Shows/A/Season 01/A S01E04.mkv",
                             media.zurg / "A S01/A S01E01.mkv/sub")
    torbox = media.link("Movies/M (2020)/M.mkv", media.cloud_file("M/M.mkv", media.torbox))
    outside = media.link("Movies/Elsewhere.mkv", media.root / "elsewhere.mkv")
    (media.farm / "Shows" / "notes.txt").write_text("hello")
    judged, result = run_scan(media)
    verdicts = {p: j.verdict for p, j in judged.items()}
    assert verdicts == {
        key(good): Verdict.OK, key(gone): Verdict.DANGLING, key(no_parent): Verdict.DANGLING,
        key(file_parent): Verdict.DANGLING, key(torbox): Verdict.OK,
        key(outside): Verdict.OUTSIDE_MOUNTS, key(media.farm / "Shows" / "notes.txt"):
        Verdict.NOT_SYMLINK,
    }
    assert judged[key(gone)].facts.errno == errno.ENOENT
    assert judged[key(no_parent)].facts.errno == errno.ENOENT
    assert judged[key(file_parent)].facts.errno == errno.ENOTDIR
    assert judged[key(torbox)].facts.mount == "torbox"
    assert judged[key(media.farm / "Shows" / "notes.txt")].facts.kind is EntryKind.FILE
    assert result.problems == []


def test_odd_names_round_trip(media: Media) -> None:
    names = ["with space.mkv", "ünïcødé 日本.mkv", "new\nline.mkv", "tab\there.mkv"]
    made = {}
    for name in names:
        made[name] = media.link(f"Shows/Odd Show/{name}", media.cloud_file(f"Odd/{name}"))
    bad = b"invalid \xff\xfe utf8.mkv"
    target_b = os.fsencode(media.zurg / "Odd") + b"/" + bad
    Path(os.fsdecode(target_b)).write_bytes(b"x")
    link_b = os.fsencode(media.farm / "Shows" / "Odd Show") + b"/" + bad
    os.symlink(target_b, link_b)
    missing_b = os.fsencode(media.farm / "Shows" / "Odd Show") + b"/gone \xff.mkv"
    os.symlink(os.fsencode(media.zurg / "Odd") + b"/gone \xff.mkv", missing_b)

    judged, _ = run_scan(media)
    for name, path in made.items():
        assert judged[key(path)].verdict is Verdict.OK, name
    ok_bad = judged[os.fsdecode(link_b)]
    assert ok_bad.verdict is Verdict.OK
    assert os.fsencode(ok_bad.path) == link_b  # surrogateescape round-trips exactly
    assert os.fsencode(ok_bad.facts.target or "") == target_b
    assert judged[os.fsdecode(missing_b)].verdict is Verdict.DANGLING


def test_relative_links_chains_loops_and_folder_links(media: Media) -> None:
    media.cloud_file("B S01/B S01E01.mkv")
    up = "../../../../mnt/zurg/__all__"
    rel_good = media.link("Shows/B/Season 01/e1.mkv", f"{up}/B S01/B S01E01.mkv")
    rel_gone = media.link("Shows/B/Season 01/e2.mkv", f"{up}/B S01/nope.mkv")
    dotted = media.link("Shows/B/Season 01/e3.mkv", f"{media.zurg}/./B S01//B S01E01.mkv")
    hop = media.link("Links/hop.mkv", media.zurg / "B S01/B S01E01.mkv")
    chained = media.link("Shows/B/Season 01/e4.mkv", "../../../Links/hop.mkv")
    media.link("Links/a", "b")
    loop = media.link("Links/b", "a")
    self_loop = media.link("Links/self", "self")
    show_dir = media.cloud_file("Show X/Season 1/x.mkv").parent.parent
    folder = media.link("Shows/Show X", f"{show_dir}/")
    judged, _ = run_scan(media)

    assert judged[key(rel_good)].verdict is Verdict.OK
    assert judged[key(rel_good)].facts.resolved == str(media.zurg / "B S01/B S01E01.mkv")
    assert judged[key(rel_gone)].verdict is Verdict.DANGLING
    assert judged[key(dotted)].facts.resolved == str(media.zurg / "B S01/B S01E01.mkv")
    chain = judged[key(chained)]
    assert chain.verdict is Verdict.OK
    assert chain.facts.chain == (str(hop),)
    assert chain.facts.resolved == str(media.zurg / "B S01/B S01E01.mkv")
    assert chain.facts.mount == "zurg"
    assert judged[key(loop)].verdict is Verdict.LOOP
    assert judged[key(self_loop)].verdict is Verdict.LOOP
    assert judged[key(folder)].verdict is Verdict.OK
    assert judged[key(folder)].facts.target_is_dir
    # a symlinked folder is one fact; the walk never goes through it
    assert not any(p.startswith(f"{folder}/") for p in judged)


def test_symlinked_directory_in_farm_is_not_followed(media: Media) -> None:
    elsewhere = media.root / "elsewhere"
    elsewhere.mkdir()
    os.symlink(media.zurg / "x", elsewhere / "inner-link")
    media.link("Shortcut", elsewhere)
    judged, _ = run_scan(media)
    assert list(judged) == [key(media.farm / "Shortcut")]
    assert judged[key(media.farm / "Shortcut")].verdict is Verdict.OUTSIDE_MOUNTS


def test_target_reached_through_a_symlinked_folder_belongs_to_its_real_mount(
        media: Media) -> None:
    alias = media.root / "data"
    os.symlink(media.zurg.parent, alias)  # /data -> /mnt/zurg, as a container path map would
    media.cloud_file("K/e1.mkv")
    via_alias = media.link("Shows/K/e1.mkv", alias / "__all__" / "K" / "e1.mkv")
    gone_via_alias = media.link("Shows/K/e2.mkv", alias / "__all__" / "K" / "e2.mkv")
    judged, _ = run_scan(media)
    assert judged[key(via_alias)].verdict is Verdict.OK
    assert judged[key(via_alias)].facts.mount == "zurg"
    assert judged[key(gone_via_alias)].verdict is Verdict.DANGLING

    down = {
        "zurg": MountState("zurg", str(media.zurg.parent), MountHealth.DOWN, "ENOTCONN"),
        "torbox": MountState("torbox", str(media.torbox.parent), MountHealth.OK),
    }
    judged, _ = run_scan(media, states=down)
    assert judged[key(gone_via_alias)].verdict is Verdict.MOUNT_DOWN


def test_chain_into_a_mount_that_is_down_is_mount_down(media: Media) -> None:
    hop = media.link("Links/hop.mkv", media.zurg / "L/gone.mkv")
    chained = media.link("Shows/L/e1.mkv", hop)
    down = {
        "zurg": MountState("zurg", str(media.zurg.parent), MountHealth.DOWN, "ENOTCONN"),
        "torbox": MountState("torbox", str(media.torbox.parent), MountHealth.OK),
    }
    judged, _ = run_scan(media, states=down)
    assert judged[key(chained)].verdict is Verdict.MOUNT_DOWN
    assert judged[key(chained)].facts.chain == (str(hop),)


def test_a_mount_inside_the_farm_is_not_walked(media: Media) -> None:
    inner = media.farm / "zurg-inside"
    (inner / "__all__").mkdir(parents=True)
    os.symlink("/nowhere", inner / "__all__" / "would-be-judged")
    media.link("Shows/M/e1.mkv", media.cloud_file("M/e1.mkv"))
    mounts = [*media.mounts(), MountSettings("inner", str(inner), "__all__",
                                             require_mountpoint=False)]
    monitor = MountMonitor(mounts, Timeouts())
    try:
        result = Scanner(str(media.farm), monitor, Timeouts()).scan(monitor.probe())
    finally:
        monitor.close()
    assert [f.path for f in result.facts] == [str(media.farm / "Shows/M/e1.mkv")]
    assert [p.path for p in result.problems] == [str(inner)]


def test_links_into_a_mount_that_is_not_ok_are_not_judged_by_their_target(media: Media) -> None:
    gone = media.link("Shows/C/e1.mkv", media.zurg / "C/e1.mkv")
    here = media.link("Shows/C/e2.mkv", media.cloud_file("C/e2.mkv"))
    down = {
        "zurg": MountState("zurg", str(media.zurg.parent), MountHealth.DOWN, "ENOTCONN"),
        "torbox": MountState("torbox", str(media.torbox.parent), MountHealth.OK),
    }
    judged, result = run_scan(media, states=down)
    for path in (gone, here):
        assert judged[key(path)].verdict is Verdict.MOUNT_DOWN
        assert judged[key(path)].facts.errno is None  # not touched
    assert result.mounts["zurg"].health is MountHealth.DOWN


def test_hung_mount_gives_mount_hung_and_the_pass_finishes(media: Media) -> None:
    links = [media.link(f"Shows/D/Season {s}/e{e}.mkv", media.cloud_file(f"D S{s}/e{e}.mkv"))
             for s in range(3) for e in range(3)]
    other = media.link("Movies/M.mkv", media.cloud_file("M/M.mkv", media.torbox))
    timeouts = Timeouts(op_seconds=0.5, workers_per_mount=2)
    monitor = MountMonitor(media.mounts(), timeouts)
    release = threading.Event()
    try:
        states = monitor.probe()
        assert states["zurg"].health is MountHealth.OK
        # Now rclone stops answering: every worker of the zurg gate blocks in the kernel.
        for _ in range(2):
            monitor.gate("zurg").submit(release.wait, GENEROUS)
        started = time.monotonic()
        result = Scanner(str(media.farm), monitor, timeouts).scan(states)
        took = time.monotonic() - started
    finally:
        release.set()
        monitor.close()
    assert took < GENEROUS
    assert result.mounts["zurg"].health is MountHealth.HUNG
    assert result.mounts["torbox"].health is MountHealth.OK
    judged = {f.path: classify(f, result.mounts, time.time()) for f in result.facts}
    assert {judged[key(p)].verdict for p in links} == {Verdict.MOUNT_HUNG}
    assert any(judged[key(p)].facts.timed_out for p in links)
    assert judged[key(other)].verdict is Verdict.OK


def test_subset_of_paths(media: Media) -> None:
    a = media.link("Shows/E/e1.mkv", media.cloud_file("E/e1.mkv"))
    media.link("Shows/F/e1.mkv", media.cloud_file("F/e1.mkv"))
    single = media.link("Movies/G.mkv", media.zurg / "G/missing.mkv")
    judged, result = run_scan(
        media, paths=[str(media.farm / "Shows" / "E"), str(single), "/etc",
                      str(media.farm / "Shows" / "nope")])
    assert set(judged) == {key(a), key(single)}
    assert judged[key(single)].verdict is Verdict.DANGLING
    assert {p.path for p in result.problems} == {"/etc", str(media.farm / "Shows" / "nope")}


def test_size_only_for_wanted_links_and_progress(media: Media) -> None:
    known = media.link("Shows/H/e1.mkv", media.cloud_file("H/e1.mkv"))
    new = media.link("Shows/H/e2.mkv", media.cloud_file("H/e2.mkv"))
    for i in range(2500):
        (media.farm / "Shows" / "H").joinpath(f"extra{i}.nfo").touch()
    ticks: list[int] = []
    judged, _ = run_scan(media, size_wanted=lambda p: p == str(new), progress=ticks.append)
    assert judged[key(new)].facts.target_size == 7
    assert judged[key(known)].facts.target_size is None
    assert ticks == sorted(ticks)
    assert ticks[-1] == len(judged) + 2  # + the Shows and H directories themselves
    assert len(ticks) >= 2


# ---- rclone rc: refresh before believing a target is gone --------------------------------------

def test_refresh_before_dangling(media: Media) -> None:
    late = media.link("Shows/R/late.mkv", media.zurg / "R/late.mkv")
    gone = media.link("Shows/R/gone.mkv", media.zurg / "R/gone.mkv")
    renamed = media.link("Shows/R/renamed.mkv", media.zurg / "R2/e.mkv")
    refreshed: list[dict[str, str]] = []

    def rc(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        refreshed.append(sent)
        # rclone re-reads the remote: the file that was only missing from its cache appears.
        media.cloud_file("R/late.mkv")
        return httpx.Response(200, json={"result": {v: "OK" for k, v in sent.items()
                                                    if k.startswith("dir")}})

    judged, result = run_scan(media, rc=httpx.MockTransport(rc), rc_url="http://127.0.0.1:5572")
    assert judged[key(late)].verdict is Verdict.OK
    assert judged[key(gone)].verdict is Verdict.DANGLING
    assert judged[key(renamed)].verdict is Verdict.DANGLING
    assert len(refreshed) == 1  # one call, each parent once
    assert set(refreshed[0].values()) == {"__all__", "__all__/R", "__all__/R2"}
    assert result.mounts["zurg"].health is MountHealth.OK


def test_failed_refresh_never_makes_dangling(media: Media) -> None:
    gone = media.link("Shows/R/gone.mkv", media.zurg / "R/gone.mkv")

    def rc(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "no VFS found", "input": {},
                                         "path": "vfs/refresh", "status": 500})

    judged, result = run_scan(media, rc=httpx.MockTransport(rc), rc_url="http://127.0.0.1:5572")
    assert result.mounts["zurg"].health is MountHealth.DEGRADED
    assert "vfs/refresh" in result.mounts["zurg"].detail
    assert judged[key(gone)].verdict is Verdict.MOUNT_DOWN


# ---- farms that fight back (run in a child process with fewer privileges / its own mounts) ----

CHILD = textwrap.dedent("""
    import json, sys
    from symlinkd.mounts import MountMonitor
    from symlinkd.scanner import Scanner
    from symlinkd.settings import MountSettings, Timeouts
    farm, zurg = sys.argv[1], sys.argv[2]
    monitor = MountMonitor([MountSettings("zurg", zurg, "__all__", require_mountpoint=False)],
                           Timeouts())
    result = Scanner(farm, monitor, Timeouts()).scan(monitor.probe())
    print(json.dumps({"facts": sorted(f.path for f in result.facts),
                      "errnos": {f.path: f.errno for f in result.facts},
                      "problems": [[p.path, p.errno] for p in result.problems]}))
""")


def run_child(prefix: list[str], media: Media) -> dict[str, Any]:
    done = subprocess.run([*prefix, sys.executable, "-c", CHILD, str(media.farm),
                           str(media.zurg.parent)], capture_output=True, text=True,
                          timeout=GENEROUS, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture
def locked(media: Media) -> Iterator[Path]:
    locked = media.farm / "Shows" / "Locked"
    locked.mkdir(parents=True)
    os.symlink(media.zurg / "x.mkv", locked / "hidden.mkv")
    locked.chmod(0)
    yield locked
    locked.chmod(0o755)


def test_unreadable_farm_directory_is_a_problem_and_the_pass_goes_on(media: Media,
                                                                     locked: Path) -> None:
    visible = media.link("Shows/Open/e.mkv", media.cloud_file("Open/e.mkv"))
    if os.geteuid() != 0:
        prefix: list[str] = []
    elif shutil.which("setpriv"):
        # root reads any directory; without CAP_DAC_* it is held to the mode bits like anyone
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    else:
        pytest.skip("running as root without setpriv: cannot make a directory unreadable")
    seen = run_child(prefix, media)
    assert seen["problems"] == [[str(locked), errno.EACCES]]
    assert str(visible) in seen["facts"]


def test_read_only_farm_scans(media: Media) -> None:
    link = media.link("Shows/RO/e.mkv", media.cloud_file("RO/e.mkv"))
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to bind-mount the farm read-only")
    farm = str(media.farm)
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")
    # In a private mount namespace, so nothing outlives the child even if the test dies.
    prefix = ["unshare", "-m", "sh", "-c",
              'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" '
              '&& ! touch "$0/probe" 2>/dev/null && exec "$@"', farm]
    seen = run_child(prefix, media)
    assert seen["facts"] == [str(link)]
    assert seen["errnos"] == {str(link): None}
    assert seen["problems"] == []
