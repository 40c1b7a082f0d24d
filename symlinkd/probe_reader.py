"""The content probe's reader: a child process that reads files through a mount for symlinkd.

Why a process and not a gate thread: a read that hangs in rclone holds an open file of the
mount, and every close of that file — the process's own exit, and the fd-closing of any child a
library spawns (``ldconfig -p`` behind ``ctypes.util.find_library``) — sends FUSE a FLUSH that
waits until the hung read answers, minutes later. A reader process that hangs is killed and left
to the kernel; symlinkd itself never holds a file of the mount open.

Protocol: one JSON request a line on stdin ``{"path", "bytes", "middle"}``; one JSON answer a
line on stdout, in order: ``{"ok": true, "read": N}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import errno
import json
import os
import sys


class ShortRead(OSError):
    def __init__(self, path: str, wanted: int, got: int) -> None:
        super().__init__(errno.EIO, f"short read: {got} of {wanted} bytes", path)


def read_check(path: str, nbytes: int, middle: bool) -> int:
    """Read ``nbytes`` from the start of ``path`` (and from its middle); bytes read. Raises
    ``OSError`` (EIO, ENOENT, ...) or ``ShortRead``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        # Drop what the kernel's page cache holds, so the bytes come from rclone.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        total = _read_range(fd, path, 0, min(nbytes, size))
        if middle and size > 2 * nbytes:
            total += _read_range(fd, path, size // 2, nbytes)
        return total
    finally:
        os.close(fd)


def _read_range(fd: int, path: str, offset: int, wanted: int) -> int:
    got = 0
    while got < wanted:
        chunk = os.pread(fd, wanted - got, offset + got)
        if not chunk:
            raise ShortRead(path, wanted, got)
        got += len(chunk)
    return got


def describe(exc: OSError) -> str:
    if isinstance(exc, ShortRead):
        return str(exc.strerror)
    name = errno.errorcode.get(exc.errno) if exc.errno else None
    return f"{name}: {exc.strerror or exc}" if name else (str(exc) or type(exc).__name__)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, object]
        try:
            answer = {"ok": True, "read": read_check(request["path"], int(request["bytes"]),
                                                     bool(request["middle"]))}
        except OSError as exc:
            answer = {"ok": False, "error": describe(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
