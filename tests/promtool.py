"""``promtool`` for tests (``check metrics`` on a scrape, ``check rules``/``test rules``).

Found in this order: on PATH; ``$SYMLINKD_TOOLS/bin/promtool`` (default /opt/symlinkd-tools, where
.ci/deploy-tools.sh installs it); a per-machine cache in the temp dir; else extracted there from
Debian's ``prometheus`` package (``apt-get download`` + ``dpkg -x``: no service installed or
started). Once per session; skips the calling test, with the reason, when none of that works.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CACHE = Path(tempfile.gettempdir()) / "symlinkd-test-tools"


def promtool_path() -> str:
    """Path of a working promtool, or ``pytest.skip`` with the reason."""
    found, reason = _find()
    if found is None:
        pytest.skip(f"promtool unavailable: {reason}")
    return found


@functools.cache
def _find() -> tuple[str | None, str]:
    on_path = shutil.which("promtool")
    if on_path:
        return on_path, ""
    tools = Path(os.environ.get("SYMLINKD_TOOLS", "/opt/symlinkd-tools")) / "bin" / "promtool"
    if os.access(tools, os.X_OK):
        return str(tools), ""
    cached = CACHE / "root" / "usr" / "bin" / "promtool"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        # Other pytest processes (another engineer's run) may fetch at the same moment.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(cached, os.X_OK):
            reason = _extract(CACHE)
            if reason:
                return None, reason
    return str(cached), ""


def _extract(cache: Path) -> str:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "no apt-get/dpkg here to fetch Debian's prometheus package"
    work = Path(tempfile.mkdtemp(prefix="promtool-", dir=cache))
    work.chmod(0o755)  # apt-get download drops to user _apt, which must write here
    try:
        for attempt in ("download", "update-then-download"):
            if attempt == "update-then-download":
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False,
                               timeout=300)
            fetched = subprocess.run(["apt-get", "download", "-qq", "prometheus"], cwd=work,
                                     capture_output=True, text=True, check=False, timeout=600)
            debs = list(work.glob("prometheus_*.deb"))
            if fetched.returncode == 0 and debs:
                break
        else:
            return f"apt-get download prometheus failed: {fetched.stderr.strip()[-300:]}"
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(cache / "root")
        subprocess.run(["dpkg", "-x", str(debs[0]), str(cache / "root")], check=True,
                       capture_output=True, timeout=300)
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"extracting promtool failed: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
