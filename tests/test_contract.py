"""The Store contract: written once, run on every backend (the ``store`` fixture).

Everything here goes through the public ``Store`` API only, so the same file proves the
filesystem and the PostgreSQL backends behave identically.
"""

from __future__ import annotations

from typing import Any

import pytest

from clapboard import (
    Beat,
    Board,
    LockReentryError,
    NothingToRevertError,
    Scene,
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneStructureImmutableError,
    SceneVersionConflictError,
    Store,
    Take,
    ValidationError,
    VersionNotFoundError,
)
from clapboard.io.journal import record_crc

P, EP = "show", 1

PLAN: dict[str, Any] = {"sequences": {
    "SEQ_A": {"shots": [{"shot_id": "A1", "description": "wide, dusk", "duration_s": 4},
                        {"id": "A2", "description": "close-up — 雨"}, {"description": "insert"}]},
    "SEQ_B": {"shots": [{"shot_id": "B1"}]},
}}


def add_take(beat_index: int, take_id: str, status: str = "running"):  # type: ignore[no-untyped-def]
    def mutate(scene: Scene) -> None:
        scene.beats[beat_index].takes.append(Take(take_id=take_id, status=status))
    return mutate


def bump(scene: Scene) -> None:
    md = scene.scene_metadata
    md["counter"] = md.get("counter", 0) + 1


def rederived(scene_id: str = "SEQ_A") -> Scene:
    return Scene(scene_id=scene_id, beats=[
        Beat(beat_id="A2", beat_metadata={"scene_id": scene_id, "plan_shot": {"id": "A2"}}),
        Beat(beat_id="A1", beat_metadata={"scene_id": scene_id,
                                          "plan_shot": {"shot_id": "A1", "duration_s": 6}}),
        Beat(beat_id="A9", beat_metadata={"scene_id": scene_id}),
    ])


@pytest.fixture
def seeded(store: Store) -> Store:
    store.init_scenes_from_plan(P, EP, PLAN)
    return store


# -- plans and reads -------------------------------------------------------------------------


def test_init_creates_scenes_with_beats(seeded: Store) -> None:
    assert seeded.list_batches(P, EP) == ["SEQ_A", "SEQ_B"]
    scene, version = seeded.load_active_with_version(P, EP, "SEQ_A")
    assert version == 1
    assert [b.beat_id for b in scene.beats] == ["A1", "A2", "BEAT_02"]
    assert scene.beats[0].beat_metadata == {"scene_id": "SEQ_A",
                                            "plan_shot": PLAN["sequences"]["SEQ_A"]["shots"][0]}
    assert scene.beats[1].beat_metadata["plan_shot"]["description"] == "close-up — 雨"
    assert scene.scene_metadata == {"episode": "ep_001", "project": P}
    assert all(b.max_takes == 3 for b in scene.beats)


def test_init_is_idempotent_and_restamps_active(seeded: Store) -> None:
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=add_take(0, "t1"))
    result = seeded.init_scenes_from_plan(P, "ep_001", PLAN, max_takes=5)
    assert [s.scene_id for s in result] == ["SEQ_A", "SEQ_B"]
    scene = seeded.load_active(P, EP, "SEQ_A")
    assert [b.max_takes for b in scene.beats] == [5, 5, 5]
    assert scene.beats[0].takes[0].take_id == "t1"  # existing state kept
    again = seeded.history(P, EP, "SEQ_A")
    seeded.init_scenes_from_plan(P, EP, PLAN, max_takes=5)
    assert seeded.history(P, EP, "SEQ_A") == again  # nothing changed: nothing journaled


def test_init_dry_run_writes_nothing(store: Store) -> None:
    scenes = store.init_scenes_from_plan(P, EP, PLAN, persist=False)
    assert [s.scene_id for s in scenes] == ["SEQ_A", "SEQ_B"]
    assert store.list_batches(P, EP) == []


@pytest.mark.parametrize("plan", [
    {"sequences": {"bad.id": {"shots": []}}},
    {"sequences": {"S": {"shots": "nope"}}},
    {"sequences": ["S"]},
    {"sequences": {"S": {"shots": [{"id": "x"}, {"id": "x"}]}}},
])
def test_init_rejects_bad_plans(store: Store, plan: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        store.init_scenes_from_plan(P, EP, plan)
    assert store.list_batches(P, EP) == []


def test_missing_scene_is_typed(store: Store) -> None:
    with pytest.raises(SceneNotFoundError) as ei:
        store.load_active_with_version(P, EP, "NOPE")
    assert isinstance(ei.value, FileNotFoundError)


@pytest.mark.parametrize(("project", "episode", "batch"), [
    ("../etc", 1, "B"), ("show", -1, "B"), ("show", 1, "../B"), ("show", 1, "a/b"),
    ("Show", 1, "B"), ("show", True, "B"),
])
def test_bad_names_are_value_errors(store: Store, project: str, episode: Any, batch: str) -> None:
    with pytest.raises(ValueError):
        store.load_active_with_version(project, episode, batch)
    with pytest.raises(ValueError):
        store.save_active_scene_status(project, episode, batch, expected_version=1, mutate=bump)


@pytest.mark.parametrize("episode", [True, 1.0, "1.0", " ep_1"])
def test_a_name_found_valid_does_not_vouch_for_an_equal_one(seeded: Store,
                                                           episode: Any) -> None:
    """Names found valid are remembered, only those of exact types: after episode 1
    (and "SEQ_A") were accepted, True and 1.0 — equal to 1 in Python — are still
    refused, as are "1.0" and " ep_1"."""
    seeded.load_active_with_version(P, 1, "SEQ_A")
    seeded.load_active_with_version(P, "1", "SEQ_A")
    with pytest.raises(ValueError):
        seeded.load_active_with_version(P, episode, "SEQ_A")
    with pytest.raises(ValueError):
        seeded.save_active_scene_status(P, episode, "SEQ_A", expected_version=1, mutate=bump)


# -- Writer 2: the status writer ----------------------------------------------------------


def test_status_save_applies_mutation_and_journals(seeded: Store) -> None:
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1,
                                    mutate=add_take(0, "t1"), actor="runner-1")
    scene = seeded.load_active(P, EP, "SEQ_A")
    assert scene.beats[0].takes[0].status == "running"
    last = seeded.history(P, EP, "SEQ_A")[-1]
    assert last["op"] == "status" and last["actor"] == "runner-1" and last["version"] == 1
    paths = [c["path"] for c in last["detail"]["changes"]]
    assert paths == ["beats[A1].takes[t1]"]


def test_status_save_records_old_and_new_values(seeded: Store) -> None:
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=add_take(0, "t1"))

    def finish(scene: Scene) -> None:
        scene.beats[0].takes[0].status = "succeeded"
        scene.beats[0].primary_take_id = "t1"

    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=finish)
    changes = {c["path"]: (c["old"], c["new"])
               for c in seeded.history(P, EP, "SEQ_A")[-1]["detail"]["changes"]}
    assert changes == {"beats[A1].takes[t1].status": ("running", "succeeded"),
                       "beats[A1].primary_take_id": (None, "t1")}


def test_stale_expected_version_conflicts(seeded: Store) -> None:
    with pytest.raises(SceneVersionConflictError) as ei:
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    assert (ei.value.expected_version, ei.value.actual_version) == (2, 1)
    assert "counter" not in seeded.load_active(P, EP, "SEQ_A").scene_metadata


@pytest.mark.parametrize("change", [
    lambda s: s.beats.reverse(),
    lambda s: s.beats.pop(),
    lambda s: s.beats.append(Beat(beat_id="NEW")),
    lambda s: s.beats[0].beat_metadata["plan_shot"].__setitem__("description", "other"),
    lambda s: s.beats[0].beat_metadata.__setitem__("prompt_directive", "rainy"),
])
def test_structure_change_is_refused_and_writes_nothing(seeded: Store, change: Any) -> None:
    before = seeded.history(P, EP, "SEQ_A")
    raw_before = seeded.load_raw(P, EP, "SEQ_A")
    with pytest.raises(SceneStructureImmutableError):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=change)
    assert seeded.load_raw(P, EP, "SEQ_A") == raw_before
    assert seeded.history(P, EP, "SEQ_A") == before


def test_non_structural_metadata_is_allowed(seeded: Store) -> None:
    def mutate(scene: Scene) -> None:
        scene.beats[0].beat_metadata["inputs_fingerprint"] = "abc"
        scene.beats[0].max_takes = 9
        scene.beats[0].board = Board(status="approved", frames=["f1.png"])

    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=mutate)
    beat = seeded.load_active(P, EP, "SEQ_A").beats[0]
    assert beat.max_takes == 9 and beat.board is not None and beat.board.status == "approved"


def test_invalid_mutation_is_refused(seeded: Store) -> None:
    def mutate(scene: Scene) -> None:
        scene.beats[0].primary_take_id = "ghost"

    with pytest.raises(ValidationError, match="primary_take_id"):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=mutate)
    assert seeded.load_active(P, EP, "SEQ_A").beats[0].primary_take_id is None


def test_cold_start_materializes_scene(store: Store) -> None:
    store.save_active_scene_status(P, EP, "NEW_1", expected_version=1, mutate=bump)
    scene, v = store.load_active_with_version(P, EP, "NEW_1")
    assert v == 1 and scene.scene_id == "NEW_1" and scene.scene_metadata == {"counter": 1}
    assert store.list_batches(P, EP) == ["NEW_1"]


def test_post_write_failure_restores_previous_state(seeded: Store) -> None:
    raw_before = seeded.load_raw(P, EP, "SEQ_A")
    history_before = seeded.history(P, EP, "SEQ_A")
    seen: list[int] = []

    def hook(scene: Scene) -> None:
        seen.append(scene.scene_metadata["counter"])
        raise RuntimeError("downstream index failed")

    with pytest.raises(RuntimeError, match="downstream"):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump,
                                        post_write=hook)
    assert seen == [1]
    assert seeded.load_raw(P, EP, "SEQ_A") == raw_before
    assert seeded.history(P, EP, "SEQ_A") == history_before


def test_post_write_failure_on_cold_start_leaves_no_body(store: Store) -> None:
    def hook(scene: Scene) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.save_active_scene_status(P, EP, "COLD", expected_version=1, mutate=bump,
                                       post_write=hook)
    assert store.list_batches(P, EP) == []
    with pytest.raises(SceneNotFoundError):
        store.load_active(P, EP, "COLD")


def test_reentrant_save_from_hook_raises_at_once(seeded: Store) -> None:
    def hook(scene: Scene) -> None:
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)

    with pytest.raises(LockReentryError):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump,
                                        post_write=hook)
    assert "counter" not in seeded.load_active(P, EP, "SEQ_A").scene_metadata


def test_unknown_keys_survive_status_saves(store: Store) -> None:
    scene = Scene(scene_id="FUT", beats=[Beat(beat_id="b1", takes=[Take(take_id="t")])])
    d = scene.to_dict()
    d["added_by_newer_writer"] = {"k": "ü"}
    d["beats"][0]["takes"][0]["gpu_seconds"] = 12.5
    store.save_active_scene(P, EP, "FUT", Scene.from_dict(d), expected_version=1)
    store.save_active_scene_status(P, EP, "FUT", expected_version=1, mutate=bump)
    raw, _ = store.load_raw(P, EP, "FUT")
    assert raw["added_by_newer_writer"] == {"k": "ü"}
    assert raw["beats"][0]["takes"][0]["gpu_seconds"] == 12.5


# -- Writer 1: the runner overlay ---------------------------------------------------------


def test_runner_save_overlays_takes_and_keeps_board(seeded: Store) -> None:
    seeded.decide_board(P, EP, "SEQ_A", "A1", "approved", note="good", actor="op")
    runner_scene, v = seeded.load_active_with_version(P, EP, "SEQ_A")
    runner_scene.beats[0].board = None  # the runner's copy is stale about the board
    runner_scene.beats[0].takes = [Take(take_id="t1", status="succeeded")]
    runner_scene.beats[0].primary_take_id = "t1"
    runner_scene.beats[0].beat_metadata["inputs_fingerprint"] = "f1"
    seeded.save_active_scene(P, EP, "SEQ_A", runner_scene, expected_version=v, actor="runner")
    beat = seeded.load_active(P, EP, "SEQ_A").beats[0]
    assert beat.takes[0].take_id == "t1" and beat.primary_take_id == "t1"
    assert beat.board is not None and beat.board.status == "approved"
    assert beat.beat_metadata["inputs_fingerprint"] == "f1"
    assert seeded.history(P, EP, "SEQ_A")[-1]["op"] == "runner"


def test_runner_save_refuses_structural_change(seeded: Store) -> None:
    runner_scene, v = seeded.load_active_with_version(P, EP, "SEQ_A")
    runner_scene.beats[0].beat_metadata["plan_shot"] = {"shot_id": "A1", "description": "new"}
    with pytest.raises(SceneStructureImmutableError) as ei:
        seeded.save_active_scene(P, EP, "SEQ_A", runner_scene, expected_version=v)
    assert ei.value.changes == ["A1.plan_shot:changed"]
    runner_scene, v = seeded.load_active_with_version(P, EP, "SEQ_A")
    runner_scene.beats.pop()
    with pytest.raises(SceneStructureImmutableError):
        seeded.save_active_scene(P, EP, "SEQ_A", runner_scene, expected_version=v)


def test_runner_enrichment_only_on_unversioned_batches(seeded: Store) -> None:
    runner_scene, v = seeded.load_active_with_version(P, EP, "SEQ_A")
    runner_scene.beats[0].beat_metadata["shot"] = {"shot_id": "A1", "aspect_ratio": "16:9"}
    seeded.save_active_scene(P, EP, "SEQ_A", runner_scene, expected_version=v)
    md = seeded.load_active(P, EP, "SEQ_A").beats[0].beat_metadata
    assert md["shot"] == {"shot_id": "A1"}  # builder-variant field dropped

    version = seeded.write_scene_candidate(P, EP, "SEQ_B", Scene(scene_id="SEQ_B", beats=[
        Beat(beat_id="B1", beat_metadata={"scene_id": "SEQ_B"})]), activate=True)
    runner_scene, v = seeded.load_active_with_version(P, EP, "SEQ_B")
    assert v == version
    runner_scene.beats[0].beat_metadata["grouping"] = {"g": 1}
    seeded.save_active_scene(P, EP, "SEQ_B", runner_scene, expected_version=v)
    assert "grouping" not in seeded.load_active(P, EP, "SEQ_B").beats[0].beat_metadata


def test_runner_cold_start_and_conflict(store: Store) -> None:
    scene = Scene(scene_id="RUN", beats=[Beat(beat_id="b", takes=[Take(take_id="t")])])
    store.save_active_scene(P, EP, "RUN", scene, expected_version=1)
    assert store.load_active(P, EP, "RUN") == scene
    with pytest.raises(SceneVersionConflictError):
        store.save_active_scene(P, EP, "RUN", scene, expected_version=3)


# -- versions --------------------------------------------------------------------------------


def test_candidate_on_flat_batch_registers_v1(seeded: Store) -> None:
    v = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), note="re-derive", actor="rd")
    assert v == 2
    vs = seeded.versions(P, EP, "SEQ_A")
    assert [(x["version"], x["active"], x["parent_version"]) for x in vs] == [
        (1, True, None), (2, False, 1)]
    assert vs[0]["artifact"] == "ep_001_SEQ_A.json"
    assert vs[1]["artifact"] == "ep_001_SEQ_A.v002.json" and vs[1]["note"] == "re-derive"
    assert seeded.load_version(P, EP, "SEQ_A", 2) == rederived()
    assert seeded.load_active_with_version(P, EP, "SEQ_A")[1] == 1


def test_equal_candidate_returns_existing_version_and_writes_nothing(seeded: Store) -> None:
    v = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    before = (seeded.manifest(P, EP, "SEQ_A"), seeded.history(P, EP, "SEQ_A"))
    twin = rederived()
    twin.beats[0].takes.append(Take(take_id="x"))  # takes are not structure
    assert seeded.write_scene_candidate(P, EP, "SEQ_A", twin) == v
    assert (seeded.manifest(P, EP, "SEQ_A"), seeded.history(P, EP, "SEQ_A")) == before
    flat_twin = seeded.load_version(P, EP, "SEQ_A", 1)
    assert seeded.write_scene_candidate(P, EP, "SEQ_A", flat_twin) == 1


def test_identity_mismatch_writes_nothing(seeded: Store) -> None:
    before = (seeded.manifest(P, EP, "SEQ_A"), seeded.history(P, EP, "SEQ_A"))
    with pytest.raises(SceneIdentityMismatchError):
        seeded.write_scene_candidate(P, EP, "SEQ_A", rederived("SEQ_Z"))
    assert (seeded.manifest(P, EP, "SEQ_A"), seeded.history(P, EP, "SEQ_A")) == before
    assert seeded.list_batches(P, EP) == ["SEQ_A", "SEQ_B"]


def test_candidate_for_new_batch_is_active_v1(store: Store) -> None:
    assert store.write_scene_candidate(P, EP, "SEQ_A", rederived()) == 1
    assert store.load_active_with_version(P, EP, "SEQ_A") == (rederived(), 1)
    assert store.list_batches(P, EP) == ["SEQ_A"]


def test_conform_and_revert_move_pointer_with_history(seeded: Store) -> None:
    v2 = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    assert seeded.conform(P, EP, "SEQ_A", v2, expected_active=1, reason="new cut",
                          actor="ed") == 2
    assert seeded.load_active_with_version(P, EP, "SEQ_A")[1] == 2
    assert seeded.revert(P, EP, "SEQ_A", expected_active=2, reason="oops") == 1
    history = seeded.manifest(P, EP, "SEQ_A")["history"]  # type: ignore[index]
    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        (1, 2, "new cut"), (2, 1, "oops")]
    assert history[0]["actor"] == "ed" and history[0]["at"]
    ops = [r["op"] for r in seeded.history(P, EP, "SEQ_A")]
    assert ops[-3:] == ["candidate", "conform", "revert"]


def test_conform_with_stale_expectation_conflicts(seeded: Store) -> None:
    v2 = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    with pytest.raises(SceneVersionConflictError):
        seeded.conform(P, EP, "SEQ_A", 1, expected_active=1)
    assert seeded.load_active_with_version(P, EP, "SEQ_A")[1] == v2


def test_conform_to_unknown_version(seeded: Store) -> None:
    with pytest.raises(VersionNotFoundError):
        seeded.conform(P, EP, "SEQ_A", 7)
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    with pytest.raises(VersionNotFoundError):
        seeded.conform(P, EP, "SEQ_A", 7)
    with pytest.raises(VersionNotFoundError):
        seeded.load_version(P, EP, "SEQ_A", 7)


def test_revert_without_history(seeded: Store) -> None:
    with pytest.raises(NothingToRevertError):
        seeded.revert(P, EP, "SEQ_A")


def test_status_save_after_conform_needs_new_version(seeded: Store) -> None:
    _scene, v = seeded.load_active_with_version(P, EP, "SEQ_A")
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    with pytest.raises(SceneVersionConflictError):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=v, mutate=bump)
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    assert seeded.load_version(P, EP, "SEQ_A", 1).scene_metadata.get("counter") is None
    assert seeded.load_version(P, EP, "SEQ_A", 2).scene_metadata["counter"] == 1


def test_diff_reports_typed_changes(seeded: Store) -> None:
    v2 = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    d = seeded.diff(P, EP, "SEQ_A", 1, v2)
    assert not d["identical"]
    assert [x["beat_id"] for x in d["added"]] == ["A9"]
    assert [x["beat_id"] for x in d["removed"]] == ["BEAT_02"]
    assert {x["beat_id"] for x in d["moved"]} == {"A1", "A2"}
    changed = {(c["beat_id"], c["key"]) for c in d["changed"]}
    assert ("A1", "plan_shot") in changed
    assert seeded.diff(P, EP, "SEQ_A", 1, 1)["identical"]
    assert seeded.preview(P, EP, "SEQ_A", v2) == d


def test_picture_lock_refuses_moves_but_not_status(seeded: Store) -> None:
    v2 = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    seeded.lock_scene(P, EP, "SEQ_A", "picture lock for review", actor="sup")
    scene = seeded.load_active(P, EP, "SEQ_A")
    assert scene.locked and scene.lock_reason == "picture lock for review"
    assert scene.locked_by == "sup" and scene.locked_at
    with pytest.raises(SceneLockedError):
        seeded.conform(P, EP, "SEQ_A", v2)
    with pytest.raises(SceneLockedError):
        seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    seeded.write_scene_candidate(P, EP, "SEQ_A", Scene(scene_id="SEQ_A"))  # candidates allowed
    seeded.unlock_scene(P, EP, "SEQ_A")
    assert seeded.conform(P, EP, "SEQ_A", v2) == v2
    with pytest.raises(ValidationError):
        seeded.lock_scene(P, EP, "SEQ_A", "  ")


def test_revert_refused_when_locked(seeded: Store) -> None:
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    seeded.lock_scene(P, EP, "SEQ_A", "final")
    with pytest.raises(SceneLockedError):
        seeded.revert(P, EP, "SEQ_A")


# -- journal, recovery, operator actions --------------------------------------------------------


def test_journal_is_gap_free_and_chained(seeded: Store) -> None:
    for i in range(5):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1,
                                        mutate=add_take(i % 3, f"t{i}"))
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    records = seeded.history(P, EP, "SEQ_A")
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    prev = ""
    for r in records:
        assert r["prev"] == prev and r["crc"] == record_crc(r)
        assert {"seq", "at", "actor", "op", "version", "detail", "prev", "crc"} <= set(r)
        prev = r["crc"]


def test_recover_stale_takes(seeded: Store) -> None:
    def mutate(scene: Scene) -> None:
        beats = scene.beats
        beats[0].takes.append(Take(take_id="old", status="running",
                                   created_at="2026-01-01T00:00:00+00:00",
                                   heartbeat_at="2026-01-01T09:00:00+00:00"))
        beats[0].takes.append(Take(take_id="beating", status="running",
                                   started_at="2026-01-01T00:00:00+00:00",
                                   heartbeat_at="2026-01-01T09:59:00+00:00"))
        beats[1].takes.append(Take(take_id="started", status="running",
                                   started_at="2026-01-01T09:00:00"))
        beats[1].takes.append(Take(take_id="done", status="succeeded",
                                   created_at="2026-01-01T00:00:00+00:00"))

    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=mutate)
    got = seeded.recover_stale_takes(P, EP, older_than_s=300, now="2026-01-01T10:00:00+00:00")
    assert sorted(got) == [("SEQ_A", "A1", "old"), ("SEQ_A", "A2", "started")]
    scene = seeded.load_active(P, EP, "SEQ_A")
    status = {t.take_id: t.status for b in scene.beats for t in b.takes}
    assert status == {"old": "stale", "beating": "running", "started": "stale",
                      "done": "succeeded"}
    assert seeded.history(P, EP, "SEQ_A")[-1]["op"] == "recover-stale"
    assert seeded.recover_stale_takes(P, EP, now="2026-01-01T10:00:00+00:00") == []


def test_operator_actions(seeded: Store) -> None:
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=add_take(0, "t1"))
    seeded.set_primary_take(P, EP, "SEQ_A", "A1", "t1", expected_version=1, actor="op")
    seeded.decide_board(P, EP, "SEQ_A", "A1", "rejected", note="too dark", actor="op")
    beat = seeded.load_active(P, EP, "SEQ_A").beats[0]
    assert beat.primary_take_id == "t1"
    assert beat.board is not None
    assert (beat.board.status, beat.board.note, beat.board.decided_by) == (
        "rejected", "too dark", "op")
    with pytest.raises(ValidationError):
        seeded.set_primary_take(P, EP, "SEQ_A", "A1", "nope")
    with pytest.raises(ValidationError):
        seeded.set_primary_take(P, EP, "SEQ_A", "ZZ", "t1")


def test_fsck_clean_after_a_session(seeded: Store) -> None:
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=add_take(0, "t1"))
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    seeded.lock_scene(P, EP, "SEQ_A", "r")
    report = seeded.fsck()
    assert report.problems == [] and report.clean


@pytest.mark.parametrize("action", [
    lambda s: s.lock_scene(P, EP, "GHOST", "review"),
    lambda s: s.unlock_scene(P, EP, "GHOST"),
    lambda s: s.decide_board(P, EP, "GHOST", "b", "approved"),
    lambda s: s.set_primary_take(P, EP, "GHOST", "b", None),
])
def test_operator_actions_never_create_a_scene(store: Store, action: Any) -> None:
    with pytest.raises(SceneNotFoundError):
        action(store)
    assert store.list_batches(P, EP) == []
