"""Reading the small files a configuration names (the YAML file, ``*_file`` secrets) without
ever blocking or filling memory: a FIFO would block ``open`` until a writer came, ``/dev/zero``
would never end. Opened with ``O_NONBLOCK``, checked with ``fstat`` (the file actually opened,
symlinks followed: Kubernetes mounts Secret keys as symlinks), regular files only, size-capped."""

from __future__ import annotations

import os
import stat

KIB = 1024

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"),
)


class NotReadable(Exception):
    """Why a file was not read, as the end of a sentence about it ("... is a directory")."""


def read_small_file(path: str, max_bytes: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``. Raises ``NotReadable``
    ("{what} {path} is not a regular file (a FIFO)", "... is larger than 64 KiB") or
    ``OSError`` (ENOENT, EACCES, ...)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "special")
            raise NotReadable(f"{what} {path} is not a regular file ({kind})")
        # O_NONBLOCK stays set: a "regular" file of procfs (/proc/kmsg) or a FUSE file can
        # still block a read; ordinary filesystems ignore the flag for regular files.
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:  # read one byte past the cap: the file may grow meanwhile
            try:
                chunk = os.read(fd, max_bytes + 1 - total)
            except BlockingIOError:
                raise NotReadable(f"{what} {path} has nothing to read yet (a read would "
                                  "block: not an ordinary file)") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise NotReadable(f"{what} {path} is larger than {_size(max_bytes)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    if n % (KIB * KIB) == 0:
        return f"{n // (KIB * KIB)} MiB"
    return f"{n // KIB} KiB" if n % KIB == 0 else f"{n} bytes"
