"""The one-round-trip status save on PostgreSQL (clapboard.backends.pg_optimistic).

A save is tried against the state this process last saw and commits only if the batch
is still exactly that; anything else goes to the lock. Each test here puts a second
writer (a second Store: its own pool and kept state, as another process has) or a hand
edit between two saves of the first, and checks that the outcome is the one the locked
protocol gives — the only visible difference being that the closure ran twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clapboard
from clapboard import LockReentryError, LockTimeoutError, Scene, SceneLockedError
from clapboard.backends import pg_optimistic
from clapboard.backends.postgres import PostgresBackend
from tests.pg_support import pg_url, sql_rows  # noqa: F401  (pg_url is a fixture)

pytestmark = pytest.mark.postgres
P, EP = "show", 1
PLAN: dict[str, Any] = {"sequences": {"SEQ_A": {"shots": [{"shot_id": "A1"},
                                                         {"shot_id": "A2"}]}}}


class Counting:
    """A closure adding one to the scene's counter, counting its own calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, scene: Scene) -> None:
        self.calls += 1
        md = scene.scene_metadata
        md["counter"] = md.get("counter", 0) + 1


def bump(scene: Scene) -> None:
    md = scene.scene_metadata
    md["counter"] = md.get("counter", 0) + 1


def counter(store: clapboard.Store, batch: str = "SEQ_A") -> int:
    return int(store.load_active(P, EP, batch).scene_metadata.get("counter", 0))


def save(store: clapboard.Store, mutate: Any = bump, batch: str = "SEQ_A") -> Scene:
    return store.save_active_scene_status(P, EP, batch, expected_version=None, mutate=mutate)


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[clapboard.Store, clapboard.Store]]:  # noqa: F811
    """Two writers on one batch, ``a`` warm (its next save is optimistic)."""
    a = clapboard.open_store(pg_url, lock_timeout=5)
    b = clapboard.open_store(pg_url, lock_timeout=5)
    a.init_scenes_from_plan(P, EP, PLAN)
    save(a)  # the first save after a create reads the body (under the lock)
    yield a, b
    a.close()
    b.close()


@contextmanager
def traced(store: clapboard.Store) -> Iterator[list[list[str]]]:
    """The messages the store's connections send while the block runs (one list of
    tab-separated fields each), from libpq's own trace of the wire: every connection
    the backend hands out (its kept one or the pool's) is traced while it is out."""
    import os
    import tempfile

    from psycopg import pq

    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    real_get, real_put = backend.checkout, backend.checkin
    fd, name = tempfile.mkstemp()
    out: list[list[str]] = []

    def getconn(*a: Any, **k: Any) -> Any:
        conn = real_get(*a, **k)
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        return conn

    def putconn(conn: Any) -> None:
        if not conn.closed:
            conn.pgconn.untrace()
        real_put(conn)

    backend.checkout, backend.checkin = getconn, putconn  # type: ignore[method-assign]
    try:
        yield out
    finally:
        backend.checkout, backend.checkin = real_get, real_put  # type: ignore[method-assign]
        with open(name) as f:
            out.extend(line.split("\t") for line in f.read().splitlines())
        os.close(fd)
        os.unlink(name)


@contextmanager
def syncs(store: clapboard.Store) -> Iterator[list[int]]:
    """Counts the round trips (protocol Syncs, plus simple Queries) the store's pooled
    connections send while the block runs."""
    out: list[int] = []
    with traced(store) as sent:
        yield out
    out.append(len([f for f in sent if f[0] == "F" and f[2] in ("Sync", "Query")]))


@pytest.mark.parametrize("optimistic,trips", [(True, 1), (False, 2)])
def test_a_warm_status_save_is_one_round_trip(pg_url: str, optimistic: bool,  # noqa: F811
                                              trips: int) -> None:
    """One trip for a save whose batch nobody else wrote; two ([BEGIN, lock, tokens],
    [record, COMMIT]) with ``optimistic=False``, which runs every closure once."""
    store = clapboard.open_store(pg_url, lock_timeout=5, optimistic=optimistic)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        for _ in range(3):  # warm: kept state, prepared statements, session lock_timeout
            save(store)
        with syncs(store) as sent:
            save(store)
        assert sent == [trips]
        assert counter(store) == 4
    finally:
        store.close()


def test_another_writer_first_runs_the_closure_again_under_the_lock(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    a, b = two
    save(b)
    closure = Counting()
    with syncs(a) as sent:
        save(a, closure)
    # the optimistic trip found the batch moved on: nothing written, then the lock
    # ([BEGIN, lock, tokens], the record read after the kept seq, [record, COMMIT])
    assert closure.calls == 2 and sent == [4]
    assert counter(a) == counter(b) == 3
    history = a.history(P, EP, "SEQ_A")
    assert [r["seq"] for r in history] == list(range(1, len(history) + 1))
    # after a conflict the next saves of that batch go to the lock, then optimism again
    for _ in range(pg_optimistic.LOCKED_AFTER_CONFLICT):
        closure = Counting()
        with syncs(a) as sent:
            save(a, closure)
        assert closure.calls == 1 and sent == [2]
    with syncs(a) as sent:
        save(a)
    assert sent == [1]
    assert counter(b) == 4 + pg_optimistic.LOCKED_AFTER_CONFLICT


def test_a_refusal_on_old_state_is_decided_again_on_the_new(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    """``a`` last saw the scene picture-locked; ``b`` unlocked it since: an operator's
    pick of a primary take (refused on a locked scene) must go through."""
    a, b = two
    a.lock_scene(P, EP, "SEQ_A", "review")
    save(a)  # a's kept state: locked
    b.unlock_scene(P, EP, "SEQ_A")
    a.set_primary_take(P, EP, "SEQ_A", "A1", None, refuse_locked=True)
    # and the other way round: a saw it unlocked, b locked it since
    save(a)
    b.lock_scene(P, EP, "SEQ_A", "final")
    with pytest.raises(SceneLockedError):
        a.set_primary_take(P, EP, "SEQ_A", "A1", None, refuse_locked=True)


def test_nothing_to_change_on_old_state_is_decided_again_on_the_new(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    """A closure that changes nothing on what ``a`` kept may change something on the
    newest state: it is not taken as a no-op without the lock."""
    a, b = two

    def note(value: str) -> Any:
        def mutate(scene: Scene) -> None:
            scene.scene_metadata["note"] = value
        return mutate

    save(a, note("x"))
    save(b, note("y"))
    save(a, note("x"))  # a's kept state already says "x"
    assert b.load_active(P, EP, "SEQ_A").scene_metadata["note"] == "x"


def test_a_version_change_by_another_writer_is_seen(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    a, b = two
    scene = b.load_active(P, EP, "SEQ_A")
    scene.beats = scene.beats[:1]
    assert b.write_scene_candidate(P, EP, "SEQ_A", scene, activate=True) == 2
    # a's kept manifest has v1 active: the save's expected version 2 is the new truth
    a.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    assert b.load_version(P, EP, "SEQ_A", 2).scene_metadata["counter"] == 2
    with pytest.raises(clapboard.SceneVersionConflictError):
        a.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)


@pytest.mark.parametrize("edit", [
    "UPDATE clapboard_bodies SET body = replace(body, '\"A2\"', '\"A2x\"')",
    "UPDATE clapboard_batches SET manifest = NULL",
])
def test_a_hand_edit_in_sql_is_never_written_over(two: tuple[clapboard.Store, clapboard.Store],
                                                  pg_url: str, edit: str) -> None:  # noqa: F811
    """Edits that append no journal record (a body's text, the manifest) still stop an
    optimistic save: the save goes to the lock, which reads what is there now."""
    a, _ = two
    if "manifest" in edit:  # make a manifest to take away
        scene = a.load_active(P, EP, "SEQ_A")
        scene.beats.append(clapboard.Beat(beat_id="A3"))
        assert a.write_scene_candidate(P, EP, "SEQ_A", scene, activate=False) == 2
        save(a)
        save(a)
        assert a.manifest(P, EP, "SEQ_A") is not None
    before = sql_rows(pg_url, "SELECT journal_seq FROM clapboard_batches")
    sql_rows(pg_url, edit)
    closure = Counting()
    save(a, closure)
    assert closure.calls == 2
    assert sql_rows(pg_url, "SELECT journal_seq FROM clapboard_batches") == \
        [(int(str(before[0][0])) + 1,)]
    with clapboard.open_store(pg_url) as fresh:
        got = fresh.load_active(P, EP, "SEQ_A")
    if "body" in edit:
        assert [b.beat_id for b in got.beats] == ["A1", "A2x"]
    assert got.scene_metadata["counter"] == counter(a)


def test_an_optimistic_save_waits_for_a_held_row_lock_then_times_out(
        two: tuple[clapboard.Store, clapboard.Store], pg_url: str) -> None:  # noqa: F811
    a, _ = two
    a.lock_timeout = 0.3
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT 1 FROM clapboard_batches FOR UPDATE")
        start = time.monotonic()
        with pytest.raises(LockTimeoutError):
            save(a)
        assert time.monotonic() - start < 3
        holder.rollback()
    assert counter(a) == 1
    save(a)
    assert counter(a) == 2


def test_a_writer_holding_the_lock_is_waited_for_and_then_wins(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    """``b`` holds the batch; ``a``'s optimistic statement waits on the row, finds it
    moved on when ``b`` commits, and the save goes through under the lock."""
    a, b = two
    inside, done = threading.Event(), threading.Event()

    def slow(scene: Scene) -> None:
        inside.set()
        time.sleep(0.3)
        bump(scene)

    t = threading.Thread(target=lambda: (save(b, slow), done.set()))
    t.start()
    inside.wait(5)
    closure = Counting()
    save(a, closure)
    t.join()
    assert done.is_set() and closure.calls == 2 and counter(a) == 3


def test_a_save_nested_in_a_closure_is_refused_and_commits_nothing(
        two: tuple[clapboard.Store, clapboard.Store]) -> None:
    """As on a folder: a closure saving its own batch gets LockReentryError, and the
    nested save does not commit on its own during the optimistic try."""
    a, _ = two

    def nested(scene: Scene) -> None:
        save(a)

    with pytest.raises(LockReentryError):
        save(a, nested)
    assert counter(a) == 1


def test_optimistic_saves_still_compact_the_body(pg_url: str) -> None:  # noqa: F811
    """Every ``compact_every`` records the body row is rewritten (under the lock): the
    optimistic path never lets the delta records pile up."""
    store = clapboard.open_store(pg_url, lock_timeout=5, compact_every=4)
    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        for _ in range(13):
            save(store)
        (checkpoint, seq), = sql_rows(
            pg_url, "SELECT x.checkpoint, b.journal_seq FROM clapboard_bodies x "
                    "JOIN clapboard_batches b USING (project, episode, batch_id)")
        assert seq == 14 and int(str(seq)) - int(str(checkpoint)) <= 4 + 1
        assert counter(store) == 13
    finally:
        store.close()


@pytest.mark.parametrize("lose", ["reply", "request"])
def test_a_broken_trip_is_settled_and_never_applied_twice(
        two: tuple[clapboard.Store, clapboard.Store], monkeypatch: pytest.MonkeyPatch,
        lose: str) -> None:
    """The connection breaks during the optimistic trip: after the statement committed
    (only the reply lost) the save is done; before it ran, the save goes to the lock.
    Either way the change is made exactly once."""
    a, _ = two
    real = pg_optimistic.run_encoded
    broke: list[str] = []

    def breaking(conn: Any, *trip: Any) -> Any:
        if not broke:
            broke.append(lose)
            if lose == "reply":
                real(conn, *trip)
            conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(conn, *trip)

    monkeypatch.setattr(pg_optimistic, "run_encoded", breaking)
    closure = Counting()
    save(a, closure)
    assert broke == [lose]
    assert closure.calls == (1 if lose == "reply" else 2)
    assert counter(a) == 2
    save(a)
    assert counter(a) == 3
    history = a.history(P, EP, "SEQ_A")
    assert [r["seq"] for r in history] == list(range(1, len(history) + 1))


OPS = st.lists(st.tuples(st.sampled_from("ab"),
                         st.sampled_from(["bump", "lock", "unlock", "pick", "candidate",
                                          "hand"])), min_size=1, max_size=14)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_interleaved_writers_lose_no_update(two: tuple[clapboard.Store, clapboard.Store],
                                            pg_url: str, ops: list[tuple[str, str]]) -> None:  # noqa: F811
    """Two writers in any order of saves, picture locks, primary picks, new candidate
    versions and hand edits: every acknowledged +1 is in the counter (exactly), the
    journal's chain holds, and each writer reads what a new reader loads."""
    stores = dict(zip("ab", two, strict=True))
    start = counter(stores["a"])
    bumps = 0
    for i, (who, op) in enumerate(ops):
        s = stores[who]
        if op == "bump":
            save(s)
            bumps += 1
        elif op == "lock":
            s.lock_scene(P, EP, "SEQ_A", "r")
        elif op == "unlock":
            s.unlock_scene(P, EP, "SEQ_A")
        elif op == "pick":
            try:
                s.set_primary_take(P, EP, "SEQ_A", "A1", None, refuse_locked=True)
            except SceneLockedError:
                assert s.load_active(P, EP, "SEQ_A").locked
        elif op == "candidate":  # a new version, not activated: the manifest changes
            scene = s.load_active(P, EP, "SEQ_A")
            scene.beats.append(clapboard.Beat(beat_id=f"N{i}-{time.monotonic_ns()}"))
            s.write_scene_candidate(P, EP, "SEQ_A", scene)
        else:  # a hand edit of every body's text, with no journal record
            sql_rows(pg_url, "UPDATE clapboard_bodies SET body = body || ' '")
    with clapboard.open_store(pg_url) as fresh:
        truth = fresh.load_active_with_version(P, EP, "SEQ_A")
        assert fresh.fsck().clean
    assert truth[0].scene_metadata.get("counter", 0) == start + bumps
    for s in stores.values():
        assert s.load_active_with_version(P, EP, "SEQ_A") == truth
    history = stores["a"].history(P, EP, "SEQ_A")
    assert [r["seq"] for r in history] == list(range(1, len(history) + 1))


def test_heads_kept_are_bounded_most_recent_first(pg_url: str,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from clapboard.backends import postgres

    monkeypatch.setattr(postgres, "KEPT_HEADS", 3)
    store = clapboard.open_store(pg_url, lock_timeout=5)
    try:
        names = [f"S{i}" for i in range(5)]
        store.init_scenes_from_plan(P, EP, {"sequences": {n: {"shots": []} for n in names}})
        for n in names:
            save(store, batch=n)
        backend = store.backend
        assert isinstance(backend, PostgresBackend)
        assert [k[2] for k in backend.heads] == names[-3:]
        for n in names:  # a batch whose head was dropped saves under the lock, as before
            save(store, batch=n)
            assert counter(store, n) == 2
    finally:
        store.close()


@pytest.mark.parametrize("optimistic", [True, False])
def test_the_session_lock_timeout_is_sent_once_per_connection(pg_url: str,  # noqa: F811
                                                             optimistic: bool) -> None:
    """The lock timeout is a session setting: sent with a connection's first save (in
    the same trip), remembered, and not sent again while the session keeps it; a store
    with another timeout on the same server sends its own."""
    def settings(sent: list[list[str]]) -> int:
        return sum("set_config" in "\\t".join(f) for f in sent if f[0] == "F")

    store = clapboard.open_store(pg_url, lock_timeout=5, optimistic=optimistic, pool_size=1)
    other = clapboard.open_store(pg_url, lock_timeout=7, optimistic=optimistic, pool_size=1)
    try:
        with traced(store) as first:  # one pooled connection: its first writes
            store.init_scenes_from_plan(P, EP, PLAN)
            save(store)
        assert settings(first) == 1
        for _ in range(3):
            with traced(store) as sent:
                save(store)
            assert settings(sent) == 0, "the lock timeout was sent again"
        with traced(other) as sent:
            save(other)
        assert settings(sent) == 1
        assert counter(store) == 5
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize("optimistic", [True, False])
def test_the_next_saves_scene_is_built_while_the_server_commits(
        pg_url: str, optimistic: bool) -> None:  # noqa: F811
    """A save builds the next save's scene while its commit is on the server (the one
    trip, or the locked protocol's COMMIT); the next save's closure gets that scene — a
    new one, sharing no object with the scene the previous save returned (which its
    caller may still change), equal to the stored one — and a load takes a spare just
    the same."""
    from clapboard.backends import base

    store = clapboard.open_store(pg_url, lock_timeout=5, optimistic=optimistic)
    taken: list[object] = []
    real = base.BodyState.spare

    def spy(self: base.BodyState) -> Any:
        got = real(self)
        taken.append(got)
        return got

    try:
        store.init_scenes_from_plan(P, EP, PLAN)
        save(store)
        returned = save(store)  # the next scene is built while it commits
        returned.beats[0].max_takes = 99  # the caller's scene: never seen again
        returned.scene_metadata["counter"] = -1
        seen: list[Scene] = []

        def look(scene: Scene) -> None:
            seen.append(scene)
            bump(scene)

        base.BodyState.spare = spy  # type: ignore[method-assign]
        try:
            save(store, look)
            assert len(taken) == 1 and taken[0][0] is seen[0]  # the scene built ahead
            after_look = store.load_active(P, EP, "SEQ_A")  # a load takes a spare too
            assert len(taken) == 2 and taken[1][0] is after_look
        finally:
            base.BodyState.spare = real  # type: ignore[method-assign]
        scene = seen[0]
        assert scene is not returned and scene.beats[0] is not returned.beats[0]
        assert not {id(b) for b in scene.beats} & {id(b) for b in returned.beats}
        assert scene.beats[0].max_takes == 3
        assert scene.to_dict()["scene_metadata"]["counter"] == 3  # bumped from 2
        assert after_look.to_dict() == store.load_version(P, EP, "SEQ_A", 1).to_dict()
        assert counter(store) == 3
    finally:
        store.close()
