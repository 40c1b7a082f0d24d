"""``quarantine purge --apply`` with real rclone mounts *inside* ``quarantine_dir`` (issue 9,
finding 1): one mount point even named like a run in the journal. Config validation would refuse
this layout; purge must be safe without it, so the settings are built directly (and without the
mounts listed, so only the purge rule itself stands between the remote and deletion)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from symlinkd.journal_cmds import cmd_quarantine_purge
from symlinkd.settings import Policy, Settings
from symlinkd.state import StateDB
from tests.fuse.rig import FuseRig, missing_requirements

pytestmark = pytest.mark.fuse


def remote_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def rig_in_quarantine(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[str], FuseRig]:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(f"real FUSE tests need rclone, fusermount and /dev/fuse: {reason}")

    def build(zurg_name: str) -> FuseRig:
        rig = FuseRig(tmp_path)
        rig["zurg"].mountpoint = rig.quarantine_dir / zurg_name
        rig["torbox"].mountpoint = rig.quarantine_dir / "torbox"
        request.addfinalizer(rig.close)
        rig.start()
        return rig

    return build


def test_purge_leaves_real_rclone_mounts_in_the_quarantine_whole(
    rig_in_quarantine: Callable[[str], FuseRig], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = StateDB(str(tmp_path / "state"))
    mounted_run = state.begin_run("full", True)  # a run in the journal, named like the mount
    real_run = state.begin_run("full", True)
    state.close()
    rig = rig_in_quarantine(mounted_run)
    rig.put("zurg", "__all__/Show.S01/e1.mkv", b"zurg bytes")
    rig.put("zurg", "__all__/Film.2020/film.mkv", b"more zurg bytes")
    rig.put("torbox", "torrents/Other/o.mkv", b"torbox bytes")
    rig.refresh("zurg", recursive=True)
    rig.refresh("torbox", recursive=True)
    assert rig.is_mounted("zurg") and rig.is_mounted("torbox")
    assert (rig["zurg"].mountpoint / "__all__" / "Show.S01" / "e1.mkv").exists()
    before = {name: remote_files(rig[name].server_root) for name in ("zurg", "torbox")}
    # What symlinkd did put there: a run folder with a pruned link.
    pruned = rig.quarantine_dir / real_run / "Show" / "e2.mkv"
    pruned.parent.mkdir(parents=True)
    os.symlink(rig["zurg"].mountpoint / "__all__" / "gone.mkv", pruned)

    settings = Settings(farm=str(rig.farm), state_dir=str(rig.state_dir), mounts=(),
                        policy=Policy(quarantine_dir=str(rig.quarantine_dir)))
    cmd_quarantine_purge(settings, older_than_days=0, apply=True)
    out = capsys.readouterr().out

    assert not os.path.lexists(rig.quarantine_dir / real_run)  # symlinkd's own: purged
    for name in ("zurg", "torbox"):
        assert remote_files(rig[name].server_root) == before[name], name
        assert rig.is_mounted(name), name
    assert "another device" in out or "not a folder on the quarantine's device" in out, out
    assert "torbox" in out, out

    # Listed as mounts too (what a config would say): still whole, still reported.
    listed = Settings(farm=str(rig.farm), state_dir=str(rig.state_dir),
                      mounts=rig.mount_settings(),
                      policy=Policy(quarantine_dir=str(rig.quarantine_dir)))
    cmd_quarantine_purge(listed, older_than_days=0, apply=True)
    for name in ("zurg", "torbox"):
        assert remote_files(rig[name].server_root) == before[name], name
