"""A small real farm on disk for the repair tests: plain directories play the mounts (the FUSE
tests use real rclone mounts), links are real symlinks, facts are read with lstat/readlink/stat
the way the scanner reads them, so the planner and executor see what they see in production."""

from __future__ import annotations

import errno as errno_mod
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from symlinkd.classifier import classify
from symlinkd.model import (
    EntryKind,
    Judgement,
    LinkFacts,
    LinkHistory,
    MountHealth,
    MountState,
    Verdict,
)
from symlinkd.planner import Plan, make_plan
from symlinkd.settings import MountSettings, Policy

DAY = 86400.0
NOW = 1_800_000_000.0  # a fixed "now" for planner decisions


@dataclass
class Farm:
    root: str  # holds farm/, zurg/, torbox/, quarantine/, state/
    mounts: tuple[MountSettings, ...] = field(default=())

    @property
    def farm(self) -> str:
        return os.path.join(self.root, "farm")

    @property
    def quarantine(self) -> str:
        return os.path.join(self.root, "quarantine")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, "state")

    def media(self, mount: str, rel: str, data: bytes = b"x" * 100) -> str:
        """Create a media file under ``<mount>/<rel>`` and return its absolute path."""
        path = os.path.join(self.root, mount, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def link(self, rel: str | bytes, target: str, *, mtime: float | None = None) -> str:
        path = os.path.join(self.farm, os.fsdecode(rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
        if mtime is not None:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        return path


def make_farm(root: str) -> Farm:
    mounts = (
        MountSettings(name="zurg", path=os.path.join(root, "zurg"), anchor="__all__",
                      require_mountpoint=False),
        MountSettings(name="torbox", path=os.path.join(root, "torbox"), anchor="torrents",
                      require_mountpoint=False),
    )
    for m in mounts:
        # The monitor calls an empty anchor "down" (what a lazily unmounted FUSE looks like).
        os.makedirs(os.path.join(m.anchor_path, "Placeholder"), exist_ok=True)
    os.makedirs(os.path.join(root, "farm"), exist_ok=True)
    return Farm(root=root, mounts=mounts)


def ok_mounts(farm: Farm, **health: MountHealth) -> dict[str, MountState]:
    return {
        m.name: MountState(m.name, m.path, health.get(m.name, MountHealth.OK))
        for m in farm.mounts
    }


def mount_name(path: str, mounts: Iterable[MountSettings]) -> str | None:
    best: MountSettings | None = None
    for m in mounts:
        root = os.path.normpath(m.path)
        if (path == root or path.startswith(root + "/")) and (
            best is None or len(root) > len(best.path)
        ):
            best = m
    return best.name if best else None


def facts_of(path: str, mounts: Iterable[MountSettings]) -> LinkFacts:
    st = os.lstat(path)
    if not os.path.islink(path):
        return LinkFacts(path=path, kind=EntryKind.FILE, link_mtime=st.st_mtime)
    target = os.readlink(path)
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    code: int | None = None
    size: int | None = None
    loop = False
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        code = exc.errno
        loop = exc.errno == errno_mod.ELOOP
    return LinkFacts(
        path=path, kind=EntryKind.SYMLINK, link_mtime=st.st_mtime, target=target,
        resolved=resolved, mount=mount_name(resolved, mounts), errno=code, loop=loop,
        target_size=size,
    )


def judge(facts: LinkFacts, mounts: Mapping[str, MountState], now: float) -> Judgement:
    """The real classifier's (SCAN's) verdict."""
    return classify(facts, mounts, now)


def judge_farm(farm: Farm, mounts: Mapping[str, MountState], now: float) -> list[Judgement]:
    out: list[Judgement] = []
    for where, dirs, files in os.walk(farm.farm):
        for name in sorted([*files, *(d for d in dirs if os.path.islink(os.path.join(where, d)))]):
            out.append(judge(facts_of(os.path.join(where, name), farm.mounts), mounts, now))
    return out


def plan_for(
    farm: Farm,
    judgements: list[Judgement],
    mounts: Mapping[str, MountState],
    policy: Policy,
    *,
    histories: Mapping[str, LinkHistory] | None = None,
    candidates: Mapping[str, list[str]] | None = None,
    now: float,
) -> Plan:
    return make_plan(judgements, mounts, histories or {}, candidates or {}, policy, farm.farm,
                     now)


def snapshot(root: str) -> dict[str, tuple[str, str | None, int]]:
    """Every entry under ``root``: kind, link target, mtime_ns (lstat) — a bit-for-bit view."""
    out: dict[str, tuple[str, str | None, int]] = {}
    for where, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(where, name)
            st = os.lstat(path)
            if os.path.islink(path):
                out[path] = ("link", os.readlink(path), st.st_mtime_ns)
            elif os.path.isdir(path):
                out[path] = ("dir", None, st.st_mtime_ns)
            else:
                out[path] = ("file", None, st.st_mtime_ns)
    return out


def verdicts(judgements: Iterable[Judgement]) -> dict[str, Verdict]:
    return {j.path: j.verdict for j in judgements}


def relinkable_farm(root: str, shows: int) -> tuple[str, str]:
    """A farm of links into zurg's ``__all__`` whose files now sit under ``shows/`` (each one a
    relink: the same path under another top-level folder, no confirmation needed) and a config
    file for the CLI; returns (config path, state dir). Every zurg link dangles, so the breaker
    is opened wide (``breaker_ratio: 1.0``) or it would call the mount degraded."""
    farm = make_farm(root)
    for i in range(shows):
        rel = f"S{i:05d}/e.mkv"
        farm.media("zurg", f"shows/{rel}")
        farm.link(f"Show {i:05d}/{rel}", os.path.join(root, "zurg", "__all__", rel))
    config = os.path.join(root, "symlinkd.yaml")
    with open(config, "w") as f:
        f.write(f"farm: {farm.farm}\nstate_dir: {farm.state_dir}\nmounts:\n")
        for m in farm.mounts:
            f.write(f"  - name: {m.name}\n    path: {m.path}\n    anchor: {m.anchor}\n"
                    "    require_mountpoint: false\n")
        f.write(f"policy:\n  quarantine_dir: {farm.quarantine}\n  max_age_days: 0\n"
                "  breaker_ratio: 1.0\n")
    return config, farm.state_dir


def apply_in_child(tmp_path: os.PathLike[str],
                   paths: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``symlinkd scan --apply`` in a child process, as the operator runs it (the CLI's logging
    setup stays out of the test process), on a config of ``paths`` (farm, state, zurg,
    quarantine) with one plain-directory mount."""
    config = os.path.join(tmp_path, "symlinkd.yaml")
    with open(config, "w") as f:
        f.write(f"farm: {paths['farm']}\nstate_dir: {paths['state']}\n"
                f"mounts:\n  - name: zurg\n    path: {paths['zurg']}\n"
                "    require_mountpoint: false\n"
                f"policy:\n  quarantine_dir: {paths['quarantine']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-m", "symlinkd", "scan", "--apply", "--no-notify",
                           "--config", config], capture_output=True, env=env, timeout=120,
                          check=False, text=True)
