"""Guarantees the hot-path optimisations (issue 6) must not weaken.

The status writer decodes the body twice instead of deep-copying it, builds the working
scene without checks and validates once after the closure; models are built without
their dataclass ``__init__``; the runner overlay copies through orjson; large document
builds pause the garbage collector. Each test pins what that must not change.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clapboard
from clapboard import Beat, Board, Scene, Take, codec
from clapboard.errors import ValidationError
from clapboard.fingerprint import runner_overlay

P, EP, B = "proj", 1, "SCENE_1"


def _scene() -> Scene:
    return Scene(scene_id=B, beats=[
        Beat(beat_id="b1", beat_metadata={"scene_id": B, "plan_shot": {"camera": {"lens": 35}}},
             takes=[Take(take_id="t1", status="running", receipt={"job": {"id": "j1"}},
                         outputs=["a.mp4"])]),
        Beat(beat_id="b2", takes=[Take(take_id="t1")]),
    ], scene_metadata={"counter": 0, "nested": {"k": [1, 2]}})


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = clapboard.open_store(tmp_path / "store", lock_timeout=10)
    s.write_scene_candidate(P, EP, B, _scene())
    yield s
    s.close()


def _body_path(s: Any) -> Path:
    return Path(s.backend.body_path(P, "ep_001", B, 1, s.manifest(P, EP, B)))


def test_in_place_nested_mutation_is_written_and_journaled(store: Any) -> None:
    def mutate(sc: Scene) -> None:
        sc.scene_metadata["nested"]["k"].append(3)  # in place, two levels down
        sc.beats[0].takes[0].receipt["job"]["id"] = "j2"

    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
    got = store.load_active(P, EP, B)
    assert got.scene_metadata["nested"]["k"] == [1, 2, 3]
    assert got.beats[0].takes[0].receipt["job"]["id"] == "j2"
    changes = store.history(P, EP, B)[-1]["detail"]["changes"]
    by_path = {c["path"]: c for c in changes}
    assert by_path["scene_metadata.nested.k"]["old"] == [1, 2]
    assert by_path["scene_metadata.nested.k"]["new"] == [1, 2, 3]
    assert by_path["beats[b1].takes[t1].receipt.job.id"] == {
        "path": "beats[b1].takes[t1].receipt.job.id", "old": "j1", "new": "j2",
        "key": ["beats", {"beat_id": "b1"}, "takes", {"take_id": "t1"}, "receipt", "job", "id"]}


def test_invalid_stored_body_is_reported_with_its_file_and_kept(store: Any) -> None:
    path = _body_path(store)
    doc = orjson.loads(path.read_bytes())
    doc["beats"][0]["takes"][0]["status"] = "bogus"
    doc["beats"][0]["takes"][0]["receipt"] = ["not", "a", "dict"]
    bad = orjson.dumps(doc)
    path.write_bytes(bad)
    journal_before = store.history(P, EP, B)

    def mutate(sc: Scene) -> None:  # trips over the bad value before validation runs
        sc.beats[0].takes[0].receipt["seen"] = True

    with pytest.raises(ValidationError) as e:
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
    assert e.value.path == path and "takes[0]" in e.value.field
    with pytest.raises(ValidationError):  # a closure that touches nothing: same answer
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=lambda sc: None)
    assert path.read_bytes() == bad
    assert store.history(P, EP, B) == journal_before


def test_closure_error_on_a_valid_body_propagates_and_writes_nothing(store: Any) -> None:
    path = _body_path(store)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    def mutate(sc: Scene) -> None:
        sc.scene_metadata["counter"] = 99
        raise Boom

    with pytest.raises(Boom):
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
    assert path.read_bytes() == before


def test_closure_making_the_scene_invalid_is_refused(store: Any) -> None:
    path = _body_path(store)
    before = path.read_bytes()

    def mutate(sc: Scene) -> None:
        sc.beats[1].takes[0].status = "nonsense"

    with pytest.raises(ValidationError) as e:
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
    assert "status" in e.value.field
    assert path.read_bytes() == before


def test_read_body_gives_the_caller_its_own_document(store: Any) -> None:
    """Bodies are kept between reads (shared states): what read_body hands out, and
    what a loaded scene holds, is the caller's own and cannot reach the kept state."""
    with store.transaction(P, EP, B) as tx:
        a = tx.read_body(1, tx.read_manifest())
        a["scene_metadata"]["nested"]["k"].append(9)
        b = tx.read_body(1, tx.read_manifest())
    assert b["scene_metadata"]["nested"]["k"] == [1, 2]
    scene = store.load_active(P, EP, B)
    scene.scene_metadata["nested"]["k"].append(7)
    scene.beats[0].takes[0].receipt["mutated"] = True
    scene.beats[1].beat_metadata["x"] = 1
    again = store.load_active(P, EP, B)
    assert again.scene_metadata["nested"]["k"] == [1, 2]
    assert "mutated" not in again.beats[0].takes[0].receipt
    assert "x" not in again.beats[1].beat_metadata
    fresh = clapboard.open_store(store.backend.location).load_active(P, EP, B)
    assert again == fresh


def test_runner_overlay_shares_nothing_with_its_inputs() -> None:
    disk = _scene().to_dict()
    runner = _scene().to_dict()
    runner["beats"][0]["takes"][0]["status"] = "succeeded"
    disk_copy, runner_copy = copy.deepcopy(disk), copy.deepcopy(runner)
    merged = runner_overlay(disk, runner, allow_structural_enrichment=True)
    merged["beats"][0]["takes"][0]["receipt"]["job"]["id"] = "changed"
    merged["beats"][0]["beat_metadata"]["plan_shot"]["camera"]["lens"] = 85
    assert disk == disk_copy and runner == runner_copy
    assert merged["beats"][0]["takes"][0]["status"] == "succeeded"


def test_from_dict_fast_path_matches_construction_and_leaves_input_alone() -> None:
    scene = _scene()
    d = scene.to_dict()
    d["beats"][0]["takes"][0]["future_field"] = {"x": 1}
    d["beats"][0]["board"] = {**Board(status="approved", frames=["f.png"]).to_dict(),
                              "later": 1}
    d["extra_top"] = [1]
    before = copy.deepcopy(d)
    built = Scene.from_dict(d)
    assert d == before
    assert built.to_dict() == d
    assert Scene.from_dict(built.to_dict()) == built
    unchecked = Scene.from_dict(d, validate=False)
    assert unchecked == built
    # mutable defaults are fresh per instance
    t1, t2 = Take.from_dict({"take_id": "a"}), Take.from_dict({"take_id": "b"})
    t1.receipt["x"] = 1
    t1.outputs.append("o")
    assert t2.receipt == {} and t2.outputs == []


@pytest.mark.parametrize("field,value", [
    ("status", "bogus"), ("attempt", True), ("attempt", -1), ("created_at", "yesterday"),
    ("provider", 3), ("receipt", []), ("outputs", "a.mp4"), ("outputs", [1]),
    ("error", 2), ("metadata", None), ("take_id", ""),
])
def test_invalid_take_rejected_by_both_paths(field: str, value: Any) -> None:
    d = {"take_id": "t", field: value}
    with pytest.raises(ValidationError) as e1:
        Take.from_dict(d)
    assert e1.value.field.startswith(field)
    loose = Take.from_dict(d, validate=False)
    with pytest.raises(ValidationError) as e2:
        loose.validate()
    assert e2.value.field == e1.value.field


def test_path_outputs_are_written_as_strings() -> None:
    t = Take(take_id="t", outputs=[Path("renders/a.mp4"), "b.mp4"])
    assert t.to_dict()["outputs"] == ["renders/a.mp4", "b.mp4"]


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with codec.gc_paused():
        assert not gc.isenabled()
        with codec.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with codec.gc_paused():
            pass
        assert not gc.isenabled()  # it did not disable it, so it does not enable it
    finally:
        gc.enable()


@pytest.mark.parametrize("value", [35.0, True, "35"])
def test_structure_guard_sees_a_type_change_that_python_calls_equal(store: Any,
                                                                     value: Any) -> None:
    """The status writer's shortcut for an unchanged beat_metadata compares JSON bytes,
    not ``==``: 35 -> 35.0 (or True for 1) changes the structural fingerprint and is
    refused like any other structure change."""
    def mutate(s: Scene) -> None:
        s.beats[0].beat_metadata["plan_shot"]["camera"]["lens"] = value

    with pytest.raises(clapboard.SceneStructureImmutableError):
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
    assert store.load_active(P, EP, B).beats[0].beat_metadata["plan_shot"] == {
        "camera": {"lens": 35}}


_EDITS = ["none", "status", "bad_status", "primary", "bad_primary", "dup_id", "new_beat",
          "drop_beat", "metadata", "max_takes_bad", "scene_locked_bad", "scene_metadata",
          "swap", "alias"]


@pytest.mark.parametrize("edits", [[e] for e in _EDITS] + [
    ["status", "metadata"], ["primary", "dup_id"], ["bad_status", "bad_primary"],
    ["new_beat", "status"], ["metadata", "scene_locked_bad"], ["scene_metadata", "alias"],
    ["swap", "scene_locked_bad"]])
def test_validate_changed_is_validate_then_changed_beats(edits: list[str]) -> None:
    """The status writer's one-pass check gives exactly what ``Scene.validate()`` and
    ``changed_beats`` give: the same error (field and message) or the same positions."""
    from clapboard.models import changed_beats, lazy_scene, validate_changed

    doc = _scene().to_dict()
    doc["beats"].append(Beat(beat_id="b3", takes=[Take(take_id="t9")]).to_dict())

    def outcome(check: Any) -> Any:
        s = lazy_scene(doc)
        for e in edits:
            if e == "status":
                s.beats[0].takes[0].status = "succeeded"
            elif e == "bad_status":
                s.beats[2].takes[0].status = "exploded"
            elif e == "primary":
                s.beats[1].primary_take_id = "t1"
            elif e == "bad_primary":
                s.beats[2].primary_take_id = "nope"
            elif e == "dup_id":
                s.beats[2].beat_id = "b1"
            elif e == "new_beat":
                s.beats.append(Beat(beat_id="b4"))
            elif e == "drop_beat":
                del s.beats[1]
            elif e == "metadata":
                s.beats[1].beat_metadata["note"] = "x"
            elif e == "max_takes_bad":
                s.beats[0].max_takes = -1
            elif e == "scene_locked_bad":
                s.locked = "yes"  # type: ignore[assignment]
            elif e == "scene_metadata":  # the scene's own field: no beat touched
                s.scene_metadata["counter"] = 1
            elif e == "swap":  # untouched beats, each in the other's place
                s.beats[0], s.beats[1] = s.beats[1], s.beats[0]
            elif e == "alias":  # one untouched beat in two places: a duplicate id
                s.beats[2] = s.beats[0]
        try:
            return ("ok", check(s))
        except ValidationError as err:
            return ("error", err.field, err.problem)

    def both(s: Scene) -> Any:
        s.validate()
        return changed_beats(s, doc["beats"])

    assert outcome(lambda s: validate_changed(s, doc["beats"])) == outcome(both)


def test_utc_now_is_an_iso_millisecond_utc_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's timestamps keep the format ``datetime.isoformat`` gives, across
    whole seconds (the text of a second is kept between calls)."""
    import re
    import time
    from datetime import UTC, datetime, timedelta

    from clapboard import store as store_mod

    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    for ns in (1_764_000_000_000_000_000, 1_764_000_000_999_999_999,
               1_764_000_001_000_000_000, 1_764_000_001_123_456_789):
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        want = (epoch + timedelta(microseconds=ns // 1000)).isoformat(timespec="milliseconds")
        assert store_mod.utc_now() == want
    monkeypatch.undo()
    got = store_mod.utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", got)
    assert abs(datetime.fromisoformat(got).timestamp() - time.time()) < 5


_LAZY_EDITS = ["status", "receipt", "outputs", "take_extra", "metadata", "board_status",
               "board_frames", "beat_extra", "primary", "max_takes", "phantom", "add_take",
               "drop_take", "read_only", "take_error"]


def _lazy_edit(s: Scene, edit: str, i: int) -> None:
    beat = s.beats[i % len(s.beats)]
    if edit == "status":
        beat.takes[0].status = "succeeded" if beat.takes[0].status != "succeeded" else "failed"
    elif edit == "receipt":
        beat.takes[-1].receipt["cost"] = i
    elif edit == "outputs":
        beat.takes[0].outputs.append(f"/out/{i}.mp4")
    elif edit == "take_extra":
        beat.takes[0].extra["x-new"] = {"n": i}
    elif edit == "metadata":
        beat.beat_metadata["note"] = f"n{i}"
    elif edit == "board_status":
        if beat.board is None:
            beat.board = Board()
        beat.board.status = "approved"
    elif edit == "board_frames":
        if beat.board is not None:
            beat.board.frames.append(f"f{i}.png")
    elif edit == "beat_extra":
        beat.extra["x-beat"] = [i]
    elif edit == "primary":
        beat.primary_take_id = beat.takes[-1].take_id
    elif edit == "max_takes":
        beat.max_takes = 7
    elif edit == "phantom":
        beat.phantom_recovery_count += 1
    elif edit == "add_take":
        beat.takes.append(Take(take_id=f"new{i}", status="running"))
    elif edit == "drop_take":
        if len(beat.takes) > 1 and beat.primary_take_id != beat.takes[0].take_id:
            del beat.takes[0]
    elif edit == "read_only":
        _ = (beat.takes[0].receipt, beat.board, beat.beat_metadata, beat.extra)
    elif edit == "take_error":
        beat.takes[0].error = "boom"


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(_LAZY_EDITS), st.integers(0, 5)), max_size=5))
def test_lazy_scene_edits_write_what_an_eager_scene_writes(
        edits: list[tuple[str, int]]) -> None:
    """Whatever a closure builds, reads or assigns on a lazy scene (beats and takes built
    field by field), what the status writer validates and writes is what the same
    edits make of an eagerly built scene — and the stored dict is never changed."""
    from clapboard.models import lazy_scene, shared_dict, validate_changed

    doc = _scene().to_dict()
    doc["beats"][0]["x-stored"] = {"keep": 1}
    doc["beats"][0]["takes"][0]["x-stored"] = "kept"
    doc["beats"].append(Beat(beat_id="b3", takes=[Take(take_id="t8"), Take(take_id="t9")],
                             board=Board(frames=["a.png"])).to_dict())
    before = orjson.dumps(doc)
    lazy, eager = lazy_scene(doc), Scene.from_dict(copy.deepcopy(doc))
    for edit, i in edits:
        _lazy_edit(lazy, edit, i)
        _lazy_edit(eager, edit, i)

    def outcome(check: Any) -> Any:
        try:
            check()
        except ValidationError as err:
            return (err.field, err.problem)
        return None

    refused = outcome(lambda: validate_changed(lazy, doc["beats"]))
    assert refused == outcome(eager.validate)
    if refused is None:
        assert Scene.from_dict(copy.deepcopy(shared_dict(lazy))) == eager
        assert Scene.from_dict(lazy.to_dict()) == eager
    assert orjson.dumps(doc) == before


# Edits that only assign a take's plain scalar fields (the status writer's short path),
# valid or not, and edits that are anything else (the general path must be taken).
_FIELD_EDITS = ["status", "take_error", "attempt", "started", "provider", "provider_none",
                "same_status",
                "bad_status", "bad_time", "negative_attempt", "int_error"]
_OTHER_EDITS = ["bool_attempt", "take_id", "scene_locked", "scene_meta", "str_subclass",
                "receipt", "read_only", "primary", "metadata", "add_take", "scene_extra",
                "scene_locked_int", "swap_beats", "eager_beat", "not_a_beat",
                "dict_primary", "dict_clear", "new_list"]


class _Str(str):
    pass


def _exact_json(value: Any) -> bool:
    """True when ``value`` is made of exact JSON types only (no subclasses)."""
    if type(value) is dict:
        return all(type(k) is str and _exact_json(v) for k, v in value.items())
    if type(value) is list:
        return all(_exact_json(v) for v in value)
    return type(value) in (str, int, float, bool, type(None))


class _OneField:
    def __init__(self) -> None:
        self.beat_id = "imposter"


def _field_edit(s: Scene, edit: str, i: int) -> None:
    if edit == "not_a_beat":  # an int (no __dict__), or an object of one attribute
        s.beats[i % len(s.beats)] = i if i % 2 else _OneField()  # type: ignore[call-overload]
        return
    beat = s.beats[i % len(s.beats)]
    if edit in ("dict_primary", "dict_clear"):  # a beat's dict written, not its fields
        if type(beat) is Beat:
            if edit == "dict_primary":
                vars(beat)["primary_take_id"] = None
            else:
                vars(beat).clear()  # (its stored dict gone with the rest)
        return
    if edit == "new_list":  # the same beats, in a list of the closure's own
        s.beats = list(s.beats)
        return
    take = beat.takes[i % len(beat.takes)]
    if edit == "status":
        take.status = ("succeeded", "failed", "running")[i % 3]
    elif edit == "take_error":
        take.error = f"boom {i}" if i % 2 else None
    elif edit == "attempt":
        take.attempt = i
    elif edit == "started":
        take.started_at = f"2026-11-26T10:00:0{i}+00:00"
    elif edit == "provider":  # b3's takes were stored without a provider key
        take.provider = "veo"
    elif edit == "provider_none":  # absent as stored, assigned its default: still added
        take.provider = None
    elif edit == "same_status":
        take.status = take.status
    elif edit == "bad_status":
        take.status = "exploded"
    elif edit == "bad_time":
        take.finished_at = "yesterday"
    elif edit == "negative_attempt":
        take.attempt = -i - 1
    elif edit == "int_error":
        take.error = i  # type: ignore[assignment]
    elif edit == "bool_attempt":
        take.attempt = True
    elif edit == "take_id":
        take.take_id = f"renamed{i}"
    elif edit == "scene_locked":
        s.locked = not s.locked
    elif edit == "scene_meta":
        s.scene_metadata["counter"] = i
    elif edit == "str_subclass":
        take.error = _Str("boom")  # valid (a str), but not a plain one
    elif edit == "scene_extra":
        s.extra["x-new"] = i
    elif edit == "scene_locked_int":
        s.locked = int(s.locked)  # equal to the stored value, and invalid
    elif edit == "swap_beats":  # two untouched lazy beats, each at the other's position
        s.beats[0], s.beats[1] = s.beats[1], s.beats[0]
    elif edit == "eager_beat":  # the same beat, built whole (not lazy)
        k = i % len(s.beats)
        try:
            s.beats[k] = Beat.from_dict(s.beats[k].to_dict())
        except ValidationError:
            pass  # an earlier edit made it invalid: it stays as it is
    else:
        _lazy_edit(s, edit, i)


@settings(max_examples=500, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(_FIELD_EDITS + _OTHER_EDITS),
                                st.integers(0, 5)), max_size=4))
def test_take_field_edits_agree_with_the_general_path(edits: list[tuple[str, int]]) -> None:
    """The status writer's short path (a closure that only assigned take fields) gives
    what the general path gives: the same validation error, or the same change list
    (order included) and, as the state after, exactly what replaying that list makes of
    the stored dict; it is taken whenever only plain take fields were assigned and never
    otherwise; the stored dict is never changed. Told how the beats were made
    (``MadeBeats``, as a spare scene is), it gives exactly what it gives without."""
    from clapboard.changes import apply_changes, beat_changes, take_field_changes
    from clapboard.fingerprint import structure_changed
    from clapboard.models import (
        MadeBeats,
        lazy_scene,
        stored_view,
        take_field_edits,
        validate_changed,
    )

    doc = _scene().to_dict()
    doc["beats"][0]["takes"][0]["x-stored"] = "kept"
    b3 = Beat(beat_id="b3", takes=[Take(take_id="t8"), Take(take_id="t9", status="running")])
    doc["beats"].append(b3.to_dict())
    for t in doc["beats"][2]["takes"]:
        del t["provider"]
    before = orjson.dumps(doc)

    made: list[MadeBeats] = []

    def outcome(run: Any) -> Any:
        s = lazy_scene(doc)
        made[:] = [MadeBeats.of(s)]
        # (a beat replaced by a non-model, or emptied, last: later edits could not reach
        # into it)
        for edit, i in sorted(edits, key=lambda e: e[0] in ("not_a_beat", "dict_clear")):
            _field_edit(s, edit, i)
        try:
            return ("ok", run(s))
        except ValidationError as err:
            return ("error", err.field, err.problem)

    def general(s: Scene) -> Any:
        if any(not hasattr(b, "beat_id") for b in s.beats if type(b) is Beat):
            return "no beat"  # (a beat emptied: its id is gone)
        touched = validate_changed(s, doc["beats"])
        if touched is None or structure_changed(s, doc, touched):
            return "structure changed"
        new = s.dict_with_beats([stored_view(s.beats[i]) for i in touched])
        return beat_changes(doc, new, touched)

    def short(s: Scene, told: bool = False) -> Any:
        got = take_field_edits(s, doc, made[0] if told else None)
        if got is None:
            return None
        changes, applied = take_field_changes(doc, got)
        after = applied()
        assert orjson.dumps(after) == orjson.dumps(apply_changes(doc, changes))
        assert _exact_json(after)  # nothing a caller holds and could change: kept as is
        return changes

    fast, slow = outcome(short), outcome(general)
    assert outcome(lambda s: short(s, told=True)) == fast
    if all(e in _FIELD_EDITS for e, _ in edits):
        assert fast != ("ok", None)  # taken
    if fast != ("ok", None):  # taken (also when other edits undid themselves)
        assert fast == slow
    if any(e in ("receipt", "read_only", "scene_extra") for e, _ in edits):
        assert fast == ("ok", None)  # a container built, an extra added: never taken
    assert orjson.dumps(doc) == before


def test_take_field_changes_follows_beat_changes_on_values_python_calls_equal() -> None:
    """A field whose new value equals the stored one but has another type (True for 1)
    is a change, as the general diff says; an equal value of the same type is none;
    a field the stored take lacked is added after the others."""
    from clapboard.changes import apply_changes, beat_changes, take_field_changes

    doc = Scene(scene_id=B, beats=[Beat(beat_id="b1", takes=[Take(take_id="t1")])]).to_dict()
    del doc["beats"][0]["takes"][0]["error"]
    assigned = {"attempt": True, "status": "pending", "error": "x"}
    changes, applied = take_field_changes(doc, [(0, [(0, assigned)])])
    new_beat = {**doc["beats"][0], "takes": [{**doc["beats"][0]["takes"][0], **assigned}]}
    assert changes == beat_changes(doc, {**doc, "beats": [new_beat]}, [0])
    assert [c["path"] for c in changes] == ["beats[b1].takes[t1].attempt",
                                            "beats[b1].takes[t1].error"]
    assert orjson.dumps(applied()) == orjson.dumps(apply_changes(doc, changes))
    none, same = take_field_changes(doc, [(0, [(0, {"status": "pending"})])])
    assert none == [] and same() is doc


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(
    st.text(max_size=6) | st.integers(0, 3),
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=4)
    | st.just(float("nan")) | st.floats() | _JSONISH,
    max_size=40))
def test_json_copy_of_a_flat_dict_is_what_the_round_trip_gives(doc: dict[Any, Any]) -> None:
    """json_copy copies a small dict of strings, integers, booleans and nulls as it is;
    that must be exactly what the orjson round trip (or its deepcopy fallback) gives,
    for every dict — nested values, floats (NaN becomes null in the round trip), big
    integers and non-string keys (the fallback) included — and never the dict itself."""
    try:
        expected = orjson.loads(orjson.dumps(doc))
    except (orjson.JSONEncodeError, TypeError):
        expected = copy.deepcopy(doc)
    got = codec.json_copy(doc)
    assert got is not doc
    assert repr(got) == repr(expected)  # the same keys, values and types, in order


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.text(), st.text(), st.text()), st.integers(min_value=0, max_value=2**62))
def test_the_notification_payload_is_the_json_of_its_fields(
        key: tuple[str, str, str], seq: int) -> None:
    """``notify_payload`` encodes a batch's part once and appends the seq: byte for byte
    what encoding the whole object gives (any text, quotes and escapes included)."""
    from clapboard.backends.pg_schema import notify_payload

    whole = {"project": key[0], "episode": key[1], "batch_id": key[2], "seq": seq}
    assert notify_payload(key, seq) == orjson.dumps(whole).decode()
    assert orjson.loads(notify_payload(key, seq)) == whole


def test_a_spare_scene_is_the_lazy_scene_and_is_handed_out_once() -> None:
    """``BodyState.build_spare`` makes the scene ``lazy_scene`` would (each beat's
    attribute dict already made, nothing built); ``spare()`` hands it to one caller
    only, however many threads ask at once; a document it cannot build leaves none."""
    import threading

    from clapboard.backends.base import BodyState
    from clapboard.models import lazy_scene, untouched_raw

    doc = Scene(scene_id="S", beats=[Beat(beat_id=f"b{i}", takes=[Take(take_id="t")])
                                     for i in range(5)],
                scene_metadata={"k": [1]}).to_dict()
    state = BodyState(doc, valid=True)
    assert state.spare() is None
    state.build_spare()
    assert state.spares is not None and len(state.spares) == 1
    built, made = state.spares[0]
    assert made.beats == built.beats and made.maybe_touched(built.beats) == []
    assert built.to_dict() == lazy_scene(doc).to_dict() == doc
    assert [untouched_raw(b) for b in built.beats] == doc["beats"]  # lazy, untouched
    assert built.scene_metadata is not doc["scene_metadata"]  # its own copy
    got: list[object] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        got.append(state.spare())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [g for g in got if g is not None] == [(built, made)] and state.spare() is None
    broken = BodyState({"scene_id": "S", "beats": 7}, valid=True)  # not a list of beats
    broken.build_spare()
    assert broken.spares is None and broken.spare() is None


def test_a_warm_status_save_writes_over_the_padding_without_a_stat(
        store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A status save commits by a journal line written over the journal's padding: while
    the line fits, the file keeps its size, and its end is proven by a read, never a
    stat of the journal (a stat makes the next write stamp fine-grained timestamps,
    which its sync must then commit: a disk round trip more). So the sync of such a save
    writes one block and flushes, with no metadata to commit."""
    import os

    from clapboard.io.journal import BLOCK

    journal = Path(store.backend.journal_path(P, "ep_001", B))

    def flip(sc: Scene) -> None:
        take = sc.beats[1].takes[0]
        take.status = "running" if take.status != "running" else "succeeded"

    for _ in range(3):  # warm: the kept state and the journal's end known
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=flip)
    stats: list[str] = []
    real_fstat, real_stat = os.fstat, os.stat

    def fstat(fd: int) -> os.stat_result:
        stats.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fstat(fd)

    def stat(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        stats.append(os.fspath(path))
        return real_stat(path, *args, **kw)

    sizes, ends = [journal.stat().st_size], []
    with monkeypatch.context() as m:
        m.setattr(os, "fstat", fstat)
        m.setattr(os, "stat", stat)
        for _ in range(40):  # about three blocks of lines
            store.save_active_scene_status(P, EP, B, expected_version=1, mutate=flip)
            sizes.append(real_stat(journal).st_size)
            data = journal.read_bytes()
            ends.append(len(data.rstrip(b" \n")) + 1)
    assert not [s for s in stats if s.endswith(".journal.jsonl")], "the journal was stat()ed"
    assert all(size % BLOCK == 0 for size in sizes)
    # the size changed exactly when a line did not fit in the padding left before it
    grew = [i for i in range(40) if sizes[i + 1] != sizes[i]]
    assert grew == [i for i in range(40) if ends[i] > sizes[i]]
    assert 1 <= len(grew) <= 8  # most saves kept the size (about 13 lines fit a block)
    assert clapboard.open_store(journal.parents[4]).load_active(P, EP, B) == \
        store.load_active(P, EP, B)
