"""Durable, atomic replacement of a file's whole content.

The protocol, and why each step is there:

1. Create a temp file with a unique name in the *same folder* (``O_CREAT | O_EXCL``):
   rename is only atomic within one filesystem, and a fixed ``.tmp`` name would let two
   writers interleave into one temp file.
2. Give it the target's permission bits (mkstemp-style files would be 0600), else the
   default the umask allows.
3. Write every byte, looping on short writes.
4. ``fsync`` the temp file: the data must be on disk before the name points at it,
   or a power loss could publish an empty or partial file under the old name.
5. ``rename`` over the target: readers see the old bytes or the new, never a mix.
6. ``fsync`` the folder: the rename itself lives in the directory; without this a
   power loss can bring back the old entry after we acknowledged the write.

Any error is raised — never swallowed — after removing the temp file; the target keeps
its last good bytes. A failed fsync is never retried and trusted ("fsyncgate"): the
next attempt starts over with a fresh temp file.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from clapboard.paths import TEMP_MARKER

_KNOWN_DIRS: set[str] = set()


def fsync_dir(directory: Path | str) -> None:
    """Make a folder's entries (creates, renames, unlinks) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_data(fd: int) -> None:
    """Make what was written to a file durable, with the metadata a later read of it
    needs (its size), but not its timestamps: ``fdatasync`` where the system has it
    (Linux), else ``fsync``. For appends to a log, as databases sync theirs (measured
    here: about 25 µs less per status save than ``fsync``). Whole files written for a
    rename keep ``fsync``."""
    sync = getattr(os, "fdatasync", None)
    if sync is None:  # pragma: no cover - macOS has no fdatasync
        sync = os.fsync
    sync(fd)


def ensure_dir(directory: Path) -> None:
    """``mkdir -p`` that fsyncs each parent whose entry it created (power-loss safe)."""
    key = str(directory)
    if key in _KNOWN_DIRS:
        return
    missing: list[Path] = []
    d = directory
    while not d.is_dir():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue  # a concurrent creator won the race; its parent fsync covers it
        fsync_dir(d.parent)
    _KNOWN_DIRS.add(key)


def temp_name_for(target: Path) -> Path:
    """A unique temp path beside ``target``; the pid lets fsck tell a dead writer's file."""
    return target.with_name(f"{target.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte: ``os.write`` may write fewer than asked (signals, quotas, pipes)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == len(view):  # all of it (the usual case): no slice
            return
        if n <= 0:  # pragma: no cover - a zero-length write of a non-empty buffer
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[n:]


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write every byte of ``data`` at ``offset`` (``os.pwrite`` may write fewer)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n == len(view):
            return
        if n <= 0:  # pragma: no cover - a zero-length write of a non-empty buffer
            raise OSError(errno.EIO, "pwrite returned 0 bytes")
        view, offset = view[n:], offset + n


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` durably and atomically (see the module docstring).

    ``mode``: permission bits for the file; default the existing target's, else what
    the umask leaves of 0o666.
    """
    target = Path(path)
    directory = target.parent
    ensure_dir(directory)
    if mode is None:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
    tmp = temp_name_for(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        # The folder was removed behind our cache of known folders: create it again.
        _KNOWN_DIRS.discard(str(directory))
        ensure_dir(directory)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already renamed or gone; a leftover is swept by fsck --repair
        raise
    fsync_dir(directory)


def durable_unlink(path: Path | str) -> None:
    """Remove a file and make the removal durable; a missing file is fine."""
    p = Path(path)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return
    fsync_dir(p.parent)
