"""Where the time of one status save goes.

    python -m bench.profile_status [BEATS TAKES] [--reps N] [--cprofile] [--pg URL]

Two views of the same workload (flip one take's status, as a runner does per event):

* phases: the steps of ``Store.save_active_scene_status`` driven one by one through
  the same backend transaction, each timed (median over ``--reps`` saves). The steps
  mirror store.py; the "end to end" line is the real method, for comparison;
* ``--cprofile``: the real method under cProfile, top functions by own time;
* ``--pg URL``: the PostgreSQL backend's status save split into its round trips (one
  when optimistic, two when locked) and the client's own work, each save paired with a
  bare UPDATE.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import BATCH, EPISODE, PROJECT, _flip, scene_dict


def _setup(root: Path, beats: int, takes: int) -> Any:
    import clapboard
    from clapboard import codec
    from clapboard.io.atomic import atomic_write_bytes

    store = clapboard.open_store(root)
    store.save_active_scene_status(PROJECT, EPISODE, BATCH, expected_version=None,
                                   mutate=lambda s: None)
    body = clapboard.Scene.from_dict(scene_dict(BATCH, beats, takes)).to_dict()
    atomic_write_bytes(store.backend.body_path(PROJECT, "ep_001", BATCH, 1, None),
                       codec.encode_scene(body))
    return store


def phases(store: Any, beats: int, takes: int, reps: int) -> dict[str, float]:
    from clapboard.changes import take_field_changes
    from clapboard.models import lazy_scene, shared_dict, take_field_edits

    names = ["lock", "manifest + body state (read, compare, journal tail)",
             "lazy scene", "closure + the take fields it set, checked",
             "changes", "journal record append (fsync) + state after + cache update",
             "unlock"]
    samples: dict[str, list[float]] = {k: [] for k in names}
    clock = time.perf_counter
    for n in range(reps):
        marks = [clock()]
        cm = store.transaction(PROJECT, EPISODE, BATCH, "status")
        tx = cm.__enter__()
        marks.append(clock())
        manifest = tx.read_manifest()
        state = tx.read_state(1, manifest)
        marks.append(clock())
        scene = lazy_scene(state.doc)
        marks.append(clock())
        take = scene.beats[(n * 7) % beats].takes[(n * 3) % takes]
        take.status = _flip(take.status)
        edits = take_field_edits(scene, state.doc)  # the store's short path
        marks.append(clock())
        assert edits is not None
        changes, after = take_field_changes(state.doc, edits)
        marks.append(clock())
        tx.commit_changes(1, f"ep_001_{BATCH}.json", state, lambda s=scene: shared_dict(s),
                          store._record("status", 1, "bench", {"changes": changes}), after)
        marks.append(clock())
        cm.__exit__(None, None, None)
        marks.append(clock())
        for i, k in enumerate(names):
            samples[k].append(marks[i + 1] - marks[i])
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def _saver(store: Any, beats: int, takes: int) -> Callable[[], None]:
    state = {"n": 0}

    def one() -> None:
        state["n"] += 1
        b, t = (state["n"] * 7) % beats, (state["n"] * 3) % takes

        def mutate(s: Any) -> None:
            s.beats[b].takes[t].status = _flip(s.beats[b].takes[t].status)

        store.save_active_scene_status(PROJECT, EPISODE, BATCH, expected_version=1,
                                       mutate=mutate)

    return one


def profile_pg(url: str, beats: int, takes: int, reps: int) -> None:
    """A PostgreSQL status save split into its round trips and the client's own work —
    the optimistic save (one trip) and, on a store opened with ``optimistic=False``, the
    locked one (two) — each save paired with a bare single-row UPDATE through libpq on
    another connection (medians)."""
    import uuid

    import psycopg

    import clapboard
    import clapboard.backends.pg_optimistic as pg_optimistic
    import clapboard.backends.postgres as pg_backend
    from bench.run import _status_saver
    from clapboard.backends.pg_wire import Statement

    trips: list[float] = []
    real_trip = pg_backend.round_trip
    real_encoded = pg_optimistic.run_encoded

    def timing(real: Any) -> Any:
        def timed(conn: Any, *trip: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real(conn, *trip)
            finally:
                trips.append(time.perf_counter() - t0)
        return timed

    bare_update = Statement(b"bench_bare", b"UPDATE bench_bare SET n = n + 1 WHERE id = 1")
    results: dict[bool, list[tuple[float, ...]]] = {}
    pg_backend.round_trip = timing(real_trip)
    pg_optimistic.run_encoded = timing(real_encoded)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_bare (id int PRIMARY KEY, n int)")
            conn.execute("INSERT INTO bench_bare VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
            for optimistic in (True, False):
                store = clapboard.open_store(url, lock_timeout=60, optimistic=optimistic)
                batch = f"PROFILE_{uuid.uuid4().hex[:8]}"
                want = 1 if optimistic else 2  # (a compaction, a retry: more; left out)
                try:
                    store.write_scene_candidate(PROJECT, EPISODE, batch,
                                                clapboard.Scene.from_dict(
                                                    scene_dict(batch, beats, takes)))
                    save = _status_saver(store, batch, beats, takes)
                    for _ in range(100):  # past the first compaction, statements prepared
                        save()
                    rows = results[optimistic] = []
                    for _ in range(reps):
                        trips.clear()
                        t0 = time.perf_counter()
                        save()
                        total = time.perf_counter() - t0
                        got = list(trips)
                        t0 = time.perf_counter()
                        real_trip(conn, [(bare_update, ())])
                        bare = time.perf_counter() - t0
                        if len(got) == want:
                            rows.append((total, bare, *got))
                finally:
                    store.close()
    finally:
        pg_backend.round_trip = real_trip  # type: ignore[assignment]
        pg_optimistic.run_encoded = real_encoded  # type: ignore[assignment]

    def med(rows: list[tuple[float, ...]], f: Any) -> float:
        return statistics.median(f(r) for r in rows) * 1e3

    print(f"PostgreSQL status save, {beats} beats x {takes} takes, medians (each save "
          "paired with a bare UPDATE through libpq):")
    one, two = results[True], results[False]
    print(f"optimistic (the default), {len(one)} saves:")
    print(f"  {'one trip (conditional record + NOTIFY, commit)':<52}"
          f"{med(one, lambda r: r[2]):8.3f} ms")
    print(f"  {'client work (pool, closure, checks, record)':<52}"
          f"{med(one, lambda r: r[0] - r[2]):8.3f} ms")
    print(f"  {'end to end':<52}{med(one, lambda r: r[0]):8.3f} ms")
    print(f"  {'bare single-row UPDATE (libpq)':<52}{med(one, lambda r: r[1]):8.3f} ms")
    print(f"  {'ratio':<52}{med(one, lambda r: r[0]) / med(one, lambda r: r[1]):8.2f}x")
    print(f"locked (optimistic=False), {len(two)} saves:")
    print(f"  {'lock trip (BEGIN, row lock, body tokens)':<52}"
          f"{med(two, lambda r: r[2]):8.3f} ms")
    print(f"  {'commit trip (journal insert + NOTIFY, COMMIT)':<52}"
          f"{med(two, lambda r: r[3]):8.3f} ms")
    print(f"  {'client work (pool, closure, checks, record)':<52}"
          f"{med(two, lambda r: r[0] - r[2] - r[3]):8.3f} ms")
    print(f"  {'end to end':<52}{med(two, lambda r: r[0]):8.3f} ms")
    print(f"  {'bare single-row UPDATE (libpq)':<52}{med(two, lambda r: r[1]):8.3f} ms")
    print(f"  {'ratio':<52}{med(two, lambda r: r[0]) / med(two, lambda r: r[1]):8.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_status")
    ap.add_argument("beats", nargs="?", type=int, default=50)
    ap.add_argument("takes", nargs="?", type=int, default=5)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--pg", metavar="URL", help="profile the PostgreSQL backend's status "
                    "save instead (its round trips and the client's own work)")
    args = ap.parse_args(argv)
    if args.pg:
        profile_pg(args.pg, args.beats, args.takes, args.reps)
        return 0
    with tempfile.TemporaryDirectory(prefix="clapboard-profile-") as tmp:
        store = _setup(Path(tmp), args.beats, args.takes)
        one = _saver(store, args.beats, args.takes)
        for _ in range(10):
            one()
        ph = phases(store, args.beats, args.takes, args.reps)
        e2e = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            one()
            e2e.append(time.perf_counter() - t0)
        size = store.backend.body_path(PROJECT, "ep_001", BATCH, 1, None).stat().st_size
        print(f"status save, {args.beats} beats x {args.takes} takes ({size / 1024:.0f} KiB), "
              f"median of {args.reps}:")
        for k, v in ph.items():
            print(f"  {k:<52}{v:8.3f} ms")
        print(f"  {'sum of phases':<52}{sum(ph.values()):8.3f} ms")
        print(f"  {'end to end (Store method)':<52}{statistics.median(e2e) * 1e3:8.3f} ms")
        if args.cprofile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.reps):
                one()
            prof.disable()
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(20)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
