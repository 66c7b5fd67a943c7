"""Faults #4 (no lost update), #6, #7 and the mixed soak.

The soak runs, in parallel processes for a bounded time (quick mode ~8 s; ``--soak N``
for N seconds): counter writers (status writer ``+1``), runners (new takes through the
runner overlay, some left ``running``), operators (board decisions, picture lock and
unlock), a versioner (conform / revert between two versions), a stale-take recoverer
and a reader that parses every batch continuously. Afterwards:

* counters exact: per writer and batch, the sum over all version bodies equals the
  number of acknowledged increments (no lost update, no double apply);
* every acknowledged take is present (each runner owns one batch: the runner overlay
  gives the runner the batch's takes, as in the seed); structure changed only through versions
  (every body matches its manifest fingerprint; fsck clean);
* the journal of each batch is gap-free and its chain valid, with exactly one record
  per acknowledged mutation, by operation;
* the reader never saw a torn or missing body.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections import Counter
from pathlib import Path

import pytest

import clapboard
from clapboard import (
    ConflictError,
    SceneVersionConflictError,
    Take,
)
from tests.reliability import scenarios as sc

P, EP = sc.PROJECT, sc.EP
BATCHES = ["S1", "S2", "S3"]
CTX = mp.get_context("spawn")
Acks = Counter[tuple[str, str]]


def _setup(root: Path) -> None:
    s = clapboard.open_store(root)
    s.init_scenes_from_plan(P, EP, sc.plan(3), actor="setup")
    s.write_scene_candidate(P, EP, "S1", sc.structure("S1", 3), actor="setup")
    s.close()


def _worker(kind: str, wid: int, root: str, seconds: float) -> tuple[Acks, list[str], int]:
    rng = random.Random(wid)
    s = clapboard.open_store(root, lock_timeout=60)
    acks: Acks = Counter()
    takes: list[str] = []
    loads = 0
    deadline = time.monotonic() + seconds
    k = 0
    while time.monotonic() < deadline:
        k += 1
        b = rng.choice(BATCHES)
        try:
            if kind == "counter":
                def inc(scene: clapboard.Scene) -> None:
                    key = f"c{wid}"
                    scene.scene_metadata[key] = int(scene.scene_metadata.get(key, 0)) + 1
                s.save_active_scene_status(P, EP, b, expected_version=None, mutate=inc)
                acks[(b, "status")] += 1
            elif kind == "runner":
                b = BATCHES[wid % 2]  # one runner per batch: a runner owns its takes
                scene, v = s.load_active_with_version(P, EP, b)
                tid = f"w{wid}-{k}"
                now = clapboard.store.utc_now()
                status = "running" if k % 3 == 0 else "succeeded"
                scene.beats[0].takes.append(Take(take_id=tid, status=status,
                                                 started_at=now, heartbeat_at=now))
                s.save_active_scene(P, EP, b, scene, expected_version=v)
                acks[(b, "runner")] += 1
                takes.append(f"{b}/{tid}")
            elif kind == "operator":
                scene, v = s.load_active_with_version(P, EP, b)
                if k % 4 == 0 and b != "S1":
                    if scene.locked:
                        s.unlock_scene(P, EP, b)
                        acks[(b, "unlock")] += 1
                    else:
                        s.lock_scene(P, EP, b, f"lock {k}")
                        acks[(b, "lock")] += 1
                else:
                    beat = rng.choice(scene.beats).beat_id
                    s.decide_board(P, EP, b, beat, rng.choice(["approved", "rejected"]),
                                   note=f"{wid}-{k}", expected_version=v)
                    acks[(b, "board")] += 1
            elif kind == "versioner":
                active = s.load_active_with_version(P, EP, "S1")[1]
                if k % 3 == 0:
                    s.revert(P, EP, "S1", expected_active=active)
                    acks[("S1", "revert")] += 1
                else:
                    s.conform(P, EP, "S1", 3 - active, expected_active=active)
                    acks[("S1", "conform")] += 1
                time.sleep(0.01)
            elif kind == "recoverer":
                got = s.recover_stale_takes(P, EP, older_than_s=0.3)
                for b2 in {r[0] for r in got}:
                    acks[(b2, "recover-stale")] += 1
                time.sleep(0.05)
            elif kind == "reader":
                for b2 in BATCHES:
                    s.load_active_with_version(P, EP, b2)
                    s.history(P, EP, b2)
                    loads += 1
        except (SceneVersionConflictError, ConflictError):
            pass  # refused writes wrote nothing; not acknowledged
    s.close()
    return acks, takes, loads


KINDS = ["counter", "counter", "runner", "runner", "operator", "versioner", "recoverer",
         "reader"]


def test_mixed_soak(tmp_path: Path, soak: float, figures: Counter[str]) -> None:
    root = tmp_path / "store"
    _setup(root)
    s = clapboard.open_store(root)
    base_journal = {b: Counter(r["op"] for r in s.history(P, EP, b)) for b in BATCHES}
    seconds = soak if soak else 8.0
    with CTX.Pool(len(KINDS)) as pool:
        results = pool.starmap(_worker, [(k, i, str(root), seconds)
                                         for i, k in enumerate(KINDS)], chunksize=1)
    acks: Acks = Counter()
    for a, _, _ in results:
        acks.update(a)
    # counters exact (summed over every version the pointer visited)
    for wid, kind in enumerate(KINDS):
        if kind != "counter":
            continue
        got = results[wid][0]
        for b in BATCHES:
            total = sum(int(s.load_version(P, EP, b, v["version"]).scene_metadata
                            .get(f"c{wid}", 0)) for v in s.versions(P, EP, b))
            assert total == got[(b, "status")], (wid, b)
    # every acknowledged take exists in one of its batch's versions
    present = {f"{b}/{t.take_id}" for b in BATCHES for v in s.versions(P, EP, b)
               for beat in s.load_version(P, EP, b, v["version"]).beats for t in beat.takes}
    for _, takes, _ in results:
        assert set(takes) <= present
    # journal: gap-free, chained, one record per acknowledged mutation
    for b in BATCHES:
        hist = s.history(P, EP, b)
        assert [r["seq"] for r in hist] == list(range(1, len(hist) + 1))
        ops = Counter(r["op"] for r in hist) - base_journal[b]
        want = Counter({op: n for (bb, op), n in acks.items() if bb == b})
        assert ops == want, (b, ops, want)
    report = s.fsck()
    assert report.clean and not report.problems, [p.to_dict() for p in report.problems]
    s.close()
    figures["soak seconds"] += int(seconds)
    figures["soak acknowledged mutations (lost = 0)"] += sum(acks.values())
    figures["soak reader loads (torn = 0)"] += sum(r[2] for r in results)


def _increment(root: str, n: int) -> int:
    s = clapboard.open_store(root, lock_timeout=60)
    for _ in range(n):
        s.save_active_scene_status(P, EP, "C", expected_version=None,
                                   mutate=lambda x: x.scene_metadata.update(
                                       n=int(x.scene_metadata.get("n", 0)) + 1))
    s.close()
    return n


def test_n_processes_m_increments(tmp_path: Path, figures: Counter[str]) -> None:
    """§4.4: N processes x M increments through the status writer end at exactly N*M."""
    root = str(tmp_path / "s")
    with CTX.Pool(4) as pool:
        total = sum(pool.starmap(_increment, [(root, 50)] * 4))
    s = clapboard.open_store(root)
    assert s.load_active(P, EP, "C").scene_metadata["n"] == total == 200
    assert len(s.history(P, EP, "C")) == 200
    s.close()
    figures["N x M increments exact"] += total


def test_active_version_moves_between_load_and_save(tmp_path: Path) -> None:
    """#7: A loads v1, B conforms to v2, A saves: SceneVersionConflictError, nothing written."""
    root = tmp_path / "s"
    _setup(root)
    a = clapboard.open_store(root)
    scene, v = a.load_active_with_version(P, EP, "S1")
    b = clapboard.open_store(root)
    b.conform(P, EP, "S1", 2)
    before = sc.snapshot(root)
    scene.beats[0].takes.append(Take(take_id="late"))
    with pytest.raises(SceneVersionConflictError):
        a.save_active_scene(P, EP, "S1", scene, expected_version=v)
    with pytest.raises(SceneVersionConflictError):
        a.save_active_scene_status(P, EP, "S1", expected_version=v, mutate=lambda x: None)
    assert sc.snapshot(root) == before
    a.close()
    b.close()


def test_errors_cross_process_boundaries() -> None:
    """Regression: a ClapboardError raised in a pool worker hung ``Pool.starmap`` (its
    subclasses could not be unpickled: their constructors take other arguments)."""
    import pickle

    from clapboard import LockTimeoutError, SceneIdentityMismatchError, ValidationError

    for err in (ValidationError("beat_id", "no such beat", path="/x"),
                SceneVersionConflictError("B", 1, 2), LockTimeoutError("l", 1.0, holder={"pid": 3}),
                SceneIdentityMismatchError("A", "B")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    with CTX.Pool(1) as pool, pytest.raises(ValidationError, match="beat_id"):
        pool.apply(_raise_validation)


def _raise_validation() -> None:
    raise clapboard.ValidationError("beat_id", "no such beat")
