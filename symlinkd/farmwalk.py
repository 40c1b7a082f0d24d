"""Phase 1 of a pass: walk the farm and file every link under its target folder.

``os.scandir`` on directory fds (``readlink``/``lstat`` relative to the fd: the kernel does not
re-walk the long path for every link). Symlinked directories are never followed; a directory
swapped for a symlink mid-walk is refused with ``O_NOFOLLOW``; a configured mount inside the
farm is skipped. Each link's target is made absolute and normal and filed under its parent
folder as a ``Record``; regular files and other objects become facts at once. Nothing is
written, so a read-only farm walks like any other.

Per-link work is kept to a few string operations and a dict lookup: a farm has a million links.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence

from symlinkd.farmcache import Folder, FolderCache, Record, folder
from symlinkd.model import EntryKind, LinkFacts, ScanProblem, ScanResult
from symlinkd.mounts import MountMonitor

__all__ = ["FLUSH_RECORDS", "FarmWalk", "Record", "absolute_target", "split_path"]

_PROGRESS_EVERY = 1000
# Links walked before their targets are resolved and handed on: bounds the memory of a pass
# (a 1M-link farm is never held whole). A target folder whose links straddle two flushes is
# listed twice; in a Shows/Season farm that is a few folders per flush.
FLUSH_RECORDS = 50_000



def absolute_target(directory: str, target: str) -> str:
    """``target`` of a link in ``directory`` as an absolute, normal path (not resolved)."""
    full = target if target.startswith("/") else f"{directory}/{target}"
    # normpath costs a microsecond; most targets written by rdt-client/Riven are already
    # normal, which three substring checks prove.
    if "/." in full or "//" in full or full.endswith("/"):
        full = os.path.normpath(full)
    return full


def split_path(full: str) -> tuple[str, str]:
    """(parent folder, name) of an absolute path; the root's children have parent ``/``."""
    parent, _, name = full.rpartition("/")
    return parent or "/", name


class FarmWalk:
    """The walk of one pass: links grouped by target parent (``groups``, taken by each flush),
    entries that are not links as facts (``out``), problems into ``result.problems``."""

    def __init__(self, farm: str, monitor: MountMonitor, result: ScanResult, *,
                 progress: Callable[[int], None] | None,
                 flush_records: int = FLUSH_RECORDS,
                 target_index: dict[str, set[str]] | None = None,
                 cache: FolderCache | None = None) -> None:
        self.farm = farm
        self.cache = cache  # the daemon's memory of unchanged farm folders
        self.monitor = monitor
        self.result = result
        self.progress = progress
        self.groups: dict[str, list[Record]] = {}
        self.out: list[LinkFacts] = []  # facts of non-links not yet handed on
        self.flush_records = max(1, flush_records)
        self.buffered_at = 0  # entries walked at the last flush
        self.target_index = target_index
        self.seen = 0
        self.next_tick = _PROGRESS_EVERY

    def walk(self, paths: Sequence[str]) -> Iterator[None]:
        """Yields whenever enough links are waiting to be resolved."""
        if self.cache is not None:
            self.cache.begin(full=not paths)
        if not paths:
            yield from self._walk_tree(self.farm, root=True)
            if self.cache is not None:
                self.cache.end()
        for raw in paths:
            path = os.path.normpath(raw)
            if path != self.farm and not path.startswith(self.farm + "/"):
                self._problem(path, None, f"not inside the farm {self.farm}; not scanned")
                continue
            try:
                st = os.lstat(path)
            except OSError as exc:
                self._problem(path, exc.errno, exc.strerror or "cannot stat")
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(path)
                except OSError as exc:
                    self._problem(path, exc.errno, exc.strerror or "cannot read link")
                    continue
                self._file(path, target, split_path(path)[0], st.st_mtime)
            elif stat.S_ISDIR(st.st_mode):
                yield from self._walk_tree(path, root=path == self.farm)
            else:
                self._other(path, st.st_mode, st.st_mtime)
        if self.progress is not None:
            self.progress(self.seen)

    def _problem(self, path: str, code: int | None, message: str) -> None:
        self.result.problems.append(ScanProblem(path, code, message))

    def _file(self, path: str, target: str, directory: str, mtime: float) -> None:
        full = absolute_target(directory, target)
        parent, _name = split_path(full)
        group = self.groups.get(parent)
        if group is None:
            self.groups[parent] = group = []
        group.append((path, target, full, mtime))
        if self.target_index is not None:
            self.target_index.setdefault(parent, set()).add(directory)

    def _other(self, path: str, mode: int, mtime: float) -> None:
        kind = EntryKind.FILE if stat.S_ISREG(mode) else EntryKind.OTHER
        self.out.append(LinkFacts(path, kind, mtime))

    def _walk_tree(self, top: str, *, root: bool) -> Iterator[None]:
        stack = [top]
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        while stack:
            directory = stack.pop()
            if (not root or directory != top) and self.monitor.mount_for(directory) is not None:
                # A mount inside the farm would drag the walk into FUSE (and its hangs).
                self._problem(directory, None, "a configured mount inside the farm; skipped")
                continue
            remembered = self.cache.lookup(directory) if self.cache is not None else None
            if remembered is not None:
                self.seen += self._replay(directory, remembered, stack)
            else:
                self._read_dir(directory, top, flags, stack)
            if self.progress is not None and self.seen >= self.next_tick:
                self.progress(self.seen)
                self.next_tick = self.seen + _PROGRESS_EVERY
            if self.seen - self.buffered_at >= self.flush_records:
                self.buffered_at = self.seen
                yield

    def _read_dir(self, directory: str, top: str, flags: int, stack: list[str]) -> None:
        """List one farm folder from disk (and remember it, when the daemon keeps a cache)."""
        try:
            # O_NOFOLLOW: a directory swapped for a symlink since it was listed is not
            # followed out of the farm.
            fd = os.open(directory, flags if directory == top else flags | os.O_NOFOLLOW)
        except OSError as exc:
            self._problem(directory, exc.errno, f"cannot open directory: {exc.strerror}")
            return
        cache = self.cache
        try:
            if cache is None:
                self.seen += self._walk_dir(directory, fd, stack)
                return
            before = os.fstat(fd)  # the folder as it was *before* the listing
            problems, depth = len(self.result.problems), len(stack)
            links: list[Record] = []
            others: list[tuple[str, int, float]] = []
            self.seen += self._walk_dir(directory, fd, stack, links, others)
            if len(self.result.problems) == problems:
                cache.store(directory, before, folder(before, links, stack[depth:], others))
        except OSError as exc:
            self._problem(directory, exc.errno, f"cannot list directory: {exc.strerror}")
        finally:
            os.close(fd)

    def _replay(self, directory: str, remembered: Folder, stack: list[str]) -> int:
        """A remembered, unchanged folder: its links filed again, its subfolders walked."""
        groups = self.groups
        for parent, records in remembered.links:
            group = groups.get(parent)
            if group is None:
                groups[parent] = group = []
            group.extend(records)
        stack.extend(remembered.subdirs)
        for path, mode, mtime in remembered.others:
            self._other(path, mode, mtime)
        self._index(directory, {parent for parent, _r in remembered.links})
        return remembered.count + len(remembered.subdirs) + len(remembered.others)

    def _index(self, directory: str, touched: set[str]) -> None:
        index = self.target_index
        if index is not None:
            for parent in touched:
                folders = index.get(parent)
                if folders is None:
                    index[parent] = folders = set()
                folders.add(directory)

    def _walk_dir(self, directory: str, fd: int, stack: list[str],
                  links: list[Record] | None = None,
                  others: list[tuple[str, int, float]] | None = None) -> int:
        """One farm directory: links filed by target parent, subdirectories pushed on
        ``stack`` (and, for the folder cache, links and other entries into ``links`` and
        ``others``). The hot loop of a scan; kept free of calls it does not need."""
        groups = self.groups
        readlink = os.readlink
        normpath = os.path.normpath
        touched: set[str] = set()
        touch = touched.add
        prefix = directory + "/"
        last_parent = ""
        group: list[Record] = []
        count = 0
        with os.scandir(fd) as entries:
            for entry in entries:
                count += 1
                name = entry.name
                try:
                    if entry.is_symlink():
                        target = readlink(name, dir_fd=fd)
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                        full = target if target[:1] == "/" else prefix + target
                        if "/." in full or "//" in full or full[-1:] == "/":
                            full = normpath(full)
                        parent = full.rpartition("/")[0] or "/"
                        # The links of one farm folder mostly share a target folder (a season
                        # into its torrent): compare with the last one before hashing.
                        if parent != last_parent:
                            got = groups.get(parent)
                            if got is None:
                                groups[parent] = got = []
                            group = got
                            last_parent = parent
                            touch(parent)
                        record = (prefix + name, target, full, mtime)
                        group.append(record)
                        if links is not None:
                            links.append(record)
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(f"{directory}/{name}")
                    else:
                        st = entry.stat(follow_symlinks=False)
                        self._other(f"{directory}/{name}", st.st_mode, st.st_mtime)
                        if others is not None:
                            others.append((f"{directory}/{name}", st.st_mode, st.st_mtime))
                except OSError as exc:
                    if exc.errno != errno.ENOENT:  # ENOENT: removed while we looked
                        self._problem(f"{directory}/{name}", exc.errno,
                                      exc.strerror or "cannot read entry")
        self._index(directory, touched)
        return count
