"""Self-checking JSON-lines journals.

Each record is one line of plain JSON that carries its own check, so the file stays
greppable and ``jq``-able while damage is detectable:

* ``crc``: CRC-32 (8 hex digits) of the record's canonical bytes without ``crc``;
* ``prev``: the ``crc`` of the record before it ("" for the first), chaining records
  so an edited or dropped line breaks the chain;
* ``seq``: 1, 2, 3… without gaps.

A record is serialised completely first and written with one ``pwrite`` (looping only
on a short write) just after the last valid record, then synced (``fdatasync``): a
crash can leave at most a torn *last* line.

**Padding.** A journal ends with padding: spaces and a newline up to the end of its
last 4 KiB block — a blank last line, which JSON-lines tools such as ``jq`` skip. An
append writes its line over the padding, so while the line fits the file keeps its
size (and, within one tick of the clock, its timestamps), and its sync writes the block
and flushes the disk with no metadata to commit: on ext4 one disk round trip fewer
than an append that grows the file (SQLite's and PostgreSQL's logs are reused or
preallocated for the same reason). A line that does not fit ends the file at the next
block boundary, with fresh padding. An append finds where it writes without a
``stat`` of the file: a ``stat`` makes the next write stamp new, fine-grained
timestamps (Linux's multigrain timestamps), which its sync must then commit.

Reading skips blank lines (the padding; lines of nothing but spaces anywhere, as
``jq`` does: a record appended after the padding with ``>>`` is read like any other),
keeps the valid prefix and ignores a damaged tail (a torn write, zeros or garbage after
the last good record); the next append truncates a damaged tail first. Damage
*followed by* valid records cannot come from a crash and raises
:class:`CorruptJournalError`.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from clapboard.errors import CorruptJournalError
from clapboard.io.atomic import ensure_dir, fsync_dir, pwrite_all, sync_data, write_all
from clapboard.io.writeback import start_writeback

_CHUNK = 1 << 16
BLOCK = 4096  # the padding reaches the end of the file's last block of this size
BLANK = b" \n"  # the bytes of padding and blank lines

# Work an append runs while its line is on the way to the disk: (the record as
# returned, the journal's inode, the end of the line, the line)
Meanwhile = Callable[[dict[str, Any], int, int, bytes], None]


def record_crc(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "crc"}
    return f"{zlib.crc32(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)):08x}"


def encode_record(record: dict[str, Any]) -> bytes:
    """The line for ``record`` (which has ``seq`` and ``prev``), with its ``crc`` added
    (``record`` itself is left as it is)."""
    body = record if "crc" not in record else {k: v for k, v in record.items() if k != "crc"}
    return encoded_record(body)[0]


# The keys of the records the Store writes: in sorted order "crc" falls between "at"
# and "detail", both of whose predecessors are strings.
_STORE_RECORD_KEYS = frozenset(("actor", "at", "detail", "op", "prev", "seq", "version"))


def encoded_record(body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The line for ``body`` (a record with ``seq`` and ``prev`` and no ``crc``), and
    ``body`` with its ``crc`` added, a new dict sharing its values.

    The crc is of ``body``'s canonical bytes; the line is those bytes with the crc in
    its sorted place. For a record of the Store's keys whose actor and time are strings
    that place is right before ``,"detail":`` — found by that byte pattern, which no
    string before it can contain (a quote inside a JSON string is escaped) — and the
    line is spliced instead of encoded a second time (the same bytes either way)."""
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    crc = zlib.crc32(raw).to_bytes(4, "big").hex()  # 8 hex digits, as record_crc gives
    rec = {**body, "crc": crc}
    if (body.keys() == _STORE_RECORD_KEYS and type(body["actor"]) is str
            and type(body["at"]) is str):
        at = raw.index(b',"detail":')
        return b"".join((raw[:at], b',"crc":"', crc.encode(), b'"', raw[at:], b"\n")), rec
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE), rec


def check_line(line: bytes) -> dict[str, Any] | None:
    """The record in a complete line if it parses and its crc holds, else None."""
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


@dataclass(slots=True)
class Tail:
    """Where the valid records end, and the chain state an append continues from."""

    seq: int
    crc: str
    valid_end: int  # byte offset just past the last valid record
    size: int  # file size when read (its padding included)
    junk: int = 0  # bytes after valid_end that are neither records nor blank: damage


@dataclass
class JournalScan:
    records: list[dict[str, Any]]
    tail: Tail
    ends: list[int] = field(default_factory=list)  # where each record's line ends


def padding_for(end: int) -> bytes:
    """The padding that follows a line ending at byte ``end``, up to the next block
    boundary (none when ``end`` is one)."""
    n = -end % BLOCK
    return b" " * (n - 1) + b"\n" if n else b""


def _lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without newline, complete?) for each line of ``data``."""
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            yield pos, data[pos:], False
            return
        yield pos, data[pos:nl], True
        pos = nl + 1


def scan(path: Path | str) -> JournalScan:
    """Every valid record, in order; a damaged tail is skipped, mid-file damage raises."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return JournalScan([], Tail(0, "", 0, 0))
    return scan_bytes(data, path)


def scan_bytes(data: bytes, path: Path | str = "<journal>", *, seq: int = 0, crc: str = "",
               base: int = 0) -> JournalScan:
    """Like :func:`scan` over ``data``; ``seq`` / ``crc`` / ``base`` continue a chain
    from a known record at byte ``base`` of the file (``data`` starts there)."""
    records: list[dict[str, Any]] = []
    ends: list[int] = []
    valid_end = base
    bad_at: int | None = None
    for rel, line, complete in _lines(data):
        offset = base + rel
        rec = check_line(line) if complete else None
        if rec is None:
            if not line.strip(b" "):
                continue  # blank: padding, or a blank line
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
        seq, crc, valid_end = rec["seq"], rec["crc"], offset + len(line) + 1
        ends.append(valid_end)
    junk = len(data.rstrip(BLANK)) - (valid_end - base)
    return JournalScan(records, Tail(seq, crc, valid_end, base + len(data), max(junk, 0)),
                       ends)


def read_tail(fd: int, size: int, path: Path | str) -> Tail:
    """Chain state from the end of an open journal, reading only what it must.

    Reads backwards until it has the last valid record (before the padding); falls
    back to a full scan when the tail is damaged (rare: only after a crash or a fault).
    """
    if size == 0:
        return Tail(0, "", 0, 0)
    start = max(0, size - _CHUNK)
    while True:
        data = os.pread(fd, size - start, start)
        last = len(data.rstrip(BLANK))  # just past the last byte that is not blank
        if last == 0 and start == 0:
            return Tail(0, "", 0, size)  # nothing but blank
        if last and data[last:last + 1] == b"\n":  # (a record line ends in "}\n")
            nl = data.rfind(b"\n", 0, last)
            if nl >= 0 or start == 0:
                rec = check_line(data[nl + 1:last])
                if rec is not None and isinstance(rec.get("seq"), int):
                    return Tail(rec["seq"], rec["crc"], start + last + 1, size)
                break  # damaged last line: take the careful path
        elif last:
            break  # torn last line
        if start == 0:
            break
        start = max(0, start - _CHUNK * 4)
    full = os.pread(fd, size, 0)
    return scan_bytes(full, path).tail


def padded_end(fd: int, end: int, line: bytes) -> int | None:
    """The size of the open journal ``fd`` when its records end with ``line`` at byte
    ``end``: the line is there, and the file ends right after it or, a blank at ``end``,
    at the block boundary (its padding); else None. Two small reads (the line, and the
    size by ``lseek``), no ``stat`` (see the module's doc). The padding's bytes past
    the first are not compared: a record is only ever written where the records end,
    so none can start inside the padding (one appended after it changes the size)."""
    n = len(line)
    got = os.pread(fd, n + 1, end - n)
    if not got.startswith(line):
        return None
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == end or (size == end + -end % BLOCK and len(got) > n and got[n] in BLANK):
        _FOUND[fd] = (end, line, size)
        return size
    return None


# What padded_end last found through a descriptor, for the append that follows in the
# same transaction (a save proves its journal's end when it reads the body, then
# appends there): fd -> (end, line, size). Taken by the append; dropped whenever a
# journal is opened for appending, so it never outlives its descriptor.
_FOUND: dict[int, tuple[int, bytes, int]] = {}


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
        self._key = str(self.path)  # what open() opens (a Path's str() is a Python call)
        # The last record this object appended: (inode, seq, crc, end, line)
        self._last: tuple[int, int, str, int, bytes] | None = None

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

    def open(self) -> int | None:
        """A descriptor to append with (and read), for a caller that holds the batch lock
        and closes it; None when the file does not exist or may not be written (then
        every step opens it, or fails, as it would alone). Any other error is raised."""
        try:
            fd = os.open(self._key, os.O_RDWR | os.O_CLOEXEC)
        except (FileNotFoundError, PermissionError):
            return None
        _FOUND.pop(fd, None)
        return fd

    def append(self, record: dict[str, Any], fd: int | None = None, *,
               decode: bool = True, meanwhile: Meanwhile | None = None) -> dict[str, Any]:
        """Append ``record`` (without seq/prev/crc), durably; returns the full record
        as a reader decodes it — or, with ``decode=False``, as built: sharing the
        values of ``record`` (for a caller that keeps none of them). ``fd``: the
        journal as :meth:`open` gave it (else opened and closed here).

        ``meanwhile(record, inode, end, line)``, when given, runs after the line is
        written and its write-back started, before the sync: work that would otherwise
        follow the sync, done while the disk writes. What it prepares is not yet
        committed: if it raises, or the sync fails, the append fails and the line is
        cut, as for any failed append — so whatever it made visible must be proven
        against the line before use, or taken back by the caller when this raises."""
        return self._append(fd, record, verbatim=False, decode=decode, meanwhile=meanwhile)

    def append_verbatim(self, record: dict[str, Any], fd: int | None = None) -> dict[str, Any]:
        """Append a complete record (seq, prev, crc as given) that continues the chain."""
        return self._append(fd, record, verbatim=True, decode=True)

    def _append(self, kept_fd: int | None, record: dict[str, Any], *, verbatim: bool,
                decode: bool, meanwhile: Meanwhile | None = None) -> dict[str, Any]:
        """Append ``record`` after the journal's valid tail, durably: numbered and
        chained here, or ``verbatim`` (checked to continue the chain). Returns it
        decoded from its line, or as built when not ``decode``."""
        created = False
        if kept_fd is not None:
            fd = kept_fd
        else:
            try:
                fd = os.open(self._key, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:  # the first record: create the file (and its folder)
                ensure_dir(self.path.parent)
                fd = os.open(self._key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                created = True
            _FOUND.pop(fd, None)
        try:
            ino, tail, after = self._end(fd)  # after: the bytes past the records, if read
            built: dict[str, Any] | None = None
            if verbatim:
                line = verbatim_line(record, tail.seq, tail.crc, self.path)
            else:
                line, full = encoded_record({**record, "seq": tail.seq + 1, "prev": tail.crc})
                built = None if decode else full
            rec: dict[str, Any] = orjson.loads(line) if built is None else built
            at = tail.valid_end
            end = at + len(line)
            try:
                # Over the padding while the line fits: the file keeps its size.
                pwrite_all(fd, line if end <= tail.size else line + padding_for(end), at)
                if meanwhile is not None:
                    start_writeback(fd, at, len(line))
                    meanwhile(rec, ino, end, line)
                sync_data(fd)  # the line (and the file's length when it grew): the commit
                if created:
                    fsync_dir(self.path.parent)
            except BaseException:
                # The caller rolls its change back: the record must not survive it.
                if after is None:  # this object's own padding, if the file had any
                    after = padding_for(at) if tail.size > at else b""
                _restore(fd, at, after)
                raise
            self._last = (ino, rec["seq"], rec["crc"], end, line)
        except BaseException:
            self._last = None
            raise
        finally:
            if kept_fd is None:
                os.close(fd)
        return rec

    def _end(self, fd: int) -> tuple[int, Tail, bytes | None]:
        """(inode, tail, the bytes after the records) of the journal open as ``fd``:
        where the next record goes (the tail's ``size`` is the file's) and what it
        writes over (None: this object's own padding, not read). The end of the last
        record this object appended when the file still ends there (see
        :func:`padded_end`: no ``stat``); else read from the file, a damaged tail cut
        first so a new record is never glued onto garbage."""
        last = self._last
        if last is not None:
            ino, seq, crc, end, line = last
            found = _FOUND.pop(fd, None)
            if found is not None and found[0] == end and found[1] == line:
                size: int | None = found[2]  # proven in this transaction already
            else:
                size = padded_end(fd, end, line)
            if size is not None:
                return ino, Tail(seq, crc, end, size), None
        st = os.fstat(fd)
        tail = read_tail(fd, st.st_size, self.path)
        if tail.junk:
            os.ftruncate(fd, tail.valid_end)
            return st.st_ino, Tail(tail.seq, tail.crc, tail.valid_end, tail.valid_end), b""
        return st.st_ino, tail, os.pread(fd, tail.size - tail.valid_end, tail.valid_end)


def _restore(fd: int, at: int, after: bytes) -> None:
    """Best effort: put back the bytes a failed append wrote over — ``after`` at byte
    ``at``, the file's end after them — so the file is as it was.

    Never trusted as durable (after a failed fsync the kernel's view of the file is
    unknown): the store goes read-only, and readers ignore a damaged tail anyway.
    """
    try:
        if after:
            pwrite_all(fd, after, at)
        os.ftruncate(fd, at + len(after))
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
                _restore(fd, size, b"")  # the caller sees an error: the line must go
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
    for _, line, complete in _lines(data):
        if not complete:
            break
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out
