"""When the state database cannot be written (a full or read-only state disk): one line naming
the database and the errno instead of SQLite's bare message, and a small reserve file so that a
pass the full disk cut short can still be recorded as such (``history`` shows what happened).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3

from symlinkd.errors import SymlinkdError

RESERVE_NAME = "state.reserve"
RESERVE_BYTES = 256 * 1024  # room to mark a pass the full disk cut short, freed only then

_SQLITE_ERRNO = {
    sqlite3.SQLITE_FULL: errno.ENOSPC,
    sqlite3.SQLITE_READONLY: errno.EROFS,
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_CANTOPEN: errno.EACCES,
}


class StateError(SymlinkdError):
    """The state database could not be opened, read or written. ``str()`` is one line."""


class StatePassError(StateError):
    """A pass whose changes were made but could not all be recorded: ``report`` says what was
    done (the CLI prints it before the error line)."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


def _probe(state_dir: str) -> int | None:
    """What the filesystem says when asked to write in ``state_dir`` (EROFS, ENOSPC, EACCES),
    or None when a small write works."""
    probe = os.path.join(state_dir, f".probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc.errno
    try:
        os.write(fd, b"\0" * 4096)
    except OSError as exc:
        return exc.errno
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


def state_error(exc: sqlite3.Error, db_path: str) -> StateError:
    """``exc`` as one line: ``state database /x/state.sqlite3: database or disk is full
    (ENOSPC)``. The errno comes from SQLite's own code when it is unambiguous (a full disk),
    else from trying a small write beside the database."""
    code = getattr(exc, "sqlite_errorcode", None)
    base = code & 0xFF if isinstance(code, int) else None
    number = errno.ENOSPC if base == sqlite3.SQLITE_FULL else _probe(os.path.dirname(db_path))
    if number is None and base is not None:
        number = _SQLITE_ERRNO.get(base)
    if number is None:
        return StateError(f"state database {db_path}: {exc}")
    name = errno.errorcode.get(number, str(number))
    detail = "" if base == sqlite3.SQLITE_FULL else f": {os.strerror(number).lower()}"
    return StateError(f"state database {db_path}: {exc}{detail} ({name})")


def keep_reserve(state_dir: str) -> None:
    """Make sure the reserve file exists (best effort: a read-only or full disk gets none)."""
    path = os.path.join(state_dir, RESERVE_NAME)
    if os.path.exists(path):
        return
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * RESERVE_BYTES)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)


def release_reserve(state_dir: str) -> None:
    """Free the reserve so the next few writes (marking the run) fit on a full disk."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(state_dir, RESERVE_NAME))
