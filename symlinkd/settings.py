"""Effective configuration as typed, frozen values. Loading and validation live in ``config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class Secret:
    """A secret string that never prints itself (repr, str, logs, config check). ``file`` or
    ``env`` say where it came from, so ``config check`` can show the source instead; equality
    looks at the value only."""

    __slots__ = ("_value", "env", "file")

    def __init__(self, value: str, *, file: str | None = None, env: str | None = None) -> None:
        self._value = value
        self.file = file
        self.env = env

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class MountSettings:
    name: str
    path: str
    anchor: str = ""
    rc_url: str | None = None
    require_mountpoint: bool = True

    @property
    def anchor_path(self) -> str:
        return f"{self.path.rstrip('/')}/{self.anchor}" if self.anchor else self.path


@dataclass(frozen=True, slots=True)
class Timeouts:
    probe_seconds: float = 5.0
    op_seconds: float = 10.0
    workers_per_mount: int = 4


@dataclass(frozen=True, slots=True)
class ProbePolicy:
    """The rolling content probe (``policy.probe``): read a little of each link's target through
    the mount so a file the provider expired (listed, but unreadable) is seen before Plex does."""

    enabled: bool = False
    read_bytes: int = 65536  # read at the start of the file (and in the middle, if on)
    middle: bool = False  # also read ``read_bytes`` from the middle (forces a second range GET)
    per_pass: int = 200  # links read per mount per pass
    per_day: int = 5000  # links read per mount per rolling day
    probe_every_days: float = 30.0  # a link not read-verified for this long is "unverified"


@dataclass(frozen=True, slots=True)
class Policy:
    max_age_days: float = 90.0  # 0 disables the age policy
    confirm_after_passes: int = 2
    confirm_after_minutes: float = 60.0
    max_prune: int = 100
    max_prune_ratio: float = 0.05
    breaker_ratio: float = 0.5
    breaker_min_links: int = 10  # the breaker judges a mount only from this many links up
    quarantine_dir: str = "/config/symlinkd/quarantine"
    relink: bool = True
    prune_loops: bool = False
    prune_outside_mounts: bool = False
    include: tuple[str, ...] = ()  # globs relative to the farm; empty = everything
    exclude: tuple[str, ...] = ()
    # A tripped breaker is a rename event, not an outage, when at least this share of the
    # mount's failing links have a verified unique candidate (same name, remembered size).
    rename_ratio: float = 0.8
    max_relink: int | None = None  # None: no count limit (a rename event relinks in bulk)
    max_relink_ratio: float = 1.0
    # rclone vfs/refresh of the folders a candidate is sought in, bounded per pass.
    candidate_refresh_dirs: int = 2000
    candidate_refresh_seconds: float = 60.0
    prune_stale: bool = False  # a confirmed stale link with no copy that reads is pruned
    probe: ProbePolicy = field(default_factory=ProbePolicy)


@dataclass(frozen=True, slots=True)
class MediaServer:
    """Plex or Jellyfin."""

    url: str
    token: Secret
    path_map: tuple[tuple[str, str], ...] = ()  # (symlinkd prefix, server prefix)
    timeout_seconds: float = 10.0
    max_paths_per_section: int = 50


@dataclass(frozen=True, slots=True)
class ArrServer:
    """Sonarr or Radarr."""

    url: str
    api_key: Secret
    path_map: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 10.0
    reacquire: bool = False
    unmonitor_on_age_prune: bool = True


@dataclass(frozen=True, slots=True)
class NotifySettings:
    plex: MediaServer | None = None
    jellyfin: MediaServer | None = None
    sonarr: ArrServer | None = None
    radarr: ArrServer | None = None
    retries: int = 3


WatchMode = Literal["auto", "inotify", "poll", "off"]


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    listen: str = "0.0.0.0:9090"
    scan_interval_minutes: float = 30.0
    scan_cron: str | None = None
    probe_interval_seconds: float = 15.0
    watch: WatchMode = "auto"
    poll_interval_seconds: float = 10.0
    debounce_seconds: float = 1.0
    webhook_token: Secret | None = None
    max_body_bytes: int = 1_048_576
    # Unchanged farm folders are not re-read between passes; every this many hours they are.
    full_rewalk_hours: float = 24.0


def _default_mounts() -> tuple[MountSettings, ...]:
    return (
        MountSettings(name="zurg", path="/mnt/media/zurg", anchor="__all__"),
        MountSettings(name="torbox", path="/mnt/media/torbox", anchor="torrents"),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    farm: str = "/mnt/media/stream"
    state_dir: str = "/config/symlinkd"
    mounts: tuple[MountSettings, ...] = field(default_factory=_default_mounts)
    timeouts: Timeouts = field(default_factory=Timeouts)
    policy: Policy = field(default_factory=Policy)
    notify: NotifySettings = field(default_factory=NotifySettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
