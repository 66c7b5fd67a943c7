"""A status save on PostgreSQL in one round trip: optimistic, proven at commit.

The locked protocol (:meth:`PostgresBackend.batch`) needs two round trips — the row
lock first, then the journal record and ``COMMIT`` — because the closure must see the
batch as it is once locked. But a process that saves the same batch again and again
(a runner recording take events) already holds, in its kept state, what the lock
would return: the manifest, the journal's tail (seq and crc) and the body with every
record applied. So the closure runs on that, and one statement commits the record
only if the batch row still has exactly that tail and manifest and the body row that
token. Every write clapboard makes to a batch appends a journal record, so an
unchanged tail means no writer committed in between: the outcome is the one the
locked protocol would give, in one trip.

When the statement matches no row (another writer got there first, or a hand edit),
nothing was written, and the Store runs the save again under the lock, on the newest
state. That is the one difference a caller can see: after such a conflict, the
closure has been called twice. Anything the locked protocol would decide differently
on newer state — a refusal, a closure that raised, a closure that changed nothing, a
body due for compaction — is also handed to the lock rather than trusted.

After a conflict, the next few saves of that batch go straight to the lock (a batch
many processes write at once gains nothing from guessing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import psycopg

from clapboard.backends.base import BatchTx, BodyState, Doc, OptimisticMiss
from clapboard.backends.pg_schema import notify_payload, utf8_key
from clapboard.backends.pg_state import PgEntry
from clapboard.backends.pg_wire import Statement, run_encoded
from clapboard.backends.replay import delta_line, state_after
from clapboard.errors import LockTimeoutError
from clapboard.manifest import artifact_for
from clapboard.paths import safe_basename

if TYPE_CHECKING:
    from clapboard.backends.postgres import PostgresBackend

Key = tuple[str, str, str]

# Saves of a batch that go straight to the lock after an optimistic one lost a race.
LOCKED_AFTER_CONFLICT = 8


@dataclass(slots=True)  # never mutated; not frozen (a frozen __init__ costs ~1 µs)
class Head:
    """A batch row as this process last saw it under its lock (or wrote it since)."""

    manifest: str | None  # the manifest's text (None: a flat batch)
    seq: int  # the journal's last seq
    crc: str  # and that record's crc
    doc: Doc | None = None  # the manifest decoded, when it was


# One statement, committed on its own (no BEGIN: the pipeline's sync ends the implicit
# transaction): the batch row's tail moves on, the record is inserted and the
# notification sent — all only if the row still has the tail, the manifest and the body
# token this process saw. The UPDATE waits for (and then takes) the row lock a locked
# writer holds, and re-checks its condition on the row that writer committed.
CONDITIONAL_RECORD = Statement(b"clapboard_conditional_record", (
    b"WITH upd AS (UPDATE clapboard_batches SET journal_seq = $4, journal_crc = $5 "
    b"WHERE project = $1 AND episode = $2 AND batch_id = $3 "
    b"AND journal_seq = $4 - 1 AND journal_crc = $9 "
    b"AND manifest IS NOT DISTINCT FROM $10 "
    b"AND EXISTS (SELECT 1 FROM clapboard_bodies x WHERE x.project = $1 "
    b"AND x.episode = $2 AND x.batch_id = $3 AND x.artifact = $11 AND x.token = $12) "
    b"RETURNING 1), "
    b"ins AS (INSERT INTO clapboard_journal (project, episode, batch_id, seq, crc, record) "
    b"SELECT $1, $2, $3, $4, $5, $6 FROM upd) "
    b"SELECT pg_notify($7, $8) FROM upd"))


@dataclass(slots=True)
class _Change:
    """The one change an optimistic block made, waiting for the block to end."""

    name: str  # the body's artifact
    label: str
    entry: PgEntry  # the kept state it applies to
    line: bytes  # the journal record, encoded
    rec: Doc
    after: Doc  # the body with the change applied


class PgOptimisticTx(BatchTx):
    """Reads from what this process keeps; takes at most one status change."""

    def __init__(self, backend: PostgresBackend, key: Key, head: Head) -> None:
        self.backend = backend
        self.project, self.episode, self.batch_id = key
        self.key = key
        self.head = head
        self._entry: PgEntry | None = None
        self._name = self._label = ""  # the body read_state found kept, and its label
        self.change: _Change | None = None

    def read_manifest(self) -> Doc | None:
        head = self.head
        if head.manifest is None:
            return None
        doc = head.doc
        if doc is None:
            doc = self.backend._decode_manifest(head.manifest, *self.key)
        return dict(doc) if doc is not None else None

    def read_state(self, version: int, manifest: Doc | None,
                   artifact: str | None = None) -> BodyState | None:
        if artifact is None:
            artifact = artifact_for(manifest, self.episode, self.batch_id, version)
        name = safe_basename(artifact, context=f"batch {self.batch_id} v{version}")
        label = self.backend.label(self.project, name)
        entry = self.backend.kept.get(label)
        head = self.head
        if (entry is None or entry.seq != head.seq or entry.crc != head.crc
                or not entry.crc or entry.pending >= self.backend.compact_every):
            raise OptimisticMiss  # not known to be current, or due for compaction
        self._entry, self._name, self._label = entry, name, label
        return entry.state

    def commit_changes(self, version: int, artifact: str, state: BodyState,
                       new_doc: Callable[[], Doc], record: Doc,
                       after: Callable[[], Doc] | None = None) -> Doc:
        entry = self._entry
        if (entry is None or entry.state is not state or self.change is not None
                or artifact != self._name):
            raise OptimisticMiss  # (the body it read is the one it writes, or the lock)
        line, rec = delta_line(record, self.head.seq + 1, self.head.crc)
        self.change = _Change(self._name, self._label, entry, line, rec,
                              state_after(state.doc, rec, after))
        return rec

    # Everything else a write may do needs the lock.
    def write_body(self, version: int, doc: Doc, artifact: str) -> None:
        raise OptimisticMiss

    def write_manifest(self, manifest: Doc) -> None:
        raise OptimisticMiss

    def append_journal(self, record: Doc) -> Doc:
        raise OptimisticMiss

    def import_journal(self, record: Doc) -> Doc:
        raise OptimisticMiss


class OptimisticBlock:
    """``with`` it: the block runs on ``head`` and what is kept; its change commits in
    one trip (:data:`CONDITIONAL_RECORD`) or :class:`OptimisticMiss` is raised, nothing
    written. ``hold(backend, key)`` marks the batch held by this thread for the block
    (it refuses a re-entry) and returns what ``release`` takes back. (A class, not a
    generator: this runs once per status save, and three nested generator context
    managers cost more than the rest of the block's bookkeeping.)"""

    __slots__ = (
        "_mark",
        "_tx",
        "backend",
        "head",
        "hold",
        "key",
        "op",
        "release",
        "timeout",
    )

    def __init__(self, backend: PostgresBackend, key: Key, head: Head, *, timeout: float,
                 op: str, hold: Callable[[PostgresBackend, Key], object],
                 release: Callable[[object], None]) -> None:
        self.backend, self.key, self.head = backend, key, head
        self.timeout, self.op = timeout, op
        self.hold, self.release = hold, release
        self._mark: object = None
        self._tx: PgOptimisticTx | None = None

    def __enter__(self) -> BatchTx:
        self._mark = self.hold(self.backend, self.key)
        self._tx = PgOptimisticTx(self.backend, self.key, self.head)
        return self._tx

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        tx, self._tx = self._tx, None
        try:
            if et is not None:
                if issubclass(et, Exception) and not issubclass(et, OptimisticMiss):
                    # decided on state that may be old: the lock decides
                    raise OptimisticMiss from ev
                return  # OptimisticMiss itself, or not an error (Ctrl-C): as it is
            assert tx is not None
            if tx.change is None:  # "nothing to change" may be old news too
                raise OptimisticMiss
            _commit(self.backend, tx, tx.change, self.timeout, self.op)
        finally:
            self.release(self._mark)


def _commit(backend: PostgresBackend, tx: PgOptimisticTx, change: _Change, timeout: float,
            op: str) -> None:
    head, key, rec = tx.head, tx.key, change.rec
    seq, crc = rec["seq"], rec["crc"]
    manifest = head.manifest
    args = [*utf8_key(*key), b"%d" % seq, crc.encode(), change.line[:-1],
            backend.channel.encode(), notify_payload(key, seq).encode(), head.crc.encode(),
            None if manifest is None else manifest.encode(), change.name.encode(),
            change.entry.token.encode()]
    conn = backend.write_connection(key, timeout, timeout)
    try:
        pid = conn.pgconn.backend_pid
        # The state after the change, and while the server commits it, the next save's
        # scene over it (built ahead: that save takes it instead of building one).
        after = BodyState(change.after, valid=True)
        try:  # (the session's lock timeout set in the same trip when it has another)
            res = run_encoded(conn, CONDITIONAL_RECORD, args, timeout, after.build_spare)
        except psycopg.errors.LockNotAvailable:
            raise LockTimeoutError(backend.lock_label(key), timeout) from None
        except psycopg.Error as e:
            if not conn.closed:  # the server refused it: nothing committed
                raise OptimisticMiss from e
            # The trip broke: did the statement commit? (as after a lost COMMIT; a
            # save that did not is run again under the lock, which finds a live
            # connection if the pool's others died too: see _lock_on_live)
            committed = backend._outcome(pid, key, seq, crc, timeout)
            if committed is None:
                from clapboard.backends.postgres import PostgresBatchError

                raise PostgresBatchError(backend.lock_label(key), "commit", op, e) from e
            if not committed:
                raise OptimisticMiss from e
        else:
            if not res.ntuples:  # another writer got there first
                backend.conflicted(key)
                raise OptimisticMiss
    finally:
        backend.checkin(conn)
    entry = change.entry
    backend.kept.put(change.label, PgEntry(entry.token, seq, crc, after, entry.pending + 1,
                                           entry.size))
    backend.keep_head(key, Head(head.manifest, seq, crc, head.doc))


__all__ = [
    "CONDITIONAL_RECORD",
    "LOCKED_AFTER_CONFLICT",
    "Head",
    "OptimisticBlock",
    "PgOptimisticTx",
]
