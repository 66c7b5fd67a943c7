"""A status save on cold caches: each contender in a process of its own, taking turns.

    python -m bench.cold [BEATS TAKES] [--turns N] [--src DIR ...] [--json FILE] [--pg URL]

In the bench's rotation (``python -m bench``) the contenders run in one process, each
after the others' work — the seed's status save is several milliseconds of Python —
so every save starts with cold caches, as a runner's save does between its own work.
This harness isolates that: every contender lives in its own process, and each turn a
process first runs the seed's status save (untimed: the same kind of work in between)
and then the timed operation. Contenders:

* ``clapboard`` — the Store's status save (once per ``--src``: a source tree to import
  clapboard from, for an A/B of two versions; default: the installed one);
* ``sqlite`` — the bench's SQLite read-modify-write (WAL, synchronous=FULL);
* ``syscalls`` — only the system calls a folder status save needs: lock, read and
  compare the body, look at the journal's end, append, ``fdatasync``, unlock — the
  least any Python store of this design pays.

With ``--pg URL`` the contenders are clapboard's status save on PostgreSQL (once per
``--src``, each on a batch of its own) and a bare single-row UPDATE commit through libpq
(issue 6's baseline), each in its own process after the same work in between.

Medians per contender (ms), and SQLite's over each clapboard's. Session 9 used this to
find where a 30 KiB save's time goes (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r'''
import fcntl, json, os, sys, tempfile, time
sys.path.insert(0, sys.argv[4])
from pathlib import Path
from bench.run import (BATCH, EPISODE, PROJECT, SqliteStore, _flip, _reset_clapboard,
                       import_seed, scene_dict)
import clapboard

which, beats, takes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pg_url = sys.argv[6]
base = Path(tempfile.mkdtemp(dir=sys.argv[5]))
doc = scene_dict(BATCH, beats, takes)
store = clapboard.open_store(base / "cb")
store.save_active_scene_status(PROJECT, EPISODE, BATCH, expected_version=None,
                               mutate=lambda s: None)
_reset_clapboard(store, clapboard.Scene.from_dict(doc))
if which == "clapboard-pg":  # the same save on PostgreSQL, a batch of its own
    import uuid
    pg_batch = f"COLD_{uuid.uuid4().hex[:10]}"
    pg_store = clapboard.open_store(pg_url, lock_timeout=60)
    pg_store.write_scene_candidate(PROJECT, EPISODE, pg_batch, clapboard.Scene.from_dict(
        scene_dict(pg_batch, beats, takes)))
elif which == "update":  # a bare single-row UPDATE commit through libpq
    import psycopg
    from clapboard.backends.pg_wire import Statement, round_trip
    pg_conn = psycopg.connect(pg_url, autocommit=True)
    pg_conn.execute("CREATE TABLE IF NOT EXISTS bench_bare (id int PRIMARY KEY, n int)")
    pg_conn.execute("INSERT INTO bench_bare VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    bare = Statement(b"bench_bare", b"UPDATE bench_bare SET n = n + 1 WHERE id = 1")
seed = import_seed(base / "seed")
seed.save_scene(seed.Scene.from_dict(json.loads(json.dumps(doc))),
                seed.scene_path(PROJECT, EPISODE, BATCH))
sq = SqliteStore(base / "sqlite.db")
sq.put(BATCH, doc)
body = store.backend.body_path(PROJECT, "ep_001", BATCH, 1, None).read_bytes()
raw = base / "raw"
raw.mkdir()
(raw / "body.json").write_bytes(body)
lock_fd = os.open(raw / "b.lock", os.O_RDWR | os.O_CREAT)
journal = raw / "b.journal.jsonl"
journal.write_bytes(b"")
record = json.dumps({"actor": "a", "at": "t", "crc": "00000000", "detail": {"changes": [
    {"key": ["beats", {"beat_id": "SH0001"}, "takes", {"take_id": "t1"}, "status"],
     "new": "succeeded", "old": "running", "path": "beats[SH0001].takes[t1].status"}]},
    "op": "status", "prev": "00000000", "seq": 1, "version": 1}).encode() + b"\n"
n = [0]


def pick():
    n[0] += 1
    return n[0] * 7 % beats, n[0] * 3 % takes


def flip_in(model_beats):
    b, t = pick()
    take = model_beats[b].takes[t]
    take.status = _flip(take.status)


def clapboard_save():
    store.save_active_scene_status(PROJECT, EPISODE, BATCH, expected_version=1,
                                   mutate=lambda s: flip_in(s.beats))


def clapboard_pg_save():
    pg_store.save_active_scene_status(PROJECT, EPISODE, pg_batch, expected_version=None,
                                      mutate=lambda s: flip_in(s.beats))


def update():
    round_trip(pg_conn, [(bare, ())])


def seed_save():
    seed.save_active_scene_status(PROJECT, EPISODE, BATCH, expected_version=1,
                                  mutate=lambda s: flip_in(s.beats))


def sqlite_save():
    b, t = pick()

    def mutate(d):
        take = d["beats"][b]["takes"][t]
        take["status"] = _flip(take["status"])

    sq.read_modify_write(BATCH, mutate)


def syscalls():
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fd = os.open(raw / "body.json", os.O_RDONLY)
    data = os.read(fd, len(body) + 1)
    os.close(fd)
    assert data == body
    j = os.open(journal, os.O_RDWR | os.O_APPEND)
    size = os.fstat(j).st_size
    if size:
        os.pread(j, len(record), size - len(record))
    os.write(j, record)
    os.fdatasync(j)
    os.close(j)
    fcntl.flock(lock_fd, fcntl.LOCK_UN)


run = {"clapboard": clapboard_save, "sqlite": sqlite_save, "syscalls": syscalls,
       "clapboard-pg": clapboard_pg_save, "update": update}[which]
warm = sq.commits_per_wal_cycle(len(body)) if which == "sqlite" else 100
for _ in range(warm):  # each store in its steady state first (see bench/run.py)
    run()


def seed_load():
    seed.load_scene_active(PROJECT, EPISODE, BATCH)


# The work between two saves, untimed: the seed's status save; before a PostgreSQL
# save the seed's load (as much Python, without a sync on the folder's disk, which
# would slow the server's next WAL flush and so time the disk, not the client).
between = seed_load if pg_url else seed_save
for line in sys.stdin:
    between()
    t0 = time.perf_counter()
    run()
    sys.stdout.write(f"{time.perf_counter() - t0}\n")
    sys.stdout.flush()
'''


def _in_schema(url: str, schema: str) -> str:
    """``url`` with its tables in a schema of their own (each source tree of an A/B
    creates the layout it knows, so two versions never share one)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def measure(beats: int, takes: int, turns: int, srcs: list[str], work: str,
            seed: int = 9, pg: str = "") -> dict[str, float]:
    """Median seconds per contender, the contenders taking turns in a shuffled order.
    With ``pg`` (a URL): clapboard's status save on PostgreSQL and a bare UPDATE commit
    instead of the folder store, SQLite and the bare system calls."""
    contenders: dict[str, tuple[str, str]] = {}
    kind = "clapboard-pg" if pg else "clapboard"
    for src in srcs or [""]:
        contenders[f"{kind}@{src}" if src else kind] = (kind, src)
    for other in ("update",) if pg else ("sqlite", "syscalls"):
        contenders[other] = (other, "")
    procs = {}
    run = os.urandom(4).hex()
    schemas: list[str] = []
    for name, (which, src) in contenders.items():
        schemas.append(f"clapboard_cold_{run}_{len(schemas)}")
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", _CHILD, which, str(beats), str(takes), str(ROOT), work,
             _in_schema(pg, schemas[-1]) if which == "clapboard-pg" else pg],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    samples: dict[str, list[float]] = {k: [] for k in procs}
    order = list(procs)
    shuffle = random.Random(seed).shuffle
    try:
        for _ in range(turns):
            shuffle(order)
            for name in order:
                p = procs[name]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("go\n")
                p.stdin.flush()
                line = p.stdout.readline()
                if not line:
                    raise RuntimeError(f"contender {name} stopped (exit {p.wait()})")
                samples[name].append(float(line))
    finally:
        for p in procs.values():
            if p.stdin is not None:
                p.stdin.close()
            p.wait(timeout=60)
        if pg:
            _drop_schemas(pg, schemas)
    return {k: statistics.median(v) for k, v in samples.items()}


def _drop_schemas(url: str, schemas: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cold", description=__doc__.split("\n")[0])
    ap.add_argument("beats", nargs="?", type=int, default=10)
    ap.add_argument("takes", nargs="?", type=int, default=3)
    ap.add_argument("--turns", type=int, default=400)
    ap.add_argument("--src", action="append", default=[],
                    help="a source tree to import clapboard from (repeat for an A/B)")
    ap.add_argument("--dir", default=None, help="where the stores live (default: temp dir)")
    ap.add_argument("--json", default=None, help="write the medians (ms) here")
    ap.add_argument("--pg", metavar="URL", default="",
                    help="the PostgreSQL status save against a bare UPDATE commit instead")
    args = ap.parse_args(argv)
    import tempfile

    work = args.dir or tempfile.mkdtemp(prefix="clapboard-cold-")
    medians = measure(args.beats, args.takes, args.turns, args.src, work, pg=args.pg)
    ms = {k: v * 1e3 for k, v in medians.items()}
    between = "load" if args.pg else "status save"
    print(f"{args.beats} beats x {args.takes} takes, {args.turns} turns, each after the "
          f"seed's {between} (medians, ms):")
    for name, v in ms.items():
        extra = ""
        if name.startswith("clapboard"):
            extra = (f"   this / UPDATE {v / ms['update']:.2f}x" if args.pg
                     else f"   SQLite / this {ms['sqlite'] / v:.2f}x")
        print(f"  {name:40s} {v:8.3f}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(ms, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
