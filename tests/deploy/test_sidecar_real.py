"""The rclone sidecars as rendered, run for real on this machine: init-dirs' script, the
sidecar's exact command and arguments (paths moved under a temp dir, the remote an alias of a
local folder), its postStart hook, its three probes and its preStop hook. Catches what no schema
can: a flag this rclone does not know, a probe that never matches /proc/mounts, a hook that
hangs, a restarted sidecar that cannot mount over the dead mount its crashed predecessor left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import Doc, by_kind, rendered
from tests.fuse.host import die_with_parent, free_port, missing_requirements, stop_process

ANCHORS = {"zurg": "__all__", "torbox": "torrents"}


def _pod() -> Doc:
    spec: Doc = by_kind(list(rendered("overlays/kubernetes")), "Deployment")["plex"]["spec"][
        "template"]["spec"]
    return spec


def _relocate(value: Any, moves: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in moves.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_relocate(v, moves) for v in value]
    if isinstance(value, dict):
        return {k: _relocate(v, moves) for k, v in value.items()}
    return value


def _run(command: list[str], env: dict[str, str], timeout: float) -> int:
    return subprocess.run(command, env=env, capture_output=True, timeout=timeout,
                          check=False).returncode


def _start(sidecar: Doc, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The container's process: its command with its args, as the kubelet runs it."""
    with log.open("ab") as log_file:
        return subprocess.Popen(
            [*sidecar["command"], *sidecar["args"]], env=env, stdout=log_file, stderr=log_file,
            preexec_fn=die_with_parent())  # noqa: PLW1509 - only calls prctl


def _prepare(remote: str, tmp_path: Path) -> tuple[Doc, Doc, dict[str, str], Path]:
    spec = _pod()
    sidecar = next(c for c in spec["containers"] if c["name"] == f"rclone-{remote}")
    init = next(c for c in spec["initContainers"] if c["name"] == "init-dirs")

    cloud = tmp_path / "cloud"
    (cloud / ANCHORS[remote] / "Movies").mkdir(parents=True)
    (cloud / ANCHORS[remote] / "Movies" / "A.mkv").write_bytes(b"x" * 1024)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "rclone.conf").write_text(f"[{remote}]\ntype = alias\nremote = {cloud}\n")
    rc_addr = next(a.split("=", 1)[1] for a in sidecar["args"] if a.startswith("--rc-addr="))
    moves = {"/mnt/media": str(tmp_path / "media"), "/config/rclone": str(config_dir),
             "/cache": str(tmp_path / "cache"), rc_addr: f"127.0.0.1:{free_port()}"}
    sidecar = _relocate(sidecar, moves)
    init = _relocate(init, moves)
    mount_point = tmp_path / "media" / remote

    env = {**os.environ, "APP_NAME": "plex", "CONFIG_OWNER": "",
           **{e["name"]: e["value"] for e in sidecar.get("env", [])}}
    assert _run(init["command"], env, 30) == 0
    assert mount_point.is_dir()
    return sidecar, init, env, mount_point


def _skip_without_fuse() -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"needs a real FUSE mount: {reason}")


@pytest.mark.fuse
@pytest.mark.parametrize("remote", sorted(ANCHORS))
def test_sidecar_mounts_probes_and_unmounts(remote: str, tmp_path: Path) -> None:
    _skip_without_fuse()
    sidecar, _, env, mount_point = _prepare(remote, tmp_path)
    log = tmp_path / "rclone.log"
    rclone = _start(sidecar, env, log)
    try:
        # The kubelet runs postStart and holds the app container back until it returns 0.
        post_start = sidecar["lifecycle"]["postStart"]["exec"]["command"]
        assert _run(post_start, env, 150) == 0, log.read_text()
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert _run(sidecar[probe]["exec"]["command"], env, 30) == 0, probe
        assert (mount_point / ANCHORS[remote] / "Movies" / "A.mkv").stat().st_size == 1024

        pre_stop = sidecar["lifecycle"]["preStop"]["exec"]["command"]
        assert _run(pre_stop, env, 30) == 0
        assert _run(sidecar["livenessProbe"]["exec"]["command"], env, 30) != 0
        assert not (mount_point / ANCHORS[remote]).exists()
    finally:
        stop_process(rclone)
        subprocess.run(["fusermount3", "-uz", str(mount_point)], capture_output=True, check=False)


def _mounted(mount_point: Path) -> bool:
    return f" {mount_point} fuse.rclone " in Path("/proc/mounts").read_text()


@pytest.mark.fuse
@pytest.mark.parametrize("remote", sorted(ANCHORS))
def test_restarted_sidecar_mounts_over_the_dead_mount_of_a_killed_one(
        remote: str, tmp_path: Path) -> None:
    """Issue 11 finding 2: rclone OOM-killed (SIGKILL: no preStop, no unmount) leaves a FUSE
    mount whose every access fails with "transport endpoint is not connected"; the kubelet
    restarts the container in the same pod, onto that mount point."""
    _skip_without_fuse()
    sidecar, _, env, mount_point = _prepare(remote, tmp_path)
    log = tmp_path / "rclone.log"
    first = _start(sidecar, env, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        post_start = sidecar["lifecycle"]["postStart"]["exec"]["command"]
        assert _run(post_start, env, 150) == 0 and _mounted(mount_point), log.read_text()
        # the kill: rclone (exec'd by the sidecar's shell, so this is rclone itself) dies hard
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        with pytest.raises(OSError):  # ENOTCONN: the dead mount is still there
            os.stat(mount_point / ANCHORS[remote])
        assert _mounted(mount_point)
        # liveness says so, the restart clears it and mounts again
        assert _run(sidecar["livenessProbe"]["exec"]["command"], env, 30) != 0
        second = _start(sidecar, env, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and second.poll() is None:
            if _run(sidecar["livenessProbe"]["exec"]["command"], env, 30) == 0:
                break
            time.sleep(0.5)
        assert second.poll() is None, log.read_text()
        assert _run(sidecar["livenessProbe"]["exec"]["command"], env, 30) == 0, log.read_text()
        assert (mount_point / ANCHORS[remote] / "Movies" / "A.mkv").stat().st_size == 1024
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        for _ in range(3):
            subprocess.run(["fusermount3", "-uz", str(mount_point)], capture_output=True,
                           check=False)
