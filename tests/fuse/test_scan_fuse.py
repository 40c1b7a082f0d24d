"""Scan over real rclone mounts: the verdicts and mount states an operator sees when a mount breaks.

Each test stocks two clouds ("zurg" with ``__all__``, "torbox" with ``torrents``/``usenet``),
links the farm into their rclone mounts, breaks one mount the way it breaks in production and
runs one pass: MountMonitor.probe -> Scanner.scan -> classify -> breaker. A pass runs in a
bounded thread so a scanner that wrongly blocks on a stopped rclone fails the test instead of
hanging the run.
"""

from __future__ import annotations

import errno
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from symlinkd.classifier import apply_breaker, classify
from symlinkd.model import Judgement, MountHealth, MountState, Verdict
from symlinkd.mounts import MountMonitor
from symlinkd.scanner import Scanner
from symlinkd.settings import Settings, Timeouts
from tests.fuse.rig import FuseRig, bounded, stat_errno

pytestmark = pytest.mark.fuse

TIMEOUTS = Timeouts(probe_seconds=2.0, op_seconds=3.0)
# Generous: a pass with a stopped or backend-less mount must end within its timeouts (probe 2 s,
# a few op timeouts of 3 s); this bound only catches a pass that waits on the mount itself
# (rclone's own retries take ~20 s, a SIGSTOPped rclone forever).
PASS_BOUND_S = 45.0

# farm path -> (mount, path inside the cloud)
LINKS: dict[str, tuple[str, str]] = {
    "movies/Alpha (2020)/Alpha (2020).mkv": ("zurg", "__all__/Alpha.2020.1080p/Alpha.2020.mkv"),
    "shows/Beta/Season 01/Beta S01E01.mkv": ("zurg", "__all__/Beta.S01.1080p/Beta.S01E01.mkv"),
    "shows/Beta/Season 01/Beta S01E02.mkv": ("zurg", "__all__/Beta.S01.1080p/Beta.S01E02.mkv"),
    "movies/Gamma (2021)/Gamma (2021).mkv": ("torbox", "torrents/Gamma.2021/Gamma.2021.mkv"),
    "movies/Delta (2019)/Delta (2019).mkv": ("torbox", "usenet/Delta.2019/Delta.2019.mkv"),
}


def stock(rig: FuseRig) -> None:
    for farm_rel, (mount, rel) in LINKS.items():
        rig.put(mount, rel, f"bytes of {rel}\n".encode())
        rig.link(farm_rel, mount, rel)


@dataclass
class Pass:
    mounts: dict[str, MountState]
    judgements: dict[str, Judgement]  # by path relative to the farm
    seconds: float

    def verdicts(self, mount: str | None = None) -> Counter[Verdict]:
        return Counter(
            j.verdict for j in self.judgements.values() if mount is None or j.facts.mount == mount
        )

    def verdict(self, farm_rel: str) -> Verdict:
        return self.judgements[farm_rel].verdict


def scan_pass(settings: Settings, monitor: MountMonitor | None = None) -> Pass:
    """One read-only pass as the runtime composes it, bounded so a hang fails the test."""

    def run() -> Pass:
        own = monitor or MountMonitor(settings.mounts, settings.timeouts)
        started = time.monotonic()
        try:
            states = own.probe()
            result = Scanner(settings.farm, own, settings.timeouts).scan(states)
        finally:
            if monitor is None:
                own.close()
        now = time.time()
        judged = [classify(f, result.mounts, now) for f in result.facts]
        policy = settings.policy
        mounts = apply_breaker(judged, result.mounts, policy.breaker_ratio,
                               policy.breaker_min_links)
        judged = [classify(j.facts, mounts, now) for j in judged]
        prefix = settings.farm.rstrip("/") + "/"
        return Pass(
            mounts=mounts,
            judgements={j.path.removeprefix(prefix): j for j in judged},
            seconds=time.monotonic() - started,
        )

    return bounded(run, PASS_BOUND_S)


def links_into(mount: str) -> set[str]:
    return {farm_rel for farm_rel, (m, _) in LINKS.items() if m == mount}


@pytest.fixture
def rig(fuse_rig: FuseRig) -> FuseRig:
    stock(fuse_rig)
    return fuse_rig


def test_healthy_mounts_every_link_ok(rig: FuseRig) -> None:
    result = scan_pass(rig.settings(timeouts=TIMEOUTS))
    assert {n: s.health for n, s in result.mounts.items()} == {
        "zurg": MountHealth.OK, "torbox": MountHealth.OK,
    }
    assert set(result.judgements) == set(LINKS)
    assert result.verdicts() == Counter({Verdict.OK: len(LINKS)})
    assert result.judgements["movies/Delta (2019)/Delta (2019).mkv"].facts.mount == "torbox"


def test_file_removed_on_server_is_dangling_after_refresh(
    fuse_rig_factory: Callable[..., FuseRig],
) -> None:
    # A long directory cache, as in production: the deletion is invisible through the mount
    # until rclone's vfs/refresh (Zurg's on_library_update hook does this in the stack).
    rig = fuse_rig_factory(dir_cache_time="1h")
    stock(rig)
    settings = rig.settings(timeouts=TIMEOUTS)
    assert scan_pass(settings).verdicts() == Counter({Verdict.OK: len(LINKS)})

    gone = "shows/Beta/Season 01/Beta S01E02.mkv"
    mount, rel = LINKS[gone]
    rig.remove(mount, rel)
    assert stat_errno(rig[mount].mount_path(rel)) is None  # stale cache still shows it
    rig.refresh(mount, [rel.rsplit("/", 1)[0]])

    result = scan_pass(settings)
    assert result.mounts["zurg"].health is MountHealth.OK
    assert result.verdict(gone) is Verdict.DANGLING
    assert result.judgements[gone].facts.errno in (errno.ENOENT, errno.ENOTDIR)
    assert result.verdicts() == Counter({Verdict.OK: len(LINKS) - 1, Verdict.DANGLING: 1})


def test_new_file_behind_a_stale_listing_is_not_dangling(
    fuse_rig_factory: Callable[..., FuseRig],
) -> None:
    # rdt-client links a fresh download before rclone has re-listed its folder: the cached
    # listing lacks it, so the scanner must vfs/refresh the parent before believing ENOENT.
    rig = fuse_rig_factory(dir_cache_time="1h")
    stock(rig)
    settings = rig.settings(timeouts=TIMEOUTS)
    assert scan_pass(settings).verdicts() == Counter({Verdict.OK: len(LINKS)})

    rel = "__all__/Beta.S01.1080p/Beta.S01E03.mkv"
    rig.put("zurg", rel)
    rig.link("shows/Beta/Season 01/Beta S01E03.mkv", "zurg", rel)
    assert stat_errno(rig["zurg"].mount_path(rel)) == errno.ENOENT  # stale listing

    result = scan_pass(settings)
    assert result.verdict("shows/Beta/Season 01/Beta S01E03.mkv") is Verdict.OK
    assert result.verdicts() == Counter({Verdict.OK: len(LINKS) + 1})


def test_rclone_killed_every_link_mount_down_none_dangling(rig: FuseRig) -> None:
    rig.kill9("zurg")  # waits out the kernel's attribute cache (~attr_timeout)
    result = scan_pass(rig.settings(timeouts=TIMEOUTS))
    assert result.mounts["zurg"].health is MountHealth.DOWN
    assert result.mounts["torbox"].health is MountHealth.OK
    assert {p for p, j in result.judgements.items() if j.verdict is Verdict.MOUNT_DOWN} == (
        links_into("zurg")
    )
    assert result.verdicts("torbox") == Counter({Verdict.OK: len(links_into("torbox"))})
    assert Verdict.DANGLING not in result.verdicts()
    # The sidecar restarts (Kubernetes restarts the container): every link is fine again.
    rig.remount("zurg")
    again = scan_pass(rig.settings(timeouts=TIMEOUTS))
    assert again.verdicts() == Counter({Verdict.OK: len(LINKS)})


def test_lazy_unmount_is_mount_down_never_dangling(rig: FuseRig) -> None:
    # The mount point is an ordinary empty directory now: every target gives ENOENT, which
    # must not read as "the files are gone".
    rig.unmount_lazy("torbox")
    result = scan_pass(rig.settings(timeouts=TIMEOUTS))
    assert result.mounts["torbox"].health is MountHealth.DOWN
    assert result.mounts["zurg"].health is MountHealth.OK
    assert result.verdicts("torbox") == Counter({Verdict.MOUNT_DOWN: len(links_into("torbox"))})
    assert result.verdicts("zurg") == Counter({Verdict.OK: len(links_into("zurg"))})
    assert Verdict.DANGLING not in result.verdicts()


def test_stopped_rclone_is_mount_hung_and_the_pass_ends(rig: FuseRig) -> None:
    settings = rig.settings(timeouts=TIMEOUTS)
    monitor = MountMonitor(settings.mounts, settings.timeouts)
    try:
        rig.stop("zurg", max_seconds=120)
        # Two passes on one monitor, as the daemon runs them: the second meets the workers
        # still stuck in the mount from the first and must end in bounded time too.
        for _ in range(2):
            result = scan_pass(settings, monitor)
            print(f"pass with a stopped rclone: {result.seconds:.2f} s")
            assert result.mounts["zurg"].health is MountHealth.HUNG
            assert result.mounts["torbox"].health is MountHealth.OK
            assert result.verdicts("zurg") == Counter({Verdict.MOUNT_HUNG: len(links_into("zurg"))})
            assert result.verdicts("torbox") == Counter({Verdict.OK: len(links_into("torbox"))})
        rig.cont("zurg")
        result = scan_pass(settings, monitor)
        assert result.mounts["zurg"].health is MountHealth.OK
        assert result.verdicts() == Counter({Verdict.OK: len(LINKS)})
    finally:
        rig.cont("zurg")
        monitor.close()


def test_stopped_mount_found_mid_pass_is_hung(rig: FuseRig) -> None:
    # The probe saw the mount healthy, then rclone stopped before the walk reached its links.
    settings = rig.settings(timeouts=TIMEOUTS)
    monitor = MountMonitor(settings.mounts, settings.timeouts)
    try:
        states = bounded(monitor.probe, PASS_BOUND_S)
        assert states["torbox"].health is MountHealth.OK
        rig.stop("torbox", max_seconds=120)
        result = bounded(
            lambda: Scanner(settings.farm, monitor, settings.timeouts).scan(states),
            PASS_BOUND_S,
        )
        assert result.mounts["torbox"].health is MountHealth.HUNG
        judged = [classify(f, result.mounts, time.time()) for f in result.facts]
        into_torbox = [j.verdict for j in judged if j.facts.mount == "torbox"]
        assert into_torbox == [Verdict.MOUNT_HUNG] * len(links_into("torbox"))
    finally:
        rig.cont("torbox")
        monitor.close()


def test_webdav_down_with_warm_cache_is_never_dangling(
    fuse_rig_factory: Callable[..., FuseRig],
) -> None:
    # Backend gone while rclone still has its listings: names missing from a cached listing
    # answer ENOENT at once, and the refresh that should confirm it cannot reach the server.
    rig = fuse_rig_factory(dir_cache_time="1h")
    stock(rig)
    settings = rig.settings(timeouts=TIMEOUTS)
    assert scan_pass(settings).verdicts() == Counter({Verdict.OK: len(LINKS)})

    rig.stop_webdav("zurg")
    rel = "__all__/Beta.S01.1080p/Beta.S01E03.mkv"
    rig.put("zurg", rel)
    rig.link("shows/Beta/Season 01/Beta S01E03.mkv", "zurg", rel)
    rig.remove("zurg", LINKS["movies/Alpha (2020)/Alpha (2020).mkv"][1])

    result = scan_pass(settings)
    print(f"pass with the WebDAV server down (warm cache): {result.seconds:.2f} s")
    assert result.mounts["torbox"].health is MountHealth.OK
    assert result.verdicts("torbox") == Counter({Verdict.OK: len(links_into("torbox"))})
    assert Verdict.DANGLING not in result.verdicts()
    assert result.verdict("shows/Beta/Season 01/Beta S01E03.mkv") is not Verdict.OK


def test_webdav_down_with_cold_cache_is_never_dangling(rig: FuseRig) -> None:
    rig.stop_webdav("zurg")
    time.sleep(2.5)  # past the rig's 2 s --dir-cache-time: every lookup goes to the server
    result = scan_pass(rig.settings(timeouts=TIMEOUTS))
    print(f"pass with the WebDAV server down (cold cache): {result.seconds:.2f} s")
    assert result.mounts["zurg"].health is not MountHealth.OK
    assert result.verdicts("torbox") == Counter({Verdict.OK: len(links_into("torbox"))})
    assert Verdict.DANGLING not in result.verdicts()
    assert Verdict.OK not in result.verdicts("zurg")
