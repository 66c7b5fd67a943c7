"""The PostgreSQL backend: the same Store, for writers on several machines.

A batch transaction is one database transaction on a pooled connection:

1. one round trip (libpq's pipeline, through :mod:`clapboard.backends.pg_wire`, which
   prepares the statements every write sends once per connection): ``BEGIN``; the lock
   timeout as the connection's session ``lock_timeout`` when it differs (PostgreSQL's 0
   would mean "wait forever", so a zero timeout becomes 1 ms); ``SELECT … FOR UPDATE``
   on the batch row — the batch lock, which replaces the lock file and returns the
   newest manifest and journal tail even when it had to wait; then the body tokens, read
   after the lock. A missing batch row is created (``INSERT … ON CONFLICT DO NOTHING``,
   a second creator waiting under the same timeout) and locked in one more round trip;
2. the Store's reads and writes run as statements of the same transaction; journal
   inserts (which send ``NOTIFY``, delivered only on commit, so watchers never see a
   rolled back record) wait to travel with the next statement;
3. leaving the block sends the waiting inserts and ``COMMIT`` in one round trip; an
   exception (a ``post_write`` hook, a guard) rolls back everything, so a status save,
   its journal record and its hook commit together. A failed last round trip is
   settled: an error the server answered with means no commit; a broken trip is
   settled once the old server session is gone (:meth:`PostgresBackend._outcome`).

A client killed mid-transaction leaves nothing: the server rolls back its open
transaction when the connection drops, and the row lock goes with it.

Errors match the filesystem backend's: documents go through :mod:`clapboard.codec`
(schema and parse errors), identity is checked the same way, and each error names the
row it is about as ``pg:<db>.<schema>/<project>/<artifact>`` — the file name the same
document has in a folder store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from clapboard import codec
from clapboard.backends.base import Backend, BatchTx, BodyState, Doc, Report
from clapboard.backends.pg_optimistic import LOCKED_AFTER_CONFLICT, Head, OptimisticBlock
from clapboard.backends.pg_schema import ensure_schema, notify_payload
from clapboard.backends.pg_state import PgEntry, materialize, new_token
from clapboard.backends.pg_wire import (
    Param,
    Statement,
    forget_lock_timeout,
    lock_timeout_steps,
    round_trip,
    text,
    timed,
)
from clapboard.backends.replay import COMPACT_EVERY, KeptBodies, delta_line, state_after
from clapboard.errors import (
    ClapboardError,
    CorruptJournalError,
    LockReentryError,
    LockTimeoutError,
    SceneIdentityMismatchError,
)
from clapboard.io import journal as jr
from clapboard.manifest import artifact_for
from clapboard.paths import manifest_name, safe_basename

Key = tuple[str, str, str]
Conn = psycopg.Connection[tuple[Any, ...]]

# Batches held by threads of this process: (store identity, project, episode, batch,
# thread id). A second batch() on the same batch from the holding thread would wait on
# its own row lock until the timeout; it is refused at once instead, as with flock. An
# optimistic block counts as holding its batch (a save nested in its closure would
# otherwise commit on its own, and the closure then run again).
_HELD: set[tuple[str, str, str, str, int]] = set()
os.register_at_fork(after_in_child=_HELD.clear)

KEPT_HEADS = 4096  # batch heads a backend keeps for optimistic saves
_IDLE_POLL = 0.05  # how often a request the pool cannot serve looks at the kept connection
_IDLE = psycopg.pq.TransactionStatus.IDLE


Mark = tuple[str, str, str, str, int]


def _hold(backend: PostgresBackend, key: Key) -> Mark:
    """Mark batch ``key`` held by this thread; refused at once if it already is. (No
    guard: a mark names its thread, so only that thread adds or removes it, and a set's
    ``in``, ``add`` and ``discard`` are atomic.)"""
    mark = (backend.url, *key, threading.get_ident())
    if mark in _HELD:
        project, episode, batch_id = key
        raise LockReentryError(
            f"this thread already holds batch {project}/{episode}/{batch_id} in "
            f"{backend.location} (re-entrant save of the same batch, e.g. from a "
            "post_write hook)", hint="do the second write after the first one returns")
    _HELD.add(mark)
    return mark


def _release(mark: object) -> None:
    _HELD.discard(mark)


@contextmanager
def _holding(backend: PostgresBackend, key: Key) -> Iterator[None]:
    """This thread holds batch ``key`` for the block; refused at once if it already does."""
    mark = _hold(backend, key)
    try:
        yield
    finally:
        _release(mark)


# A flat body's artifact, as SQL over a batch row (paths.flat_name).
_FLAT = "b.episode || '_' || b.batch_id || '.json'"
_LISTED = f"""(b.manifest IS NOT NULL OR EXISTS (
    SELECT 1 FROM clapboard_bodies f WHERE f.project = b.project AND f.episode = b.episode
    AND f.batch_id = b.batch_id AND f.artifact = {_FLAT}))"""


def redact(url: str) -> str:
    """The URL without its password (for messages, ``Store.__repr__`` and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def _channel(schema: str) -> str:
    """The NOTIFY channel of a schema: at most 63 *bytes* (pg_notify refuses a longer
    name, which a non-ASCII schema name reaches well before 63 characters)."""
    return f"clapboard.{schema}".encode()[:63].decode(errors="ignore")


class PostgresBatchError(ClapboardError):
    """A database error (connection lost, statement refused) while holding a batch:
    the transaction did not commit (unless ``stage`` is ``"commit"``: unknown)."""

    def __init__(self, lock: str, stage: str, op: str, cause: BaseException) -> None:
        self.lock = lock
        self.stage = stage
        super().__init__(
            f"PostgreSQL error during {op or 'a write'} on {lock} ({stage}): "
            f"{str(cause).strip()}",
            path=lock,
            hint="the transaction did not commit" if stage != "commit" else
            "it failed at commit: the outcome is unknown, check with `clapboard log`")


class PostgresUnavailableError(ClapboardError, ConnectionError):
    """A read or maintenance query failed in the database (no batch lock was held)."""


# The statements every write sends (pg_wire: prepared once per connection).
_LOCK_ROW = Statement(b"clapboard_lock_row", (
    b"SELECT manifest, journal_seq, journal_crc FROM clapboard_batches "
    b"WHERE project = $1 AND episode = $2 AND batch_id = $3 FOR UPDATE"))
_TOKENS = Statement(b"clapboard_tokens", (
    b"SELECT artifact, token FROM clapboard_bodies "
    b"WHERE project = $1 AND episode = $2 AND batch_id = $3"))
_NEW_ROW = Statement(b"clapboard_new_row", (
    b"INSERT INTO clapboard_batches (project, episode, batch_id) VALUES ($1, $2, $3) "
    b"ON CONFLICT DO NOTHING"))
# A journal record, the chain tail on the (locked) batch row, and the notification,
# which PostgreSQL delivers only if the transaction commits: one statement.
_RECORD = Statement(b"clapboard_record", (
    b"WITH ins AS (INSERT INTO clapboard_journal "
    b"(project, episode, batch_id, seq, crc, record) VALUES ($1, $2, $3, $4, $5, $6)), "
    b"upd AS (UPDATE clapboard_batches SET journal_seq = $4, journal_crc = $5 "
    b"WHERE project = $1 AND episode = $2 AND batch_id = $3) "
    b"SELECT pg_notify($7, $8)"))


def _build_spares(states: list[BodyState]) -> None:
    for state in states:
        state.build_spare()


def _rollback(conn: Conn) -> None:
    """End a failed batch transaction (best effort: a broken connection is discarded
    by the pool, and the server rolls back what it had)."""
    forget_lock_timeout(conn)
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass


class PostgresBackend(Backend):
    """A store in a PostgreSQL schema. ``pool_size`` bounds the connections it opens."""

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0,
                 application_name: str = "clapboard",
                 compact_every: int = COMPACT_EVERY, optimistic: bool = True) -> None:
        self.url = url
        self.compact_every = compact_every
        self.kept: KeptBodies[PgEntry] = KeptBodies()
        # Status saves in one round trip (pg_optimistic), from each batch's head: its
        # row as this process last held it. After a conflict, a few saves skip it.
        self.optimistic = optimistic
        self.heads: dict[Key, Head] = {}
        self._skip: dict[Key, int] = {}
        self.location = redact(url)
        # Documents are UTF-8 text on both sides of the wire whatever the database's own
        # encoding (a SQL_ASCII database otherwise hands back bytes, not text).
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": application_name,
                                  "connect_timeout": max(1, int(connect_timeout)),
                                  "client_encoding": "utf8"}
        self._kwargs = kwargs
        try:
            # A direct first connection reports the real reason (refused, no database,
            # bad password) where a pool would only time out; it also sets up the tables.
            with psycopg.connect(url, **kwargs) as conn:
                self.schema = ensure_schema(conn, self.location)
                db = conn.info.dbname
        except psycopg.Error as e:
            raise ClapboardError(
                f"cannot open PostgreSQL store {self.location}: {str(e).strip()}",
                hint="check the URL, that the server runs, and the user's rights",
            ) from None
        self.name = f"pg:{db}.{self.schema}"
        self.channel = _channel(self.schema)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), kwargs=kwargs, open=False,
            name=f"clapboard-{self.schema}")
        self._pool.open(wait=False)
        # The connection given back last, when free, serves the next request (checkout).
        self._idle: list[Conn] = []
        self._idle_max = 1 if pool_size >= 2 else 0
        self._listener: Conn | None = None
        self._listener_guard = threading.Lock()
        self._closed = False
        # The connection of each batch this thread holds: unlocked reads of that batch
        # made inside its block run on it (they see the block's own writes, as files
        # do, and never wait for a second pooled connection).
        self._local = threading.local()

    # -- helpers ----------------------------------------------------------------------

    def label(self, project: str, name: str) -> str:
        """The name an error gives a row: what the same document is called in a folder."""
        return f"{self.name}/{project}/{name}"

    def lock_label(self, key: Key) -> str:
        """The name an error gives a batch's row lock."""
        return self.label(key[0], f"{key[1]}_{key[2]}")

    def checkout(self, timeout: float) -> Conn:
        """A connection of the pool for this thread's use; give it back with
        :meth:`checkin`. The one given back last comes first when it is free: a
        process that saves again and again talks to one server process, whose caches
        and prepared statements are warm, and skips the pool's own bookkeeping (6-9 %
        of a cold status save, measured with ``python -m bench.cold --pg``). Such a
        connection stays checked out of the pool, so a request the pool cannot serve
        at once looks here again every few hundredths of a second while it waits
        (PoolTimeout after ``timeout`` seconds, as the pool's own)."""
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if not self._idle_max:
            return self._pool.getconn(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._pool.getconn(timeout=max(min(_IDLE_POLL, timeout), 0.001))
            except PoolTimeout:
                try:
                    return self._idle.pop()
                except IndexError:
                    pass
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise

    def checkin(self, conn: Conn) -> None:
        """Give back a connection :meth:`checkout` gave: kept for the next request when
        it is idle and sound (and none is kept yet), else returned to the pool (which
        rolls back an open transaction and replaces a broken connection)."""
        if (len(self._idle) < self._idle_max and not self._closed and not conn.closed
                and conn.pgconn.transaction_status == _IDLE):
            self._idle.append(conn)
        else:
            self._pool.putconn(conn)

    def write_connection(self, key: Key, wait: float, timeout: float) -> Conn:
        """:meth:`checkout` for a write of batch ``key``: no free connection within
        ``wait`` seconds is that write's ``LockTimeoutError`` (of ``timeout``)."""
        try:
            return self.checkout(max(wait, 0.001))
        except PoolTimeout:
            raise LockTimeoutError(f"{self.lock_label(key)} (no free pooled connection)",
                                   timeout) from None

    def connection_lost(self) -> None:
        """A connection turned out dead (a restarted server, sessions ended by an
        admin): the pool's idle ones may be too. Test them now — the pool replaces the
        dead — so the next request gets a live one instead of failing on it in turn."""
        try:
            self._pool.check()
        except Exception:  # best effort: the server may be down still
            pass

    @contextmanager
    def _pooled(self, timeout: float) -> Iterator[Conn]:
        conn = self.checkout(timeout)
        try:
            yield conn
        finally:
            self.checkin(conn)

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled autocommit connection, for reads and whole-store maintenance.

        A database failure here (server gone, pool exhausted, tables dropped) becomes one
        typed error naming the store, as a missing folder would on the filesystem.
        """
        try:
            with self._pooled(self._pool.timeout) as conn:
                yield conn
        except psycopg.Error as e:  # PoolTimeout is an OperationalError too
            raise PostgresUnavailableError(
                f"PostgreSQL store {self.location}: {str(e).strip() or type(e).__name__}",
                path=self.name,
                hint="check that the server runs and the store's tables exist; retry",
            ) from e

    def _held(self) -> dict[Key, PgBatchTx]:
        held: dict[Key, PgBatchTx] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    @contextmanager
    def _reading(self, project: str, episode: str, batch_id: str) -> Iterator[Conn]:
        """The held batch's transaction when this thread holds it, else a pooled one."""
        tx = self._held().get((project, episode, batch_id))
        if tx is None:
            with self.connection() as conn:
                yield conn
            return
        tx.flush()  # the block's deferred statements first: reads see its writes
        try:
            yield tx.conn
        except psycopg.Error as e:
            raise PostgresBatchError(tx.lock_name, "block", tx.op, e) from e

    def _decode_manifest(self, text: str | None, project: str, episode: str,
                         batch_id: str) -> Doc | None:
        if text is None:
            return None
        label = self.label(project, manifest_name(episode, batch_id))
        manifest = codec.decode_manifest(text.encode(), label)
        if manifest.get("batch_id") != batch_id:
            raise SceneIdentityMismatchError(batch_id, manifest.get("batch_id"), path=label,
                                             what="manifest")
        return manifest

    # -- unlocked reads ---------------------------------------------------------------

    def read_manifest(self, project: str, episode: str, batch_id: str) -> Doc | None:
        with self._reading(project, episode, batch_id) as conn:
            row = conn.execute(
                "SELECT manifest FROM clapboard_batches WHERE project = %s AND episode = %s "
                "AND batch_id = %s", (project, episode, batch_id)).fetchone()
        return self._decode_manifest(row[0] if row else None, project, episode, batch_id)

    def locate(self, project: str, episode: str, batch_id: str, version: int,
               manifest: Doc | None) -> str:
        try:
            return self.label(project, artifact_for(manifest, episode, batch_id, version))
        except ClapboardError:
            return super().locate(project, episode, batch_id, version, manifest)

    def read_state(self, project: str, episode: str, batch_id: str, version: int,
                   manifest: Doc | None) -> BodyState | None:
        tx = self._held().get((project, episode, batch_id))
        if tx is not None:  # this thread holds the batch: read in its transaction
            return tx.read_state(version, manifest)
        artifact = safe_basename(artifact_for(manifest, episode, batch_id, version),
                                 context=f"batch {batch_id} v{version}")
        with self.connection() as conn:
            entry = materialize(self.kept, conn.execute, (project, episode, batch_id),
                                artifact, version, self.label(project, artifact), None)
        return entry.state if entry is not None else None

    def list_projects(self) -> list[str]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT b.project FROM clapboard_batches b WHERE {_LISTED}"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def list_episodes(self, project: str) -> list[str]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT b.episode FROM clapboard_batches b "
                f"WHERE b.project = %s AND {_LISTED}", (project,)).fetchall()
        return sorted((r[0] for r in rows), key=lambda e: (int(e[3:]), e))

    def list_batches(self, project: str, episode: str) -> list[str]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT b.batch_id FROM clapboard_batches b "
                f"WHERE b.project = %s AND b.episode = %s AND {_LISTED}",
                (project, episode)).fetchall()
        return sorted(r[0] for r in rows)

    def read_journal(self, project: str, episode: str, batch_id: str) -> list[Doc]:
        with self._reading(project, episode, batch_id) as conn:
            rows = conn.execute(
                "SELECT record FROM clapboard_journal WHERE project = %s AND episode = %s "
                "AND batch_id = %s ORDER BY seq", (project, episode, batch_id)).fetchall()
        # The same checks as a journal file: crc per record, seq and prev chained.
        data = b"".join(r[0].encode() + b"\n" for r in rows)
        return jr.scan_bytes(data, self.label(project, f"{episode}_{batch_id}.journal")).records

    def journal_since(
        self, project: str | None, after: dict[Key, int]
    ) -> Iterator[tuple[Key, Doc]]:
        """Records past each batch's ``after`` seq, oldest first.

        The batch row carries its journal's last seq, so only batches that moved are
        read. Per batch, seq N commits before seq N + 1 is even assigned (the row lock
        orders them), so a consumer that resumes after seq N sees neither a gap nor a
        repeat.
        """
        self._ensure_listener()  # listen before reading: no change can slip between
        keys = list(after)
        with self.connection() as conn:
            rows = conn.execute(
                """SELECT j.project, j.episode, j.batch_id, j.record
                   FROM clapboard_batches b
                   LEFT JOIN unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
                        AS a(p, e, bid, s)
                        ON a.p = b.project AND a.e = b.episode AND a.bid = b.batch_id
                   JOIN clapboard_journal j
                        ON j.project = b.project AND j.episode = b.episode
                        AND j.batch_id = b.batch_id AND j.seq > coalesce(a.s, 0)
                   WHERE b.journal_seq > coalesce(a.s, 0)
                     AND (%s::text IS NULL OR b.project = %s::text)
                   ORDER BY j.gid""",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                 [after[k] for k in keys], project, project)).fetchall()
        for p, e, b, record in rows:
            rec = jr.check_line(record.encode())
            if rec is None:
                raise CorruptJournalError(
                    f"journal record fails its crc check: {record[:80]}",
                    path=self.label(p, f"{e}_{b}.journal"))
            yield (p, e, b), rec

    # -- LISTEN / NOTIFY ----------------------------------------------------------------

    def _ensure_listener(self) -> Conn:
        with self._listener_guard:
            if self._listener is None or self._listener.closed:
                conn = psycopg.connect(self.url, **self._kwargs)
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self._listener = conn
            return self._listener

    def wait_for_change(self, timeout: float) -> None:
        """Block until a journal record commits somewhere in this store, or ``timeout``.

        A wake-up is only a hint to poll ``journal_since`` again (notifications carry the
        batch and seq, but the table is the truth): every notification already queued
        is drained so one poll covers them all.
        """
        conn = self._ensure_listener()
        try:
            got = list(conn.notifies(timeout=max(timeout, 0.0), stop_after=1))
            if got:
                list(conn.notifies(timeout=0.0))
        except psycopg.OperationalError:
            conn.close()  # reconnect (and re-LISTEN) on the next call

    # -- the batch transaction ----------------------------------------------------------

    def optimistic_batch(self, project: str, episode: str, batch_id: str, *,
                         timeout: float, op: str = "") -> AbstractContextManager[BatchTx] | None:
        key = (project, episode, batch_id)
        head = self.heads.get(key)
        if not self.optimistic or head is None or self.compact_every == 0:
            return None
        skip = self._skip.get(key)
        if skip:
            if skip > 1:
                self._skip[key] = skip - 1
            else:
                self._skip.pop(key, None)
            return None
        return OptimisticBlock(self, key, head, timeout=timeout, op=op, hold=_hold,
                               release=_release)

    def keep_head(self, key: Key, head: Head) -> None:
        """Remember ``key``'s head (the most recently written :data:`KEPT_HEADS` batches)."""
        heads = self.heads
        heads.pop(key, None)  # (re-inserted last: the oldest are first)
        heads[key] = head
        if len(heads) > KEPT_HEADS:
            try:
                del heads[next(iter(heads))]
            except (KeyError, RuntimeError, StopIteration):
                pass  # another thread changed it meanwhile: trimmed next time

    def conflicted(self, key: Key) -> None:
        """An optimistic save of ``key`` lost a race: the next few take the lock."""
        self._skip[key] = LOCKED_AFTER_CONFLICT

    @contextmanager
    def batch(self, project: str, episode: str, batch_id: str, *, timeout: float,
              op: str = "") -> Iterator[BatchTx]:
        key = (project, episode, batch_id)
        lock_name = self.lock_label(key)
        stage = "lock"
        try:
            with _holding(self, key):
                self.heads.pop(key, None)
                conn, tx = self._lock_on_live(key, timeout, lock_name, op)
                try:
                    try:
                        held = self._held()
                        held[tx._key] = tx
                        try:
                            stage = "block"
                            yield tx
                            stage = "commit"
                            try:
                                tx.commit()
                            except psycopg.Error as e:
                                committed = None if not tx.wrote_record else self._outcome(
                                    tx.pid, tx._key, tx.seq, tx.crc, timeout)
                                if committed is None:
                                    raise  # cannot tell: "outcome unknown" (stage commit)
                                if not committed:
                                    raise PostgresBatchError(lock_name, "commit, rolled back",
                                                             op, e) from e
                                # Committed: only the reply was lost. Carry on as a success.
                        finally:
                            held.pop(tx._key, None)
                    except BaseException:
                        _rollback(conn)
                        raise
                    for done in tx.after_commit:  # committed: what the block decided to keep
                        done()
                    self.keep_head(tx._key, Head(tx._manifest_text, tx.seq, tx.crc,
                                                 tx._manifest))
                finally:
                    self.checkin(conn)
        except psycopg.errors.LockNotAvailable:
            if stage != "lock":
                raise
            raise LockTimeoutError(lock_name, timeout) from None
        except psycopg.Error as e:
            # In the block, the transaction's own statements raise PostgresBatchError
            # (PgBatchTx.execute): a psycopg error there is the caller's own (a hook
            # talking to a database) and goes out untouched.
            if stage == "block":
                raise
            raise PostgresBatchError(lock_name, stage, op, e) from e

    def _lock_on_live(self, key: Key, timeout: float, lock_name: str, op: str
                      ) -> tuple[Conn, PgBatchTx]:
        """A connection with ``key``'s row lock taken (:meth:`_lock`). One that turns out
        dead before the lock is taken — the server restarted, or ended the session —
        has run nothing that lasts (no ``COMMIT`` was sent): it is given back, the pool
        tests its others, and the lock is asked once more on another, within the same
        timeout. No free connection within the timeout: ``LockTimeoutError``."""
        deadline = time.monotonic() + timeout
        wait = timeout  # (the first try uses the timeout as it is: the session keeps it)
        for attempt in (1, 2):
            conn = self.write_connection(key, wait, timeout)
            try:
                return conn, self._lock(conn, *key, wait, lock_name, op)
            except BaseException as e:
                dead = conn.closed
                _rollback(conn)
                self.checkin(conn)
                if attempt == 2 or not dead or not isinstance(e, psycopg.OperationalError):
                    raise
                self.connection_lost()
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise
        raise AssertionError("unreachable")

    def _outcome(self, pid: int, key: Key, seq: int, crc: str, timeout: float) -> bool | None:
        """After the COMMIT's round trip failed: did the transaction of server session
        ``pid`` commit? Asked on a new connection once that session is gone from the
        server (its transaction is then settled either way), by looking for the journal
        record ``seq`` it wrote. None when that cannot be told: the old session outlives
        the wait, or the server cannot be reached."""
        deadline = time.monotonic() + min(max(timeout, 1.0), 10.0)
        try:
            with psycopg.connect(self.url, **self._kwargs) as conn:
                while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                   (pid,)).fetchone():
                    if time.monotonic() > deadline:
                        return None
                    time.sleep(0.02)
                row = conn.execute(
                    "SELECT crc FROM clapboard_journal WHERE project = %s AND episode = %s "
                    "AND batch_id = %s AND seq = %s", (*key, seq)).fetchone()
        except psycopg.Error:
            return None
        return row is not None and row[0] == crc

    def _lock(self, conn: Conn, project: str, episode: str, batch_id: str, timeout: float,
              lock_name: str, op: str) -> PgBatchTx:
        key = (project, episode, batch_id)
        # One network round trip (pg_wire's pipeline) opens the transaction, takes the row
        # lock and reads what every writer needs (a second one creates the row of a new
        # batch); an error in any statement (the lock timeout) surfaces when the
        # pipeline syncs, still in this phase. The body tokens are read by a statement
        # of their own *after* the lock: in READ COMMITTED it sees what the previous
        # holder committed.
        setting = lock_timeout_steps(conn, timeout)  # (none once the session has it)
        steps: list[tuple[Statement | bytes, tuple[str, ...]]] = [
            (b"BEGIN", ()), *setting, (_LOCK_ROW, key), (_TOKENS, key)]
        try:
            *_, locked, tokens = round_trip(conn, steps)
        except psycopg.errors.InvalidSqlStatementName:
            # Our prepared statements were deallocated behind our back (DISCARD ALL by
            # a hook or a pooler): nothing happened yet, so start again; round_trip
            # prepares them anew.
            conn.execute("ROLLBACK")
            *_, locked, tokens = round_trip(conn, steps)
        if setting:
            timed(conn, timeout)  # (forgotten on rollback, which undoes it)
        if not locked.ntuples:  # a new batch: create its row, then lock it
            _, locked, tokens = round_trip(conn, [(_NEW_ROW, key), (_LOCK_ROW, key),
                                                  (_TOKENS, key)])
        if not locked.ntuples:  # deleted between the insert and the lock (only by hand)
            raise ClapboardError(f"batch row {lock_name} vanished while locking it")
        enc = conn.info.encoding
        seq, crc = text(locked, 0, 1, enc), text(locked, 0, 2, enc)
        tx = PgBatchTx(self, conn, project, episode, batch_id, text(locked, 0, 0, enc),
                       int(seq or 0), crc or "", lock_name=lock_name, op=op)
        tx.tokens = {str(text(tokens, i, 0, enc)): str(text(tokens, i, 1, enc))
                     for i in range(tokens.ntuples)}
        return tx

    # -- maintenance ----------------------------------------------------------------------

    def fsck(self, project: str | None, *, repair: bool) -> Report:
        from clapboard.backends.pg_fsck import fsck_postgres

        return fsck_postgres(self, project, repair=repair)

    def migrate(self, project: str | None) -> list[str]:
        from clapboard.backends.pg_fsck import migrate_postgres

        return migrate_postgres(self, project)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._idle:  # (checked out: the pool closes them once they are back)
            self._pool.putconn(self._idle.pop())
        self._pool.close()
        with self._listener_guard:
            if self._listener is not None:
                self._listener.close()
                self._listener = None


class PgBatchTx(BatchTx):
    """A locked batch: statements of the transaction that holds its row lock."""

    def __init__(self, backend: PostgresBackend, conn: Conn, project: str, episode: str,
                 batch_id: str, manifest: str | None, journal_seq: int,
                 journal_crc: str, *, lock_name: str = "", op: str = "") -> None:
        self.backend = backend
        self.conn = conn
        self.project = project
        self.episode = episode
        self.batch_id = batch_id
        self.lock_name = lock_name or backend.label(project, f"{episode}_{batch_id}")
        self.op = op
        self._key = (project, episode, batch_id)
        # Decoded on first read, as a folder store reads its manifest file: a bad
        # manifest does not stop the batch from being locked (e.g. to migrate a body).
        self._manifest: Doc | None = None
        self._manifest_text = manifest
        self._seq = journal_seq
        self._crc = journal_crc
        self._first_seq = journal_seq
        self.pid = conn.info.backend_pid  # the server session, to settle a lost COMMIT
        self._entries: dict[str, PgEntry] = {}  # bodies read in this transaction
        self.after_commit: list[Callable[[], None]] = []
        self._spares: list[BodyState] = []  # states to build a next scene over (commit)
        # Body tokens by artifact, read with the lock (None: unknown, ask the row)
        self.tokens: dict[str, str] | None = None
        # Journal inserts wait to travel with the next statement or with the COMMIT
        # (one round trip fewer per write); anything else sent first flushes them.
        self._deferred: list[tuple[Statement | bytes, tuple[Param, ...]]] = []

    @property
    def seq(self) -> int:
        """The journal's last seq as this transaction sees it (its own records too)."""
        return self._seq

    @property
    def crc(self) -> str:
        return self._crc

    @property
    def wrote_record(self) -> bool:
        return self._seq != self._first_seq

    def read_manifest(self) -> Doc | None:
        if self._manifest is None and self._manifest_text is not None:
            self._manifest = self.backend._decode_manifest(
                self._manifest_text, self.project, self.episode, self.batch_id)
        return dict(self._manifest) if self._manifest is not None else None

    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[tuple[Any, ...]]:
        """A statement of this transaction; a database error becomes a
        :class:`PostgresBatchError` naming the batch (the transaction is then aborted
        and rolls back when the block exits). It may change any row, so the body
        tokens read with the lock are no longer trusted."""
        self.tokens = None
        return self._run(query, params)

    def _run(self, query: Any, params: Any = None) -> psycopg.Cursor[tuple[Any, ...]]:
        try:
            self.flush()
            return self.conn.execute(query, params)
        except psycopg.Error as e:
            raise PostgresBatchError(self.lock_name, "block", self.op, e) from e

    def flush(self) -> None:
        """Send the deferred journal inserts now (one round trip)."""
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []
        try:
            round_trip(self.conn, deferred)
        except psycopg.Error as e:
            raise PostgresBatchError(self.lock_name, "block", self.op, e) from e

    def commit(self) -> None:
        """The deferred inserts and COMMIT, in one round trip. When the server answers
        that trip with an error (an insert refused, the COMMIT failed), the transaction
        did not commit; when the trip itself breaks, the outcome is unknown to the
        client (stage "commit", settled by the caller)."""
        deferred, self._deferred = self._deferred, []
        spares, self._spares = self._spares, []
        try:
            # While the server commits: the scenes the next saves will take, over the
            # states this transaction keeps once it is done (see BodyState.spare).
            round_trip(self.conn, [*deferred, (b"COMMIT", ())],
                       partial(_build_spares, spares) if spares else None)
        except psycopg.Error as e:
            if not self.conn.closed:  # the trip ended with the server's own answer
                raise PostgresBatchError(self.lock_name, "commit, rolled back", self.op,
                                         e) from e
            raise

    def select_body(self, artifact: str) -> str | None:
        row = self._run(
            "SELECT body FROM clapboard_bodies WHERE project = %s AND episode = %s "
            "AND batch_id = %s AND artifact = %s", (*self._key, artifact)).fetchone()
        return row[0] if row else None

    def _artifact(self, artifact: str, version: int) -> str:
        return safe_basename(artifact, context=f"batch {self.batch_id} v{version}")

    def read_state(self, version: int, manifest: Doc | None,
                   artifact: str | None = None) -> BodyState | None:
        if artifact is None:
            artifact = artifact_for(manifest, self.episode, self.batch_id, version)
        artifact = self._artifact(artifact, version)
        entry = materialize(self.backend.kept, self._run, self._key, artifact, version,
                            self.backend.label(self.project, artifact), (self._seq, self._crc),
                            self.tokens)
        if entry is None:
            return None
        self._entries[artifact] = entry
        return entry.state

    def commit_changes(self, version: int, artifact: str, state: BodyState,
                       new_doc: Callable[[], Doc], record: Doc,
                       after: Callable[[], Doc] | None = None) -> Doc:
        """The journal record is the commit point (one INSERT, no body row rewritten);
        every ``compact_every`` records the row is rewritten first, in the same
        transaction. What this process keeps is updated only once the commit is done."""
        name = self._artifact(artifact, version)
        entry = self._entries.get(name)
        if entry is None or entry.state is not state or self.backend.compact_every == 0:
            return super().commit_changes(version, artifact, state, new_doc, record)
        if entry.pending >= self.backend.compact_every:
            token, text = self._write_row(name, state.doc)
            entry = replace(entry, token=token, pending=0, size=len(text))
        rec = self._insert_record(delta_line(record, self._seq + 1, self._crc)[0])
        kept = replace(entry, seq=rec["seq"], crc=rec["crc"], pending=entry.pending + 1,
                       state=BodyState(state_after(state.doc, rec, after), valid=True))
        self._spares.append(kept.state)
        label = self.backend.label(self.project, name)
        self.after_commit.append(lambda: self.backend.kept.put(label, kept))
        return rec

    def _write_row(self, name: str, doc: Doc) -> tuple[str, str]:
        """Write a body row whole: it includes the journal up to now, under a new token."""
        token, text = new_token(), codec.encode_scene(doc).decode()
        self._run(
            "INSERT INTO clapboard_bodies (project, episode, batch_id, artifact, body, token, "
            "checkpoint) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (project, episode, batch_id, artifact) DO UPDATE SET "
            "body = EXCLUDED.body, token = EXCLUDED.token, checkpoint = EXCLUDED.checkpoint",
            (*self._key, name, text, token, self._seq))
        if self.tokens is not None:
            self.tokens[name] = token
        self._entries.pop(name, None)
        return token, text

    def artifact_exists(self, artifact: str) -> bool:
        return self.select_body(safe_basename(artifact)) is not None

    def write_body(self, version: int, doc: Doc, artifact: str) -> None:
        self._write_row(self._artifact(artifact, version), doc)

    def write_manifest(self, manifest: Doc) -> None:
        text = codec.encode_manifest(manifest).decode()
        self._run(
            "UPDATE clapboard_batches SET manifest = %s WHERE project = %s AND episode = %s "
            "AND batch_id = %s", (text, *self._key))
        self._manifest = dict(manifest)
        self._manifest_text = text

    def append_journal(self, record: Doc) -> Doc:
        line = jr.encode_record({**record, "seq": self._seq + 1, "prev": self._crc})
        return self._insert_record(line)

    def import_journal(self, record: Doc) -> Doc:
        """Append a complete record verbatim (its seq, prev and crc), checking that it
        is intact and continues this batch's chain."""
        line = jr.verbatim_line(record, self._seq, self._crc,
                             self.backend.label(self.project,
                                                f"{self.episode}_{self.batch_id}.journal"))
        return self._insert_record(line)

    def _insert_record(self, line: bytes) -> Doc:
        rec: Doc = orjson.loads(line)
        record_text = line.rstrip(b"\n").decode()
        payload = notify_payload((self.project, self.episode, self.batch_id), rec["seq"])
        # Deferred: it travels with the next statement or the COMMIT.
        self._deferred.append((_RECORD, (self.project, self.episode, self.batch_id,
                                         rec["seq"], rec["crc"], record_text,
                                         self.backend.channel, payload)))
        self._seq, self._crc = rec["seq"], rec["crc"]
        return rec


__all__ = ["PgBatchTx", "PostgresBackend", "PostgresBatchError", "redact"]
