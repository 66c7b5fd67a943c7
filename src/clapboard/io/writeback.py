"""Starting the write of a range early, so the process can work while the disk does.

A journal append is a write then ``fdatasync``. The sync first sends the range's
dirty pages to the disk and waits for them, then commits what metadata changed (the
file's length, when the line did not fit in the padding) and flushes the disk's
cache; the process does nothing meanwhile. Starting the page write as soon as the
line is written lets the process do, during that wait, the work it would otherwise do
after the sync (what a save keeps for the next one); the sync that follows finds the
write under way or done.

How: ``posix_fadvise(POSIX_FADV_DONTNEED)`` on the range just written. On Linux it
starts write-back of the range's dirty pages without waiting (``generic_fadvise`` in
mm/fadvise.c, WB_SYNC_NONE), then offers the kernel to drop the *whole* pages of the
range from its cache — and the end-of-file page, even when partial. The range given
stops one byte short of the line's end, and only lines of at most a page are started
this way: such a range holds no whole page and does not reach the end of the file (the line
ends one byte later, and the journal's padding usually follows it), so nothing is
offered, nothing dropped, and the kernel never falls back to draining every
CPU's page lists (what it does when an offered page cannot be dropped, as a page under
write-back cannot: the call's 99th percentile here was 62 µs with the end page
offered, 35 µs without). The page that holds only a line's last byte, if any, is
written by the sync, as a longer line is.

PostgreSQL's ``pg_flush_data`` uses the same call for the same purpose where
``sync_file_range`` is missing. ``sync_file_range`` itself is not in Python's ``os``
module, and through ``ctypes`` it cost 13 µs more per save on cold caches
(docs/PERFORMANCE.md), most of what the overlap gains.

It is a hint: nothing here makes anything durable — the sync that must follow does
— and nothing here consumes an error the sync should report (the write-back records
its errors where ``fdatasync`` finds them). Where the call is missing, or the file
does not take it, :func:`start_writeback` does nothing and says so.
"""

from __future__ import annotations

import os
import sys

_LINUX = sys.platform.startswith("linux")
_ADVISE = getattr(os, "posix_fadvise", None) if _LINUX else None  # elsewhere: no such effect
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)
_PAGE = os.sysconf("SC_PAGESIZE") if _LINUX else 4096


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing bytes ``offset`` to ``offset + length`` of ``fd`` — just written —
    to the disk, without waiting; False when this system, this file or a line this long
    (more than a page) is left to the sync alone."""
    advise = _ADVISE
    if advise is None or not 1 < length <= _PAGE:
        return False
    try:
        advise(fd, offset, length - 1, _DONTNEED)  # (one byte short: see above)
    except OSError:  # a pipe, a file system without page cache: only a hint
        return False
    return True


__all__ = ["start_writeback"]
