"""Deterministic store scenarios: a base state and a list of writing operations.

Every crash-point, fault-injection and power-loss test replays one of these. Time and
actor are frozen (:func:`frozen_time`), so running the same scenario twice — in this
process or in a traced child — produces byte-identical published files; that is what
lets a checker say "this file holds the old bytes or the new bytes, nothing else".
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import clapboard
import clapboard.store as store_mod
from clapboard import Beat, Scene, Store, Take
from clapboard.io.journal import append_line_locked

PROJECT = "film"
EP = 1
ACTOR = "reliability@test"
FROZEN = "2024-05-01T12:00:00.000+00:00"
OLD = "2024-05-01T10:00:00.000+00:00"  # a heartbeat long before FROZEN
NOW = "2024-05-01T12:00:00+00:00"
JSONL = Path("projects") / PROJECT / "events.jsonl"

Op = Callable[[Store, Path], object]


@contextlib.contextmanager
def frozen_time() -> Iterator[None]:
    """Every timestamp the store writes becomes FROZEN (restored on exit)."""
    saved = store_mod.utc_now
    store_mod.utc_now = lambda: FROZEN
    try:
        yield
    finally:
        store_mod.utc_now = saved


def freeze_forever() -> None:
    """For a child process: freeze time for its whole life."""
    store_mod.utc_now = lambda: FROZEN


def plan(n_seq: int = 2, shots: int = 2) -> dict[str, object]:
    return {"sequences": {f"S{i}": {"shots": [{"shot_id": f"S{i}_{j}", "prompt": f"p{i}{j}"}
                                              for j in range(shots)]}
                          for i in range(1, n_seq + 1)}}


def structure(batch: str, n_beats: int) -> Scene:
    """A candidate scene for ``batch`` with ``n_beats`` beats (a new structure)."""
    return Scene(scene_id=batch, beats=[
        Beat(beat_id=f"{batch}_{j}", beat_metadata={"scene_id": batch,
                                                    "plan_shot": {"shot_id": f"{batch}_{j}",
                                                                  "n": n_beats}})
        for j in range(n_beats)])


# -- operations --------------------------------------------------------------------------

def status_inc(batch: str) -> Op:
    def op(s: Store, root: Path) -> object:
        def mutate(scene: Scene) -> None:
            scene.scene_metadata["n"] = int(scene.scene_metadata.get("n", 0)) + 1
        return s.save_active_scene_status(PROJECT, EP, batch, expected_version=None,
                                          mutate=mutate, actor=ACTOR)
    return op


def runner_take(batch: str, status: str = "succeeded") -> Op:
    def op(s: Store, root: Path) -> object:
        scene, version = s.load_active_with_version(PROJECT, EP, batch)
        beat = scene.beats[0]
        tid = f"t{len(beat.takes) + 1}"
        beat.takes.append(Take(take_id=tid, status=status, created_at=OLD, started_at=OLD,
                               heartbeat_at=OLD, provider="sim", outputs=[f"{tid}.mp4"]))
        if status == "succeeded":
            beat.primary_take_id = tid
        s.save_active_scene(PROJECT, EP, batch, scene, expected_version=version, actor=ACTOR)
        return tid
    return op


def init(p: dict[str, object], max_takes: int = 3) -> Op:
    return lambda s, root: s.init_scenes_from_plan(PROJECT, EP, p, max_takes, actor=ACTOR)


def candidate(batch: str, n_beats: int, activate: bool) -> Op:
    return lambda s, root: s.write_scene_candidate(PROJECT, EP, batch, structure(batch, n_beats),
                                                   note=f"{n_beats} beats", activate=activate,
                                                   actor=ACTOR)


def conform(batch: str, version: int) -> Op:
    return lambda s, root: s.conform(PROJECT, EP, batch, version, reason="test", actor=ACTOR)


def revert(batch: str) -> Op:
    return lambda s, root: s.revert(PROJECT, EP, batch, reason="test", actor=ACTOR)


def lock(batch: str) -> Op:
    return lambda s, root: s.lock_scene(PROJECT, EP, batch, "picture lock", actor=ACTOR)


def unlock(batch: str) -> Op:
    return lambda s, root: s.unlock_scene(PROJECT, EP, batch, actor=ACTOR)


def recover() -> Op:
    return lambda s, root: s.recover_stale_takes(PROJECT, EP, older_than_s=300, now=NOW,
                                                 actor=ACTOR)


def jsonl_append() -> Op:
    return lambda s, root: append_line_locked(root / JSONL, {"event": "x", "n": 4})


# -- base states -------------------------------------------------------------------------

def base_empty(s: Store, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)


def base_flat(s: Store, root: Path) -> None:
    init(plan())(s, root)


def base_versioned(s: Store, root: Path) -> None:
    base_flat(s, root)
    candidate("S1", 3, True)(s, root)
    status_inc("S1")(s, root)


def base_running(s: Store, root: Path) -> None:
    base_flat(s, root)
    runner_take("S1", "running")(s, root)
    runner_take("S2", "running")(s, root)


def base_jsonl(s: Store, root: Path) -> None:
    base_flat(s, root)
    for i in range(3):
        append_line_locked(root / JSONL, {"event": "x", "n": i})


@dataclass(frozen=True)
class Scenario:
    name: str
    base: Callable[[Store, Path], None]
    ops: tuple[Op, ...]


SCENARIOS: dict[str, Scenario] = {sc.name: sc for sc in [
    Scenario("status_save", base_flat, (status_inc("S1"),)),
    Scenario("status_save_versioned", base_versioned, (status_inc("S1"),)),
    Scenario("status_cold_start", base_flat, (status_inc("NEW"),)),
    Scenario("runner_save", base_flat, (runner_take("S1"),)),
    Scenario("init_fresh", base_empty, (init(plan()),)),
    Scenario("init_restamp", base_flat, (init(plan(3), 4),)),
    Scenario("candidate_flat", base_flat, (candidate("S1", 3, False),)),
    Scenario("candidate_activate", base_versioned, (candidate("S1", 4, True),)),
    Scenario("conform", base_versioned, (conform("S1", 1),)),
    Scenario("revert", base_versioned, (revert("S1"),)),
    Scenario("lock", base_versioned, (lock("S1"),)),
    Scenario("recover_stale", base_running, (recover(),)),
    Scenario("journal_append", base_jsonl, (jsonl_append(),)),
    # Sequences of three operations (CrashMonkey: most crash bugs need <= 3).
    Scenario("seq_status_candidate_revert", base_flat,
             (status_inc("S1"), candidate("S1", 3, True), revert("S1"))),
    Scenario("seq_runner_lock_unlock", base_versioned,
             (runner_take("S2"), lock("S2"), unlock("S2"))),
]}

SINGLE_OPS = [n for n in SCENARIOS if not n.startswith("seq_")]


def open_at(root: Path) -> Store:
    return clapboard.open_store(root, lock_timeout=10)


def build_base(name: str, root: Path) -> None:
    """Create the scenario's base state at ``root`` (frozen time)."""
    sc = SCENARIOS[name]
    with frozen_time():
        s = open_at(root)
        try:
            sc.base(s, root)
        finally:
            s.close()


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


def is_temp(name: str) -> bool:
    return ".cbtmp-" in name or name.endswith(".tmp")


def snapshot(root: Path) -> dict[str, bytes]:
    """Published files under ``root`` (relative path -> bytes); lock and temp files left out."""
    out: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".versions.lock") or is_temp(f):
                continue
            p = Path(dirpath) / f
            data = p.read_bytes()
            if f.endswith(".jsonl") and not data:
                continue  # a journal created but left without a record: no records = absent
            out[str(p.relative_to(root))] = data
    return out


def temps(root: Path) -> list[Path]:
    return [Path(d) / f for d, _ds, fs in os.walk(root) for f in fs if is_temp(f)]


def reference_snapshots(name: str, base_root: Path, work: Path) -> list[dict[str, bytes]]:
    """S_0 .. S_n: the published files before the scenario and after each of its ops."""
    copy_tree(base_root, work)
    snaps = [snapshot(work)]
    with frozen_time():
        s = open_at(work)
        try:
            for op in SCENARIOS[name].ops:
                op(s, work)
                snaps.append(snapshot(work))
        finally:
            s.close()
    return snaps
