"""In-process fault injection: make the N-th store call of one kind fail (quick mode).

Kinds: ``open`` (``os.open`` of a store path: temp create, folder open, lock, journal),
``write`` (``os.write`` or ``os.pwrite`` to a store file), ``fsync`` (of a file),
``dirfsync`` (of a folder), ``rename``; ``short`` makes every store ``os.write`` and
``os.pwrite`` write at most half of what it was asked (and at most 7 bytes), which the
writer must loop over.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

KINDS = ("open", "write", "fsync", "dirfsync", "rename")
ERRNOS = (errno.EIO, errno.ENOSPC, errno.EDQUOT)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class Injector:
    """Counts store calls per kind; fails the ``fail_at``-th call of ``kind`` once."""

    def __init__(self, root: Path, kind: str | None = None, fail_at: int = 0,
                 err: int = errno.EIO, *, also: Callable[[str, int], int | None] | None = None
                 ) -> None:
        self.root = str(root)
        self.kind = kind
        self.fail_at = fail_at
        self.err = err
        self.counts: Counter[str] = Counter()
        self.fired = False
        self.also = also

    def _hit(self, kind: str, where: str) -> None:
        if not where.startswith(self.root):
            return
        self.counts[kind] += 1
        n = self.counts[kind]
        if self.also is not None:
            e = self.also(kind, n)
            if e is not None:
                raise OSError(e, os.strerror(e) + f" (injected into {kind} #{n})")
        if kind == self.kind and n == self.fail_at:
            self.fired = True
            raise OSError(self.err, os.strerror(self.err) + f" (injected into {kind} #{n})")

    @contextmanager
    def installed(self, mp: pytest.MonkeyPatch, *, short: bool = False) -> Iterator[Injector]:
        real_open, real_write, real_fsync, real_rename = os.open, os.write, os.fsync, os.rename
        real_pwrite = os.pwrite
        real_fdatasync = os.fdatasync

        def fake_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            self._hit("open", os.fspath(path))
            return real_open(path, flags, mode, **kw)

        def fake_write(fd: int, data: Any) -> int:
            self._hit("write", _fd_path(fd))
            if short and _fd_path(fd).startswith(self.root) and len(data) > 1:
                self.counts["short"] += 1
                return real_write(fd, memoryview(data)[: min(7, len(data) // 2)])
            return real_write(fd, data)

        def fake_pwrite(fd: int, data: Any, offset: int) -> int:
            where = _fd_path(fd)
            if where.endswith(".lock"):
                # A lock file's holder record: a hint for a timeout's message, written
                # best effort by design (its failure is ignored), not store state.
                return real_pwrite(fd, data, offset)
            self._hit("write", where)
            if short and where.startswith(self.root) and len(data) > 1:
                self.counts["short"] += 1
                return real_pwrite(fd, memoryview(data)[: min(7, len(data) // 2)], offset)
            return real_pwrite(fd, data, offset)

        def fake_fsync(fd: int) -> None:
            kind = "dirfsync" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync"
            self._hit(kind, _fd_path(fd))
            real_fsync(fd)

        def fake_fdatasync(fd: int) -> None:  # a journal append's sync: a file's "fsync"
            self._hit("fsync", _fd_path(fd))
            real_fdatasync(fd)

        def fake_rename(src: Any, dst: Any, **kw: Any) -> None:
            self._hit("rename", os.fspath(dst))
            real_rename(src, dst, **kw)

        with mp.context() as m:
            m.setattr(os, "open", fake_open)
            m.setattr(os, "write", fake_write)
            m.setattr(os, "pwrite", fake_pwrite)
            m.setattr(os, "fsync", fake_fsync)
            m.setattr(os, "fdatasync", fake_fdatasync)
            m.setattr(os, "rename", fake_rename)
            yield self
