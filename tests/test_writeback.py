"""Starting a journal line's write-back early (clapboard.io.writeback)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from clapboard.io.writeback import start_writeback

LINUX = sys.platform.startswith("linux")


def test_a_range_just_written_is_started_and_stays_readable(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "j", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"x" * 100)
        assert start_writeback(fd, 0, 100) is LINUX
        assert os.pread(fd, 200, 0) == b"x" * 100
        os.fdatasync(fd)
    finally:
        os.close(fd)


@pytest.mark.skipif(not LINUX or not hasattr(os, "RWF_NOWAIT"), reason="Linux only")
def test_the_cache_keeps_what_was_just_written(tmp_path: Path) -> None:
    """The call used (``POSIX_FADV_DONTNEED``) may drop pages from the cache; the range
    given holds none it would drop, so the next save's look at the journal's last line
    reads memory, not the disk. Checked with reads that refuse to wait for the disk
    (RWF_NOWAIT), after the sync, over lines inside one page, across a page boundary,
    of exactly a page, and longer (left to the sync: not started)."""
    fd = os.open(tmp_path / "j", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    end = 0

    def cached(n: int) -> bytes | None:
        """Bytes end..end+n if the cache has them all (a read that may not wait)."""
        buf = bytearray(n)
        try:
            got = os.preadv(fd, [buf], end, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                pytest.skip("no RWF_NOWAIT reads on this file system")
            raise
        return bytes(buf[:got])

    try:
        page = os.sysconf("SC_PAGESIZE")
        for n in [300, 4000, page, page + 1, 20_000, 299, 2, 1] * 20:
            line = os.urandom(n // 2 + 1).hex()[:n - 1].encode() + b"\n"
            os.write(fd, line)
            if cached(len(line)) != line:  # the control: just written, so in the cache
                pytest.skip("RWF_NOWAIT reads do not see cached data on this file system")
            assert start_writeback(fd, end, len(line)) is (1 < n <= page)
            os.fdatasync(fd)
            assert cached(len(line)) == line, f"line at {end} ({n} bytes) left the cache"
            end += len(line)
    finally:
        os.close(fd)


def test_nothing_to_start(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        assert start_writeback(w, 0, 10) is False  # a pipe has no pages to write
    finally:
        os.close(r)
        os.close(w)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert start_writeback(fd, 0, 0) is False
    finally:
        os.close(fd)
