"""The seed-compatible façade: same names, signatures and exceptions, side by side."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import clapboard
from clapboard import Beat, Scene, persistence
from clapboard.persistence import SceneVersionStore

PLAN = {"sequences": {"SEQ_010": {"shots": [{"shot_id": "S1", "prompt": "night — 夜"},
                                            {"id": "S2"}]}}}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLAPBOARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_every_seed_name_exists_with_the_seed_signature(seed: Any) -> None:
    names = ["scene_path", "save_scene", "save_scene_guarded", "load_scene", "list_scenes",
             "init_scenes_from_plan", "scene_manifest_path", "scene_version_path",
             "active_version", "manifest_artifact_path", "load_manifest",
             "load_scene_active_with_version", "load_scene_active", "active_scene_body_path",
             "assert_batch_identity", "canonical_shot_identity", "structure_fingerprint",
             "structural_mutations", "save_active_scene_status", "save_active_scene",
             "atomic_write_json", "atomic_write_text", "jsonl_append_locked"]
    for name in names:
        ours = inspect.signature(getattr(persistence, name))
        theirs = inspect.signature(getattr(seed, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        for p in theirs.parameters.values():
            assert ours.parameters[p.name].kind == p.kind, (name, p.name)
            assert ours.parameters[p.name].default == p.default, (name, p.name)
    for cls in ["SceneLockedError", "SceneStructureImmutableError", "SceneVersionConflictError",
                "SceneIdentityMismatchError", "SchemaVersionError", "LockTimeoutError"]:
        assert issubclass(getattr(persistence, cls), clapboard.ClapboardError)
    assert issubclass(persistence.SchemaVersionError, KeyError)
    assert issubclass(persistence.LockTimeoutError, TimeoutError)


def test_same_paths_as_the_seed(home: Path, seed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEEDREF_ROOT", str(home / "projects"))
    for fn, args in [("scene_path", ("p", 7, "B")), ("scene_manifest_path", ("p", "7", "B")),
                     ("scene_version_path", ("p", "ep_007", "B", 12))]:
        assert getattr(persistence, fn)(*args) == getattr(seed, fn)(*args)


def test_facade_round_trip(home: Path) -> None:
    scenes = persistence.init_scenes_from_plan("p", 1, PLAN)
    assert [s.scene_id for s in scenes] == ["SEQ_010"]
    assert persistence.list_scenes("p", 1) == [persistence.scene_path("p", 1, "SEQ_010")]
    _scene, v = persistence.load_scene_active_with_version("p", 1, "SEQ_010")
    assert v == 1 and persistence.load_manifest("p", 1, "SEQ_010") is None
    assert persistence.active_scene_body_path("p", 1, "SEQ_010") == \
        persistence.scene_path("p", 1, "SEQ_010")

    def approve(s: Scene) -> None:
        s.scene_metadata["approved"] = True

    persistence.save_active_scene_status("p", 1, "SEQ_010", expected_version=v, mutate=approve)
    assert persistence.load_scene_active("p", 1, "SEQ_010").scene_metadata["approved"]

    vs = SceneVersionStore("p", 1)
    new = Scene(scene_id="SEQ_010", beats=[Beat(beat_id="S2"), Beat(beat_id="S1")])
    assert vs.write_scene_candidate("SEQ_010", new, note="re-derive") == 2
    manifest = persistence.load_manifest("p", 1, "SEQ_010")
    assert manifest is not None and persistence.active_version(manifest) == 1
    assert manifest["schema_version"] == 1
    vs.conform("SEQ_010", 2, expected_active=1, reason="try")
    assert persistence.active_scene_body_path("p", 1, "SEQ_010") == \
        persistence.scene_version_path("p", 1, "SEQ_010", 2)
    assert vs.revert("SEQ_010") == 1
    assert [x["active"] for x in vs.versions("SEQ_010")] == [True, False]
    assert persistence.list_scenes("p", 1) == [persistence.scene_path("p", 1, "SEQ_010")]
    with pytest.raises(persistence.SceneIdentityMismatchError):
        persistence.assert_batch_identity("SEQ_011", new)


def test_facade_errors_match_the_seed(home: Path, seed: Any) -> None:
    persistence.init_scenes_from_plan("p", 1, PLAN)
    seed.init_scenes_from_plan("p", 1, PLAN)
    scene_path = persistence.scene_path("p", 1, "SEQ_010")
    seed_path = seed.scene_path("p", 1, "SEQ_010")
    for load, path in ((persistence.load_scene, scene_path), (seed.load_scene, seed_path)):
        doc = json.loads(path.read_text())
        doc["schema_version"] = 5
        path.write_text(json.dumps(doc))
        with pytest.raises(KeyError):
            load(path)
        path.write_text("{")
        with pytest.raises(ValueError):
            load(path)
        with pytest.raises(FileNotFoundError):
            load(path.with_name("missing.json"))
    with pytest.raises(ValueError):
        persistence.scene_path("p", -1, "X")


def test_seed_written_bodies_load_in_clapboard(home: Path, seed: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A store the seed wrote is readable by clapboard: same layout, same fingerprints."""
    monkeypatch.setenv("SEEDREF_ROOT", str(home / "projects"))
    seed.init_scenes_from_plan("p", 1, PLAN)
    seed_scene, v = seed.load_scene_active_with_version("p", 1, "SEQ_010")
    ours, v2 = persistence.load_scene_active_with_version("p", 1, "SEQ_010")
    assert (v, v2) == (1, 1)
    assert [b.beat_id for b in ours.beats] == [b.beat_id for b in seed_scene.beats]
    assert persistence.structure_fingerprint(ours) == seed.structure_fingerprint(seed_scene)

    def bump(s: Scene) -> None:
        s.scene_metadata["n"] = 1

    persistence.save_active_scene_status("p", 1, "SEQ_010", expected_version=1, mutate=bump)
    path = persistence.scene_path("p", 1, "SEQ_010")
    assert persistence.load_scene(path).scene_metadata["n"] == 1
    # A body clapboard wrote is schema 2: it may have journal deltas after it, which the
    # seed cannot apply, so the seed refuses it loudly instead of reading a stale scene.
    with pytest.raises(KeyError, match="expected 1, got 2"):
        seed.load_scene(seed.scene_path("p", 1, "SEQ_010"))


def test_save_scene_guarded_refuses_locked(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "ep_001_S.json"
    persistence.save_scene_guarded(Scene(scene_id="S"), path)
    persistence.save_scene(Scene(scene_id="S", locked=True, lock_reason="final"), path)
    with pytest.raises(persistence.SceneLockedError):
        persistence.save_scene_guarded(Scene(scene_id="S"), path)


def test_atomic_write_helpers(tmp_path: Path) -> None:
    persistence.atomic_write_text(tmp_path / "a.txt", "héllo")
    persistence.atomic_write_json(tmp_path / "b.json", {"k": [1, 2], "p": Path("/x")})
    assert (tmp_path / "a.txt").read_text() == "héllo"
    assert json.loads((tmp_path / "b.json").read_text()) == {"k": [1, 2], "p": "/x"}
