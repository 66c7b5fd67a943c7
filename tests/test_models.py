"""Models: round trip, unknown keys kept, validation names the field path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clapboard import Beat, Board, Scene, Take, ValidationError, codec


def sample_scene() -> Scene:
    return Scene(
        scene_id="SEQ_010",
        beats=[
            Beat(beat_id="B1", max_takes=4, beat_metadata={"plan_shot": {"d": "wide, dusk"}},
                 takes=[Take(take_id="t1", status="succeeded", outputs=["/r/t1.mp4"]),
                        Take(take_id="t2", status="running",
                             started_at="2026-01-01T00:00:00+00:00")],
                 primary_take_id="t1", board=Board(status="approved", frames=["f.png"])),
            Beat(beat_id="B2"),
        ],
        scene_metadata={"episode": "ep_001"},
    )


def test_round_trip_equal() -> None:
    s = sample_scene()
    assert Scene.from_dict(s.to_dict()) == s


def test_unknown_keys_survive_at_every_level() -> None:
    d = sample_scene().to_dict()
    d["future_scene_field"] = {"x": 1}
    d["beats"][0]["future_beat_field"] = [1, 2]
    d["beats"][0]["takes"][0]["future_take_field"] = "é"
    d["beats"][0]["board"]["future_board_field"] = True
    again = Scene.from_dict(d).to_dict()
    assert again == d


def test_path_written_as_string() -> None:
    s = sample_scene()
    s.beats[0].takes[0].outputs.append(Path("/renders/x.mp4"))
    s.scene_metadata["start_frame"] = Path("/frames/0001.png")
    body = codec.encode_scene(s.to_dict())
    assert b'"/renders/x.mp4"' in body and b'"/frames/0001.png"' in body


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["beats"][0]["takes"][1].__setitem__("status", "exploded"),
         "beats[0].takes[1].status"),
        (lambda d: d["beats"][0].__setitem__("max_takes", "three"), "beats[0].max_takes"),
        (lambda d: d["beats"][1].__setitem__("beat_id", "B1"), "beats[1].beat_id"),
        (lambda d: d["beats"][0]["takes"][1].__setitem__("take_id", "t1"),
         "beats[0].takes[1].take_id"),
        (lambda d: d["beats"][0].__setitem__("primary_take_id", "nope"),
         "beats[0].primary_take_id"),
        (lambda d: d["beats"][0]["board"].__setitem__("status", "maybe"), "beats[0].board.status"),
        (lambda d: d.__setitem__("locked", "yes"), "locked"),
        (lambda d: d["beats"][0]["takes"][0].__setitem__("created_at", "yesterday"),
         "beats[0].takes[0].created_at"),
        (lambda d: d.__setitem__("beats", {}), "beats"),
        (lambda d: d["beats"][0]["takes"][0].__setitem__("status", ["running"]),
         "beats[0].takes[0].status"),
        (lambda d: d["beats"][0]["board"].__setitem__("status", {"s": 1}),
         "beats[0].board.status"),
    ],
)
def test_validation_names_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    d = sample_scene().to_dict()
    mutate(d)
    with pytest.raises(ValidationError) as ei:
        Scene.from_dict(d)
    assert ei.value.field == field
    assert isinstance(ei.value, ValueError)


def test_constructor_validates() -> None:
    with pytest.raises(ValidationError, match="status"):
        Take(take_id="t", status="nope")
    with pytest.raises(ValidationError, match="take_id"):
        Take(take_id="")
    with pytest.raises(ValidationError, match="primary_take_id"):
        Beat(beat_id="b", primary_take_id="missing")
    with pytest.raises(ValidationError, match="duplicate beat"):
        Scene(scene_id="S", beats=[Beat(beat_id="b"), Beat(beat_id="b")])


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
                         st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda c: st.one_of(
    st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=6).filter(
    lambda k: k not in Take._FIELDS and k != "extra"), json_values, max_size=3),
    meta=st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    status=st.sampled_from(sorted(["pending", "running", "succeeded", "failed", "stale",
                                   "cancelled"])))
def test_take_round_trip_property(extra: dict, meta: dict, status: str) -> None:  # type: ignore[type-arg]
    d = Take(take_id="t", status=status, metadata=meta).to_dict()
    d.update(extra)
    t = Take.from_dict(d)
    assert t.to_dict() == d
    assert Take.from_dict(t.to_dict()) == t


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from([
    ("scene_id",), ("beats",), ("locked",), ("lock_reason",), ("locked_at",),
    ("scene_metadata",), ("beats", 0), ("beats", 0, "beat_id"), ("beats", 0, "max_takes"),
    ("beats", 0, "takes"), ("beats", 0, "takes", 0), ("beats", 0, "takes", 0, "status"),
    ("beats", 0, "takes", 0, "take_id"), ("beats", 0, "takes", 0, "outputs"),
    ("beats", 0, "takes", 0, "attempt"), ("beats", 0, "takes", 0, "heartbeat_at"),
    ("beats", 0, "primary_take_id"), ("beats", 0, "board"), ("beats", 0, "board", "status"),
    ("beats", 0, "board", "frames"), ("beats", 0, "beat_metadata"),
]), value=json_values)
def test_any_json_in_any_field_is_accepted_or_a_validation_error(
        path: tuple[object, ...], value: object) -> None:
    """Whatever a foreign tool or bit rot puts in a field: a model or ValidationError."""
    d = sample_scene().to_dict()
    target: Any = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        scene = Scene.from_dict(d)
    except ValidationError:
        return
    assert Scene.from_dict(scene.to_dict()) == scene


# -- checking a stored dict without building it --------------------------------------

_SCENE_PATHS: list[tuple[object, ...]] = [
    *[(k,) for k in ("scene_id", "beats", "scene_metadata", "locked", "lock_reason",
                     "locked_by", "locked_at", "extra", "unknown")],
    *[("beats", i) for i in (0, 1)],
    *[("beats", 0, k) for k in ("beat_id", "max_takes", "beat_metadata", "takes",
                                "primary_take_id", "phantom_recovery_count", "board", "extra")],
    *[("beats", 0, "takes", i) for i in (0, 1)],
    *[("beats", 0, "takes", i, k) for i in (0, 1) for k in (
        "take_id", "status", "attempt", "created_at", "started_at", "finished_at",
        "heartbeat_at", "provider", "receipt", "outputs", "error", "metadata", "extra")],
    *[("beats", 0, "board", k) for k in ("status", "frames", "decided_by", "decided_at",
                                         "note", "metadata")],
]
_edit = st.tuples(st.sampled_from(["set", "delete", "copy"]), st.sampled_from(_SCENE_PATHS),
                  json_values)


def _outcome(fn: Any) -> tuple[str, str] | None:
    try:
        fn()
    except ValidationError as e:
        return (e.field, e.problem)
    return None


@settings(max_examples=600, deadline=None)
@given(edits=st.lists(_edit, min_size=0, max_size=3))
def test_check_stored_scene_agrees_with_from_dict(
        edits: list[tuple[str, tuple[object, ...], object]]) -> None:
    """The first read of a body checks the dict without building models: for any
    damage, the same verdict and the very same error as building the scene (and, beat
    by beat, as building the beat)."""
    from clapboard.models import check_stored_beat, check_stored_scene

    d: Any = sample_scene().to_dict()
    d["beats"][0]["takes"][1]["created_at"] = "2026-01-01T00:00:00+00:00"
    for kind, path, value in edits:
        target: Any = d
        try:
            for key in path[:-1]:
                target = target[key]
            if kind == "set":
                target[path[-1]] = value
            elif kind == "delete":
                del target[path[-1]]
            elif isinstance(target, list):  # copy: a duplicate id where ids must differ
                target[1 - int(path[-1]) % 2] = json.loads(json.dumps(target[path[-1]]))
        except (KeyError, IndexError, TypeError):
            continue  # the path no longer exists after an earlier edit
    before = json.dumps(d, sort_keys=True)
    assert _outcome(lambda: check_stored_scene(d)) == _outcome(lambda: Scene.from_dict(d))
    beats = d.get("beats") if isinstance(d, dict) else None
    for b in beats if isinstance(beats, list) else []:  # one beat alone (journal replay)
        assert _outcome(lambda b=b: check_stored_beat(b)) == _outcome(lambda b=b: Beat.from_dict(b))
    assert json.dumps(d, sort_keys=True) == before  # checking never changes the input


@pytest.mark.parametrize("data", [None, [], "scene", 3, {"beats": []}])
def test_check_stored_scene_refuses_what_is_not_a_scene(data: object) -> None:
    from clapboard.models import check_stored_scene

    assert _outcome(lambda: check_stored_scene(data)) == _outcome(lambda: Scene.from_dict(data))
    assert _outcome(lambda: check_stored_scene(data)) is not None
