"""Starting the write of a range early, so the process can work while the disk does.

A journal append is ``write`` then ``fdatasync``. The sync first sends the range's
dirty pages to the disk and waits for them, then commits the file's new length and
flushes the disk's cache; the process does nothing meanwhile. Starting the page
write as soon as the line is written lets the process do, during that wait, the work
it would otherwise do after the sync (what a save keeps for the next one); the sync
that follows finds the write under way or done.

How: ``posix_fadvise(POSIX_FADV_DONTNEED)`` on the range just written. On Linux it
starts write-back of the range's dirty pages without waiting (``generic_fadvise`` in
mm/fadvise.c, WB_SYNC_NONE), then drops only pages that are clean, unmapped and not
under write-back — and every page of a range just written is dirty or under
write-back at that moment, so the cache keeps them (only a disk that finished the
write within the call could lose a clean copy of the last page, which the next save
then reads back). PostgreSQL's ``pg_flush_data`` uses the same call for the same
purpose where ``sync_file_range`` is missing; ``sync_file_range`` itself is not in
Python's ``os`` module, and through ``ctypes`` it cost 13 µs more per save on cold
caches (docs/PERFORMANCE.md), most of what the overlap gains.

It is a hint: nothing here makes anything durable — the sync that must follow does
— and nothing here consumes an error the sync should report (the write-back records
its errors where ``fdatasync`` finds them). Where the call is missing, or the file
does not take it, :func:`start_writeback` does nothing and says so.
"""

from __future__ import annotations

import os
import sys

_ADVISE = (getattr(os, "posix_fadvise", None)
           if sys.platform.startswith("linux") else None)  # other systems: no such effect
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing bytes ``offset`` to ``offset + length`` of ``fd`` (just written)
    to the disk, without waiting; False when this system or file cannot (nothing was
    done, the sync does it all)."""
    advise = _ADVISE
    if advise is None or length <= 0:
        return False
    try:
        advise(fd, offset, length, _DONTNEED)
    except OSError:  # a pipe, a file system without page cache: only a hint
        return False
    return True


__all__ = ["start_writeback"]
