"""Faults #1, #4, #5, #20, #21 by monkeypatching ``os`` (quick mode, every call site).

For each writing operation, each kind of store call (open, write, file fsync, folder
fsync, rename), each occurrence N of it in the operation, and each of EIO, ENOSPC and
EDQUOT: the N-th call fails once. Required: the operation raises; every published file
keeps its last good bytes (single-batch operations roll back to exactly the old state);
no temp file is left; the store reopens clean and the operation then succeeds. A failed
journal append (write or fsync) makes the store read-only until reopened.
Short writes (at most 7 bytes per ``write``) must still produce the exact new bytes.
"""

from __future__ import annotations

import errno
from collections import Counter
from pathlib import Path

import pytest

import clapboard
from clapboard import RollbackError, Scene, StoreReadOnlyError
from tests.reliability import harness as h
from tests.reliability import scenarios as sc
from tests.reliability.faults import ERRNOS, KINDS, Injector

SCENARIOS = ["status_save", "status_cold_start", "runner_save", "init_fresh", "init_restamp",
             "candidate_flat", "candidate_activate", "conform", "revert", "lock",
             "recover_stale", "journal_append"]
MULTI_BATCH = {"init_fresh", "init_restamp", "recover_stale"}


def _run(name: str, root: Path, mp: pytest.MonkeyPatch, inj: Injector, *,
         short: bool = False) -> tuple[BaseException | None, clapboard.Store]:
    s = sc.open_at(root)
    with sc.frozen_time(), inj.installed(mp, short=short):
        try:
            sc.SCENARIOS[name].ops[0](s, root)
        except Exception as e:
            return e, s
    return None, s


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_shot_fault_at_every_call(name: str, tmp_path: Path, base_states: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch,
                                      figures: Counter[str], soak: float) -> None:
    base = base_states[name]
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    probe = tmp_path / "probe"
    sc.copy_tree(base, probe)
    counter = Injector(probe)
    err, s = _run(name, probe, monkeypatch, counter)
    s.close()
    assert err is None and sc.snapshot(probe) == snaps[1]
    trial = 0
    for kind in KINDS:
        for n in range(1, counter.counts[kind] + 1):
            # every errno at the first call of each kind, then one errno per call
            # (rotating); --soak runs all three everywhere
            codes = ERRNOS if n == 1 or soak else (ERRNOS[(n - 1) % 3],)
            for code in codes:
                trial += 1
                root = tmp_path / f"t{trial}"
                sc.copy_tree(base, root)
                inj = Injector(root, kind, n, code)
                err, s = _run(name, root, monkeypatch, inj)
                where = f"{name}: {errno.errorcode[code]} at {kind} #{n}"
                assert inj.fired, where
                assert isinstance(err, OSError), f"{where}: raised {err!r} (must raise)"
                figures[f"faults injected in-process ({kind})"] += 1
                h.check_files(root, snaps[0], snaps[1], where)
                if name not in MULTI_BATCH:
                    assert sc.snapshot(root) == snaps[0], f"{where}: last good bytes not kept"
                assert not sc.temps(root), f"{where}: temp files left: {sc.temps(root)}"
                if s.backend.read_only_reason:  # type: ignore[attr-defined]
                    figures["journal faults that made the store read-only"] += 1
                    with pytest.raises(StoreReadOnlyError):
                        sc.SCENARIOS[name].ops[0](s, root)
                s.close()
                h.check_state(root, snaps, 0, f"{name}: after {where}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_short_writes_are_completed(name: str, tmp_path: Path, base_states: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch,
                                    figures: Counter[str]) -> None:
    snaps = sc.reference_snapshots(name, base_states[name], tmp_path / "ref")
    root = tmp_path / "short"
    sc.copy_tree(base_states[name], root)
    inj = Injector(root)
    err, s = _run(name, root, monkeypatch, inj, short=True)
    s.close()
    assert err is None
    assert inj.counts["short"] > 0
    figures["short writes completed"] += inj.counts["short"]
    assert sc.snapshot(root) == snaps[1]


def test_journal_fsync_error_makes_store_read_only_until_reopened(
        tmp_path: Path, base_states: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """#21: the journal's fsync fails once: raise, roll back, refuse writes, reopen works."""
    root = tmp_path / "s"
    sc.copy_tree(base_states["status_save"], root)
    before = sc.snapshot(root)
    # status save: the journal append is the commit point and its only fsync
    err, s = _run("status_save", root, monkeypatch, Injector(root, "fsync", 1, errno.EIO))
    assert isinstance(err, OSError)
    assert sc.snapshot(root) == before, "the rolled-back change must leave no journal record"
    # What the save prepared while its line was on the way to the disk (the state after
    # it) is not kept: this store still reads the state before.
    fresh = sc.open_at(root)
    assert s.load_active_with_version(sc.PROJECT, sc.EP, "S1") == \
        fresh.load_active_with_version(sc.PROJECT, sc.EP, "S1")
    fresh.close()
    with pytest.raises(StoreReadOnlyError):
        sc.status_inc("S1")(s, root)
    with pytest.raises(StoreReadOnlyError):
        sc.lock("S2")(s, root)
    s.close()
    s2 = sc.open_at(root)
    sc.status_inc("S1")(s2, root)
    assert [r["seq"] for r in s2.history(sc.PROJECT, sc.EP, "S1")] == [1, 2]
    s2.close()


def test_rollback_failure_raises_both_causes(tmp_path: Path, base_states: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """#20: post_write raises and the rollback's fsync fails: RollbackError with both
    causes, and the store refuses further writes (needs recovery) until reopened."""
    root = tmp_path / "s"
    sc.copy_tree(base_states["status_save"], root)
    s = sc.open_at(root)

    def hook(scene: Scene) -> None:
        raise RuntimeError("post_write failed")

    def mutate(scene: Scene) -> None:
        scene.scene_metadata["n"] = 99

    # file fsync #1 is the body write; #2 is the rollback's rewrite of the old bytes
    inj = Injector(root, "fsync", 2, errno.EIO)
    with inj.installed(monkeypatch), pytest.raises(RollbackError) as ei:
        s.save_active_scene_status(sc.PROJECT, sc.EP, "S1", expected_version=None,
                                   mutate=mutate, post_write=hook)
    assert isinstance(ei.value.cause, RuntimeError)
    assert isinstance(ei.value.rollback_cause, OSError)
    assert ei.value.rollback_cause.errno == errno.EIO
    assert not sc.temps(root)
    with pytest.raises(StoreReadOnlyError):
        sc.status_inc("S2")(s, root)
    s.close()


def test_post_write_rollback_restores_every_file(tmp_path: Path, base_states: dict[str, Path]
                                                 ) -> None:
    """§4.11: a raising post_write restores the previous bytes; cold start removes the body."""
    root = tmp_path / "s"
    sc.copy_tree(base_states["status_save"], root)
    before = sc.snapshot(root)
    s = sc.open_at(root)

    def hook(scene: Scene) -> None:
        raise RuntimeError("nope")

    for batch in ("S1", "COLD"):
        with pytest.raises(RuntimeError):
            s.save_active_scene_status(sc.PROJECT, sc.EP, batch, expected_version=None,
                                       mutate=lambda sc_: sc_.scene_metadata.update(x=1),
                                       post_write=hook)
    assert sc.snapshot(root) == before
    assert not sc.temps(root)
    s.close()
