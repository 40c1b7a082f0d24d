"""Link-level file operations shared by the executor and undo: make a link with a given owner
and mtime, move a link (across filesystems too), describe an ``OSError`` for an operator, and
hold SIGINT/SIGTERM while one journaled action is in hand."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the journaled action in hand is finished and marked: an
    interrupted apply never leaves its temporary link (or a half-moved one) behind. A signal
    that came meanwhile is handed to the handler it was meant for (``KeyboardInterrupt`` for
    the CLI) the moment this block ends. Python runs signal handlers in the main thread only,
    so the handlers are swapped there (a thread mask would not do: the kernel hands a blocked
    signal to another thread); in other threads (the daemon's passes) this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def defer(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {}
    for held in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(held)
        if handler is not None:  # None: installed outside Python; not ours to swap
            previous[held] = signal.signal(held, defer) or handler
    try:
        yield
    finally:
        for number, restore in previous.items():
            signal.signal(number, restore)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


def describe_os_error(exc: OSError) -> str:
    """One line an operator understands: errno name, meaning, and the usual cause."""
    name = errno.errorcode.get(exc.errno or 0, "error")
    hint = {
        errno.EROFS: "the farm is mounted read-only",
        errno.EACCES: "permission denied (check the farm's owner and symlinkd's user)",
        errno.EPERM: "operation not permitted (check the farm's owner and symlinkd's user)",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" ({exc.filename!s})" if exc.filename else ""
    return f"{name}: {hint}{where}"


def place_link(path: str, target: str, like: os.stat_result | None = None, *,
               mtime_ns: int | None = None, uid: int | None = None,
               gid: int | None = None) -> None:
    """Create symlink ``path`` -> ``target`` with the owner and mtime of ``like`` (or the given
    values). Fails with EEXIST rather than replace anything."""
    os.symlink(target, path)
    try:
        owner = (like.st_uid, like.st_gid) if like is not None else (uid, gid)
        if owner[0] is not None and owner[1] is not None and os.geteuid() == 0:
            os.lchown(path, owner[0], owner[1])
        mtime = like.st_mtime_ns if like is not None else mtime_ns
        if mtime is not None:
            atime = like.st_atime_ns if like is not None else mtime
            os.utime(path, ns=(atime, mtime), follow_symlinks=False)
    except OSError:
        discard_link(path)
        raise


def move_link(source: str, dest: str, target: str, st: os.stat_result) -> None:
    """Move symlink ``source`` to ``dest`` keeping target, owner and mtime: a rename on one
    filesystem; across filesystems (EXDEV) a copy at ``dest`` first, then ``source`` removed."""
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "quarantine path already taken", dest)
    try:
        os.rename(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    else:
        return
    place_link(dest, target, st)
    try:
        os.unlink(source)
    except OSError:
        discard_link(dest)
        raise


def discard_link(path: str) -> None:
    try:
        if os.path.islink(path):
            os.unlink(path)
    except OSError:
        pass
