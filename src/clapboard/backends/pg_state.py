"""Bodies as the PostgreSQL backend reads them: the body row plus the journal's delta
records after the row's checkpoint, kept per process.

The same design as the filesystem's (:mod:`clapboard.backends.fs_state`): a status save
commits by inserting its journal record (no rewrite of a body row of hundreds of KiB),
and every ``compact_every`` records the body row is rewritten with everything applied.
A body row carries ``checkpoint`` (the journal seq it includes) and ``token`` (random,
new on every write of the row). A kept state is reused only while the row's token is
the one it was built from and the journal's chain continues from the record it applied
last (seq *and* crc): a rolled-back record, a rewritten row or a restored database is
never mistaken for what was kept.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from clapboard import codec
from clapboard.backends.base import BodyState
from clapboard.backends.replay import KeptBodies, apply_deltas, is_delta, reencoded
from clapboard.errors import CorruptJournalError
from clapboard.io import journal as jr

Execute = Callable[..., Any]  # PgBatchTx.execute or Connection.execute


@dataclass(slots=True)  # never mutated (kept entries are shared); not frozen: cheaper
class PgEntry:
    token: str  # the body row's token when it was read
    seq: int  # the last journal record applied (or checked)
    crc: str  # its crc ("" when not known yet)
    state: BodyState
    pending: int  # delta records applied on top of the row
    size: int  # length of the row's text


def new_token() -> str:
    return secrets.token_hex(16)


_WHERE = "project = %s AND episode = %s AND batch_id = %s"


def materialize(kept: KeptBodies[PgEntry], execute: Execute, key: tuple[str, str, str],
                artifact: str, version: int, label: str,
                tail: tuple[int, str] | None,
                tokens: dict[str, str] | None = None) -> PgEntry | None:
    """The body row ``artifact`` with its journal deltas applied, reusing a kept state
    when it is proven current. ``tail``: the journal's (seq, crc) when the caller holds
    the batch row (else read here, with the token, in one statement); ``tokens``: the
    batch's body tokens by artifact, when the caller read them with the lock."""
    if tail is not None and tokens is not None:
        token = tokens.get(artifact)
        row = None if token is None else (token, *tail)
    elif tail is None:
        row = execute(
            "SELECT x.token, t.journal_seq, t.journal_crc FROM clapboard_bodies x "
            "JOIN clapboard_batches t USING (project, episode, batch_id) "
            "WHERE x.project = %s AND x.episode = %s AND x.batch_id = %s "
            "AND x.artifact = %s", (*key, artifact)).fetchone()
    else:
        got = execute(f"SELECT token FROM clapboard_bodies WHERE {_WHERE} AND artifact = %s",
                      (*key, artifact)).fetchone()
        row = None if got is None else (got[0], *tail)
    if row is None:
        kept.drop(label)
        return None
    token, tail_seq, tail_crc = str(row[0]), int(row[1]), str(row[2])
    entry = kept.get(label)
    if (entry is None or not token or entry.token != token or entry.seq > tail_seq
            or (entry.seq == tail_seq and entry.crc != tail_crc)):
        # (a kept state of an older row may still prove the new one: see _adopt)
        old = entry if entry is not None and entry.crc and entry.seq <= tail_seq else None
        entry = _fresh(execute, key, artifact, label, tail_seq, tail_crc, version, old)
        if entry is None:
            kept.drop(label)
            return None
    if entry.seq < tail_seq or not entry.crc:
        caught = _catch_up(entry, execute, key, version, label)
        if caught is None:  # the kept chain does not continue: start from the row
            fresh = _fresh(execute, key, artifact, label, tail_seq, tail_crc)
            caught = None if fresh is None else _catch_up(fresh, execute, key, version, label)
            if caught is None:
                raise CorruptJournalError(
                    f"journal of {label} does not continue from the body's checkpoint",
                    path=label)
        entry = caught
    kept.put(label, entry)
    return entry


def _fresh(execute: Execute, key: tuple[str, str, str], artifact: str, label: str,
           tail_seq: int, tail_crc: str, version: int = 0,
           old: PgEntry | None = None) -> PgEntry | None:
    """The body row as stored; decoded, unless ``old`` (a kept state of an earlier row
    of this body) proves it (:func:`_adopt`)."""
    got = execute(
        f"SELECT body, token, checkpoint FROM clapboard_bodies WHERE {_WHERE} "
        "AND artifact = %s", (*key, artifact)).fetchone()
    if got is None:
        return None
    text, token, checkpoint = str(got[0]), str(got[1]), int(got[2])
    if checkpoint > tail_seq:
        raise CorruptJournalError(
            f"body {label} includes journal seq {checkpoint}, but the journal ends at "
            f"seq {tail_seq}", path=label, hint="restore the journal from a backup")
    data = text.encode()
    if old is not None and old.seq <= checkpoint:
        adopted = _adopt(old, execute, key, version, label, checkpoint, data)
        if adopted is not None:
            return replace(adopted, token=token, size=len(text))
    with codec.gc_paused():
        doc = codec.decode_scene(data, label)
    crc = tail_crc if checkpoint == tail_seq else ""
    return PgEntry(token, checkpoint, crc, BodyState(doc), 0, len(text))


def _adopt(old: PgEntry, execute: Execute, key: tuple[str, str, str], version: int,
           label: str, checkpoint: int, data: bytes) -> PgEntry | None:
    """A rewritten body row (another process's compaction) proven by a kept state of an
    earlier row: the journal records from the kept one up to the row's checkpoint
    applied, then encoded — if that is the row's text, byte for byte, decoding and
    validating it would give the same state. None otherwise (decode it)."""
    rows = execute(f"SELECT record FROM clapboard_journal WHERE {_WHERE} AND seq > %s "
                   "AND seq <= %s ORDER BY seq", (*key, old.seq, checkpoint)).fetchall()
    seq, crc = old.seq, old.crc
    records = []
    for (text,) in rows:
        rec = jr.check_line(str(text).encode())
        if rec is None or rec.get("seq") != seq + 1 or rec.get("prev") != crc:
            return None  # damage or another chain: the whole read decides
        seq, crc = rec["seq"], rec["crc"]
        records.append(rec)
    if seq != checkpoint:
        return None
    state = reencoded(old.state, records, version, label, data)
    return None if state is None else PgEntry(old.token, seq, crc, state, 0, len(data))


def _catch_up(entry: PgEntry, execute: Execute, key: tuple[str, str, str], version: int,
              label: str) -> PgEntry | None:
    """``entry`` with the records after it applied; None if they do not chain on."""
    rows = execute(f"SELECT record FROM clapboard_journal WHERE {_WHERE} AND seq > %s "
                   "ORDER BY seq", (*key, entry.seq)).fetchall()
    seq, crc = entry.seq, entry.crc
    records = []
    for (text,) in rows:
        rec = jr.check_line(str(text).encode())
        if rec is None:
            raise CorruptJournalError(f"journal record after seq {seq} of {label} fails its "
                                      "crc check", path=label)
        if rec.get("seq") != seq + 1 or (crc and rec.get("prev") != crc):
            return None
        seq, crc = rec["seq"], rec["crc"]
        records.append(rec)
    if not crc and seq > 0:
        return None  # nothing after the checkpoint, and its crc unknown: cannot prove
    deltas = [r for r in records if is_delta(r, version)]
    state = apply_deltas(entry.state, deltas, label) if deltas else entry.state
    return replace(entry, seq=seq, crc=crc, state=state, pending=entry.pending + len(deltas))
