"""Mount monitor on real temp dirs with a temp mountinfo file, and the gate's timeout rules."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symlinkd import plain
from symlinkd.model import MountHealth
from symlinkd.mounts import MountGate, MountMonitor, MountTimeout, parse_mountinfo, state_from_error
from symlinkd.settings import MountSettings, Timeouts

GENEROUS = 30.0  # bound on waits that should take well under a second


def mountinfo_line(mount_point: str, ident: int = 100) -> str:
    escaped = (mount_point.replace("\\", "\\134").replace(" ", "\\040")
               .replace("\t", "\\011").replace("\n", "\\012"))
    return (f"{ident} 30 0:{ident} / {escaped} rw,nosuid,nodev,relatime shared:{ident} "
            f"- fuse.rclone zurg: rw,user_id=0,group_id=0\n")


def test_parse_mountinfo_unescapes_space_tab_newline_backslash() -> None:
    text = (mountinfo_line("/mnt/media/my zurg") + mountinfo_line("/mnt/a\tb\nc\\d", 101)
            + "29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
    assert parse_mountinfo(text) == {"/mnt/media/my zurg", "/mnt/a\tb\nc\\d", "/"}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "my zurg" / "__all__" / "Show A").mkdir(parents=True)
    (tmp_path / "torbox" / "torrents").mkdir(parents=True)  # empty anchor
    (tmp_path / "gone").mkdir()  # anchor missing
    return tmp_path


def monitor_for(media: Path, mountinfo: str, **timeouts: float) -> MountMonitor:
    info = media / "mountinfo"
    info.write_text(mountinfo)
    mounts = [
        MountSettings("zurg", str(media / "my zurg"), "__all__"),
        MountSettings("torbox", str(media / "torbox"), "torrents"),
        MountSettings("gone", str(media / "gone"), "anchor"),
        MountSettings("plain", str(media / "my zurg"), "__all__", require_mountpoint=False),
    ]
    return MountMonitor(mounts, Timeouts(**timeouts), mountinfo_path=str(info))  # type: ignore[arg-type]


def test_probe_states(media: Path) -> None:
    lines = "".join(mountinfo_line(str(media / n), i) for i, n in
                    enumerate(["my zurg", "torbox", "gone"], 100))
    monitor = monitor_for(media, lines)
    try:
        states = monitor.probe()
    finally:
        monitor.close()
    assert states["zurg"].health is MountHealth.OK
    assert states["torbox"].health is MountHealth.DOWN
    assert "empty" in states["torbox"].detail
    assert states["gone"].health is MountHealth.DOWN
    assert "missing" in states["gone"].detail
    assert states["plain"].health is MountHealth.OK


def test_not_a_mount_point_is_down_unless_not_required(media: Path) -> None:
    monitor = monitor_for(media, mountinfo_line("/somewhere/else"))
    try:
        states = monitor.probe()
    finally:
        monitor.close()
    assert states["zurg"].health is MountHealth.DOWN
    assert "not a mount point" in states["zurg"].detail
    assert states["plain"].health is MountHealth.OK  # same directory, require_mountpoint False


def test_probe_timeout_is_hung_and_bounded(media: Path) -> None:
    monitor = monitor_for(media, mountinfo_line(str(media / "my zurg")),
                          probe_seconds=0.5, workers_per_mount=1)
    release = threading.Event()
    try:
        # The mount's only worker is stuck in the kernel, as on a SIGSTOPped rclone.
        monitor.gate("zurg").submit(release.wait, GENEROUS)
        started = time.monotonic()
        states = monitor.probe()
        took = time.monotonic() - started
        assert states["zurg"].health is MountHealth.HUNG
        assert states["plain"].health is MountHealth.OK  # other mounts still reported
        assert took < GENEROUS
        release.set()
        deadline = time.monotonic() + GENEROUS
        while monitor.probe()["zurg"].health is not MountHealth.OK:
            assert time.monotonic() < deadline, "mount never came back after the worker freed"
            time.sleep(0.05)
    finally:
        release.set()
        monitor.close()


@pytest.mark.parametrize(("code", "health"), [
    (errno.ENOTCONN, MountHealth.DOWN), (errno.ENOENT, MountHealth.DOWN),
    (errno.ENOTDIR, MountHealth.DOWN), (errno.EIO, MountHealth.DEGRADED),
    (errno.ESTALE, MountHealth.DEGRADED), (errno.EACCES, MountHealth.DEGRADED),
])
def test_anchor_errors(code: int, health: MountHealth) -> None:
    mount = MountSettings("zurg", "/mnt/zurg", "__all__")
    state = state_from_error(mount, OSError(code, "boom"))
    assert state.health is health
    assert errno.errorcode[code] in state.detail


def test_mount_for_compares_whole_components() -> None:
    monitor = MountMonitor([MountSettings("a", "/mnt/a"), MountSettings("ab", "/mnt/a/b"),
                            MountSettings("x", "/mnt/x/")], Timeouts())
    try:
        found = {p: (m.name if m else None) for p in
                 ["/mnt/a", "/mnt/a/f", "/mnt/a/b/f", "/mnt/ab/f", "/mnt/x/y", "/mnt", "/srv"]
                 for m in [monitor.mount_for(p)]}
    finally:
        monitor.close()
    assert found == {"/mnt/a": "a", "/mnt/a/f": "a", "/mnt/a/b/f": "ab", "/mnt/ab/f": None,
                     "/mnt/x/y": "x", "/mnt": None, "/srv": None}


# ---- the gate ------------------------------------------------------------------------------

@pytest.fixture
def gate() -> Iterator[MountGate]:
    g = MountGate("zurg", workers=2, timeout=0.3)
    yield g
    g.close()


def test_gate_returns_results_and_passes_errors_through(gate: MountGate) -> None:
    assert gate.call(sum, [1, 2, 3]) == 6
    with pytest.raises(FileNotFoundError):
        gate.call(Path("/nonexistent/x").stat)
    assert not gate.hung


def test_gate_timeout_marks_hung_and_later_calls_fail_fast(gate: MountGate) -> None:
    release = threading.Event()
    try:
        with pytest.raises(MountTimeout):
            gate.call(release.wait, GENEROUS)
        assert gate.hung
        started = time.monotonic()
        with pytest.raises(MountTimeout):
            gate.call(sum, [1], timeout=GENEROUS)  # would succeed, but the pass gave up
        assert time.monotonic() - started < GENEROUS / 2
        release.set()
        gate.reset()  # next pass
        assert gate.call(sum, [1, 1], timeout=GENEROUS) == 2
    finally:
        release.set()


def test_gate_fails_fast_while_every_worker_is_stuck(gate: MountGate) -> None:
    release = threading.Event()
    try:
        for _ in range(2):
            with pytest.raises(MountTimeout):
                gate.call(release.wait, GENEROUS)
            gate.reset()
        with pytest.raises(MountTimeout, match="stuck"):
            gate.call(sum, [1], timeout=GENEROUS)
    finally:
        release.set()


def test_process_exits_while_a_gate_thread_is_stuck() -> None:
    script = textwrap.dedent("""
        import threading
        from symlinkd.mounts import MountMonitor, MountTimeout
        from symlinkd.settings import MountSettings, Timeouts
        monitor = MountMonitor([MountSettings("zurg", "/mnt/zurg")], Timeouts(op_seconds=0.2))
        try:
            monitor.gate("zurg").call(threading.Event().wait)  # never returns
        except MountTimeout:
            print("timed out")
        monitor.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=GENEROUS, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "timed out"


def test_a_timeout_is_told_in_plain_seconds() -> None:
    """The probe waits for what is left of its deadline (4.99999 s): the reason says 5 s."""
    gate = MountGate("zurg", workers=1, timeout=0.3)
    release = threading.Event()
    try:
        with pytest.raises(MountTimeout) as caught:
            gate.call(release.wait, GENEROUS, timeout=0.29999)
        assert str(caught.value) == "zurg: no answer within 0.3 s"
    finally:
        release.set()
        gate.close()


@pytest.mark.parametrize(("value", "text"), [
    (4.99999, "5 s"), (5.0, "5 s"), (0.29999, "0.3 s"), (2.5, "2.5 s"), (14.06, "14.1 s"),
    (0.0, "0 s"), (0.004, "0 s"), (1799.6, "1799.6 s"),
])
def test_seconds_text(value: float, text: str) -> None:
    assert plain.seconds(value) == text
