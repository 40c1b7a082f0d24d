"""Real rclone FUSE mounts over local WebDAV servers, for tests (ARCHITECTURE.md, "Real parts").

A ``FuseRig`` plays the debrid clouds of the stack: one WebDAV server per mount (PyPI ``wsgidav``
+ ``cheroot``, each in its own subprocess so it can be stopped) holding a plain directory — the
"cloud" — and one foreground ``rclone mount`` of it with the remote-control API on. Tests create
and delete files on the cloud side (``server_path``), read the farm through the mount side
(``mount_path``), and break a mount the ways it breaks in production:

    kill9    rclone dies          -> ENOTCONN on everything under the mount point
    stop     rclone SIGSTOPped     -> every call into the mount blocks until ``cont``
    unmount_lazy  fusermount -uz   -> the mount point is an empty directory again
    stop_webdav   backend gone    -> uncached lookups block ~20 s (rclone retries) then EIO;
                                     names missing from a still-cached listing give ENOENT at once

Cleanup always happens (``close`` is idempotent and runs from a pytest finalizer): SIGCONT before
SIGKILL, ``fusermount -uz``, servers terminated. Children also get ``PR_SET_PDEATHSIG`` so a
killed pytest never leaves a live rclone behind, and a stopped rclone is resumed by a timer after
``stop(max_seconds=...)`` so a buggy caller hangs a bounded time, never forever.

Never ``stat`` a path under a stopped or dead mount from the test's main thread: use ``bounded``
(a daemon thread with a timeout) — a thread blocked on a stopped rclone cannot be cancelled.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from symlinkd.settings import MountSettings, Policy, Settings, Timeouts
from tests.fuse.host import (
    BoundedTimeout,
    bounded,
    die_with_parent,
    free_port,
    missing_requirements,
    mounted_at,
    stat_errno,
    stop_process,
    wait_for,
)

_REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "LAYOUT",
    "BoundedTimeout",
    "FuseRig",
    "RigMount",
    "bounded",
    "missing_requirements",
    "mounted_at",
    "stat_errno",
    "wait_for",
]


# Folders at the root of each cloud, first one is the mount's anchor (as in the stack's config).
LAYOUT: Mapping[str, tuple[str, ...]] = {
    "zurg": ("__all__",),
    "torbox": ("torrents", "usenet"),
}

MOUNT_TIMEOUT_S = 20.0  # a healthy rclone mounts in well under a second here


@dataclass
class RigMount:
    """One cloud: its WebDAV server, its rclone mount, and where both live on disk."""

    name: str
    server_root: Path  # the cloud's content; edit files here
    mountpoint: Path  # the rclone mount of it
    anchor: str
    rc_port: int
    webdav_port: int = 0
    log_path: Path = field(default=Path())
    rclone: subprocess.Popen[bytes] | None = None
    webdav: subprocess.Popen[bytes] | None = None
    resume_timer: threading.Timer | None = None
    mount_seconds: float = 0.0  # how long the last mount took to appear in mountinfo

    @property
    def rc_url(self) -> str:
        return f"http://127.0.0.1:{self.rc_port}"

    @property
    def webdav_url(self) -> str:
        return f"http://127.0.0.1:{self.webdav_port}/"

    @property
    def anchor_path(self) -> Path:
        return self.mountpoint / self.anchor

    def server_path(self, rel: str = "") -> Path:
        return self.server_root / rel if rel else self.server_root

    def mount_path(self, rel: str = "") -> Path:
        return self.mountpoint / rel if rel else self.mountpoint

    def settings(self, *, rc: bool = True) -> MountSettings:
        return MountSettings(
            name=self.name,
            path=str(self.mountpoint),
            anchor=self.anchor,
            rc_url=self.rc_url if rc else None,
        )


class FuseRig:
    """WebDAV servers + rclone mounts + a farm directory in ``base``. Use as a context manager."""

    def __init__(
        self,
        base: str | os.PathLike[str],
        *,
        names: Sequence[str] = ("zurg", "torbox"),
        dir_cache_time: str = "2s",
        attr_timeout: str = "100ms",
        extra_rclone_args: Sequence[str] = (),
    ) -> None:
        self.base = Path(base).resolve()
        self.farm = self.base / "farm"
        self.state_dir = self.base / "state"
        self.quarantine_dir = self.base / "quarantine"
        self.dir_cache_time = dir_cache_time
        self.attr_timeout = attr_timeout
        self.extra_rclone_args = tuple(extra_rclone_args)
        self._rclone_config = self.base / "rclone.conf"
        self._closed = False
        self.mounts: dict[str, RigMount] = {}
        for name in names:
            if name not in LAYOUT:
                raise ValueError(f"unknown rig mount {name!r}; known: {sorted(LAYOUT)}")
            self.mounts[name] = RigMount(
                name=name,
                server_root=self.base / "cloud" / name,
                mountpoint=self.base / "mnt" / name,
                anchor=LAYOUT[name][0],
                rc_port=0,
                log_path=self.base / f"rclone-{name}.log",
            )

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> FuseRig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for path in (self.farm, self.state_dir):
            path.mkdir(parents=True, exist_ok=True)
        for mount in self.mounts.values():
            for folder in LAYOUT[mount.name]:
                (mount.server_root / folder).mkdir(parents=True, exist_ok=True)
            mount.mountpoint.mkdir(parents=True, exist_ok=True)
            self.start_webdav(mount.name)
        self._write_rclone_config()
        for mount in self.mounts.values():
            self._start_rclone(mount)

    def close(self) -> None:
        """Stop everything; safe to call twice and after any failure mode."""
        if self._closed:
            return
        self._closed = True
        for mount in self.mounts.values():
            if mount.resume_timer is not None:
                mount.resume_timer.cancel()
            self._kill_rclone(mount)
            self._fusermount_lazy(mount.mountpoint)
        for mount in self.mounts.values():
            stop_process(mount.webdav)
            mount.webdav = None

    def __getitem__(self, name: str) -> RigMount:
        return self.mounts[name]

    # ---------------------------------------------------------------- webdav
    def start_webdav(self, name: str) -> None:
        """(Re)start the cloud's server; a restart reuses the port rclone is configured with."""
        mount = self.mounts[name]
        if mount.webdav is not None and mount.webdav.poll() is None:
            return
        # An explicit port even the first time: cheroot sets SO_REUSEADDR only for explicit ports,
        # and the connections of a port-0 server would block rebinding it after stop_webdav.
        fixed = mount.webdav_port != 0
        last = ""
        for _attempt in range(1 if fixed else 3):
            port = mount.webdav_port if fixed else free_port()
            proc, last = self._spawn_webdav(mount, port)
            if proc is not None:
                mount.webdav, mount.webdav_port = proc, port
                return
        raise RuntimeError(f"WebDAV server for {name} did not start:\n{last}")

    def _spawn_webdav(
        self, mount: RigMount, port: int
    ) -> tuple[subprocess.Popen[bytes] | None, str]:
        log = self.base / f"webdav-{mount.name}.log"
        server = Path(__file__).resolve().with_name("webdav_server.py")
        cmd = [sys.executable, str(server), str(mount.server_root), str(port),
               str(self._control(mount.name)), str(self._reads(mount.name))]
        with open(log, "ab") as log_handle:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=log_handle,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only calls prctl
            )
        assert proc.stdout is not None
        line = bounded(proc.stdout.readline, 20.0)
        if line.strip() == str(port).encode():
            return proc, ""
        stop_process(proc)
        return None, log.read_text(errors="replace")[-2000:]

    def _control(self, name: str) -> Path:
        return self.base / f"webdav-{name}.faults.json"

    def _reads(self, name: str) -> Path:
        return self.base / f"webdav-{name}.reads"

    def fail_reads(self, name: str, rel: str, mode: str | None) -> None:
        """Make the cloud's GETs of ``rel`` fail (``"404"``, ``"500"``, ``"reset"``, ``"hang"``)
        while it stays listed — an expired file; ``None`` heals it."""
        path = self._control(name)
        faults = json.loads(path.read_text()) if path.exists() else {}
        key = "/" + rel.lstrip("/")
        if mode is None:
            faults.pop(key, None)
        else:
            faults[key] = mode
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        tmp.replace(path)

    def reads(self, name: str) -> list[str]:
        """Every GET of a file the cloud served (or failed), in order: '/torrents/x.mkv'."""
        path = self._reads(name)
        return path.read_text().splitlines() if path.exists() else []

    def stop_webdav(self, name: str) -> None:
        """The backend goes away; rclone stays mounted and retries."""
        mount = self.mounts[name]
        stop_process(mount.webdav)
        mount.webdav = None

    # ---------------------------------------------------------------- rclone
    def _write_rclone_config(self) -> None:
        sections = [
            f"[{m.name}]\ntype = webdav\nurl = {m.webdav_url}\nvendor = other\n"
            for m in self.mounts.values()
        ]
        self._rclone_config.write_text("\n".join(sections))

    def _start_rclone(self, mount: RigMount) -> None:
        last_error = ""
        # A remount keeps its rc port so Settings and config files built earlier stay valid
        # (Go listens with SO_REUSEADDR); a first start picks a free one, which another process
        # can take between our probe and rclone's bind, hence the retries.
        keep = mount.rc_port != 0
        for _attempt in range(3):
            if not keep:
                mount.rc_port = free_port()
            cmd = [
                "rclone", "mount", f"{mount.name}:", str(mount.mountpoint),
                "--config", str(self._rclone_config),
                "--rc", "--rc-addr", f"127.0.0.1:{mount.rc_port}", "--rc-no-auth",
                "--dir-cache-time", self.dir_cache_time,
                "--attr-timeout", self.attr_timeout,
                "--allow-non-empty",
                "--log-file", str(mount.log_path), "--log-level", "INFO",
                *self.extra_rclone_args,
            ]
            started = time.monotonic()
            mount.rclone = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only calls prctl
            )
            proc = mount.rclone
            try:
                wait_for(
                    lambda p=proc: p.poll() is not None or mounted_at(mount.mountpoint),  # type: ignore[misc]
                    MOUNT_TIMEOUT_S,
                    f"rclone mount of {mount.name} at {mount.mountpoint}",
                )
            except TimeoutError:
                self._kill_rclone(mount)
                raise
            if proc.poll() is None:
                mount.mount_seconds = time.monotonic() - started
                self._wait_rc(mount)
                return
            last_error = self._log_tail(mount)
        raise RuntimeError(f"rclone mount of {mount.name} failed:\n{last_error}")

    def _wait_rc(self, mount: RigMount) -> None:
        def answers() -> bool:
            try:
                return httpx.post(f"{mount.rc_url}/rc/noop", json={}, timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(answers, MOUNT_TIMEOUT_S, f"rclone rc of {mount.name} at {mount.rc_url}")

    def _log_tail(self, mount: RigMount) -> str:
        try:
            return mount.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no rclone log)"

    def _kill_rclone(self, mount: RigMount) -> None:
        proc = mount.rclone
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait(10)

    def _fusermount_lazy(self, mountpoint: Path) -> None:
        # Lazy (-z) detaches even while requests are blocked in the mount; a dead rclone's mount
        # stays in mountinfo until someone does this.
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
        for _ in range(3):
            if not mounted_at(mountpoint):
                return
            subprocess.run(
                [tool, "-uz", str(mountpoint)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=10,
            )
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not mounted_at(mountpoint), 5, f"unmount of {mountpoint}")

    # ---------------------------------------------------------------- failure modes
    def kill9(self, name: str, *, settle: bool = True) -> None:
        """SIGKILL rclone: the mount stays in mountinfo and every call fails with ENOTCONN.

        ``settle`` waits until the kernel stops answering from its attribute/dentry cache (about
        ``attr_timeout`` after the kill) so callers can assert right away.
        """
        mount = self.mounts[name]
        self._kill_rclone(mount)
        if settle:
            wait_for(
                lambda: stat_errno(mount.anchor_path) == errno.ENOTCONN,
                10, f"ENOTCONN on {mount.anchor_path}",
            )
            time.sleep(_seconds(self.attr_timeout) + 0.5)

    def stop(self, name: str, *, max_seconds: float = 60.0) -> None:
        """SIGSTOP rclone: every call into the mount blocks until ``cont``.

        A timer resumes it after ``max_seconds`` anyway, so code under test that wrongly blocks
        costs that long and then fails, instead of hanging the test run.
        """
        mount = self.mounts[name]
        if mount.rclone is None or mount.rclone.poll() is not None:
            raise RuntimeError(f"{name}: rclone is not running, nothing to stop")
        mount.rclone.send_signal(signal.SIGSTOP)
        timer = threading.Timer(max_seconds, self.cont, args=(name,))
        timer.daemon = True
        timer.start()
        mount.resume_timer = timer

    def cont(self, name: str) -> None:
        mount = self.mounts[name]
        if mount.resume_timer is not None:
            mount.resume_timer.cancel()
            mount.resume_timer = None
        if mount.rclone is not None and mount.rclone.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                mount.rclone.send_signal(signal.SIGCONT)

    def unmount_lazy(self, name: str) -> None:
        """``fusermount -uz``: the mount point is an empty directory again; rclone exits."""
        mount = self.mounts[name]
        self.cont(name)
        self._fusermount_lazy(mount.mountpoint)
        if mount.rclone is not None:
            try:
                mount.rclone.wait(10)
            except subprocess.TimeoutExpired:
                self._kill_rclone(mount)

    def remount(self, name: str) -> None:
        """Whatever state the mount is in, make it a fresh healthy mount again."""
        mount = self.mounts[name]
        self.cont(name)
        self._kill_rclone(mount)
        self._fusermount_lazy(mount.mountpoint)
        self.start_webdav(name)
        self._start_rclone(mount)

    def is_mounted(self, name: str) -> bool:
        return mounted_at(self.mounts[name].mountpoint)

    def rclone_running(self, name: str) -> bool:
        proc = self.mounts[name].rclone
        return proc is not None and proc.poll() is None

    # ---------------------------------------------------------------- cloud + farm content
    def put(self, name: str, rel: str, data: bytes = b"video bytes\n") -> Path:
        """Create a file on the cloud (server side). ``rel`` starts with a layout folder."""
        path = self.mounts[name].server_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def remove(self, name: str, rel: str) -> None:
        path = self.mounts[name].server_path(rel)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    def rename(self, name: str, old_rel: str, new_rel: str) -> None:
        src, dst = self.mounts[name].server_path(old_rel), self.mounts[name].server_path(new_rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)

    def link(self, farm_rel: str, name: str, rel: str) -> Path:
        """Farm symlink ``farm/farm_rel`` -> ``<mountpoint>/rel`` (absolute, like rdt-client)."""
        link = self.farm / farm_rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(self.mounts[name].mount_path(rel), link)
        return link

    def refresh(self, name: str, dirs: Sequence[str] = ("",), *, recursive: bool = False) -> Any:
        """rclone ``vfs/refresh`` of mount-relative dirs ("" is the root)."""
        body: dict[str, str] = {f"dir{i + 1 if i else ''}": d for i, d in enumerate(dirs)}
        if recursive:
            body["recursive"] = "true"
        response = httpx.post(f"{self.mounts[name].rc_url}/vfs/refresh", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def farm_snapshot(self) -> dict[str, tuple[str, int]]:
        """Every farm symlink -> (target, mtime_ns) from lstat only: never touches a mount
        (``os.walk`` would: its ``is_dir`` follows each symlink into the mount, which blocks
        ~20 s a link with the WebDAV server down)."""
        snapshot: dict[str, tuple[str, int]] = {}
        folders = [str(self.farm)]
        while folders:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        snapshot[os.path.relpath(entry.path, self.farm)] = (
                            os.readlink(entry.path),
                            entry.stat(follow_symlinks=False).st_mtime_ns,
                        )
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
        return snapshot

    # ---------------------------------------------------------------- symlinkd settings
    def mount_settings(self, *, rc: bool = True) -> tuple[MountSettings, ...]:
        return tuple(m.settings(rc=rc) for m in self.mounts.values())

    def settings(
        self,
        *,
        timeouts: Timeouts | None = None,
        policy: Policy | None = None,
        rc: bool = True,
    ) -> Settings:
        """Settings pointing at the rig (farm, state, quarantine in ``base``)."""
        return Settings(
            farm=str(self.farm),
            state_dir=str(self.state_dir),
            mounts=self.mount_settings(rc=rc),
            timeouts=timeouts or Timeouts(probe_seconds=2.0, op_seconds=3.0),
            policy=policy or Policy(quarantine_dir=str(self.quarantine_dir)),
        )

    def config_dict(
        self,
        *,
        timeouts: Mapping[str, float] | None = None,
        policy: Mapping[str, Any] | None = None,
        rc: bool = True,
        **sections: Any,
    ) -> dict[str, Any]:
        """The YAML config (ARCHITECTURE.md keys) for ``symlinkd --config`` against the rig.

        ``sections`` adds or replaces top-level keys, e.g. ``daemon={"listen": "127.0.0.1:0"}``
        or ``notify={...}``.
        """
        mounts = []
        for m in self.mounts.values():
            entry: dict[str, Any] = {"name": m.name, "path": str(m.mountpoint), "anchor": m.anchor}
            if rc:
                entry["rc_url"] = m.rc_url
            mounts.append(entry)
        return {
            "farm": str(self.farm),
            "state_dir": str(self.state_dir),
            "mounts": mounts,
            "timeouts": dict(timeouts or {"probe_seconds": 2, "op_seconds": 3}),
            "policy": {"quarantine_dir": str(self.quarantine_dir), **(policy or {})},
            **sections,
        }

    def write_config(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Path:
        target = Path(path) if path is not None else self.base / "symlinkd.yaml"
        target.write_text(yaml.safe_dump(self.config_dict(**kwargs), sort_keys=False))
        return target

    # ---------------------------------------------------------------- the CLI as a process
    def cli_env(self) -> dict[str, str]:
        """Environment for a ``symlinkd`` child: this tree first on the path, no stray
        ``SYMLINKD_*`` overrides from the developer's shell."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYMLINKD_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
        return env

    def cli_argv(self, *args: str) -> list[str]:
        """``python -m symlinkd ARGS`` with this interpreter (for ``Popen`` of the daemon too)."""
        return [sys.executable, "-m", "symlinkd", *args]

    def run_cli(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[bytes]:
        """Run ``symlinkd ARGS`` to completion in ``base``; raises ``TimeoutExpired`` (and kills
        it) when it does not end in ``timeout`` seconds."""
        return subprocess.run(
            self.cli_argv(*args), capture_output=True, env=self.cli_env(), cwd=self.base,
            timeout=timeout, check=False,
        )


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)
