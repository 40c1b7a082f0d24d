"""``symlinkd demo``: a throw-away farm and two "mounts" (plain folders) in a temp dir, with one
of each kind of link a real farm grows, scanned by the real pass. Needs nothing but the package."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace

import yaml
from rich.console import Console
from rich.text import Text

from symlinkd.config import effective_config
from symlinkd.settings import DaemonSettings, MountSettings, Policy, Settings

DAY = 86400.0
_SHOW = "Shows/ShowX/Season 01"


def build_demo_farm(root: str, now: float) -> Settings:
    """Builds ``root/{stream,zurg,torbox,elsewhere,state}`` and returns settings for it.

    In the farm (``stream``): healthy links (absolute and relative), a whole-folder link, one
    link whose file moved from zurg to torbox (relinkable), one whose file is gone (dangling,
    awaiting confirmation), a link 120 days old (pruned by age), a loop, a link outside the
    mounts, a regular file, and a name with spaces and unicode."""
    root = os.path.abspath(root)
    farm, zurg, torbox = (os.path.join(root, n) for n in ("stream", "zurg", "torbox"))
    elsewhere = os.path.join(root, "elsewhere")

    zurg_files = [
        f"__all__/{_SHOW}/ShowX.S01E01.1080p.mkv",
        f"__all__/{_SHOW}/ShowX.S01E02.1080p.mkv",
        "__all__/Shows/ShowY/Season 02/ShowY.S02E01.mkv",
        "__all__/Movies/Heat (1995)/Heat.1995.2160p.mkv",
    ]
    torbox_files = [
        f"torrents/{_SHOW}/ShowX.S01E03.1080p.mkv",  # moved here from zurg: relinkable
        "torrents/Movies/Old Film (2001)/Old.Film.2001.mkv",
        "usenet/Movies/Amélie (2001)/Amélie 2001 ☕.mkv",
    ]
    for base, names in ((zurg, zurg_files), (torbox, torbox_files)):
        for name in names:
            _write(os.path.join(base, name), b"\0" * 1024)
    os.makedirs(os.path.join(torbox, "usenet"), exist_ok=True)
    _write(os.path.join(elsewhere, "Home Video.mkv"), b"\0" * 64)

    def link(rel: str, target: str, age_days: float = 1.0) -> None:
        path = os.path.join(farm, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
        stamp = now - age_days * DAY
        os.utime(path, (stamp, stamp), follow_symlinks=False)

    season = os.path.join(farm, _SHOW)
    link(f"{_SHOW}/ShowX.S01E01.1080p.mkv", os.path.join(zurg, zurg_files[0]))
    # relative, the way some tools write them
    link(f"{_SHOW}/ShowX.S01E02.1080p.mkv",
         os.path.relpath(os.path.join(zurg, zurg_files[1]), season))
    link(f"{_SHOW}/ShowX.S01E03.1080p.mkv",
         os.path.join(zurg, f"__all__/{_SHOW}/ShowX.S01E03.1080p.mkv"))
    link("Shows/ShowY", os.path.join(zurg, "__all__/Shows/ShowY"))  # a whole show folder
    link("Movies/Heat (1995)/Heat.1995.2160p.mkv", os.path.join(zurg, zurg_files[3]))
    link("Movies/Gone Girl (2014)/Gone.Girl.2014.mkv",
         os.path.join(zurg, "__all__/Movies/Gone Girl (2014)/Gone.Girl.2014.mkv"))
    link("Movies/Old Film (2001)/Old.Film.2001.mkv", os.path.join(torbox, torbox_files[1]),
         age_days=120)
    link("Movies/Amélie (2001)/Amélie 2001 ☕.mkv", os.path.join(torbox, torbox_files[2]))
    link("Movies/Home Video/Home Video.mkv", os.path.join(elsewhere, "Home Video.mkv"))
    link("Movies/Broken/loop-a.mkv", "loop-b.mkv")
    link("Movies/Broken/loop-b.mkv", "loop-a.mkv")
    _write(os.path.join(season, "ShowX.S01E01.en.srt"), b"1\n00:00:01,000 --> 00:00:02,000\nHi\n")

    state_dir = os.path.join(root, "state")
    settings = Settings(
        farm=farm,
        state_dir=state_dir,
        mounts=(
            MountSettings(name="zurg", path=zurg, anchor="__all__", require_mountpoint=False),
            MountSettings(name="torbox", path=torbox, anchor="torrents",
                          require_mountpoint=False),
        ),
        policy=replace(Policy(), quarantine_dir=os.path.join(root, "quarantine")),
        daemon=DaemonSettings(listen="127.0.0.1:0", watch="off"),
    )
    # So `symlinkd scan --config ROOT/symlinkd.yaml` works on a kept demo farm.
    with open(os.path.join(root, "symlinkd.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(effective_config(settings), handle, sort_keys=False, allow_unicode=True)
    return settings


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def run_demo(*, apply: bool, keep: bool, as_json: bool, verbose: bool) -> int:
    """Builds the demo farm, runs one pass (dry run unless ``apply``), prints the report and what
    to try next, removes the temp dir unless ``keep``. Returns 0 when the pass ran (the
    scan's own code, 1, is in the JSON), else the pass's exit code."""
    # The scan engine is imported only when the demo runs (`symlinkd --help` stays quick).
    from symlinkd.logs import configure_logging  # noqa: PLC0415
    from symlinkd.report import exit_code  # noqa: PLC0415
    from symlinkd.runtime import PassOptions  # noqa: PLC0415
    from symlinkd.scan_cmd import run_pass, show, stdout_console  # noqa: PLC0415

    configure_logging(stream=sys.stderr, level=logging.INFO if verbose else logging.WARNING)
    root = tempfile.mkdtemp(prefix="symlinkd-demo-")
    try:
        settings = build_demo_farm(root, time.time())
        report = run_pass(settings, PassOptions(apply=apply, notify=False),
                          show_progress=not as_json)
        show(report, settings, as_json=as_json, all_links=False)
        if as_json and keep:
            print(f"symlinkd demo: kept {root}", file=sys.stderr)
        if not as_json:
            _next_steps(stdout_console(), settings, apply=apply, keep=keep)
        # The demo farm is broken on purpose: finding (or fixing) its problems is success, so a
        # newcomer's `pip install . && symlinkd demo` ends with 0. A refused plan (3) is not.
        code = exit_code(report)
        return 0 if code == 1 else code
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _next_steps(console: Console, settings: Settings, *, apply: bool, keep: bool) -> None:
    lines = ["", f"The demo farm is {settings.farm}; zurg and torbox are plain folders next to it."]
    if not apply:
        lines.append("Try `symlinkd demo --apply` to see the repairs carried out "
                     "(relink, prune into the quarantine).")
    if keep:
        root = os.path.dirname(settings.farm)
        lines.append(f"Kept. Scan it again: symlinkd scan --config {root}/symlinkd.yaml  "
                     f"(remove {root} when done)")
    else:
        lines.append("The temp dir was removed (`--keep` keeps it).")
    for line in lines:
        console.print(Text(line))
