"""Self-checking JSON-lines journals.

Each record is one line of plain JSON that carries its own check, so the file stays
greppable and ``jq``-able while damage is detectable:

* ``crc``: CRC-32 (8 hex digits) of the record's canonical bytes without ``crc``;
* ``prev``: the ``crc`` of the record before it ("" for the first), chaining records
  so an edited or dropped line breaks the chain;
* ``seq``: 1, 2, 3… without gaps.

A record is serialised completely first and written with one ``pwrite`` (looping only
on a short write) just after the last record, then synced (``fdatasync``): a crash can
leave at most a torn *last* line.

**The reserve.** The file usually ends with a run of spaces (no newline) after the last
record: room that the next records are written into, so a save overwrites blocks the
file already has instead of growing it. Syncing an overwrite is one data flush; syncing
an append also commits the file's new length and blocks through the file system's own
journal, about 40 µs more per save on ext4 here (SQLite's WAL gets the same saving by
reusing its file). When a record does not fit, the file grows by the record plus a new
reserve: to the end of a 4 KiB block, plus an eighth of the journal (64 KiB at most),
so the space costs at most ~12 % and a grow happens once every many saves. A record
line always begins with ``{``; a line that begins with a space begins the reserve.
``jq`` and line readers that skip blank lines read the file as it is.

Reading keeps the valid prefix and ignores a damaged tail (a torn write, zeros or
garbage after the last good record, in the reserve or past it); the next append cuts
that tail off first. Damage *followed by* valid records cannot come from a crash and
raises :class:`CorruptJournalError`.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from clapboard.errors import CorruptJournalError
from clapboard.io.atomic import ensure_dir, fsync_dir, sync_data, write_all

_CHUNK = 1 << 16
_BLOCK = 4096
_RESERVE_MAX = 1 << 16
_SPACE = 0x20


def record_crc(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "crc"}
    return f"{zlib.crc32(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)):08x}"


def encode_record(record: dict[str, Any]) -> bytes:
    """The line for ``record`` (which has ``seq`` and ``prev``), with its ``crc`` added."""
    rec = dict(record)
    rec["crc"] = record_crc(rec)
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def check_line(line: bytes) -> dict[str, Any] | None:
    """The record in a complete line if it is one JSON object (starting at the line's
    first byte) that parses and whose crc holds, else None."""
    if line[:1] != b"{":
        return None
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("crc"), str):
        return None
    return rec if record_crc(rec) == rec["crc"] else None


def verbatim_line(record: dict[str, Any], seq: int, crc: str, path: Path | str) -> bytes:
    """The line of a complete record imported as is (``clapboard copy``), refused with
    :class:`CorruptJournalError` unless its crc holds and it continues the chain after
    ``seq`` / ``crc`` — so a copied journal is the same chain, record for record."""
    line = encode_record({k: v for k, v in record.items() if k != "crc"})
    if orjson.loads(line).get("crc") != record.get("crc"):
        raise CorruptJournalError(
            f"imported journal record seq {record.get('seq')!r} fails its crc check", path=path)
    if record.get("seq") != seq + 1 or record.get("prev") != crc:
        raise CorruptJournalError(
            f"imported journal record seq {record.get('seq')!r} does not continue the chain "
            f"(next is seq {seq + 1})", path=path)
    return line


@dataclass
class Tail:
    """Where the valid records end, and the chain state an append continues from."""

    seq: int
    crc: str
    valid_end: int  # byte offset just past the last valid record
    size: int  # where the file's bytes end, its reserve excluded; > valid_end: damaged tail


@dataclass
class JournalScan:
    records: list[dict[str, Any]]
    tail: Tail
    last_line: bytes = b""  # the last valid record's line with its newline (b"": none)
    ino: int = -1  # the file's inode (set by :func:`scan`)


def data_end(data: bytes) -> int:
    """Where the bytes of ``data`` (a journal's end: it runs to the end of the file) stop
    when what follows the last newline is reserve, spaces only; else ``len(data)``."""
    nl = data.rfind(b"\n") + 1
    rest = len(data) - nl
    return nl if rest and data.count(b" ", nl) == rest else len(data)


def grown_size(end: int) -> int:
    """The file size a journal grows to when a record ending at byte ``end`` does not
    fit its reserve: the end of the block, plus an eighth of the journal (64 KiB at most)."""
    want = end + min(_RESERVE_MAX, end // 8)
    return -(-want // _BLOCK) * _BLOCK


def _lines(data: bytes, stop: int) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without newline, complete?) for each line of ``data[:stop]``."""
    pos = 0
    while pos < stop:
        nl = data.find(b"\n", pos, stop)
        if nl < 0:
            yield pos, data[pos:stop], False
            return
        yield pos, data[pos:nl], True
        pos = nl + 1


def scan(path: Path | str) -> JournalScan:
    """Every valid record, in order; a damaged tail is skipped, mid-file damage raises."""
    try:
        with open(path, "rb") as f:
            data = f.read()
            ino = os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return JournalScan([], Tail(0, "", 0, 0))
    got = scan_bytes(data, path)
    got.ino = ino
    return got


def ends_with(path: Path | str, ino: int, end: int, line: bytes) -> bool:
    """True when the journal at ``path`` is still the file ``ino`` and its records still
    end with ``line`` at byte ``end`` (nothing appended since)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return os.fstat(fd).st_ino == ino and after_line(fd, end, line) == b""
    finally:
        os.close(fd)


def scan_bytes(data: bytes, path: Path | str = "<journal>", *, seq: int = 0, crc: str = "",
               base: int = 0) -> JournalScan:
    """Like :func:`scan` over ``data``; ``seq`` / ``crc`` / ``base`` continue a chain
    from a known record at byte ``base`` of the file (``data`` starts there)."""
    records: list[dict[str, Any]] = []
    valid_end = base
    bad_at: int | None = None
    last = b""
    end = data_end(data)
    for rel, line, complete in _lines(data, end):
        offset = base + rel
        rec = check_line(line) if complete else None
        if rec is None:
            if bad_at is None:
                bad_at = offset
            continue
        if bad_at is not None:
            raise CorruptJournalError(
                f"journal damaged at byte {bad_at} but valid records follow "
                f"(seq {rec.get('seq')})", path=path)
        if rec.get("seq") != seq + 1 or rec.get("prev") != crc:
            raise CorruptJournalError(
                f"journal chain broken at byte {offset}: record seq {rec.get('seq')!r} does not "
                f"follow seq {seq} (a record was removed, reordered or edited)", path=path)
        records.append(rec)
        seq, crc, valid_end, last = rec["seq"], rec["crc"], offset + len(line) + 1, line
    return JournalScan(records, Tail(seq, crc, valid_end, base + end),
                       last + b"\n" if records else b"")


def _end_of_data(fd: int, size: int) -> int:
    """Where an open journal's bytes end, its reserve excluded (read backwards)."""
    hi = size
    while hi > 0:
        lo = max(0, hi - _CHUNK)
        end = lo + data_end(os.pread(fd, hi - lo, lo))
        if end > lo or lo == 0:
            return end
        hi = lo  # that much reserve: keep looking backwards
    return 0


def read_tail(fd: int, size: int, path: Path | str) -> Tail:
    """Chain state from the end of an open journal of ``size`` bytes, reading only what
    it must.

    Reads backwards until it has the last valid record; falls back to a full scan when
    the tail is damaged (rare: only after a crash or a fault).
    """
    full_size = size
    size = _end_of_data(fd, size)
    if size == 0:
        return Tail(0, "", 0, 0)
    start = max(0, size - _CHUNK)
    while True:
        data = os.pread(fd, size - start, start)
        if data.endswith(b"\n"):
            body = data[:-1]
            nl = body.rfind(b"\n")
            if nl >= 0 or start == 0:
                line = body[nl + 1:]
                rec = check_line(line)
                if rec is not None and isinstance(rec.get("seq"), int):
                    return Tail(rec["seq"], rec["crc"], size, size)
                break  # damaged last line: take the careful path
        else:
            break  # torn last line
        if start == 0:
            break
        start = max(0, start - _CHUNK * 4)
    full = os.pread(fd, full_size, 0)
    return scan_bytes(full, path).tail


def after_line(fd: int, end: int, line: bytes) -> bytes | None:
    """What follows ``line`` (non-empty, with its newline) if it ends at byte ``end`` of
    an open journal: b"" when the journal's records end there (end of file, or its
    reserve), the next byte when another line follows, None when ``line`` is not there."""
    n = len(line)
    if end < n:
        return None
    got = os.pread(fd, n + 1, end - n)
    if got[:n] != line:
        return None
    nxt = got[n:]
    return b"" if nxt in (b"", b" ") else nxt


def read_from(fd: int, start: int, size: int) -> bytes:
    """An open journal's bytes from ``start`` (a line start) to where its records end,
    without reading its reserve: a line that begins with a space begins the reserve."""
    parts: list[bytes] = []
    pos = start
    step = 1 << 14
    line_start = True
    while pos < size:
        chunk = os.pread(fd, min(step, size - pos), pos)
        if not chunk or (line_start and chunk[0] == _SPACE):
            break
        i = chunk.find(b"\n ")
        if i >= 0:
            parts.append(chunk[:i + 1])
            break
        parts.append(chunk)
        pos += len(chunk)
        line_start = chunk[-1] == 0x0A
        step = min(step * 4, 1 << 20)
    return b"".join(parts)


def line_ending_at(fd: int, end: int) -> bytes:
    """The line (with its newline) that ends at byte ``end`` of an open journal; b""
    when there is none (``end`` is 0 or not just after a newline)."""
    if end <= 0 or os.pread(fd, 1, end - 1) != b"\n":
        return b""
    start = end - 1
    step = 4096
    while start > 0:
        lo = max(0, start - step)
        chunk = os.pread(fd, start - lo, lo)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            start = lo + nl + 1
            break
        start = lo
        step *= 4
    return os.pread(fd, end - start, start)


class Journal:
    """Appends to one journal file; the caller serialises appends (the batch lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path if isinstance(path, Path) else Path(path)
        # (inode, end offset, line) of this object's last successful append
        self.last_append: tuple[int, int, bytes] | None = None
        self._tail: Tail | None = None  # the chain state after that append

    def position(self) -> tuple[int, Tail, bytes]:
        """(inode, tail, last valid line) of the journal as it stands; the caller holds
        the batch lock. A missing journal is inode -1 at seq 0."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return -1, Tail(0, "", 0, 0), b""
        try:
            st = os.fstat(fd)
            tail = read_tail(fd, st.st_size, self.path)
            return st.st_ino, tail, line_ending_at(fd, tail.valid_end)
        finally:
            os.close(fd)

    def create(self) -> None:
        """Create the journal file, empty, if it does not exist (its name is not synced
        here: the caller syncs the folder before the first record is appended)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            return
        except FileNotFoundError:
            ensure_dir(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        os.close(fd)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` (without seq/prev/crc), durably; returns the full record."""
        return self._append(
            lambda tail: encode_record({**record, "seq": tail.seq + 1, "prev": tail.crc}))

    def append_verbatim(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append a complete record (seq, prev, crc as given) that continues the chain."""
        return self._append(lambda tail: verbatim_line(record, tail.seq, tail.crc, self.path))

    def _current_tail(self, fd: int, st: os.stat_result) -> Tail:
        """The chain state to append after: from this object's last append when its line
        is still where it was written (reading only records appended since), else read
        from the file's end."""
        last, tail = self.last_append, self._tail
        if last is not None and tail is not None and last[0] == st.st_ino \
                and last[1] <= st.st_size:
            nxt = after_line(fd, last[1], last[2])
            if nxt == b"":
                return tail
            if nxt is not None:  # other writers appended since
                data = read_from(fd, last[1], st.st_size)
                try:
                    return scan_bytes(data, self.path, seq=tail.seq, crc=tail.crc,
                                      base=last[1]).tail
                except CorruptJournalError:
                    pass  # judge from the whole file
        return read_tail(fd, st.st_size, self.path)

    def _append(self, build: Callable[[Tail], bytes]) -> dict[str, Any]:
        created = False
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # the first record: create the file (and its folder)
            ensure_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            created = True
        try:
            st = os.fstat(fd)
            size = st.st_size
            tail = self._current_tail(fd, st)
            if tail.valid_end < tail.size:
                # A torn or damaged tail from an earlier crash: cut it (and the reserve)
                # before appending, so the new record is not glued onto garbage.
                os.ftruncate(fd, tail.valid_end)
                size = tail.valid_end
            line = build(tail)
            end = tail.valid_end + len(line)
            # Into the reserve when it fits (the file keeps its size and blocks), else
            # the file grows by the line and a new reserve.
            data = line if end <= size else line + b" " * (grown_size(end) - end)
            try:
                write_all(fd, data, tail.valid_end)
                sync_data(fd)  # the commit point
                if created:
                    fsync_dir(self.path.parent)
            except BaseException:
                # The caller rolls its change back: the record must not survive it.
                _cut(fd, tail.valid_end, size)
                raise
            rec = orjson.loads(line)
            self._tail = Tail(rec["seq"], rec["crc"], end, end)
            self.last_append = (st.st_ino, end, line)
        except BaseException:
            self._tail = self.last_append = None
            raise
        finally:
            os.close(fd)
        return dict(rec)


def _cut(fd: int, start: int, size: int | None = None) -> None:
    """Best effort: put back what a failed append overwrote from byte ``start``: the
    file's old ``size`` (default ``start``), its reserve spaces again up to it.

    Never trusted as durable (after a failed fsync the kernel's view of the file is
    unknown): the store goes read-only, and readers ignore a damaged tail anyway.
    """
    size = start if size is None else size
    try:
        os.ftruncate(fd, size)
        if size > start:
            write_all(fd, b" " * (size - start), start)
        os.fsync(fd)
    except OSError:
        pass


def append_line_locked(path: Path | str, obj: Any) -> None:
    """Append one JSON object as a line under an exclusive flock, fsynced.

    The object is written as given (no fields added). A torn last line left by an
    earlier crash is truncated first, so it never corrupts the new line.
    """
    p = Path(path)
    ensure_dir(p.parent)
    line = orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    created = not p.exists()
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size:
                last = os.pread(fd, 1, size - 1)
                if last != b"\n":
                    chunk_start = max(0, size - _CHUNK)
                    data = os.pread(fd, size - chunk_start, chunk_start)
                    nl = data.rfind(b"\n")
                    os.ftruncate(fd, chunk_start + nl + 1 if nl >= 0 else 0)
            size = os.fstat(fd).st_size
            try:
                write_all(fd, line)
                os.fsync(fd)
                if created:
                    fsync_dir(p.parent)
            except BaseException:
                _cut(fd, size)  # the caller sees an error: the line must not appear later
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_lines(path: Path | str) -> list[Any]:
    """Objects of a plain JSON-lines file, skipping a torn last line."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out: list[Any] = []
    for _, line, complete in _lines(data, len(data)):
        if not complete:
            break
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out
