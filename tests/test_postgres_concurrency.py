"""Real processes against a real PostgreSQL server: no lost update, nothing half-written.

Each child is a separate Python process with its own connection pool, exactly like
runners on several machines sharing one database.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import clapboard
from tests.pg_support import pg_url, sql_rows  # noqa: F401  (pg_url is a fixture)
from tests.test_concurrency import INCREMENT

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent
P, EP = "show", 1

# Saves forever, saying "saving" on stdout after its first save. Mode "run": no hook,
# so its saves take the one-trip optimistic path once warm; "hooked": a hook that does
# nothing (the locked path); "park": a hook that parks inside the open transaction after
# the body row was written, and says so on stdout (so the parent kills it right there).
KILLED = textwrap.dedent("""
    import os, sys, time, clapboard
    url, mode = sys.argv[1], sys.argv[2]
    park = mode == "park"
    store = clapboard.open_store(url, lock_timeout=60, pool_size=1)
    def bump(scene):
        md = scene.scene_metadata
        md["counter"] = md.get("counter", 0) + 1
        md["pad"] = "x" * (md["counter"] % 7) * 1000
    def hook(scene):
        if park:
            print("parked", flush=True)
            time.sleep(600)
    first = True
    while True:
        store.save_active_scene_status("show", 1, "BATCH", expected_version=None,
                                       mutate=bump, post_write=None if mode == "run" else hook)
        if first:
            print("saving", flush=True)
            first = False
""")


def spawn(script: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                            **kw)  # type: ignore[call-overload,no-any-return]


def consistent(url: str) -> int:
    """Check the batch: counter == status records, journal chain intact; return it."""
    store = clapboard.open_store(url, lock_timeout=30)
    try:
        n = int(store.load_active(P, EP, "BATCH").scene_metadata.get("counter", 0))
        history = store.history(P, EP, "BATCH")
        assert [r["seq"] for r in history] == list(range(1, len(history) + 1))
        assert len([r for r in history if r["op"] in ("status", "create")]) == n
        assert store.fsck().problems == []
        return n
    finally:
        store.close()


def test_eight_processes_fifty_increments_exact_sum(pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"BATCH": {"shots": [{"id": "b1"}]}}})
    store.close()
    procs = [spawn(INCREMENT, pg_url, "50") for _ in range(8)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert consistent(pg_url) == 400


def test_client_killed_inside_the_transaction_leaves_nothing(pg_url: str) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url, lock_timeout=10)
    store.init_scenes_from_plan(P, EP, {"sequences": {"BATCH": {"shots": [{"id": "b1"}]}}})
    before = sql_rows(pg_url, "SELECT body FROM clapboard_bodies")
    child = spawn(KILLED, pg_url, "park", stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "parked"
        # The child holds the row lock with its body write done but not committed.
        other = clapboard.open_store(pg_url, lock_timeout=0.2)
        with pytest.raises(clapboard.LockTimeoutError):
            other.save_active_scene_status(P, EP, "BATCH", expected_version=1,
                                           mutate=lambda s: None)
        other.close()
        assert sql_rows(pg_url, "SELECT body FROM clapboard_bodies") == before
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    # The server rolled the dead client's transaction back and freed its row lock.
    started = time.monotonic()
    store.save_active_scene_status(P, EP, "BATCH", expected_version=1,
                                   mutate=lambda s: s.scene_metadata.update(counter=1))
    assert time.monotonic() - started < 5
    store.close()
    assert consistent(pg_url) == 1


def test_clients_killed_at_random_moments(pg_url: str, soak: float) -> None:  # noqa: F811
    store = clapboard.open_store(pg_url)
    store.init_scenes_from_plan(P, EP, {"sequences": {"BATCH": {"shots": [{"id": "b1"}]}}})
    store.close()
    rng = random.Random(os.getpid())
    rounds = 6 if not soak else max(6, int(soak))
    for _ in range(rounds):
        # optimistic one-trip saves and locked saves, killed alike
        children = [spawn(KILLED, pg_url, mode, stdout=subprocess.PIPE)
                    for mode in ("run", "hooked", "run")]
        for c in children:  # each past start-up and into its save loop, however slow
            assert c.stdout is not None and c.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0, 0.3))
        for c in children:
            time.sleep(rng.uniform(0, 0.02))
            c.send_signal(signal.SIGKILL)
        for c in children:
            c.wait()
            if c.stdout is not None:
                c.stdout.close()
        consistent(pg_url)
    assert consistent(pg_url) > 0
