"""The batch transaction's round trips through libpq's pipeline (backends/pg_wire.py),
against a real server: statement order, prepared statements, errors, interruption."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

import clapboard
from clapboard import Scene
from clapboard.backends.pg_wire import Statement, round_trip, run_encoded, text
from tests.pg_support import pg_url, sql_rows  # noqa: F401  (pg_url is a fixture)

pytestmark = pytest.mark.postgres
P, EP = "show", 1
PLAN: dict[str, Any] = {"sequences": {"SEQ_A": {"shots": [{"shot_id": "A1"}]}}}


def bump(scene: Scene) -> None:
    md = scene.scene_metadata
    md["counter"] = md.get("counter", 0) + 1


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:  # noqa: F811
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
        yield c


INSERT = Statement(b"test_insert", b"INSERT INTO t VALUES ($1, $2)")
SELECT = Statement(b"test_select", b"SELECT k, v FROM t WHERE k >= $1 ORDER BY k")


def prepared(c: psycopg.Connection[Any]) -> list[str]:
    return sorted(str(r[0]) for r in c.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'test_%'").fetchall())


def test_a_trip_runs_its_statements_in_order_and_prepares_each_once(
        conn: psycopg.Connection[Any]) -> None:
    enc = conn.info.encoding
    res = round_trip(conn, [(b"BEGIN", ()), (INSERT, (1, "雨")), (INSERT, (2, None)),
                            (SELECT, (1,)), (b"COMMIT", ())])
    assert len(res) == 5  # one result per statement, the prepares' own left out
    rows = [(text(res[3], i, 0, enc), text(res[3], i, 1, enc)) for i in range(res[3].ntuples)]
    assert rows == [("1", "雨"), ("2", None)]
    assert prepared(conn) == ["test_insert", "test_select"]
    round_trip(conn, [(INSERT, (3, "x"))])  # prepared already: executed, not re-prepared
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_failed_statement_raises_psycopg_class_and_skips_the_rest(
        conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        round_trip(conn, [(b"BEGIN", ()), (INSERT, (1, "a")), (INSERT, (1, "dup")),
                          (INSERT, (2, "never")), (b"COMMIT", ())])
    # The trip ended cleanly: the connection stays, in the failed transaction, and the
    # statements after the error did not run.
    assert not conn.closed
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    round_trip(conn, [(INSERT, (5, "after"))])  # still usable
    assert conn.execute("SELECT k FROM t").fetchall() == [(5,)]


def test_parameters_already_encoded_are_sent_as_they_are(
        conn: psycopg.Connection[Any], pg_url: str) -> None:  # noqa: F811
    """``run_encoded``: UTF-8 bytes (or None) go out verbatim — prepared on first use,
    with the session's lock timeout set in the same trip when it has another, and on
    their own once prepared and set — and a connection in another client encoding is
    refused, not fed the wrong bytes."""
    enc = conn.info.encoding
    first = run_encoded(conn, INSERT, [b"1", "雨".encode()], lock_timeout=2.5)
    assert first.status == psycopg.pq.ExecStatus.COMMAND_OK
    assert conn.execute("SHOW lock_timeout").fetchone() == ("2500ms",)
    conn.execute("SET lock_timeout = '7s'")  # behind its back: it believes 2.5 s is set
    run_encoded(conn, INSERT, [b"2", None], lock_timeout=2.5)  # prepared, set: alone
    assert conn.execute("SHOW lock_timeout").fetchone() == ("7s",)
    run_encoded(conn, INSERT, [b"3", b""], lock_timeout=4)  # another timeout: sent
    assert conn.execute("SHOW lock_timeout").fetchone() == ("4s",)
    res = round_trip(conn, [(SELECT, (1,))])[0]
    assert [(text(res, i, 0, enc), text(res, i, 1, enc)) for i in range(res.ntuples)] \
        == [("1", "雨"), ("2", None), ("3", "")]
    assert prepared(conn) == ["test_insert", "test_select"]
    with psycopg.connect(pg_url, autocommit=True, client_encoding="latin1") as latin, \
            pytest.raises(ValueError, match="UTF-8"):
        run_encoded(latin, INSERT, [b"4", b"x"])


def test_work_meanwhile_runs_once_sent_after_offering_the_cpu(
        conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Work given as ``meanwhile`` runs once the trip is sent (its statement already
    running on the server), after one yield of the CPU — the lone prepared statement
    and the pipelined trip alike; a trip without such work does not yield. The yield
    keeps the GIL (a ``PyDLL`` function: other threads of this process are not let in)."""
    import ctypes

    from clapboard.backends import pg_wire

    events: list[str] = []
    monkeypatch.setattr(pg_wire, "_yield", lambda: events.append("yield"))

    def meanwhile() -> None:  # the row is not committed yet: another session sees none
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            events.append(f"meanwhile {other.execute('SELECT count(*) FROM t').fetchone()}")

    round_trip(conn, [(INSERT, (1, "a"))])  # prepared; no work meanwhile: no yield
    assert events == []
    run_encoded(conn, INSERT, [b"2", b"b"], meanwhile=meanwhile)  # alone, prepared
    round_trip(conn, [(b"BEGIN", ()), (INSERT, (3, "c")), (b"SELECT pg_sleep(0.2)", ()),
                      (b"COMMIT", ())], meanwhile)  # pipelined
    assert events[0] == "yield" and events[2] == "yield"
    assert events[1] in ("meanwhile (1,)", "meanwhile (2,)") and events[3] == "meanwhile (2,)"
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    real = pg_wire._cpu_yield()
    assert real._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]
    assert real() == 0


def test_statements_deallocated_behind_its_back_are_prepared_anew(
        conn: psycopg.Connection[Any]) -> None:
    round_trip(conn, [(INSERT, (1, "a"))])
    conn.execute("DEALLOCATE ALL")
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        round_trip(conn, [(INSERT, (2, "b"))])
    round_trip(conn, [(INSERT, (3, "c"))])  # the error made it forget: prepared again
    assert conn.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (3,)]


def test_a_store_whose_connection_was_discarded_saves_on(pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=5, pool_size=1)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        with store.backend.connection() as c:  # type: ignore[attr-defined]
            c.execute("DISCARD ALL")  # the pool's only connection loses its statements
        for _ in range(2):
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        scene = store.load_active(P, EP, "SEQ_A")
        assert scene.scene_metadata["counter"] == 3
        assert [r["seq"] for r in store.history(P, EP, "SEQ_A")][-3:] == [2, 3, 4]
    finally:
        store.close()


class Interrupted(Exception):
    pass


@contextmanager
def interrupted_after(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds`` raises :class:`Interrupted` in this (the main) thread."""
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_an_interrupted_trip_closes_its_connection(
        conn: psycopg.Connection[Any], pg_url: str) -> None:  # noqa: F811
    conn.execute("INSERT INTO t VALUES (1, 'a')")
    with psycopg.connect(pg_url) as holder, psycopg.connect(pg_url, autocommit=True) as c:
        holder.execute("SELECT 1 FROM t WHERE k = 1 FOR UPDATE")  # c's trip will wait
        with pytest.raises(Interrupted), interrupted_after(0.3):
            round_trip(c, [(b"BEGIN", ()), (b"SELECT v FROM t WHERE k = 1 FOR UPDATE", ())])
        assert c.closed  # mid-pipeline: never handed out again
        holder.rollback()


def test_a_trip_interrupted_while_waiting_drops_its_connection(pg_url: str) -> None:  # noqa: F811
    """A signal handler raising while the lock trip waits for the row lock: the
    connection is closed (a half-read pipeline is never reused), the server ends the
    session and its transaction, and the store carries on with a new connection."""
    store = clapboard.open_store(pg_url, lock_timeout=30, pool_size=1,
                                 application_name="cb-interrupted")
    holder = psycopg.connect(pg_url)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        holder.execute("SELECT 1 FROM clapboard_batches WHERE batch_id = 'SEQ_A' FOR UPDATE")
        start = time.monotonic()
        with pytest.raises(Interrupted), interrupted_after(0.5):
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        assert time.monotonic() - start < 10
        holder.rollback()
        deadline = time.monotonic() + 10  # the server notices the closed socket
        while sql_rows(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                       "= 'cb-interrupted' AND state <> 'idle'") != [(0,)]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        done = threading.Event()

        def save() -> None:
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
            done.set()

        t = threading.Thread(target=save)
        t.start()
        t.join(20)
        assert done.is_set()
        assert store.load_active(P, EP, "SEQ_A").scene_metadata["counter"] == 1
    finally:
        holder.close()
        store.close()


def test_a_commit_trip_the_server_refuses_is_known_not_to_have_committed(
        pg_url: str) -> None:  # noqa: F811
    """The journal insert travels with the COMMIT; when the server answers that trip
    with an error, the store knows at once that nothing committed (no wait for the
    session to end, as when the trip itself breaks)."""
    from clapboard.backends.postgres import PostgresBatchError

    store = clapboard.open_store(pg_url, lock_timeout=5)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        before = store.history(P, EP, "SEQ_A")
        sql_rows(pg_url, "ALTER TABLE clapboard_journal ADD CONSTRAINT no_poison "
                         "CHECK (strpos(record, 'poison') = 0)")
        start = time.monotonic()
        with pytest.raises(PostgresBatchError) as e:
            store.save_active_scene_status(
                P, EP, "SEQ_A", expected_version=None,
                mutate=lambda s: s.scene_metadata.update(note="poison"))
        assert time.monotonic() - start < 2
        assert e.value.stage == "commit, rolled back"
        assert e.value.hint == "the transaction did not commit"
        assert isinstance(e.value.__cause__, psycopg.errors.CheckViolation)
        assert store.history(P, EP, "SEQ_A") == before
        assert "note" not in store.load_active(P, EP, "SEQ_A").scene_metadata
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        assert store.load_active(P, EP, "SEQ_A").scene_metadata["counter"] == 1
    finally:
        store.close()


def test_a_sql_ascii_database_keeps_non_ascii_text() -> None:
    """Documents travel as UTF-8 whatever the database's encoding: in a SQL_ASCII
    database (what initdb makes under the C locale) psycopg would otherwise hand back
    bytes, and the prepared statements would encode parameters as ASCII."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from tests.conftest import pg_url_or_skip

    admin_url = pg_url_or_skip()
    name = f"cb_ascii_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                      "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        store = clapboard.open_store(url, lock_timeout=5)
        try:
            note = "雨 — é 🎬"
            store.init_scenes_from_plan(P, EP, {"sequences": {"SEQ_A": {"shots": [
                {"shot_id": "A1", "note": note}]}}})
            store.save_active_scene_status(
                P, EP, "SEQ_A", expected_version=None,
                mutate=lambda s: s.scene_metadata.update(note=note))
            again = clapboard.open_store(url)  # nothing kept: read back from the rows
            try:
                scene = again.load_active(P, EP, "SEQ_A")
                assert scene.scene_metadata["note"] == note
                assert scene.beats[0].beat_metadata["plan_shot"]["note"] == note
                assert again.history(P, EP, "SEQ_A")[-1]["detail"]["changes"][0]["new"] == note
            finally:
                again.close()
        finally:
            store.close()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.timeout(60)  # a trip not flushed whole waits forever for its results
def test_a_trip_larger_than_the_socket_buffer_is_sent_whole(
        conn: psycopg.Connection[Any]) -> None:
    """A non-blocking connection sends a big trip in several flushes (a journal record
    of a runner save that changed many takes can be hundreds of KiB)."""
    big = "雨" * (3 << 20)  # 9 MiB of UTF-8, far more than a socket buffer
    length = Statement(b"test_length", b"SELECT length(v), octet_length(v) FROM t WHERE k = $1")
    res = round_trip(conn, [(b"BEGIN", ()), (INSERT, (1, big)), (INSERT, (2, big[:10])),
                            (length, (1,)), (b"COMMIT", ())])
    enc = conn.info.encoding
    assert (text(res[3], 0, 0, enc), text(res[3], 0, 1, enc)) == (str(3 << 20), str(9 << 20))
    assert conn.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (2,)]


def test_a_parameter_of_another_type_is_refused_before_anything_is_sent(
        conn: psycopg.Connection[Any]) -> None:
    for bad in (bytearray(b"bytes"), 1.5, True):
        with pytest.raises(TypeError, match="str, int, bytes or None"):
            round_trip(conn, [(INSERT, (1, bad))])  # type: ignore[list-item]
    # refused before anything was sent: the connection carries on
    round_trip(conn, [(INSERT, (1, "ok"))])
    assert conn.execute("SELECT v FROM t").fetchall() == [("ok",)]
