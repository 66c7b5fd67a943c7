"""The PostgreSQL backend against a real server: what only a database can show.

The Store contract itself (every operation, every error) runs on PostgreSQL through
the ``store`` fixture of tests/test_contract.py; this file covers transactions, row
locks, the schema it manages, stored bytes, fsck on rows, and LISTEN/NOTIFY.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql as psql

import clapboard
from clapboard import (
    ClapboardError,
    CorruptFileError,
    LockReentryError,
    LockTimeoutError,
    Scene,
    SceneIdentityMismatchError,
    SchemaVersionError,
    VersionNotFoundError,
)
from clapboard.backends.pg_schema import LAYOUT_VERSION
from clapboard.backends.postgres import PostgresBackend, PostgresBatchError, redact
from tests.pg_support import pg_url, sql_rows  # noqa: F401  (pg_url is a fixture)

pytestmark = pytest.mark.postgres
P, EP = "show", 1
PLAN: dict[str, Any] = {"sequences": {"SEQ_A": {"shots": [{"shot_id": "A1"},
                                                         {"shot_id": "A2", "note": "雨 — é"}]}}}


def bump(scene: Scene) -> None:
    md = scene.scene_metadata
    md["counter"] = md.get("counter", 0) + 1


@pytest.fixture
def pg(pg_url: str):  # type: ignore[no-untyped-def]  # noqa: F811
    s = clapboard.open_store(pg_url, lock_timeout=5)
    s.init_scenes_from_plan(P, EP, PLAN)
    yield s
    s.close()


def counter(store: clapboard.Store) -> int:
    return int(store.load_active(P, EP, "SEQ_A").scene_metadata.get("counter", 0))


def test_schema_is_created_versioned_and_reopened(pg_url: str) -> None:  # noqa: F811
    for _ in range(2):  # the second open finds the tables and changes nothing
        clapboard.open_store(pg_url).close()
    assert sql_rows(pg_url, "SELECT version FROM clapboard_schema") == [(LAYOUT_VERSION,)]


def downgrade_layout_5(url: str) -> None:
    """Put back layout 4's index of the journal's gid."""
    sql_rows(url, "CREATE INDEX clapboard_journal_gid ON clapboard_journal (gid)")


def downgrade_layout_4(url: str) -> None:
    """Put back layout 3's journal (its foreign key, no delete trigger)."""
    downgrade_layout_5(url)
    sql_rows(url, "DROP TRIGGER clapboard_batch_deleted ON clapboard_batches")
    sql_rows(url, "DROP FUNCTION clapboard_batch_deleted()")
    sql_rows(url, "ALTER TABLE clapboard_journal ADD FOREIGN KEY (project, episode, batch_id) "
                  "REFERENCES clapboard_batches ON DELETE CASCADE")


def downgrade_layout_3(url: str) -> None:
    """Take away what layouts 3 and 4 added (as a store written by an older clapboard)."""
    downgrade_layout_4(url)
    sql_rows(url, "DROP TRIGGER clapboard_body_token ON clapboard_bodies")
    sql_rows(url, "DROP FUNCTION clapboard_body_token()")
    sql_rows(url, "ALTER TABLE clapboard_bodies DROP COLUMN token, DROP COLUMN checkpoint")


def test_layout_1_is_migrated_to_fast_document_compression(pg_url: str) -> None:  # noqa: F811
    """Layout 1 stores (pglz-compressed documents) are upgraded in place on open."""
    store = clapboard.open_store(pg_url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"SEQ_A": {"shots": [{"id": "a"}]}}})
    store.close()
    sql_rows(pg_url, "ALTER TABLE clapboard_bodies ALTER COLUMN body SET COMPRESSION pglz")
    downgrade_layout_3(pg_url)
    sql_rows(pg_url, "UPDATE clapboard_schema SET version = 1")
    store = clapboard.open_store(pg_url)
    assert sql_rows(pg_url, "SELECT version FROM clapboard_schema") == [(LAYOUT_VERSION,)]
    settings = sql_rows(pg_url, "SELECT attcompression, attstorage FROM pg_attribute "
                                "WHERE attrelid = 'clapboard_bodies'::regclass "
                                "AND attname = 'body'")
    assert settings in ([("l", "x")], [("", "e")])  # lz4, else stored uncompressed
    assert [b.beat_id for b in store.load_active(P, EP, "SEQ_A").beats] == ["a"]
    store.close()


def test_layout_2_bodies_gain_token_and_checkpoint(pg_url: str) -> None:  # noqa: F811
    """Layout 2 rows (complete bodies, no token) are upgraded on open: they load, and
    status saves then commit by journal record onto them."""
    store = clapboard.open_store(pg_url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"SEQ_A": {"shots": [{"id": "a"}]}}})
    store.close()
    downgrade_layout_3(pg_url)
    sql_rows(pg_url, "UPDATE clapboard_schema SET version = 2")
    store = clapboard.open_store(pg_url)
    assert sql_rows(pg_url, "SELECT token, checkpoint FROM clapboard_bodies") == [("", 0)]

    def bump(s: Any) -> None:
        s.scene_metadata["n"] = s.scene_metadata.get("n", 0) + 1

    for _ in range(3):
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
    with clapboard.open_store(pg_url) as fresh:  # closed: a pool left to the garbage
        # collector may be collected by one of its own threads, which cannot join itself
        assert fresh.load_active(P, EP, "SEQ_A").scene_metadata["n"] == 3
    assert [r["detail"].get("delta") for r in store.history(P, EP, "SEQ_A")][-3:] == \
        [True] * 3
    store.close()


def _journal_keys(url: str) -> list[tuple[object, ...]]:
    return sql_rows(url, "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                         "AND conrelid = 'clapboard_journal'::regclass")


def _two_batches_at_layout(url: str, version: int, downgrade: Any) -> None:
    """A store holding batches A and B, taken back to layout ``version`` as an older
    clapboard left it (``downgrade``)."""
    store = clapboard.open_store(url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"A": {"shots": [{"id": "a"}]},
                                                      "B": {"shots": [{"id": "b"}]}}})
    store.close()
    downgrade(url)
    sql_rows(url, f"UPDATE clapboard_schema SET version = {version:d}")


def test_layout_3_journal_loses_its_foreign_key_and_keeps_its_cascade(
        pg_url: str) -> None:  # noqa: F811
    """Layout 4: no foreign key checked on every journal insert; a batch row deleted by
    hand still takes its journal with it, and fsck reports journal rows left without a
    batch (inserted by hand)."""
    _two_batches_at_layout(pg_url, 3, downgrade_layout_4)
    assert len(_journal_keys(pg_url)) == 1
    store = clapboard.open_store(pg_url)
    try:
        assert sql_rows(pg_url, "SELECT version FROM clapboard_schema") == [(LAYOUT_VERSION,)]
        assert _journal_keys(pg_url) == []
        store.save_active_scene_status(P, EP, "A", expected_version=None, mutate=bump)
        assert store.fsck().clean
        # Deleted by a session whose search_path is elsewhere: the trigger names its
        # own schema's journal.
        schema = str(sql_rows(pg_url, "SELECT current_schema()")[0][0])
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SET search_path = pg_catalog")
            conn.execute(psql.SQL("DELETE FROM {}.clapboard_batches WHERE batch_id = 'A'")
                         .format(psql.Identifier(schema)))
        assert sql_rows(pg_url, "SELECT DISTINCT batch_id FROM clapboard_journal") == [("B",)]
        sql_rows(pg_url, "DELETE FROM clapboard_bodies WHERE batch_id = 'B'")
        sql_rows(pg_url, "ALTER TABLE clapboard_batches DISABLE TRIGGER clapboard_batch_deleted")
        sql_rows(pg_url, "DELETE FROM clapboard_batches WHERE batch_id = 'B'")
        problems = store.fsck().problems
        assert [(p.kind, p.path.rsplit("/", 1)[-1]) for p in problems] == \
            [("orphan-journal", "ep_001_B.journal")]
    finally:
        store.close()


def test_layout_4_journal_loses_its_gid_index(pg_url: str) -> None:  # noqa: F811
    """Layout 5: no index on the journal's gid (no query used it; each status save paid
    for it); ``watch`` still yields records across batches in commit order."""
    _two_batches_at_layout(pg_url, 4, downgrade_layout_5)
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'clapboard_journal' " \
              "AND schemaname = current_schema() ORDER BY 1"
    assert sql_rows(pg_url, indexes) == [("clapboard_journal_gid",), ("clapboard_journal_pkey",)]
    store = clapboard.open_store(pg_url)
    try:
        assert sql_rows(pg_url, "SELECT version FROM clapboard_schema") == [(LAYOUT_VERSION,)]
        assert sql_rows(pg_url, indexes) == [("clapboard_journal_pkey",)]
        for batch in ("B", "A", "B"):
            store.save_active_scene_status(P, EP, batch, expected_version=None, mutate=bump)
        backend = store.backend
        assert isinstance(backend, PostgresBackend)
        seen = [(key[2], rec["seq"]) for key, rec in backend.journal_since(P, {})]
        assert seen[-3:] == [("B", 2), ("A", 2), ("B", 3)]
        assert store.fsck().clean
    finally:
        store.close()


def test_a_newer_layout_is_refused(pg_url: str) -> None:  # noqa: F811
    clapboard.open_store(pg_url).close()
    sql_rows(pg_url, "UPDATE clapboard_schema SET version = version + 1")
    with pytest.raises(SchemaVersionError, match="newer clapboard"):
        clapboard.open_store(pg_url)


def test_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(ClapboardError, match="cannot open PostgreSQL store"):
        clapboard.open_store("postgresql://nobody:secret@127.0.0.1:1/none",
                             connect_timeout=2)
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_bodies_keep_exact_json_unknown_keys_and_non_ascii(pg: clapboard.Store,
                                                           pg_url: str) -> None:  # noqa: F811
    def enrich(scene: Scene) -> None:
        scene.scene_metadata["title"] = "Ночь — 夜 🎬"
        scene.scene_metadata["big"] = 2**62
        scene.scene_metadata["ratio"] = 0.1

    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=enrich)
    (body,), = sql_rows(pg_url, "SELECT body FROM clapboard_bodies")
    doc = orjson.loads(str(body))
    doc["future_field"] = {"kept": True}  # a newer writer's key, written behind our back
    sql_rows(pg_url, "UPDATE clapboard_bodies SET body = %s",
             (orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),))
    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    raw, _ = pg.load_raw(P, EP, "SEQ_A")
    assert raw["future_field"] == {"kept": True}
    assert raw["scene_metadata"]["title"] == "Ночь — 夜 🎬"
    assert raw["scene_metadata"]["big"] == 2**62 and raw["scene_metadata"]["ratio"] == 0.1
    assert raw["beats"][1]["beat_metadata"]["plan_shot"]["note"] == "雨 — é"


def test_bad_rows_raise_the_filesystem_errors(pg: clapboard.Store,
                                              pg_url: str) -> None:  # noqa: F811
    sql_rows(pg_url, "UPDATE clapboard_bodies SET body = '{\"scene_id\": \"SEQ_A\"}'")
    with pytest.raises(SchemaVersionError, match=r"ep_001_SEQ_A\.json"):
        pg.load_active(P, EP, "SEQ_A")
    sql_rows(pg_url, "UPDATE clapboard_bodies SET body = '{\"scene_id\": '")
    with pytest.raises(CorruptFileError) as e:
        pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert isinstance(e.value, ValueError) and "ep_001_SEQ_A.json" in str(e.value)
    assert sql_rows(pg_url, "SELECT body FROM clapboard_bodies") == [('{"scene_id": ',)]
    with pytest.raises(VersionNotFoundError):
        pg.load_version(P, EP, "SEQ_A", 7)
    with pytest.raises(SceneIdentityMismatchError):
        pg.write_scene_candidate(P, EP, "SEQ_A", Scene(scene_id="SEQ_B"))


def test_post_write_raising_commits_nothing(pg: clapboard.Store,
                                            pg_url: str) -> None:  # noqa: F811
    before = sql_rows(pg_url, "SELECT body FROM clapboard_bodies")
    journal = pg.history(P, EP, "SEQ_A")

    def hook(scene: Scene) -> None:
        # Inside the transaction the write is there; it must vanish with the rollback.
        assert scene.scene_metadata["counter"] == 1
        raise RuntimeError("render farm unreachable")

    with pytest.raises(RuntimeError, match="unreachable"):
        pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump,
                                    post_write=hook)
    assert sql_rows(pg_url, "SELECT body FROM clapboard_bodies") == before
    assert pg.history(P, EP, "SEQ_A") == journal
    # A cold start rolled back leaves no batch at all.
    with pytest.raises(RuntimeError):
        pg.save_active_scene_status(P, EP, "NEW", expected_version=1, mutate=bump,
                                    post_write=hook)
    assert pg.list_batches(P, EP) == ["SEQ_A"]
    assert sql_rows(pg_url, "SELECT count(*) FROM clapboard_batches WHERE batch_id = 'NEW'") \
        == [(0,)]


def test_lock_timeout_raises_lock_timeout_error(pg: clapboard.Store,
                                                pg_url: str) -> None:  # noqa: F811
    other = clapboard.open_store(pg_url, lock_timeout=0.3)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with pg.transaction(P, EP, "SEQ_A", "hold"):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(5)
        start = time.monotonic()
        with pytest.raises(LockTimeoutError) as e:
            other.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
        assert 0.25 < time.monotonic() - start < 3
        assert isinstance(e.value, TimeoutError) and "SEQ_A" in str(e.value)
        # Other batches are not blocked by that row lock.
        other.save_active_scene_status(P, EP, "OTHER", expected_version=1, mutate=bump)
    finally:
        release.set()
        t.join()
        other.close()
    assert counter(pg) == 0
    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert counter(pg) == 1


def test_reentry_from_a_hook_is_refused_at_once(pg: clapboard.Store) -> None:
    start = time.monotonic()
    with pytest.raises(LockReentryError):
        pg.save_active_scene_status(
            P, EP, "SEQ_A", expected_version=1, mutate=bump,
            post_write=lambda s: pg.save_active_scene_status(P, EP, "SEQ_A",
                                                             expected_version=1, mutate=bump))
    assert time.monotonic() - start < 2
    assert counter(pg) == 0


def test_threads_share_the_pool_without_lost_updates(pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=30, pool_size=3)
    try:
        def work() -> None:
            for _ in range(15):
                store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None,
                                               mutate=bump)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counter(store) == 90
        assert [r["seq"] for r in store.history(P, EP, "SEQ_A")] == list(range(1, 91))
    finally:
        store.close()


def test_the_connection_given_back_last_serves_the_next_request(
        pg_url: str) -> None:  # noqa: F811
    """One thread's saves and reads talk to one server process (its caches and prepared
    statements warm), not to each of the pool's connections in turn."""
    store = clapboard.open_store(pg_url, lock_timeout=5, pool_size=4)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    pids: list[int] = []
    real = backend.checkout

    def checkout(timeout: float) -> Any:
        conn = real(timeout)
        pids.append(conn.pgconn.backend_pid)
        return conn

    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        backend.checkout = checkout  # type: ignore[method-assign]
        for _ in range(10):
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None,
                                           mutate=bump)
            store.load_active(P, EP, "SEQ_A")
            store.history(P, EP, "SEQ_A")
        assert len(pids) >= 20 and len(set(pids)) == 1
        assert counter(store) == 10
    finally:
        store.close()


def test_a_request_the_pool_cannot_serve_takes_the_connection_given_back(
        pg_url: str) -> None:  # noqa: F811
    """Every connection of the pool is out and a thread waits for one: a connection
    given back is kept aside for the next request, and the waiting thread finds it
    there (instead of waiting until the pool itself gets one back)."""
    store = clapboard.open_store(pg_url, pool_size=2)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    try:
        first, second = backend.checkout(5), backend.checkout(5)  # the pool is empty
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(backend.checkout(20)))
        waiter.start()
        time.sleep(0.3)
        assert not got  # waiting
        backend.checkin(first)  # kept aside, not given to the pool
        waiter.join(timeout=5)
        assert got and got[0] is first
        backend.checkin(second)
        backend.checkin(got[0])
    finally:
        store.close()
    assert first.closed and second.closed  # closing the store closes every connection


def test_only_a_sound_idle_connection_is_kept_aside(pg_url: str) -> None:  # noqa: F811
    """A connection left in a transaction goes back to the pool (which rolls it back),
    and a one-connection pool keeps nothing aside (a waiter gets it from the pool)."""
    store = clapboard.open_store(pg_url, pool_size=2)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    try:
        conn = backend.checkout(5)
        conn.execute("BEGIN")
        backend.checkin(conn)
        assert backend._idle == []
        again = backend.checkout(5)
        assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        backend.checkin(again)
        assert backend._idle == [again]
    finally:
        store.close()
    single = clapboard.open_store(pg_url, pool_size=1)
    backend = single.backend
    assert isinstance(backend, PostgresBackend)
    try:
        conn = backend.checkout(5)
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(backend.checkout(20)))
        waiter.start()
        time.sleep(0.2)
        backend.checkin(conn)
        waiter.join(timeout=5)
        assert got and got[0] is conn and backend._idle == []
        backend.checkin(conn)
    finally:
        single.close()


def test_sessions_ended_by_the_server_cost_a_save_nothing(pg_url: str) -> None:  # noqa: F811
    """Every session of the store ends behind its back (a restarted server, an admin's
    ``pg_terminate_backend``) — the kept connection and the pool's. A warm save finds
    its connection dead, learns that nothing committed, has the pool test its others,
    and is done under the lock on a live one; a save that meets the dead connection at
    the row lock (nothing ran on it) asks for the lock once more on another. No error,
    no lost or doubled record either way."""
    store = clapboard.open_store(pg_url, lock_timeout=5, application_name="cb-ended")
    backend = store.backend
    assert isinstance(backend, PostgresBackend)

    def end_sessions() -> None:
        both = backend.checkout(5), backend.checkout(5)  # two connections: one kept,
        for conn in both:                                # one back in the pool
            backend.checkin(conn)
        _terminate(pg_url, "application_name = %s", ("cb-ended",))
        time.sleep(0.2)

    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        for _ in range(3):
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None,
                                           mutate=bump)
        end_sessions()
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        assert counter(store) == 4
        assert [r["seq"] for r in store.history(P, EP, "SEQ_A")] == list(range(1, 6))
        backend.heads.clear()  # the next save takes the lock first
        end_sessions()
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        assert counter(store) == 5
        assert [r["seq"] for r in store.history(P, EP, "SEQ_A")] == list(range(1, 7))
        backend.heads.clear()
        end_sessions()  # an operator's action under the lock
        store.lock_scene(P, EP, "SEQ_A", reason="picture lock")
        assert store.load_active(P, EP, "SEQ_A").locked
    finally:
        store.close()


def test_a_write_that_finds_no_free_connection_times_out_as_a_lock_wait(
        pg_url: str) -> None:  # noqa: F811
    """Every connection of the pool is out: a write waits no longer than its lock
    timeout, warm (one trip) or under the lock, and says it waited for a connection."""
    store = clapboard.open_store(pg_url, lock_timeout=0.3, pool_size=1)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        held = backend.checkout(5)  # the only one
        try:
            for warm in (True, False):
                if not warm:
                    backend.heads.clear()
                start = time.monotonic()
                with pytest.raises(LockTimeoutError, match="no free pooled connection"):
                    store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None,
                                                   mutate=bump)
                assert 0.25 < time.monotonic() - start < 3
        finally:
            backend.checkin(held)
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=None, mutate=bump)
        assert counter(store) == 2
    finally:
        store.close()


def test_fsck_checks_rows(pg: clapboard.Store, pg_url: str) -> None:  # noqa: F811
    pg.write_scene_candidate(P, EP, "SEQ_A", Scene(scene_id="SEQ_A"), note="empty")
    assert pg.fsck().problems == []
    assert pg.fsck(P, repair=True).clean
    # A body edited by hand: its structure no longer matches the recorded fingerprint.
    sql_rows(pg_url, "UPDATE clapboard_bodies SET body = replace(body, '\"A2\"', '\"AX\"') "
                     "WHERE artifact = 'ep_001_SEQ_A.json'")
    # A journal record edited by hand breaks its crc.
    sql_rows(pg_url, "UPDATE clapboard_journal SET record = replace(record, 'candidate', "
                     "'Candidate') WHERE seq = 2")
    # A body nobody registers, and a body with another scene's id.
    sql_rows(pg_url, "INSERT INTO clapboard_bodies SELECT project, episode, batch_id, "
                     "'ep_001_SEQ_A.v009.json', replace(body, 'SEQ_A', 'SEQ_Z') "
                     "FROM clapboard_bodies WHERE artifact = 'ep_001_SEQ_A.v002.json'")
    kinds = {(p.kind, p.path.rsplit("/", 1)[-1]) for p in pg.fsck().problems}
    assert ("fingerprint", "ep_001_SEQ_A.json") in kinds
    assert ("corrupt-journal", "ep_001_SEQ_A.journal") in kinds
    assert ("orphan-body", "ep_001_SEQ_A.v009.json") in kinds
    assert ("identity", "ep_001_SEQ_A.v009.json") in kinds
    report = pg.fsck(repair=True)
    assert not report.clean and not any(p.repaired for p in report.problems)
    assert pg.migrate() == []


def test_backend_lists_only_real_batches(pg_url: str) -> None:  # noqa: F811
    backend = PostgresBackend(pg_url)
    try:
        with backend.batch(P, "ep_002", "EMPTY", timeout=5):
            pass  # the row lock alone (no body, no manifest) is not a batch
        assert backend.list_projects() == [] and backend.list_batches(P, "ep_002") == []
    finally:
        backend.close()


def test_watch_resumes_from_a_seq_without_gaps_or_repeats(pg_url: str) -> None:  # noqa: F811
    writer = clapboard.open_store(pg_url, lock_timeout=30)
    writer.init_scenes_from_plan(P, EP, {"sequences": {"S1": {"shots": [{"id": "x"}]},
                                                       "S2": {"shots": [{"id": "y"}]}}})
    total = 40

    def write() -> None:
        for i in range(total):
            writer.save_active_scene_status(P, EP, f"S{i % 2 + 1}", expected_version=None,
                                            mutate=bump)

    seen: dict[tuple[str, str, str], list[int]] = {}
    after: dict[tuple[str, str, str], int] = {}

    def consume(limit: int) -> None:
        # A fresh consumer each time, resuming from the positions saved by the last one.
        watcher = PostgresBackend(pg_url)
        try:
            got = 0
            deadline = time.monotonic() + 30
            while got < limit and time.monotonic() < deadline:
                for key, rec in watcher.journal_since(P, after):
                    seen.setdefault(key, []).append(rec["seq"])
                    after[key] = rec["seq"]
                    got += 1
                    if got >= limit:
                        return
                watcher.wait_for_change(1.0)
        finally:
            watcher.close()

    t = threading.Thread(target=write)
    t.start()
    consume(17)
    consume(15)
    t.join()
    consume(total + 2 - 32)
    writer.close()
    keys = [(P, "ep_001", "S1"), (P, "ep_001", "S2")]
    assert sorted(seen) == keys
    for key in keys:
        assert seen[key] == list(range(1, total // 2 + 2))  # init + 20 saves, once each


def test_wait_for_change_wakes_on_commit_not_on_rollback(pg: clapboard.Store,
                                                         pg_url: str) -> None:  # noqa: F811
    watcher = PostgresBackend(pg_url)
    try:
        list(watcher.journal_since(None, {}))  # starts listening
        def refuse(scene: Scene) -> None:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump,
                                        post_write=refuse)
        start = time.monotonic()
        watcher.wait_for_change(0.5)
        assert time.monotonic() - start >= 0.45  # the rolled-back write sent nothing
        threading.Timer(0.2, lambda: pg.save_active_scene_status(
            P, EP, "SEQ_A", expected_version=1, mutate=bump)).start()
        start = time.monotonic()
        watcher.wait_for_change(10)
        assert time.monotonic() - start < 5
        assert [r["seq"] for _, r in watcher.journal_since(P, {(P, "ep_001", "SEQ_A"): 1})] \
            == [2]
    finally:
        watcher.close()


# -- review regressions ------------------------------------------------------------------

RECORD = {"at": "2024-01-01T00:00:00Z", "actor": "t", "op": "x", "version": None,
          "detail": {}}


def _terminate(url: str, where: str, params: tuple[object, ...]) -> None:
    sql_rows(url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}",
             params)


def test_connection_lost_mid_block_is_a_typed_error_naming_the_batch(
        pg: clapboard.Store, pg_url: str) -> None:  # noqa: F811
    journal = pg.history(P, EP, "SEQ_A")
    with pytest.raises(PostgresBatchError) as e, \
            pg.transaction(P, EP, "SEQ_A", "status") as tx:
        pid = tx.conn.info.backend_pid  # type: ignore[attr-defined]
        _terminate(pg_url, "pid = %s", (pid,))
        tx.append_journal(dict(RECORD))  # was a raw psycopg AdminShutdown
    assert isinstance(e.value, ClapboardError) and "SEQ_A" in str(e.value)
    # The record travels with the COMMIT: the loss shows while sending it, or in that
    # last round trip, where the store settles the outcome (the old session is gone and
    # its record is not in the journal): either way, it did not commit.
    assert e.value.stage in ("block", "commit, rolled back")
    assert e.value.hint == "the transaction did not commit"
    assert pg.history(P, EP, "SEQ_A") == journal
    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)  # pool ok
    assert counter(pg) == 1


def test_connection_lost_before_commit_is_a_typed_error(pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=5, application_name="cb-victim")
    try:
        store.init_scenes_from_plan(P, EP, PLAN)

        def hook(scene: Scene) -> None:  # the server drops the writer before COMMIT
            _terminate(pg_url, "application_name = %s AND state = 'idle in transaction'",
                       ("cb-victim",))
            time.sleep(0.1)

        with pytest.raises(PostgresBatchError) as e:
            store.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump,
                                           post_write=hook)
        assert "SEQ_A" in str(e.value)
        assert counter(store) == 0  # the server rolled it back
        before = store.history(P, EP, "SEQ_A")
        # A journal record waits to travel with the COMMIT; dropped before that round
        # trip, or with the record already sent: either way the store settles that the
        # transaction did not commit (the old session is gone, its record is not there).
        for send_first in (False, True):
            with pytest.raises(PostgresBatchError) as e, \
                    store.transaction(P, EP, "SEQ_A", "status") as tx:
                tx.append_journal(dict(RECORD))
                if send_first:
                    tx.execute("SELECT 1")  # sends the deferred record first
                hook(Scene(scene_id="SEQ_A"))
            assert e.value.stage in ("block", "commit, rolled back"), e.value
            assert e.value.hint == "the transaction did not commit"
            assert store.history(P, EP, "SEQ_A") == before
        # Nothing to look for (no record) and dropped before COMMIT: unknown outcome.
        with pytest.raises(PostgresBatchError) as e, \
                store.transaction(P, EP, "SEQ_A", "status") as tx:
            tx.execute("SELECT 1")
            hook(Scene(scene_id="SEQ_A"))
        assert e.value.stage == "commit" and "outcome is unknown" in e.value.hint
        assert store.history(P, EP, "SEQ_A") == before
    finally:
        store.close()


def test_unlocked_reads_inside_the_block_see_its_writes_without_a_second_connection(
        pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=5, pool_size=1)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        start = time.monotonic()
        with store.transaction(P, EP, "SEQ_A", "t") as tx:
            tx.append_journal(dict(RECORD))
            # A folder store sees its own appended record; the one pooled connection is
            # the transaction's (this used to wait 30 s for a second one, then fail).
            assert [r["op"] for r in store.backend.read_journal(P, "ep_001", "SEQ_A")][-1] \
                == "x"
            assert store.backend.read_manifest(P, "ep_001", "SEQ_A") is None
        assert time.monotonic() - start < 5
        assert store.history(P, EP, "SEQ_A")[-1]["op"] == "x"
    finally:
        store.close()


def test_a_bad_manifest_does_not_stop_the_batch_being_locked(
        pg: clapboard.Store, pg_url: str) -> None:  # noqa: F811
    sql_rows(pg_url, "UPDATE clapboard_batches SET manifest = 'not json' "
             "WHERE batch_id = 'SEQ_A'")
    # As in a folder: the lock is taken, reading the manifest is what fails.
    with pg.transaction(P, EP, "SEQ_A", "t") as tx, pytest.raises(CorruptFileError):
        tx.read_manifest()


def test_an_infinite_lock_timeout_waits_as_long_as_postgres_allows(
        pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=float("inf"))
    try:
        store.init_scenes_from_plan(P, EP, PLAN)  # was OverflowError from int(inf)
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
        assert counter(store) == 1
    finally:
        store.close()


def test_a_long_non_ascii_schema_name_still_notifies() -> None:

    from tests.conftest import pg_url_or_skip
    from tests.pg_support import with_schema

    base = pg_url_or_skip()
    schema = "é" * 31  # 62 bytes: a legal identifier; its channel name was 72 bytes
    sql_rows(base, "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE")
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(psql.SQL("CREATE SCHEMA {}").format(psql.Identifier(schema)))
    store = clapboard.open_store(with_schema(base, schema), lock_timeout=5)
    try:
        assert len(store.backend.channel.encode()) <= 63  # type: ignore[attr-defined]
        store.init_scenes_from_plan(P, EP, PLAN)
        store.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
        assert counter(store) == 1
    finally:
        store.close()
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(psql.SQL("DROP SCHEMA {} CASCADE").format(psql.Identifier(schema)))


def test_reads_on_a_broken_store_are_typed_errors(pg_url: str) -> None:  # noqa: F811
    """Tables dropped behind the store's back: one clear ClapboardError, not psycopg's."""
    store = clapboard.open_store(pg_url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"SEQ_A": {"shots": []}}})
    sql_rows(pg_url, "DROP TABLE clapboard_journal, clapboard_bodies, clapboard_batches")
    for read in (lambda: store.list_batches(P, EP), lambda: store.list_projects(),
                 lambda: store.load_active(P, EP, "SEQ_A"),
                 lambda: store.history(P, EP, "SEQ_A")):
        with pytest.raises(ClapboardError, match="PostgreSQL store"):
            read()
    store.close()


def test_commit_whose_reply_is_lost_is_settled_as_committed(
        pg: clapboard.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COMMIT went through but its reply never came: the store finds its journal
    record once the old session is gone and reports the save as done (no error, kept
    state and history as after any save)."""
    import psycopg

    from clapboard.backends.postgres import PgBatchTx

    real = PgBatchTx.commit
    lost: list[int] = []

    def commit_then_lose_reply(self: PgBatchTx) -> None:
        real(self)
        lost.append(self.seq)
        self.conn.close()  # the session ends, as when the network drops
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    before = len(pg.history(P, EP, "SEQ_A"))
    monkeypatch.setattr(PgBatchTx, "commit", commit_then_lose_reply)
    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.undo()
    assert lost and len(pg.history(P, EP, "SEQ_A")) == before + 1
    assert pg.history(P, EP, "SEQ_A")[-1]["seq"] == lost[0]
    assert counter(pg) == 1
    pg.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert counter(pg) == 2
