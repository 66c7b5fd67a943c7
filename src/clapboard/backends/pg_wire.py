"""The round trips a batch transaction makes on every write, sent through libpq directly.

Every write of the PostgreSQL backend says the same few statements: ``BEGIN`` and the
row lock in one round trip, the journal insert and ``COMMIT`` in another. Issued
through psycopg's ``Connection.execute`` in pipeline mode they cost about 95 µs of
client CPU *per statement* on the 2-core bench machine (a cursor, parameter adaptation,
result objects, the pipeline's bookkeeping) — more than the server spends on them, and
most of a status save. Here they go through :mod:`psycopg.pq`, the libpq wrapper
psycopg itself is built on: the same statements, prepared once per connection, queued
in libpq's pipeline and sent with one sync; parameters and results in text. Measured
on that machine: lock + commit trips 0.43 → 0.31 ms, client CPU 0.27 → 0.06 ms.

Errors are psycopg's own (the class PostgreSQL's SQLSTATE maps to, e.g.
``LockNotAvailable``), raised after the trip's sync, so callers handle them as before.
A trip that cannot finish cleanly (the connection broke, the thread was interrupted
while waiting) closes the connection: a half-read pipeline must never be reused, the
server rolls back the open transaction when the session ends, and the pool replaces a
closed connection.
"""

from __future__ import annotations

import ctypes
import functools
import math
import select
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

import psycopg
from psycopg import pq

Conn = psycopg.Connection[tuple[Any, ...]]
Param = str | int | bytes | None  # bytes: already in the wire's text format


class Statement(NamedTuple):
    """A statement prepared under ``name`` on each connection that runs it."""

    name: bytes
    text: bytes


@dataclass(slots=True)
class _Session:
    """What this process knows of one connection's session: the statements prepared
    on it, its client encoding (Python's name for it), its lock_timeout setting."""

    prepared: set[bytes]
    encoding: str
    lock_timeout: str | None = None


# Per connection (a new connection starts with nothing prepared and no setting known).
_SESSIONS: weakref.WeakKeyDictionary[Conn, _Session] = weakref.WeakKeyDictionary()


def _session(conn: Conn) -> _Session:
    session = _SESSIONS.get(conn)
    if session is None:
        session = _SESSIONS[conn] = _Session(set(), conn.info.encoding)
    return session


_OK = frozenset((pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK))


def _encode(value: Param, encoding: str) -> bytes | None:
    """A parameter in text format: text, an integer, bytes already encoded, or NULL
    (nothing else is sent, so nothing is silently sent as its ``str()``)."""
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode(encoding)
    if type(value) is int:
        return b"%d" % value
    raise TypeError(f"pg_wire parameters are str, int, bytes or None, not {type(value).__name__}")


def _args(params: Sequence[Param], encoding: str) -> list[bytes | None]:
    if encoding == "utf-8":  # (what clapboard's connections use: no codec lookup per text)
        return [p.encode() if p.__class__ is str else _encode(p, encoding)
                for p in params]
    return [_encode(p, encoding) for p in params]


def round_trip(conn: Conn, steps: Sequence[tuple[Statement | bytes, Sequence[Param]]],
               meanwhile: Callable[[], object] | None = None) -> list[pq.abc.PGresult]:
    """Run ``steps`` — (prepared statement, parameters), or (plain SQL bytes, ()) — in
    one round trip (one pipeline sync); their results, in order. The first failed
    statement's error is raised once the trip is over (the statements after it did not
    run). A lone statement this connection has prepared goes without the pipeline.
    ``meanwhile`` runs once the trip is sent, before its replies are read (see
    :func:`run_encoded`)."""
    session = _session(conn)
    if len(steps) == 1:
        stmt, params = steps[0]
        if stmt.__class__ is Statement and stmt.name in session.prepared:
            return [_one(conn, session, stmt.name, _args(params, session.encoding),
                         meanwhile)]
    pg = conn.pgconn
    prepared, encoding = session.prepared, session.encoding
    encoded = [(stmt, _args(params, encoding)) for stmt, params in steps]
    sent: list[bytes | None] = []  # per message: the name it prepares, or None
    try:
        pg.enter_pipeline_mode()
        for stmt, args in encoded:
            if isinstance(stmt, Statement):
                if stmt.name not in prepared and stmt.name not in sent:
                    pg.send_prepare(stmt.name, stmt.text)
                    sent.append(stmt.name)
                pg.send_query_prepared(stmt.name, args)
            else:
                pg.send_query_params(stmt, args)
            sent.append(None)
        pg.pipeline_sync()
        _flush(pg)
        if meanwhile is not None:
            _after_yield(meanwhile)
        results, error = _collect(pg, sent, prepared)
        pg.exit_pipeline_mode()
    except BaseException:
        # Whatever state the pipeline is in, this connection cannot be trusted: drop it
        # (the server rolls back its transaction; the pool opens a new connection).
        conn.close()
        raise
    if error is not None:
        _raise(session, error)
    return results


def run_encoded(conn: Conn, stmt: Statement, args: list[bytes | None],
                lock_timeout: float | None = None,
                meanwhile: Callable[[], object] | None = None) -> pq.abc.PGresult:
    """``stmt``, committed on its own, with its parameters already in the wire's text
    format — UTF-8 bytes, or None for NULL; clapboard's connections use that client
    encoding; its result. With ``lock_timeout`` (seconds), the session gets that lock
    timeout first, in the same trip, when it has another one (kept once the trip
    succeeds). ``meanwhile`` runs once the statement is sent, before its reply is read
    (work that needs no answer fills the server's time); it must not raise (an
    exception from it ends the connection, as a broken trip does)."""
    session = _session(conn)
    if session.encoding != "utf-8":
        raise ValueError(f"pg_wire: UTF-8 parameters on a {session.encoding} connection")
    if lock_timeout is None or not (steps := lock_timeout_steps(conn, lock_timeout)):
        if stmt.name in session.prepared:
            return _one(conn, session, stmt.name, args, meanwhile)
        return round_trip(conn, [(stmt, args)], meanwhile)[-1]
    res = round_trip(conn, [*steps, (stmt, args)], meanwhile)[-1]
    timed(conn, lock_timeout)
    return res


def _one(conn: Conn, session: _Session, name: bytes, args: list[bytes | None],
         meanwhile: Callable[[], object] | None) -> pq.abc.PGresult:
    """One statement prepared on this connection already: sent on its own (libpq adds
    the sync), without entering pipeline mode — the status save's one trip."""
    pg = conn.pgconn
    try:
        pg.send_query_prepared(name, args)
        _flush(pg)
        if meanwhile is not None:
            _after_yield(meanwhile)
        res = _next_result(pg)
        if res is None:
            raise psycopg.OperationalError("no result for a statement sent")
        while _next_result(pg) is not None:  # up to the end of the statement's results
            pass
    except BaseException:
        conn.close()  # a half-read reply is never read again: see round_trip
        raise
    if res.status not in _OK:
        _raise(session, res)
    return res


def _after_yield(meanwhile: Callable[[], object]) -> None:
    """``meanwhile``, once the CPU has been offered to whatever else waits for it.

    The trip just sent woke the server's process, and a server on this machine is
    often woken on the CPU of the process that woke it: working meanwhile, the client
    would take turns with it on that CPU (measured on two vCPUs sharing both with the
    server: a 1.4 MiB status save 0.51–0.53 ms without the yield, 0.47–0.48 with it;
    at 30 KiB no difference). Yielding first lets the server's own work run before
    ours, and ours fill its wait for the disk. With nothing else runnable here — a
    server on another machine or another CPU — the yield returns at once (one system
    call). The GIL is kept through it (``os.sched_yield`` would let another thread of
    this process take it, for up to a switch interval): only other processes are
    offered the CPU."""
    _yield()
    meanwhile()


def _cpu_yield() -> Callable[[], object]:
    """``sched_yield`` of the C library, called with the GIL held; a no-op where there
    is none."""
    try:
        fn = ctypes.PyDLL(None).sched_yield  # PyDLL: the GIL is not released
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no such call here
        return lambda: None
    fn.argtypes = []
    fn.restype = ctypes.c_int
    return fn


_yield = _cpu_yield()


def _next_result(pg: pq.abc.PGconn) -> pq.abc.PGresult | None:
    while pg.is_busy():
        _wait(pg, select.POLLIN)
        pg.consume_input()
    res = pg.get_result()
    if res is None and pg.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(
            "the connection was lost: " + pg.error_message.decode(errors="replace"))
    return res


def _raise(session: _Session, error: pq.abc.PGresult) -> NoReturn:
    if error.error_field(pq.DiagnosticField.SQLSTATE) == _UNDEFINED_STATEMENT:
        session.prepared.clear()  # deallocated behind our back: prepare anew
    raise psycopg.errors.error_from_result(error, encoding=session.encoding)


_UNDEFINED_STATEMENT = b"26000"  # invalid_sql_statement_name


def _flush(pg: pq.abc.PGconn) -> None:
    """Send what libpq has queued (a non-blocking connection may take several calls)."""
    while pg.flush() == 1:
        _wait(pg, select.POLLOUT | select.POLLIN)
        pg.consume_input()


def _wait(pg: pq.abc.PGconn, events: int) -> None:
    poller = select.poll()
    poller.register(pg.socket, events)
    poller.poll()


def _collect(pg: pq.abc.PGconn, sent: list[bytes | None], prepared: set[bytes]
             ) -> tuple[list[pq.abc.PGresult], pq.abc.PGresult | None]:
    """Read one result per message sent, up to the sync: the statements' results and
    the first error. A prepare that succeeded is remembered in ``prepared``."""
    results: list[pq.abc.PGresult] = []
    error: pq.abc.PGresult | None = None
    i = 0
    while True:
        res = _next_result(pg)
        if res is None:
            continue  # the end of one message's results
        status = res.status
        if status == pq.ExecStatus.PIPELINE_SYNC:
            if i != len(sent):
                raise psycopg.OperationalError(
                    f"pipeline out of step: {i} results for {len(sent)} statements")
            return results, error
        name = sent[i]
        i += 1
        if status == pq.ExecStatus.PIPELINE_ABORTED:
            continue  # skipped after an earlier error
        if status not in _OK:
            error = error or res
        elif name is not None:
            prepared.add(name)
        else:
            results.append(res)


def text(res: pq.abc.PGresult, row: int, col: int, encoding: str) -> str | None:
    """A text-format value of a result, decoded (None for SQL NULL)."""
    value = res.get_value(row, col)
    return None if value is None else bytes(value).decode(encoding)


# -- the session's lock timeout ----------------------------------------------------------

_MAX_MS = 2_147_483_647  # PostgreSQL's largest lock_timeout


@functools.lru_cache(maxsize=64)
def lock_timeout_ms(timeout: float) -> str:
    """A lock wait in seconds as PostgreSQL's ``lock_timeout``. An infinite (or NaN)
    timeout, as CLAPBOARD_LOCK_TIMEOUT=inf gives, waits as long as PostgreSQL allows
    (int(inf) would raise OverflowError out of every write); PostgreSQL's 0 would mean
    "wait forever", so a zero timeout becomes 1 ms."""
    ms = timeout * 1000
    if not math.isfinite(ms) or ms >= _MAX_MS:
        return f"{_MAX_MS}ms"
    return f"{max(int(ms), 1)}ms"


_SET_LOCK_TIMEOUT = b"SELECT set_config('lock_timeout', $1, false)"


def lock_timeout_steps(conn: Conn, timeout: float) -> list[tuple[bytes, tuple[str]]]:
    """The statement that gives ``conn`` this lock timeout, when it has another one
    (none when it has this one). The session keeps it once the trip it travels in
    commits: say so with :func:`timed`."""
    want = lock_timeout_ms(timeout)
    if _session(conn).lock_timeout == want:
        return []
    return [(_SET_LOCK_TIMEOUT, (want,))]


def timed(conn: Conn, timeout: float) -> None:
    """``conn``'s session now has this lock timeout."""
    _session(conn).lock_timeout = lock_timeout_ms(timeout)


def forget_lock_timeout(conn: Conn) -> None:
    """``conn``'s session setting is unknown (a rolled back transaction undid it)."""
    session = _SESSIONS.get(conn)
    if session is not None:
        session.lock_timeout = None


__all__ = ["Statement", "forget_lock_timeout", "lock_timeout_ms", "lock_timeout_steps",
           "round_trip", "run_encoded", "text", "timed"]
