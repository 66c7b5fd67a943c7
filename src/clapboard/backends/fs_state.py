"""Bodies as the filesystem backend reads them: the body file plus the journal's delta
records after the body's checkpoint, kept per process and proven current on every read.

Why: a status save rewrote the whole body (hundreds of KiB, two fsyncs) to change one
take. Now its journal record — which already lists every changed path with the old and
new value — is the commit point: one small append and one fsync. Every so often (and
whenever a body is written for another reason) the body is rewritten with everything
applied, stamped with the journal position it includes (``journal_checkpoint``).

Reading a body therefore means: decode the body, then apply the delta records of its
version that follow its checkpoint. This module does that and keeps the result, so the
next read of an unchanged batch costs a read of the body bytes (compared with the kept
bytes: proof, unlike inode/size/mtime, which ext4 reuses and a coarse clock repeats)
plus a look at the journal's end; records appended since are applied incrementally.

Kept states are shared and never mutated (``BodyState``): the Store builds lazy scenes
over them. The cache is bounded (:data:`~clapboard.backends.replay.KEPT_BYTES`) and safe
across threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from clapboard import codec
from clapboard.backends.base import BodyState
from clapboard.backends.replay import KeptBodies, apply_deltas, is_delta, reencoded
from clapboard.codec import Checkpoint
from clapboard.errors import CorruptJournalError
from clapboard.io import journal as jr


@dataclass(slots=True)  # not frozen: its __init__ would cost ~1 µs more per save
class JournalPos:
    """A verified position in a journal: the record ``seq``/``crc`` whose line (with its
    newline) is ``line`` and ends at byte ``end`` of the file with inode ``ino``."""

    ino: int
    end: int
    seq: int
    crc: str
    line: bytes


@dataclass(slots=True)  # never mutated (kept entries are shared); not frozen, as above
class Entry:
    body: bytes  # the body file's bytes
    checkpoint: Checkpoint | None  # what the body says it includes (None: complete)
    state: BodyState  # the body with the deltas up to ``pos`` applied
    pos: JournalPos | None  # None: the journal was not consulted (no checkpoint)
    pending: int  # delta records applied on top of the body
    size: int  # len(body), a field (the kept bodies' accounting reads it on every save)


class BodyCache(KeptBodies[Entry]):
    """Bodies kept by path, each proven current against its file on every read."""

    # -- reading -----------------------------------------------------------------------------

    def materialize(self, body_path: Path, journal_path: Path, version: int,
                    data: bytes, journal_fd: int | None = None, key: str | None = None
                    ) -> Entry:
        """The state of the body whose file holds ``data``, journal deltas applied.
        ``journal_fd``: the journal, already open (a batch transaction's), else opened
        here, once, for as long as it is needed. ``key``: the body's path as text."""
        key = key or str(body_path)
        if journal_fd is not None:  # a save's own descriptor: the common case
            return self._materialize(body_path, key, journal_path, version, data, journal_fd)
        return _with_journal(journal_path, lambda fd: self._materialize(
            body_path, key, journal_path, version, data, fd))

    def _materialize(self, body_path: Path, key: str, journal_path: Path, version: int,
                     data: bytes, fd: int | None) -> Entry:
        kept = self.get(key)
        entry: Entry | None = None
        try:
            if kept is not None and kept.body == data:
                entry = _catch_up(kept, journal_path, version, from_body=False, fd=fd)
            elif kept is not None:  # rewritten since (a compaction by another process?)
                entry = _adopt(kept, journal_path, version, data, fd)
                if entry is not None:
                    entry = _catch_up(entry, journal_path, version, from_body=False, fd=fd)
        except _Rebase:
            entry = None
        if entry is None:
            entry = read_whole(body_path, journal_path, version, data, fd)
        if entry is not kept:
            self.put(key, entry)
        return entry


def materialize(body_path: Path, journal_path: Path, version: int, data: bytes) -> Entry:
    """The body file's bytes ``data`` decoded, with the journal's delta records after
    its checkpoint applied (nothing kept: for fsck and ``persistence.load_scene``)."""
    return _with_journal(journal_path, lambda fd: read_whole(
        body_path, journal_path, version, data, fd))


def read_whole(body_path: Path, journal_path: Path, version: int, data: bytes,
               fd: int | None) -> Entry:
    """The body decoded and validated, its deltas applied from the open journal ``fd``
    (None: there is none) — what a read costs when nothing kept proves the body."""
    return _catch_up(_fresh(body_path, data), journal_path, version, from_body=True, fd=fd)


T = TypeVar("T")


def _with_journal(path: Path, use: Callable[[int | None], T]) -> T:
    """``use(fd)`` with the journal at ``path`` open for the call and closed after it
    (``use(None)``: there is no journal)."""
    try:
        own = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return use(None)
    try:
        return use(own)
    finally:
        os.close(own)


class _Rebase(Exception):
    """A kept journal position no longer holds: start again from the body's checkpoint."""


def _fresh(body_path: Path, data: bytes) -> Entry:
    with codec.gc_paused():
        doc, cp = codec.decode_body(data, body_path)
    pos = None if cp is None else JournalPos(-1, cp.offset, cp.seq, cp.crc, b"")
    return Entry(data, cp, BodyState(doc), pos, 0, len(data))


def _catch_up(entry: Entry, journal_path: Path, version: int, *, from_body: bool,
              fd: int | None) -> Entry:
    """``entry`` with the journal's records after its position applied; ``fd``: the
    journal, open (None: it does not exist)."""
    pos = entry.pos
    if pos is None:
        return entry
    if fd is None:
        if pos.seq == 0:
            return entry
        raise CorruptJournalError(
            f"journal is missing, but the body includes it up to seq {pos.seq}",
            path=journal_path, hint="restore the journal from a backup")
    if pos.line and jr.padded_end(fd, pos.end, pos.line) is not None:
        return entry  # nothing appended since
    st = os.fstat(fd)
    size = st.st_size
    if pos.ino != st.st_ino or pos.end > size or not pos.line:
        pos = _anchor(fd, size, pos, journal_path, from_body=from_body)
    data = os.pread(fd, size - pos.end, pos.end)
    try:
        scan = jr.scan_bytes(data, journal_path, seq=pos.seq, crc=pos.crc, base=pos.end)
    except CorruptJournalError:
        if from_body:
            raise
        raise _Rebase from None  # the kept position may be stale: judge from the body
    tail = scan.tail
    line = _last_line(data, tail.valid_end - pos.end) if scan.records else pos.line
    new_pos = JournalPos(st.st_ino, tail.valid_end, tail.seq, tail.crc, line)
    deltas = [r for r in scan.records if is_delta(r, version)]
    if not deltas:
        return replace(entry, pos=new_pos)
    return replace(entry, pos=new_pos, pending=entry.pending + len(deltas),
                   state=apply_deltas(entry.state, deltas, journal_path))


def _adopt(kept: Entry, journal_path: Path, version: int, data: bytes,
           fd: int | None) -> Entry | None:
    """The entry for a body rewritten since ``kept`` was read, without decoding it, when
    it is the kept state brought up to the journal position it is stamped with: the
    records from the kept position to that checkpoint applied, then encoded — if the
    encoding is the file's bytes, byte for byte, that is proof, and decoding and
    validating the file would give the same state. Otherwise None (read it whole).

    Why: every ``compact_every`` saves a writer rewrites the body, and every other
    process that keeps it used to decode and validate it whole on its next read (1.5 ms
    at 208 KiB, 14 ms at 1.4 MiB); encoding and comparing costs a fifth of that."""
    cp = codec.peek_checkpoint(data)
    pos = kept.pos
    if (fd is None or cp is None or pos is None or not pos.line or cp.seq < pos.seq
            or cp.offset < pos.end):
        return None
    if (os.fstat(fd).st_ino != pos.ino
            or os.pread(fd, len(pos.line), pos.end - len(pos.line)) != pos.line):
        return None
    chunk = os.pread(fd, cp.offset - pos.end, pos.end)
    try:
        scan = jr.scan_bytes(chunk, journal_path, seq=pos.seq, crc=pos.crc, base=pos.end)
    except CorruptJournalError:
        return None  # the whole read reports it, naming what is wrong
    tail = scan.tail
    if (tail.seq, tail.crc, tail.valid_end, tail.size) != (cp.seq, cp.crc, cp.offset,
                                                            cp.offset):
        return None
    state = reencoded(kept.state, scan.records, version, journal_path, data, cp)
    if state is None:
        return None
    line = _last_line(chunk, len(chunk)) if scan.records else pos.line
    return Entry(data, cp, state, JournalPos(pos.ino, cp.offset, cp.seq, cp.crc, line), 0,
                 len(data))


def _last_line(data: bytes, end: int) -> bytes:
    """The line of ``data`` (with its newline) that ends at ``end``."""
    return data[data.rfind(b"\n", 0, end - 1) + 1:end]


def _anchor(fd: int, size: int, pos: JournalPos, path: Path, *, from_body: bool) -> JournalPos:
    """Verify that record ``pos.seq`` / ``pos.crc`` ends at ``pos.end``; if the offset
    hint is wrong, find the record by a full scan. A kept position that fails is
    rebased on the body; a body checkpoint the journal lacks is damage."""
    if pos.seq == 0:
        if pos.end == 0:
            return replace(pos, line=b"")
    elif pos.end <= size:
        line = jr.line_ending_at(fd, pos.end)
        rec = jr.check_line(line[:-1]) if line else None
        if rec is not None and rec.get("seq") == pos.seq and rec.get("crc") == pos.crc:
            return replace(pos, line=line)
    if not from_body:
        raise _Rebase
    data = os.pread(fd, size, 0)
    scan = jr.scan_bytes(data, path)
    for rec, end in zip(scan.records, scan.ends, strict=True):
        if rec["seq"] == pos.seq:
            if rec["crc"] == pos.crc:
                return replace(pos, end=end, line=_last_line(data, end))
            break
    raise CorruptJournalError(
        f"the body includes journal record seq {pos.seq} (crc {pos.crc}), which this "
        "journal does not have", path=path,
        hint="the journal was replaced or truncated: restore it from a backup")
