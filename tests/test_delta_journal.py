"""Status saves committed by their journal record (delta records), replayed on read.

What must hold, whatever the interleaving of writers, compactions and readers:

* every read — a store that kept the body, a fresh store, the seed façade's
  ``load_scene(path)``, fsck — sees exactly the state an eager reference computes;
* a body's checkpoint always names a record its journal has; damage after the
  checkpoint is a typed error naming the journal, never a silently older scene;
* a kept body is proven current by its bytes: a body changed behind a process's back
  (another process's compaction, a hand edit) is seen.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clapboard
from clapboard import Beat, Board, Scene, Take, codec, persistence
from clapboard.changes import apply_changes, changed_paths
from clapboard.errors import CorruptJournalError, ValidationError
from clapboard.models import lazy_scene, untouched_raw
from tests.pg_support import pg_url  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
P, EP, B = "show", 1, "SEQ"
PLAN = {"sequences": {B: {"shots": [{"shot_id": f"S{i}", "duration_s": 2} for i in range(4)]}}}


def body_path(store: Any) -> Path:
    return store.backend.body_path(P, "ep_001", B, 1, None)  # type: ignore[no-any-return]


def journal_path(store: Any) -> Path:
    return store.backend.journal_path(P, "ep_001", B)  # type: ignore[no-any-return]


def new_store(root: Path, **options: Any) -> Any:
    store = clapboard.open_store(root, **options)
    store.init_scenes_from_plan(P, EP, PLAN)
    return store


# -- replaying changes -----------------------------------------------------------------

ids = st.sampled_from(["a", "b", "c", "d", "e"])
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3),
                 st.floats(allow_nan=False, allow_infinity=False, width=32))
value = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)),
    max_leaves=6)
take = st.fixed_dictionaries({"take_id": ids}, optional={"status": leaf, "receipt": value})
beat = st.fixed_dictionaries(
    {"beat_id": ids, "takes": st.lists(take, max_size=4, unique_by=lambda t: t["take_id"])},
    optional={"primary_take_id": leaf, "beat_metadata": value})
scene_doc = st.fixed_dictionaries(
    {"scene_id": st.just("S"), "beats": st.lists(beat, max_size=4,
                                                  unique_by=lambda b: b["beat_id"])},
    optional={"scene_metadata": value, "locked": st.booleans(), "other": value})


@settings(max_examples=300, deadline=None)
@given(old=scene_doc, data=st.data())
def test_beat_changes_is_changed_paths_over_the_touched_beats(old: dict[str, Any],
                                                              data: Any) -> None:
    """The status writer's diff (only the touched beats, each diffed directly) lists
    exactly what the general diff lists, in the same order."""
    from clapboard.changes import beat_changes

    beats = old["beats"]
    touched = sorted(data.draw(st.sets(st.sampled_from(range(len(beats))))) if beats else [])
    new_beats = []
    for i in touched:
        other = data.draw(beat)
        new_beats.append({**other, "beat_id": beats[i]["beat_id"]} if data.draw(st.booleans())
                         else copy.deepcopy(beats[i]))
    top = data.draw(scene_doc)
    new = {**{k: v for k, v in top.items() if k != "beats"}, "beats": new_beats}
    if data.draw(st.booleans()):
        new = {**{k: v for k, v in old.items() if k != "beats"}, "beats": new_beats}
    expected = changed_paths({**old, "beats": [beats[i] for i in touched]}, new)
    assert beat_changes(old, new, touched) == expected


@settings(max_examples=300, deadline=None)
@given(old=scene_doc, new=scene_doc)
def test_replaying_the_changes_of_old_to_new_gives_new(old: dict[str, Any],
                                                        new: dict[str, Any]) -> None:
    """Whatever the two documents (beats and takes added, removed, reordered, fields of
    any JSON type changed or dropped), the recorded changes replay to exactly ``new``
    and leave ``old`` untouched."""
    pristine = copy.deepcopy(old)
    changes = json.loads(json.dumps(changed_paths(old, new)))  # as read from the journal
    assert apply_changes(old, changes) == new
    assert old == pristine


def test_a_change_that_does_not_fit_is_journal_damage() -> None:
    doc = {"beats": [{"beat_id": "a", "takes": []}]}
    bad = [{"path": "beats[z].takes", "key": ["beats", {"beat_id": "z"}, "takes"],
            "old": None, "new": []}]
    with pytest.raises(CorruptJournalError, match="does not fit"):
        apply_changes(doc, bad)
    with pytest.raises(CorruptJournalError, match="no replayable key"):
        apply_changes(doc, [{"path": "x", "old": 1, "new": 2}])


# -- writers, compactions and readers against an eager reference -----------------------

OPS = st.lists(st.tuples(st.sampled_from(["status", "add", "remove", "primary", "board",
                                          "meta", "unmeta", "runner", "hook"]),
                         st.integers(0, 3), st.integers(0, 5), st.booleans()),
               min_size=1, max_size=14)


def _mutation(op: str, b: int, t: int, n: int = 0) -> Any:
    def mutate(s: Scene) -> None:
        beat = s.beats[b]
        if op == "status" and beat.takes:
            tk = beat.takes[t % len(beat.takes)]
            tk.status = "succeeded" if tk.status == "running" else "running"
            tk.receipt.setdefault("log", []).append(t)
        elif op == "add":
            beat.takes.append(Take(take_id=f"t{n}-{t}", status="running"))
        elif op == "remove" and beat.takes:
            gone = beat.takes.pop(t % len(beat.takes))
            if beat.primary_take_id == gone.take_id:
                beat.primary_take_id = None
        elif op == "primary":
            beat.primary_take_id = beat.takes[t % len(beat.takes)].take_id if beat.takes \
                else None
        elif op == "board":
            beat.board = beat.board or Board()
            beat.board.status = "approved" if beat.board.status != "approved" else "rejected"
        elif op == "meta":
            s.scene_metadata[f"k{t}"] = {"n": b}
        elif op == "unmeta":
            s.scene_metadata.pop(f"k{t}", None)
    return mutate


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, every=st.sampled_from([0, 1, 2, 5, 64]))
def test_every_reader_sees_what_an_eager_reference_computes(tmp_path_factory: Any,
                                                            ops: list[Any], every: int) -> None:
    root = tmp_path_factory.mktemp("delta")
    a = new_store(root, compact_every=every)
    b = clapboard.open_store(root, compact_every=3)  # another writer, its own kept bodies
    ref = a.load_raw(P, EP, B)[0]
    for n, (op, beat, tk, by_b) in enumerate(ops):
        writer = b if by_b else a
        mutate = _mutation(op, beat, tk, n)
        expected = Scene.from_dict(copy.deepcopy(ref))
        if op == "runner":  # Writer 1: a held scene with one more take, saved whole
            held = writer.load_active(P, EP, B)
            held.beats[beat].takes.append(Take(take_id=f"r{n}", status="succeeded"))
            writer.save_active_scene(P, EP, B, held, expected_version=1)
            expected.beats[beat].takes.append(Take(take_id=f"r{n}", status="succeeded"))
        elif op == "hook":  # a post_write hook: the whole body is written
            writer.save_active_scene_status(P, EP, B, expected_version=1,
                                            mutate=_mutation("meta", beat, tk),
                                            post_write=lambda s: None)
            _mutation("meta", beat, tk)(expected)
        else:
            writer.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
            mutate(expected)
        ref = expected.to_dict()
        assert a.load_raw(P, EP, B)[0] == ref
        assert b.load_active(P, EP, B).to_dict() == ref
        assert clapboard.open_store(root).load_raw(P, EP, B)[0] == ref
        assert persistence.load_scene(body_path(a)).to_dict() == ref
    assert a.fsck().problems == []
    if every == 0 and not any(by_b for *_, by_b in ops):  # bodies kept current on disk
        assert codec.decode_scene(body_path(a).read_bytes()) == ref
    a.close()
    b.close()


def test_compaction_bounds_what_is_pending(tmp_path: Path) -> None:
    store = new_store(tmp_path, compact_every=4)
    for i in range(11):
        store.save_active_scene_status(P, EP, B, expected_version=1,
                                       mutate=_mutation("meta", i % 4, i))
    doc = json.loads(body_path(store).read_text())
    tail = store.history(P, EP, B)[-1]["seq"]
    assert tail - doc["journal_checkpoint"]["seq"] <= 4
    records = [r for r in store.history(P, EP, B) if r["detail"].get("delta")]
    assert len(records) == 11 and all(r["op"] == "status" for r in records)
    assert meta(store) == {f"k{i}": {"n": i % 4} for i in range(11)}


def test_keep_bodies_current_mode_writes_no_deltas(tmp_path: Path) -> None:
    store = new_store(tmp_path, compact_every=0)
    for i in range(3):
        store.save_active_scene_status(P, EP, B, expected_version=1,
                                       mutate=_mutation("meta", 0, i))
    assert not [r for r in store.history(P, EP, B) if r["detail"].get("delta")]
    assert codec.decode_scene(body_path(store).read_bytes()) == store.load_raw(P, EP, B)[0]
    with pytest.raises(ValidationError, match="compact_every"):
        clapboard.open_store(tmp_path, compact_every=-1)


# -- damage -------------------------------------------------------------------------------


def meta(store: Any) -> dict[str, Any]:
    """The keys the tests' saves wrote into scene_metadata."""
    md = store.load_raw(P, EP, B)[0]["scene_metadata"]
    return {k: v for k, v in md.items() if k.startswith("k")}


def _saves(store: Any, n: int) -> None:
    for i in range(n):
        store.save_active_scene_status(P, EP, B, expected_version=1,
                                       mutate=_mutation("meta", 0, i))


def test_damaged_delta_record_is_an_error_naming_the_journal(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    _saves(store, 3)
    path = journal_path(store)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[-3] = lines[-3].replace(b'"k1"', b'"kX"')  # a delta record, not the last one
    path.write_bytes(b"".join(lines))
    # A process that read those records while they were sound keeps what it proved; any
    # reader that has to replay them now gets the damage, naming the journal.
    assert meta(store) == {"k0": {"n": 0}, "k1": {"n": 0}, "k2": {"n": 0}}
    with pytest.raises(CorruptJournalError) as e:
        clapboard.open_store(tmp_path).load_active(P, EP, B)
    assert str(path) in str(e.value)
    kinds = {p.kind for p in clapboard.open_store(tmp_path).fsck().problems}
    assert {"corrupt-journal", "journal-replay"} <= kinds


def test_a_torn_last_record_was_never_committed(tmp_path: Path) -> None:
    """A crash mid-append leaves a torn last line: that save never returned, so the
    state is the one before it, and the next save heals the tail."""
    store = new_store(tmp_path)
    _saves(store, 2)
    path = journal_path(store)
    data = path.read_bytes().rstrip(b" \n")  # without the padding
    path.write_bytes(data[:-7])  # the last record cut short
    fresh = clapboard.open_store(tmp_path)
    assert meta(fresh) == {"k0": {"n": 0}}
    fresh.save_active_scene_status(P, EP, B, expected_version=1, mutate=_mutation("meta", 2, 9))
    assert meta(clapboard.open_store(tmp_path)) == {"k0": {"n": 0}, "k9": {"n": 2}}
    assert fresh.fsck().problems == []


def test_checkpoint_the_journal_lacks_is_an_error(tmp_path: Path) -> None:
    store = new_store(tmp_path, compact_every=1)
    _saves(store, 3)  # the last save rewrote the body: its checkpoint is seq >= 2
    path = journal_path(store)
    first = path.read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(first)  # the journal replaced by an older, shorter one
    with pytest.raises(CorruptJournalError, match="does not have"):
        clapboard.open_store(tmp_path).load_active(P, EP, B)
    path.unlink()
    with pytest.raises(CorruptJournalError, match="journal is missing"):
        clapboard.open_store(tmp_path).load_active(P, EP, B)


def test_a_wrong_offset_hint_is_found_by_a_scan(tmp_path: Path) -> None:
    store = new_store(tmp_path, compact_every=1)
    _saves(store, 4)
    expected = store.load_raw(P, EP, B)[0]
    body = body_path(store)
    doc = json.loads(body.read_text())
    doc["journal_checkpoint"]["offset"] = 3  # not where the record ends
    body.write_bytes(codec.dumps(doc))
    assert clapboard.open_store(tmp_path).load_raw(P, EP, B)[0] == expected


# -- kept bodies are proven current -----------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, clapboard
    store = clapboard.open_store(sys.argv[1], compact_every=3)
    for i in range(int(sys.argv[2])):
        def mutate(s, i=i):
            s.beats[i % 4].takes.append(clapboard.Take(take_id=f"w{sys.argv[3]}-{i}",
                                                       status="running"))
        store.save_active_scene_status("show", 1, "SEQ", expected_version=1, mutate=mutate)
""")


def test_another_process_writes_and_compacts_behind_a_kept_body(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.load_active(P, EP, B)  # kept
    for round_ in range(3):
        subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), "7", str(round_)],
                       cwd=ROOT,
                       check=True, timeout=120)
        scene = store.load_active(P, EP, B)
        assert sum(len(b.takes) for b in scene.beats) == 7 * (round_ + 1)
        assert scene.to_dict() == clapboard.open_store(tmp_path).load_active(P, EP, B).to_dict()


def test_a_body_edited_by_hand_is_seen(tmp_path: Path) -> None:
    store = new_store(tmp_path, compact_every=1)
    _saves(store, 2)
    store.load_active(P, EP, B)  # kept
    body = body_path(store)
    text = body.read_text()
    edited = text.replace('"n": 0', '"n": 7', 1)
    assert len(edited) == len(text) and edited != text
    body.write_text(edited)  # same size, same checkpoint, other bytes
    assert store.load_raw(P, EP, B)[0]["scene_metadata"]["k0"] == {"n": 7}


def _full_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Bodies read whole (decoded and validated) from now on, by path."""
    from clapboard.backends import fs_state

    seen: list[Path] = []
    real = fs_state.read_whole

    def counting(body_path: Path, *args: Any) -> Any:
        seen.append(body_path)
        return real(body_path, *args)

    monkeypatch.setattr(fs_state, "read_whole", counting)
    return seen


def test_a_body_another_writer_compacted_is_adopted_not_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept body rewritten by another writer's compaction is recognised by re-encoding
    the kept state at the new body's checkpoint: same bytes, no decode, same state."""
    a = new_store(tmp_path, compact_every=3)
    b = clapboard.open_store(tmp_path)  # another process's view: its own kept bodies
    for store in (a, b):
        store.load_active(P, EP, B)  # each keeps the body
    full = _full_reads(monkeypatch)
    before = body_path(a).read_bytes()
    for i in range(5):  # compacts (rewrites the body) on the 4th save
        a.save_active_scene_status(P, EP, B, expected_version=1,
                                   mutate=_mutation("meta", i % 4, i))
    assert body_path(a).read_bytes() != before
    assert b.load_active(P, EP, B).to_dict() == a.load_active(P, EP, B).to_dict()
    assert full == []  # adopted, not read whole
    b.save_active_scene_status(P, EP, B, expected_version=1, mutate=_mutation("meta", 1, 5))
    assert meta(a) == {**{f"k{i}": {"n": i % 4} for i in range(5)}, "k5": {"n": 1}}
    assert full == []
    assert meta(clapboard.open_store(tmp_path)) == meta(a)  # (a new process reads it whole)
    a.close()
    b.close()


def test_a_body_edited_by_hand_after_a_compaction_is_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes are the proof: a rewritten body that is not exactly the kept state
    re-encoded (here, edited by hand, checkpoint kept) is read whole and seen."""
    a = new_store(tmp_path, compact_every=1)
    b = clapboard.open_store(tmp_path)
    _saves(a, 2)
    b.load_active(P, EP, B)
    _saves(a, 2)  # a compaction rewrites the body behind b's kept copy
    text = body_path(a).read_text()
    edited = text.replace('"n": 0', '"n": 7', 1)
    assert edited != text and '"journal_checkpoint"' in edited
    body_path(a).write_text(edited)
    full = _full_reads(monkeypatch)
    assert b.load_raw(P, EP, B)[0]["scene_metadata"]["k0"] == {"n": 7}
    assert full == [body_path(a)]
    a.close()
    b.close()


def test_peek_checkpoint_reads_only_the_top_level_stamp() -> None:
    """A beat's own ``journal_checkpoint`` key (indented deeper) is never taken for the
    body's; a body without one, or not in the canonical layout, gives None."""
    cp = codec.Checkpoint(12, "0badc0de", 3456)
    doc = Scene(scene_id="S", beats=[Beat(beat_id="b", beat_metadata={
        "journal_checkpoint": {"seq": 1, "crc": "x", "offset": 2}})]).to_dict()
    assert codec.peek_checkpoint(codec.encode_scene(doc, cp)) == cp
    assert codec.peek_checkpoint(codec.encode_scene(doc)) is None
    assert codec.peek_checkpoint(json.dumps({**doc, "journal_checkpoint": cp.to_dict()})
                                 .encode()) is None  # one line: not our layout


# -- lazy beats ----------------------------------------------------------------------------


def test_lazy_beats_count_every_assignment_as_a_change(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.save_active_scene_status(P, EP, B, expected_version=1,
                                   mutate=_mutation("add", 1, 0))

    def primary(s: Scene) -> None:
        s.beats[1].primary_take_id = "t0-0"  # a scalar, on a beat not built yet

    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=primary)
    assert store.load_active(P, EP, B).beats[1].primary_take_id == "t0-0"

    def float_max_takes(s: Scene) -> None:
        s.beats[2].max_takes = 3.0  # type: ignore[assignment]

    with pytest.raises(ValidationError, match="max_takes"):
        store.save_active_scene_status(P, EP, B, expected_version=1, mutate=float_max_takes)

    def replace_takes(s: Scene) -> None:  # assigned before anything was built
        s.beats[3].takes = [Take(take_id="only")]

    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=replace_takes)
    beat = store.load_active(P, EP, B).beats[3]
    assert [t.take_id for t in beat.takes] == ["only"]
    assert beat.beat_metadata["plan_shot"]["shot_id"] == "S3"


def test_a_lazy_beat_is_a_beat() -> None:
    import pickle

    scene = Scene(scene_id="S", beats=[clapboard.Beat(beat_id="a", takes=[Take(take_id="t")],
                                                      board=Board(status="approved"))])
    doc = scene.to_dict()
    lazy = lazy_scene(doc)
    assert untouched_raw(lazy.beats[0]) is doc["beats"][0]
    assert lazy == scene and repr(lazy) == repr(scene)
    assert pickle.loads(pickle.dumps(lazy_scene(doc))) == scene
    assert copy.deepcopy(lazy_scene(doc)) == scene
    assert lazy_scene(doc).beats[0].to_dict() == doc["beats"][0]
    assert lazy_scene(doc).beats[0].to_dict() is not doc["beats"][0]
    with pytest.raises(AttributeError):
        lazy_scene(doc).beats[0].nonexistent  # noqa: B018



def test_reading_a_lazy_beat_leaves_it_untouched_assigning_does_not() -> None:
    """Scalars of a lazy beat are read from its stored dict without building it;
    any assignment (even of the value it has) or use of its takes makes it touched."""
    doc = Scene(scene_id="S", beats=[
        clapboard.Beat(beat_id="a", max_takes=5, primary_take_id="t",
                       takes=[Take(take_id="t")]),
        clapboard.Beat(beat_id="b")]).to_dict()
    s = lazy_scene(doc)
    a, b = s.beats
    assert (a.beat_id, a.max_takes, a.primary_take_id, a.phantom_recovery_count) == (
        "a", 5, "t", 0)
    assert (b.max_takes, b.primary_take_id) == (3, None)  # defaults of absent keys
    assert untouched_raw(a) is doc["beats"][0] and untouched_raw(b) is doc["beats"][1]
    a.max_takes = a.max_takes
    assert untouched_raw(a) is None and a.max_takes == 5
    _ = b.takes
    assert untouched_raw(b) is None and b.beat_id == "b" and b.max_takes == 3
    a.takes[0].status = "running"
    assert a.to_dict()["max_takes"] == 5 and doc["beats"][0]["takes"][0]["status"] == "pending"
    assert clapboard.Beat(beat_id="c").max_takes == 3  # constructor defaults kept


def test_reading_a_lazy_take_leaves_it_untouched_assigning_does_not() -> None:
    """A built beat's takes are lazy too: scalars come from the stored take, the first
    use of its receipt, outputs, metadata or extras builds it from a copy, and any
    assignment makes it touched. Nothing ever reaches the stored dict."""
    stored = {"take_id": "t", "status": "running", "receipt": {"job": 1},
              "outputs": ["/o.mp4"], "foreign": {"kept": True}}  # absent keys: defaults
    doc = {"scene_id": "S", "beats": [{"beat_id": "a", "takes": [stored, {"take_id": "u"}]}]}
    before = json.dumps(doc, sort_keys=True)
    t, u = lazy_scene(doc).beats[0].takes
    assert (t.take_id, t.status, t.attempt, t.error, t.created_at) == (
        "t", "running", 1, None, None)
    assert untouched_raw(t) is stored and untouched_raw(u) is doc["beats"][0]["takes"][1]
    t.validate()
    u.status = "succeeded"  # touched, not built
    assert untouched_raw(u) is None and u.__dict__.keys() == {"_raw", "status"}
    u.validate()
    u.status = "finished"
    with pytest.raises(ValidationError, match="unknown take status 'finished'"):
        u.validate()
    t.receipt["job"] = 2  # builds t from a copy
    t.outputs.append("/p.mp4")
    assert untouched_raw(t) is None and t.extra == {"foreign": {"kept": True}}
    assert t.to_dict()["receipt"] == {"job": 2} and t.to_dict()["error"] is None
    assert json.dumps(doc, sort_keys=True) == before
    assert Take(take_id="x").status == "pending" and Take(take_id="x").attempt == 1
    import pickle  # to the caller a lazy take is an ordinary Take

    w, eager = lazy_scene(doc).beats[0].takes[0], Take.from_dict(copy.deepcopy(stored))
    for same in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w), copy.copy(w)):
        assert same == w == eager and repr(same) == repr(eager)
    assert json.dumps(doc, sort_keys=True) == before


def test_a_status_save_journals_only_what_was_assigned(tmp_path: Path) -> None:
    """A stored take without some keys (written by another tool) keeps them absent:
    flipping its status journals that one change, and the untouched takes of the same
    beat are written back as they were stored."""
    store = new_store(tmp_path)
    path = store.backend.body_path(P, "ep_001", B, 1, None)
    doc = json.loads(path.read_text())
    doc["beats"][0]["takes"] = [{"take_id": "bare", "status": "running", "odd": [1]},
                                Take(take_id="full", attempt=2).to_dict()]
    path.write_text(json.dumps(doc))
    store = clapboard.open_store(tmp_path)

    def finish(s: Scene) -> None:
        s.beats[0].takes[0].status = "succeeded"

    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=finish)
    [rec] = [r for r in store.history(P, EP, B) if r["op"] == "status"]
    assert [(c["path"], c["old"], c["new"]) for c in rec["detail"]["changes"]] == [
        (f"beats[{doc['beats'][0]['beat_id']}].takes[bare].status", "running", "succeeded")]
    for reader in (store, clapboard.open_store(tmp_path)):
        takes = reader.load_raw(P, EP, B, 1)[0]["beats"][0]["takes"]
        assert takes[0] == {"take_id": "bare", "status": "succeeded", "odd": [1]}
        assert takes[1] == doc["beats"][0]["takes"][1]


# -- both backends ------------------------------------------------------------------------


def test_writers_and_readers_agree_on_every_backend(store_location: str) -> None:
    """Two writers with their own kept bodies and different compaction rates, and
    fresh readers, against an eager reference: the same on a folder and PostgreSQL."""
    import random

    rng = random.Random(6)
    a = new_store(store_location, compact_every=5)
    b = clapboard.open_store(store_location, compact_every=3)
    ref = a.load_raw(P, EP, B)[0]
    for n in range(60):
        writer = a if rng.random() < 0.5 else b
        op = rng.choice(["status", "add", "remove", "primary", "board", "meta", "unmeta"])
        mutate = _mutation(op, rng.randrange(4), rng.randrange(6), n)
        expected = Scene.from_dict(copy.deepcopy(ref))
        writer.save_active_scene_status(P, EP, B, expected_version=1, mutate=mutate)
        mutate(expected)
        ref = expected.to_dict()
        if n % 7 == 0:
            fresh = clapboard.open_store(store_location)
            assert fresh.load_raw(P, EP, B)[0] == ref
            fresh.close()
        assert a.load_raw(P, EP, B)[0] == ref
        assert b.load_active(P, EP, B).to_dict() == ref
    saves = [r for r in a.history(P, EP, B) if r["op"] == "status"]
    assert len(saves) >= 25 and all(r["detail"]["delta"] for r in saves)
    assert a.fsck().problems == []
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_rolled_back_delta_is_not_kept(pg_url: str) -> None:  # noqa: F811
    """A block that committed a change by journal record and then failed: on
    PostgreSQL the transaction rolls back and nothing of it may be kept; the next
    writer's record, which takes the same seq, is what every reader sees. (A folder's
    journal record is durable once appended: there is no such rollback there.)"""
    store_location = pg_url
    a = new_store(store_location)
    b = clapboard.open_store(store_location)
    a.load_active(P, EP, B)
    with pytest.raises(RuntimeError), a.transaction(P, EP, B, "status") as tx:
        state = tx.read_state(1, None)
        assert state is not None
        scene = lazy_scene(state.doc)
        scene.scene_metadata["ghost"] = True
        changes = changed_paths(state.doc, scene.to_dict())
        tx.commit_changes(1, "ep_001_SEQ.json", state, scene.to_dict,
                          a._record("status", 1, "t", {"changes": changes}))
        raise RuntimeError("after the record, before the commit")
    b.save_active_scene_status(P, EP, B, expected_version=1, mutate=_mutation("meta", 1, 1))
    fresh = clapboard.open_store(store_location)
    for reader in (a, b, fresh):
        md = reader.load_raw(P, EP, B)[0]["scene_metadata"]
        assert "ghost" not in md and md["k1"] == {"n": 1}
    for store in (a, b, fresh):
        store.close()


def test_a_failed_journal_sync_keeps_nothing_of_its_record(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """The kept state after a record is put in place while the line is on its way to
    the disk; when the sync then fails, it is withdrawn with the line, and neither this
    store nor a fresh one reads the change."""
    from clapboard.io import journal as jr

    store = new_store(tmp_path)
    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=_mutation("meta", 1, 1))
    key = str(body_path(store))
    before = store.backend.bodies.get(key)
    assert before is not None  # kept: the next save is the delta-record path
    seen: list[Any] = []
    real = jr.sync_data

    def failing(fd: int) -> None:
        seen.append(store.backend.bodies.get(key))  # what is kept while the sync runs
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(jr, "sync_data", failing)
    with pytest.raises(OSError):
        store.save_active_scene_status(P, EP, B, expected_version=1,
                                       mutate=_mutation("meta", 2, 2))
    monkeypatch.setattr(jr, "sync_data", real)
    assert len(seen) == 1 and seen[0] is not before  # kept during the sync ...
    assert "k2" in seen[0].state.doc["scene_metadata"]
    assert store.backend.bodies.get(key) is None  # ... and withdrawn with the line
    for reader in (store, clapboard.open_store(tmp_path)):
        md = reader.load_raw(P, EP, B)[0]["scene_metadata"]
        assert "k2" not in md and md["k1"] == {"n": 1}
    assert clapboard.open_store(tmp_path).fsck(P).problems == []


def test_a_hand_written_delta_with_a_bad_value_is_reported(tmp_path: Path) -> None:
    """A delta record that passes its crc but sets an invalid value (written by hand,
    or by a buggy tool) is found when applied, by a process that kept the body and by a
    fresh one: a ValidationError naming the body, never a scene with a bad value."""
    from clapboard.io import journal as jr

    store = new_store(tmp_path)
    store.save_active_scene_status(P, EP, B, expected_version=1, mutate=_mutation("add", 0, 0))
    store.load_active(P, EP, B)  # kept, valid
    last = store.history(P, EP, B)[-1]
    bad = {"at": last["at"], "actor": "hand", "op": "status", "version": 1,
           "detail": {"delta": True, "changes": [
               {"path": "beats[S0].takes[t0-0].status",
                "key": ["beats", {"beat_id": "S0"}, "takes", {"take_id": "t0-0"}, "status"],
                "old": "running", "new": "bogus"}]},
           "seq": last["seq"] + 1, "prev": last["crc"]}
    with open(journal_path(store), "ab") as f:
        f.write(jr.encode_record(bad))
    for reader in (store, clapboard.open_store(tmp_path)):
        with pytest.raises(ValidationError, match="status") as e:
            reader.load_active(P, EP, B)
        assert str(body_path(store)) in str(e.value)


def test_a_row_another_writer_compacted_is_adopted_on_postgres(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The PostgreSQL side of adoption: a body row another store rewrote (new token) is
    proven by the kept state brought to the row's checkpoint and re-encoded — no decode;
    a row whose text differs (edited by hand) is decoded and seen."""
    import psycopg

    a = new_store(pg_url, compact_every=3)
    b = clapboard.open_store(pg_url)
    for store in (a, b):
        store.load_active(P, EP, B)
    decoded: list[int] = []
    real = codec.decode_scene

    def counting(data: bytes, *args: Any) -> Any:
        decoded.append(len(data))
        return real(data, *args)

    monkeypatch.setattr(codec, "decode_scene", counting)
    for i in range(5):  # a's 4th save rewrites the row (a new token)
        a.save_active_scene_status(P, EP, B, expected_version=1,
                                   mutate=_mutation("meta", i % 4, i))
    assert b.load_active(P, EP, B).to_dict() == a.load_active(P, EP, B).to_dict()
    assert decoded == []
    for i in range(5, 8):  # and again, then a hand edit of the row behind b's back
        a.save_active_scene_status(P, EP, B, expected_version=1,
                                   mutate=_mutation("meta", i % 4, i))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE clapboard_bodies SET body = replace(body, '\"n\": 0', '\"n\": 7')")
    assert b.load_raw(P, EP, B)[0]["scene_metadata"]["k0"] == {"n": 7}
    assert len(decoded) == 1
    a.close()
    b.close()


def _outcome(store: Any) -> Any:
    """What reading the batch gives: the stored scene, or the error's class name."""
    try:
        return store.load_raw(P, EP, B)[0]
    except clapboard.ClapboardError as e:
        return type(e).__name__


@pytest.mark.parametrize("damage", ["replaced", "edited", "truncated", "none"])
def test_adoption_never_changes_what_a_read_gives(tmp_path: Path, damage: str) -> None:
    """Whatever happened to the journal between a kept body and the compaction that
    rewrote it, the process that kept it reads exactly what a new process reads (the same
    scene, or the same error): adoption only ever saves work."""
    a = new_store(tmp_path, compact_every=4)
    b = clapboard.open_store(tmp_path)
    for store in (a, b):
        store.load_active(P, EP, B)
    _saves(a, 6)  # a compaction (at the 5th) behind b's kept body, records on both sides
    path = journal_path(a)
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if damage == "replaced":  # the same bytes under a new inode
        tmp = path.with_name(path.name + ".copy")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    elif damage == "edited":  # a record b has not seen, before the body's checkpoint
        lines[2] = lines[2].replace(b'"n":', b'"N":', 1)
        path.write_bytes(b"".join(lines))
    elif damage == "truncated":  # the body's checkpoint is no longer in the journal
        path.write_bytes(b"".join(lines[:3]))

    expected = _outcome(clapboard.open_store(tmp_path))
    assert _outcome(b) == expected
    if damage in ("none", "replaced", "edited"):
        assert isinstance(expected, dict) and len(meta(clapboard.open_store(tmp_path))) == 6
    else:
        assert expected == "CorruptJournalError"
    a.close()
    b.close()


@pytest.mark.parametrize("damage", ["edited", "none"])
def test_adoption_never_changes_what_a_read_gives_on_postgres(
        pg_url: str, damage: str) -> None:  # noqa: F811
    """The PostgreSQL side: a journal record edited between a kept state and the row's
    checkpoint makes adoption step aside; the kept reader reads what a new one reads."""
    import psycopg

    a = new_store(pg_url, compact_every=4)
    b = clapboard.open_store(pg_url)
    for store in (a, b):
        store.load_active(P, EP, B)
    _saves(a, 6)
    if damage == "edited":
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE clapboard_journal SET record = replace(record, '\"n\":', "
                         "'\"N\":') WHERE seq = 3")

    fresh = clapboard.open_store(pg_url)
    assert _outcome(b) == _outcome(fresh)
    for store in (a, b, fresh):
        store.close()
