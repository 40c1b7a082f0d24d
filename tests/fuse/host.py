"""What the host offers the FUSE rig: requirements, mountinfo, child processes, bounded calls.

Nothing here ever touches a mount from the calling thread: ``mounted_at`` reads mountinfo only,
and ``bounded``/``stat_errno`` run the call in a daemon thread that is abandoned on timeout (a
thread blocked on a stopped rclone cannot be cancelled).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def missing_requirements() -> str | None:
    """Why real FUSE tests cannot run on this machine, or ``None`` when they can."""
    if shutil.which("rclone") is None:
        return "rclone is not installed (Debian package 'rclone')"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "fusermount3/fusermount is not installed (Debian package 'fuse3')"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (container without the FUSE device)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    for module in ("wsgidav", "cheroot"):
        if importlib.util.find_spec(module) is None:
            return f"Python package {module} is missing (pip install wsgidav cheroot)"
    return None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that SIGKILLs the child when the test process dies, so an interrupted
    pytest cannot leave a live (or SIGSTOPped) rclone serving a temp dir.

    The kernel sends the signal when the *thread* that forked exits, so this is only armed when
    called from the main thread: a child started from a short-lived thread would die with it.
    libc is resolved here, in the parent: dlopen after fork in a threaded process can deadlock.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return arm


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unescape_mountinfo(field_text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mounted_at(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Is something mounted at exactly ``path``? Reads mountinfo only: never touches the mount."""
    want = os.path.abspath(path)
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
        return any(
            _unescape_mountinfo(line.split(" ")[4]) == want for line in handle if line.strip()
        )


class BoundedTimeout(TimeoutError):
    """``bounded`` gave up; the worker thread is abandoned (it may be stuck in the kernel)."""


def bounded(fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds for it.

    A thread blocked in a FUSE request to a stopped rclone cannot be interrupted; a daemon thread
    is simply abandoned and never delays interpreter exit (a ThreadPoolExecutor would: it joins
    its workers at exit).
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="fuse-rig-bounded", daemon=True).start()
    if not done.wait(timeout):
        raise BoundedTimeout(f"no answer within {timeout:.1f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def stat_errno(path: str | os.PathLike[str], timeout: float = 5.0) -> int | None:
    """``os.stat(path)`` in a bounded thread: ``None`` if it succeeded, else its errno.

    Raises ``BoundedTimeout`` when the call did not return in time (a stopped rclone).
    """

    def probe() -> int | None:
        try:
            os.stat(path)
        except OSError as exc:
            return exc.errno
        return None

    return bounded(probe, timeout)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 3.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)  # a stopped process does not act on SIGTERM
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
