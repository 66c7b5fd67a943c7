"""The benchmark harness runs end to end (tiny mode). No timing is asserted here:
speed is reported by ``python -m bench`` and published in docs/PERFORMANCE.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_support import pg_url  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
OPS = {"status save", "status save, idle first", "status save, bursts", "active-scene load",
       "cold load",
       "load after compaction", "runner save", "candidate write"}


def test_bench_tiny_mode_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out), "--dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())

    # every operation at every tiny size, with every contender that applies
    rows = result["rows"]
    assert {r["op"] for r in rows} == OPS
    for r in rows:
        assert r["ms"]["clapboard"] > 0 and r["ms"]["floor"] > 0
        assert r["ms"]["sqlite"] > 0
        # clapboard against each other contender, round by round
        assert set(r["paired"]) == set(r["ms"]) - {"clapboard"}
        for p in r["paired"].values():
            lo, hi = p["ci95"]
            assert p["rounds"] >= 3 and lo <= p["ratio"] <= hi
        # the seed reference has no version store; ten of its saves in a row are left out
        if r["op"] not in ("candidate write", "status save, bursts"):
            assert r["ms"]["seed"] > 0

    # concurrent writers: both stores end at the exact counter (no lost update)
    conc = {c["who"]: c for c in result["concurrency"]}
    assert set(conc) == {"clapboard", "seed"}
    for c in conc.values():
        assert c["final_counter"] == c["expected"] and c["lost_updates"] == 0

    # scale rows at two sizes each, with a budget and a growth figure
    scale = {s["op"]: s for s in result["scale"]}
    assert set(scale) == {"list_batches", "init_scenes_from_plan", "fsck"}
    for s in scale.values():
        assert s["large"] > s["small"] and s["budget_s"] > 0 and s["per_item_growth"] > 0

    # the scratch folder is cleaned up, and the table was printed
    assert not Path(result["scratch"]).exists()
    assert "status save" in proc.stdout and "cb/floor" in proc.stdout


def test_bench_pg_hook_is_skipped_cleanly_without_a_server(tmp_path: Path) -> None:
    from bench.run import bench_pg

    got = bench_pg("postgresql://nobody@127.0.0.1:1/none", tmp_path, 1)
    assert got and "skipped" in got[0]


def test_bench_pg_rows_on_a_real_server(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The PostgreSQL rows run end to end: every contender timed, every ratio given."""
    from bench.run import bench_pg, print_pg

    rows = bench_pg(pg_url, tmp_path, 1)
    assert [r.get("size") for r in rows] == ["10x3", "50x5", "200x10"], rows
    for r in rows:
        for k in ("clapboard-pg", "UPDATE (libpq)", "UPDATE (autocommit)",
                  "BEGIN/UPDATE/COMMIT", "2-RT protocol", "ratio", "ratio_psycopg",
                  "ratio_block", "protocol_ratio"):
            assert r[k] > 0, (k, r)
    print_pg(rows)


def test_bench_pg_on_separate_cpus_moves_the_server_and_back(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """With ``split_cpus`` the rows run with the server's processes on some CPUs and
    the bench on another (said in the first row), and every process's CPU set is as
    it was afterwards; where that cannot be done (one CPU, a remote server, no right
    to move its processes) one row says why. Under CI (root, a server started by the
    test run on this machine, two CPUs) it must be done."""
    import psycopg
    from bench.run import _parent, bench_pg

    with psycopg.connect(pg_url, autocommit=True) as c:
        backend = int(c.execute("SELECT pg_backend_pid()").fetchone()[0])
        postmaster = _parent(Path(f"/proc/{backend}"))
        assert postmaster is not None
        server_before = os.sched_getaffinity(postmaster)
        own_before = os.sched_getaffinity(0)
        rows = bench_pg(pg_url, tmp_path, 1, split_cpus=True)
        assert os.sched_getaffinity(postmaster) == server_before
        assert os.sched_getaffinity(backend) == server_before  # (a process it moved)
    assert os.sched_getaffinity(0) == own_before
    if "skipped" in rows[0]:
        assert "separate CPUs: " in rows[0]["skipped"]
        assert not (os.environ.get("CI") and os.geteuid() == 0 and len(own_before) > 1), rows
        return
    cpus = rows[0]["cpus"]
    assert f"postmaster {postmaster}" in cpus and "bench on CPU" in cpus
    assert [r.get("size") for r in rows[1:]] == ["10x3", "50x5", "200x10"], rows
    assert all(r["ratio"] > 0 for r in rows[1:])


def test_profile_status_runs_on_both_backends(pg_url: str,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.profile_status` prints its phases for a folder store and, with
    --pg, the PostgreSQL save's round trips and client work."""
    from bench.profile_status import main

    assert main(["3", "2", "--reps", "5"]) == 0
    folder = capsys.readouterr().out
    assert "end to end (Store method)" in folder and "journal record append" in folder
    assert main(["3", "2", "--reps", "5", "--pg", pg_url]) == 0
    pg = capsys.readouterr().out
    for phase in ("one trip", "lock trip", "commit trip", "client work",
                  "bare single-row UPDATE"):
        assert phase in pg, pg


def test_cold_turns_harness_runs(tmp_path: Path) -> None:
    """``python -m bench.cold``: each contender in its own process, every timed save after
    the seed's; an A/B of two source trees names each (here the same tree twice)."""
    out = tmp_path / "cold.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    src = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cold", "2", "1", "--turns", "3", "--src", src,
         "--src", src + os.sep, "--dir", str(tmp_path), "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ms = json.loads(out.read_text())
    assert set(ms) == {f"clapboard@{src}", f"clapboard@{src}{os.sep}", "sqlite", "syscalls"}
    assert all(v > 0 for v in ms.values())
    assert "SQLite / this" in proc.stdout


def test_cold_turns_harness_runs_on_postgres(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """``python -m bench.cold --pg URL``: clapboard's PostgreSQL status save and a bare
    UPDATE commit, each in its own process, after the seed's load."""
    out = tmp_path / "cold.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cold", "2", "1", "--turns", "3", "--pg", pg_url,
         "--dir", str(tmp_path), "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ms = json.loads(out.read_text())
    assert set(ms) == {"clapboard-pg", "update"}
    assert all(v > 0 for v in ms.values())
    assert "this / UPDATE" in proc.stdout and "seed's load" in proc.stdout


def test_median_interval_is_the_order_statistics_a_binomial_gives() -> None:
    """The interval of a median comes from the binomial count of values below it: for
    10 values x(2)..x(9) (covers 97.9 %, the narrowest that covers 95 %), for 400
    x(180)..x(221); too few values for 95 %: their whole range."""
    from bench.run import median_ci

    assert median_ci([float(x) for x in range(10, 0, -1)]) == (5.5, 2.0, 9.0)
    assert median_ci([float(x) for x in range(1, 401)]) == (200.5, 180.0, 221.0)
    assert median_ci([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert median_ci([1.0] * 5, level=0.5) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        median_ci([])


def test_ratio_targets_need_the_whole_interval_on_the_right_side() -> None:
    """Targets on a ratio of two contenders compare round by round: "faster than SQLite"
    is met by a consistent margin, not by a lower median inside the rounds' noise (then
    "a tie"), and missed when slower; a bound ("at most 1.5x the floor") is met only when
    the interval's far end is within it; a row without rounds keeps the medians'
    verdict."""
    import random

    from bench.run import Row, Timings, check_targets, paired

    rng = random.Random(6)
    cb = [0.0003 * (1 + rng.random() / 5) for _ in range(400)]

    def row(op: str, size: str, **others: list[float]) -> Row:
        samples = {"clapboard": cb, **others}
        t = Timings({k: sorted(v)[200] * 1e3 for k, v in samples.items()})
        t.means, t.samples = {}, samples
        return Row(op, size, 30.0, t)

    def verdicts(*rows: Row, pg: list[dict[str, object]] | None = None
                 ) -> dict[str, tuple[bool, str]]:
        return {name: (ok, said) for name, ok, said in check_targets(list(rows), [], pg)}

    ahead = row("status save", "10x3", sqlite=[c * 1.04 for c in cb])
    assert ahead.paired == paired({"clapboard": cb, "sqlite": [c * 1.04 for c in cb]})
    ok, said = verdicts(ahead)["status save faster than SQLite at 10x3"]
    assert ok and "clapboard faster in 400 of 400 rounds" in said and "tie" not in said

    noisy = [c * (0.9 if i % 2 else 1.11) for i, c in enumerate(cb)]
    ok, said = verdicts(row("status save", "10x3", sqlite=noisy))[
        "status save faster than SQLite at 10x3"]
    assert not ok and said.endswith(": a tie")

    ok, said = verdicts(row("status save, idle first", "10x3", sqlite=[c * 0.9 for c in cb]))[
        "status save faster than SQLite at 10x3, each save after 2 ms idle"]
    assert not ok and "tie" not in said and "faster in 0 of 400" in said

    ok, said = verdicts(row("status save, bursts", "10x3", sqlite=[c * 1.05 for c in cb]))[
        "status save faster than SQLite at 10x3, in bursts of 10"]
    assert ok and "faster in 400 of 400" in said

    # at most 1.5x the floor: clapboard/floor per round 1.4x (met), or 1.3x / 1.6x
    # alternating (the median under the bound, the interval across it: missed)
    name = "status save <= 1.5x floor at 200 KiB"
    ok, said = verdicts(row("status save", "50x5", sqlite=cb, floor=[c / 1.4 for c in cb]))[name]
    assert ok and "per round clapboard/floor 1.400x" in said
    spread = [c / (1.3 if i % 2 else 1.6) for i, c in enumerate(cb)]
    ok, said = verdicts(row("status save", "50x5", sqlite=cb, floor=spread))[name]
    assert not ok and said.endswith(": within the noise")

    # PostgreSQL: at most 2x the bare UPDATE at every size
    pg = [{"size": "10x3", "ratio": 1.5,
           "paired": {"UPDATE (libpq)": {"ratio": 1 / 1.5, "ci95": [1 / 1.6, 1 / 1.4],
                                         "rounds": 200, "faster_rounds": 0}}},
          {"size": "50x5", "ratio": 1.9,
           "paired": {"UPDATE (libpq)": {"ratio": 1 / 1.9, "ci95": [1 / 2.1, 1 / 1.8],
                                         "rounds": 200, "faster_rounds": 0}}}]
    ok, said = verdicts(pg=pg)["PostgreSQL status save <= 2x a bare UPDATE commit, "
                               "sharing the CPUs"]
    assert not ok and "1.50x (per round" in said and said.endswith(": within the noise")

    legacy = Row("status save", "10x3", 30.0, {"clapboard": 0.3, "sqlite": 0.31})
    assert legacy.paired == {}
    assert verdicts(legacy)["status save faster than SQLite at 10x3"] == (True,
                                                                         "0.300 vs 0.310 ms")


def test_syncsplit_charges_each_sync_to_the_call_it_ran_inside() -> None:
    from bench.syncsplit import split

    # two calls of "a" (1.0-1.5 s and 3.0-3.2 s) and one of "b" (2.0-2.1 s); syncs by
    # start ns: two inside a's first call, one inside b, one between calls (set-up work,
    # charged to nobody), one at the very end of a's second call
    spans = [("a", 1.0, 1.5), ("b", 2.0, 2.1), ("a", 3.0, 3.2)]
    syncs = [(1_100_000_000, 100_000_000, "d", "j"), (1_300_000_000, 50_000_000, "f", "j"),
             (1_700_000_000, 900_000_000, "f", "x"), (2_050_000_000, 20_000_000, "d", "w"),
             (3_200_000_000, 10_000_000, "d", "j")]
    got = split(spans, syncs)
    assert got["a"]["calls"] == 2 and got["b"]["calls"] == 1
    assert got["a"]["syncs_per_call"] == 1.5  # 2 and 1
    assert got["a"]["sync_ms"] == pytest.approx((150 + 10) / 2)
    assert got["a"]["save_ms"] == pytest.approx((500 + 200) / 2)
    assert got["a"]["rest_ms"] == pytest.approx((350 + 190) / 2)
    assert got["b"] == pytest.approx({"calls": 1, "save_ms": 100, "syncs_per_call": 1,
                                      "sync_ms": 20, "rest_ms": 80})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD shim: Linux")
def test_syncsplit_times_every_contenders_syncs(tmp_path: Path) -> None:
    import shutil

    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler to build bench/synctime.c")
    out = tmp_path / "split.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.syncsplit", "--tiny", "--json", str(out),
         "--dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = json.loads(out.read_text())
    assert [r["regime"] for r in results] == ["back to back", "idle first"]
    # what each contender's save syncs: clapboard its journal (fdatasync), SQLite its
    # WAL, the seed its temp file, the floor its file and its folder
    expected = {"clapboard": 1, "sqlite": 1, "seed": 1, "floor": 2}
    for r in results:
        got = r["contenders"]
        assert {k: c["syncs_per_call"] for k, c in got.items()} == expected
        for c in got.values():
            assert c["sync_ms"] > 0 and c["rest_ms"] > 0
            assert c["save_ms"] >= c["sync_ms"]
    assert "SQLite / clapboard" in proc.stdout
