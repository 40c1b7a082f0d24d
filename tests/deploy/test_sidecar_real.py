"""The rclone sidecars as rendered, run for real on this machine: init-dirs' script, rclone with
the sidecar's exact arguments (paths moved under a temp dir, the remote an alias of a local
folder), its postStart hook, its three probes and its preStop hook. Catches what no schema can:
a flag this rclone does not know, a probe that never matches /proc/mounts, a hook that hangs."""

from __future__ import annotations

import os
import subprocess
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


@pytest.mark.fuse
@pytest.mark.parametrize("remote", sorted(ANCHORS))
def test_sidecar_mounts_probes_and_unmounts(remote: str, tmp_path: Path) -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"needs a real FUSE mount: {reason}")
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

    log = tmp_path / "rclone.log"
    with log.open("wb") as log_file:
        rclone = subprocess.Popen(
            ["rclone", *sidecar["args"]], env=env, stdout=log_file, stderr=log_file,
            preexec_fn=die_with_parent())  # noqa: PLW1509 - only calls prctl
    try:
        # The kubelet runs postStart and holds the app container back until it returns 0.
        post_start = sidecar["lifecycle"]["postStart"]["exec"]["command"]
        assert _run(post_start, env, 150) == 0, log.read_text()
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert _run(sidecar[probe]["exec"]["command"], env, 30) == 0, probe
        assert (mount_point / ANCHORS[remote] / "Movies" / "A.mkv").stat().st_size == 1024

        pre_stop = sidecar["lifecycle"]["preStop"]["exec"]["command"]
        assert _run(pre_stop, env, 30) == 0
        assert _run(sidecar["readinessProbe"]["exec"]["command"], env, 30) != 0
        assert not (mount_point / ANCHORS[remote]).exists()
    finally:
        stop_process(rclone)
        subprocess.run(["fusermount3", "-uz", str(mount_point)], capture_output=True, check=False)
