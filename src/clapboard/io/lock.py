"""The per-batch exclusive lock: ``flock`` on a lock file that is never deleted.

Semantics (each one a fault in FAILURE_MODES.md):

* Waiting has a timeout; it polls with a growing back-off and raises
  :class:`LockTimeoutError` naming the lock file and, when recorded, the holder's pid,
  host and operation (written into the lock file after acquiring).
* Re-entry from the thread that already holds the lock raises
  :class:`LockReentryError` at once (a ``post_write`` hook saving the same batch would
  otherwise wait on itself until the timeout). Other threads simply wait: each
  acquisition opens its own file description, and flock locks conflict between
  descriptions even inside one process.
* Lock files are never unlinked (unlinking lets a waiter lock a new inode while the
  old holder still runs). If the file was deleted or replaced anyway, the inode we
  locked no longer matches the path: release and try again.
* A forked child inherits the descriptor, and an ``flock(LOCK_UN)`` there would free
  the parent's lock; so only the acquiring process ever unlocks.
* ``ENOSYS`` / ``EOPNOTSUPP`` / ``ENOLCK`` from flock is a hard error: never a silent
  fallback to no locking.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path
from types import TracebackType

import orjson

from clapboard.errors import LockReentryError, LockTimeoutError, UnsupportedFilesystemError
from clapboard.io.atomic import ensure_dir

# lock path -> thread ident of the holder in this process. Each entry is only ever set
# and removed by its holder's thread, and a dict's get/set/pop are atomic: no guard.
_HELD: dict[str, int] = {}
_PID = [os.getpid()]  # this process's pid, for the holder record (renewed in a child)

# Unlocked descriptors kept for the next acquisition of the same lock file: the lock
# file's and its folder's, together (opening and closing two files per save costs more
# than the flocks themselves). A kept pair is taken out while in use, so no two holders
# ever share one: flock locks belong to the open file description, and sharing one
# would share the lock.
_KEPT_MAX = 32  # kept pairs in all (two descriptors each); the least recent closed first
# lock path -> [(lock fd, its inode, folder fd or -1)]
_KEPT: OrderedDict[str, list[tuple[int, int, int]]] = OrderedDict()
_KEPT_COUNT = [0]  # pairs in _KEPT
_KEPT_GUARD = threading.Lock()


def _take(path: str) -> tuple[int, int, int] | None:
    """A kept (lock fd, inode, folder fd or -1) of the lock file ``path``, taken out."""
    with _KEPT_GUARD:
        free = _KEPT.get(path)
        if not free:
            return None
        got = free.pop()
        if not free:
            del _KEPT[path]
        _KEPT_COUNT[0] -= 1
        return got


def _keep(path: str, fd: int, ino: int, dir_fd: int) -> None:
    """Keep the lock file's descriptor (and its folder's, or -1) for the next
    acquisition; the least recently kept are closed beyond ``_KEPT_MAX``."""
    evicted: list[tuple[int, int, int]] = []
    with _KEPT_GUARD:
        free = _KEPT.get(path)
        if free is None:
            _KEPT[path] = [(fd, ino, dir_fd)]
        else:
            free.append((fd, ino, dir_fd))
            _KEPT.move_to_end(path)
        _KEPT_COUNT[0] += 1
        while _KEPT_COUNT[0] > _KEPT_MAX:
            _, old = _KEPT.popitem(last=False)
            evicted.extend(old)
            _KEPT_COUNT[0] -= len(old)
    for old_fd, _, old_dir in evicted:
        os.close(old_fd)
        if old_dir >= 0:
            os.close(old_dir)


@functools.lru_cache(maxsize=1024)
def _folder(path: str) -> str:
    return os.path.dirname(path) or "."


def _forget_in_child() -> None:
    global _KEPT_GUARD
    # Another thread may have held the guard at the fork: the child gets a fresh one.
    _KEPT_GUARD = threading.Lock()
    _HELD.clear()
    _PID[0] = os.getpid()
    # The child's copies of the kept descriptors share their open file descriptions
    # with the parent's: a flock through one would be the parent's lock. Drop them.
    for free in _KEPT.values():
        for kept in free:
            for fd in kept[::2]:  # the lock file's and the folder's
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
    _KEPT.clear()
    _KEPT_COUNT[0] = 0


os.register_at_fork(after_in_child=_forget_in_child)

_UNSUPPORTED = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
_HOST = socket.gethostname()


@functools.lru_cache(maxsize=256)
def _holder_record(pid: int, op: str) -> bytes:
    """What a holder writes into the lock file: who holds it, for what (padded with
    spaces to 160 bytes, so it replaces any shorter earlier record whole)."""
    return orjson.dumps({"pid": pid, "host": _HOST, "op": op}).ljust(160)


def read_holder(path: Path | str) -> dict[str, object]:
    """The holder record a lock file carries (best effort: {} when unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
        holder = orjson.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, orjson.JSONDecodeError):
        return {}


def _close(fd: int, dir_fd: int) -> None:
    """Close a lock file's descriptor and its folder's (-1: none)."""
    os.close(fd)
    if dir_fd >= 0:
        os.close(dir_fd)


class FileLock:
    """An exclusive flock on ``path`` with timeout; a context manager.

    Holding the lock means two flocks: ``LOCK_EX`` on the lock file, then ``LOCK_SH`` on
    its folder. Lock files are only ever *created* under ``LOCK_EX`` on the folder, so
    while anyone holds a lock in that folder nobody can create a replacement for a lock
    file that was deleted behind our back: a newcomer who finds the file missing waits
    until every holder in the folder is done. After both flocks the inode is checked
    against the path (FAILURE_MODES #8), so a waiter on a replaced file retries.
    """

    __slots__ = ("_dir", "_dir_fd", "_fd", "_ino", "_key", "_owner_pid", "op", "path",
                 "timeout")

    def __init__(self, path: Path | str, *, timeout: float = 30.0, op: str = "",
                 key: str | None = None) -> None:
        """``key``: ``path`` as text, when the caller has it (it is what the lock opens
        and keeps descriptors by)."""
        self.path = path if isinstance(path, Path) else Path(path)
        self.timeout = timeout
        self.op = op
        self._fd: int | None = None
        self._dir_fd: int | None = None
        self._ino = 0
        self._owner_pid = 0
        self._key = key or str(self.path)
        self._dir = _folder(self._key)

    def acquire(self) -> None:
        me = threading.get_ident()
        key = self._key
        if _HELD.get(key) == me:
            raise LockReentryError(
                f"this thread already holds lock {self.path} (re-entrant save of the "
                "same batch, e.g. from a post_write hook)",
                path=self.path, hint="do the second write after the first one returns",
            )
        deadline = time.monotonic() + self.timeout
        backoff: _Backoff | None = None
        while True:
            kept = _take(key)
            if kept is not None:  # the common case: both descriptors kept, one guard trip
                fd, ino, dir_fd = kept
            else:
                try:
                    fd = os.open(key, os.O_RDWR | os.O_CLOEXEC)
                except FileNotFoundError:
                    self._create(deadline)
                    continue
                ino, dir_fd = 0, -1
            try:
                locked = self._flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                _close(fd, dir_fd)
                raise
            if not locked:
                if ino:
                    _keep(key, fd, ino, dir_fd)
                else:
                    _close(fd, dir_fd)
                backoff = backoff or _Backoff(deadline)
                if not backoff.wait():
                    raise LockTimeoutError(
                        str(self.path), self.timeout, holder=read_holder(self.path))
                continue
            if dir_fd < 0:
                try:
                    dir_fd = self._open_dir()
                except BaseException:
                    os.close(fd)
                    raise
            try:
                # Shared, and blocking: the only exclusive holder is a creator, for the
                # length of one open() call.
                self._flock(dir_fd, fcntl.LOCK_SH)
            except BaseException:
                _close(fd, dir_fd)
                raise
            # The file may have been unlinked or replaced before we locked it: then we
            # would hold a lock nobody else can see. Check and retry on the live inode.
            # (A kept descriptor keeps its inode alive, so its number cannot be reused.)
            try:
                if not ino:
                    ino = os.fstat(fd).st_ino
                same = ino == os.stat(key).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                _close(fd, dir_fd)
                continue
            break
        self._fd, self._dir_fd, self._ino = fd, dir_fd, ino
        self._owner_pid = _PID[0]
        _HELD[key] = me
        self._record_holder(fd)

    def _flock(self, fd: int, how: int) -> bool:
        """flock; False when a non-blocking request would block. Unsupported → error."""
        try:
            fcntl.flock(fd, how)
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in _UNSUPPORTED:
                raise UnsupportedFilesystemError(
                    f"flock is not supported for {self.path} ({os.strerror(e.errno or 0)})",
                    path=self.path,
                    hint="use a local disk, or the PostgreSQL backend for shared storage",
                ) from e
            raise
        return True

    def _open_dir(self) -> int:
        """A new descriptor of the lock's folder. (One kept with the lock file's, of a
        folder replaced since, is closed with it when the inode check fails, so it
        cannot outlive the retry.)"""
        try:
            return os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            ensure_dir(self.path.parent)
            return os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _create(self, deadline: float) -> None:
        """Create the lock file under the folder's exclusive flock (see the class doc)."""
        dir_fd = self._open_dir()
        try:
            backoff = _Backoff(deadline)
            while not self._flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                if not backoff.wait():
                    raise LockTimeoutError(
                        str(self.path), self.timeout, holder=read_holder(self.path))
            os.close(os.open(self._key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666))
        finally:
            os.close(dir_fd)  # closing drops the folder flock

    def _record_holder(self, fd: int) -> None:
        # Not fsynced: it is a hint for a LockTimeoutError message, not state. Written
        # only when the file names someone else: rewriting the same bytes on every save
        # still dirtied the file's inode, and made the save's journal sync measurably
        # slower (about 25 µs at 30 KiB, interleaved runs).
        rec = _holder_record(self._owner_pid, self.op)
        try:
            if os.pread(fd, len(rec), 0) != rec:
                os.pwrite(fd, rec, 0)
        except OSError:
            pass  # a full disk must not stop the holder; the message just names less

    def release(self) -> None:
        fd = self._fd
        if fd is None:
            return
        dir_fd, self._fd, self._dir_fd = self._dir_fd, None, None
        # _PID is renewed in a forked child (os.fork, multiprocessing, forkpty and
        # subprocess's preexec_fn all run the at-fork hooks): a child never unlocks.
        if _PID[0] == self._owner_pid:
            _HELD.pop(self._key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
            if dir_fd is not None:
                fcntl.flock(dir_fd, fcntl.LOCK_UN)
            _keep(self._key, fd, self._ino, -1 if dir_fd is None else dir_fd)
            return
        # In a forked child: only close our copies; the parent still holds the locks.
        os.close(fd)
        if dir_fd is not None:
            os.close(dir_fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class _Backoff:
    """Sleeps of growing length until ``deadline``: waiters neither spin nor oversleep a
    short critical section. flock has no queue; whoever polls first after a release wins.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.delay = 0.0002

    def wait(self) -> bool:
        """Sleep before the next try; False when the deadline has passed."""
        now = time.monotonic()
        if now >= self.deadline:
            return False
        time.sleep(min(self.delay, self.deadline - now))
        self.delay = min(self.delay * 2, 0.01)
        return True
