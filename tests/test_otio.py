"""OpenTimelineIO export and import (SPEC §9, issue 9), against the real OTIO library.

Every exported file is read back with OpenTimelineIO's own reader, and every editor
change is made with the OTIO API, the way an editing tool's exchange would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from clapboard import ClapboardError, Scene, ValidationError
from clapboard.errors import CorruptFileError
from clapboard.export import apply_import, export_timeline, plan_import, write_otio
from clapboard.export.otio import shot_duration
from tests.otio_support import (
    EPISODE,
    ORDER,
    PROJECT,
    build_episode,
    history_lengths,
    snapshot,
)

otio = pytest.importorskip("opentimelineio")


@pytest.fixture
def sample(store: Any, tmp_path: Path) -> dict[str, Any]:
    return build_episode(store, tmp_path / "media")


@pytest.fixture
def fs_sample(fs_store: Any, tmp_path: Path) -> dict[str, Any]:
    return build_episode(fs_store, tmp_path / "media")


def export_file(store: Any, tmp_path: Path, name: str = "cut.otio", **kw: Any) -> Path:
    path = tmp_path / name
    write_otio(store, PROJECT, EPISODE, path, **kw)
    return path


def clips_of(path: Path) -> list[Any]:
    return list(otio.adapters.read_from_file(str(path)).find_clips())


def meta(obj: Any) -> dict[str, Any]:
    from clapboard.export._otio_common import plain

    result: dict[str, Any] = plain(obj.metadata["clapboard"])
    return result


def switch(path: Path, beat: str, take: str, out: Path | None = None) -> Path:
    """An editor picks another take for one clip and saves the timeline."""
    timeline = otio.adapters.read_from_file(str(path))
    [clip] = [c for c in timeline.find_clips() if meta(c)["beat"] == beat]
    clip.active_media_reference_key = take
    target = out or path
    otio.adapters.write_to_file(timeline, str(target))
    return target


# -- export -------------------------------------------------------------------------------


def test_export_reads_back_with_otio(store: Any, sample: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(store, tmp_path)
    timeline = otio.adapters.read_from_file(str(path))
    assert timeline.name == f"{PROJECT} {EPISODE}"
    assert len(timeline.video_tracks()) == 1 and len(timeline.tracks) == 1
    clips = list(timeline.find_clips())
    assert [(meta(c)["scene"], meta(c)["beat"]) for c in clips] == [(s, b) for s, b, _ in ORDER]
    assert [c.source_range.duration.value for c in clips] == [f for _, _, f in ORDER]
    assert all(c.source_range.duration.rate == 24 for c in clips)
    assert [c.active_media_reference_key for c in clips] == [
        "t1", "DEFAULT_MEDIA", "c2", "s1", "DEFAULT_MEDIA"]
    assert [meta(c)["active_choice"] for c in clips] == [
        "primary", "placeholder", "latest_succeeded", "primary", "placeholder"]
    assert [meta(c)["duration_source"] for c in clips] == [
        "duration_s", "default", "frames", "duration_s", "frames"]
    top = meta(timeline)
    assert top["project"] == PROJECT and top["episode"] == EPISODE and top["rate"] == 24
    assert [s["scene"] for s in top["scenes"]] == ["SC_010", "SC_020"]
    assert timeline.duration().value == sum(f for _, _, f in ORDER)
    # a marker at each scene's head
    assert [m.name for c in clips for m in c.markers] == ["SC_010", "SC_020"]


def test_clip_metadata_and_references(store: Any, sample: dict[str, Any],
                                      tmp_path: Path) -> None:
    clips = {meta(c)["beat"]: c for c in clips_of(export_file(store, tmp_path))}
    a = clips["A"]
    m = meta(a)
    assert {k: m[k] for k in ("project", "episode", "scene", "batch", "version", "beat",
                              "primary_take", "active_take")} == {
        "project": PROJECT, "episode": EPISODE, "scene": "SC_010", "batch": "SC_010",
        "version": 1, "beat": "A", "primary_take": "t1", "active_take": "t1"}
    assert m["takes"] == [{"take": "t1", "status": "succeeded"},
                          {"take": "t2", "status": "succeeded"}]
    refs = dict(a.media_references())
    assert sorted(refs) == ["t1", "t2"]
    t1 = refs["t1"]
    assert isinstance(t1, otio.schema.ExternalReference)
    assert t1.target_url == sample["files"]["t1"].resolve().as_uri()
    assert meta(t1)["take"] == "t1" and meta(t1)["status"] == "succeeded"

    c_refs = dict(clips["C"].media_references())
    assert isinstance(c_refs["c1"], otio.schema.MissingReference)
    assert meta(c_refs["c1"])["missing"] == "no output" and meta(c_refs["c1"])["path"] is None
    missing = c_refs["c2"]  # succeeded, but its file is not there
    assert isinstance(missing, otio.schema.MissingReference)
    assert meta(missing)["path"] == str(sample["media"] / "never-rendered.mp4")
    assert meta(missing)["missing"] == "file not found"
    assert isinstance(c_refs["c3"], otio.schema.ExternalReference)

    s2 = dict(clips["S2"].media_references())  # a failed take and the placeholder
    assert sorted(s2) == ["DEFAULT_MEDIA", "x1"]
    assert meta(s2["x1"])["status"] == "failed"
    assert meta(s2["DEFAULT_MEDIA"]) == {"placeholder": True}
    assert list(dict(clips["B"].media_references())) == ["DEFAULT_MEDIA"]


def test_rate_changes_durations(fs_store: Any, fs_sample: dict[str, Any],
                                tmp_path: Path) -> None:
    timeline = export_timeline(fs_store, PROJECT, 1, rate=25)
    frames = [c.source_range.duration for c in timeline.find_clips()]
    assert [f.rate for f in frames] == [25] * 5
    # 1.5 s, default 5 s, 48 frames at 48 fps, 2 s, 36 frames at the timeline rate
    assert [f.value for f in frames] == [38, 125, 25, 50, 36]
    with pytest.raises(ValidationError):
        export_timeline(fs_store, PROJECT, 1, rate=0)
    with pytest.raises(ValidationError):
        export_timeline(fs_store, PROJECT, 1, rate=True)


def test_shot_duration_rules() -> None:
    assert shot_duration({"duration_s": 0.01}, 24) == (1, "duration_s")  # never 0 frames
    assert shot_duration({"duration_s": -2, "frames": 10}, 24) == (10, "frames")
    assert shot_duration({"duration_s": "3"}, 24) == (120, "default")
    assert shot_duration({"frames": 50, "fps": 25}, 24) == (48, "frames")
    assert shot_duration(None, 30) == (150, "default")


def test_export_uses_active_version(fs_store: Any, fs_sample: dict[str, Any],
                                    tmp_path: Path) -> None:
    scene = fs_store.load_active(PROJECT, EPISODE, "SC_020")
    data = scene.to_dict()
    data["beats"] = data["beats"][:1]  # v2 drops S2
    v2 = fs_store.write_scene_candidate(PROJECT, EPISODE, "SC_020", Scene.from_dict(data),
                                        activate=True, actor="setup")
    clips = list(export_timeline(fs_store, PROJECT, EPISODE).find_clips())
    assert [(meta(c)["scene"], meta(c)["beat"]) for c in clips][-1] == ("SC_020", "S1")
    assert len(clips) == 4 and meta(clips[-1])["version"] == v2


def test_relative_output_resolves_in_project_folder(fs_store: Any, tmp_path: Path) -> None:
    from clapboard.models import Take
    from clapboard.paths import ProjectPaths

    fs_store.init_scenes_from_plan(PROJECT, EPISODE, {"sequences": {"S": {"shots": [{}]}}})
    project_dir = ProjectPaths.for_project(PROJECT, tmp_path / "store").root
    (project_dir / "renders").mkdir(parents=True)
    (project_dir / "renders" / "r.mp4").write_bytes(b"x")

    def add(scene: Scene) -> None:
        scene.beats[0].takes += [Take(take_id="r", status="succeeded",
                                      outputs=["renders/r.mp4"]),
                                 Take(take_id="u", status="succeeded",
                                      outputs=["s3://bucket/u.mp4"])]

    fs_store.save_active_scene_status(PROJECT, EPISODE, "S", expected_version=1, mutate=add)
    [clip] = export_timeline(fs_store, PROJECT, EPISODE).find_clips()
    refs = dict(clip.media_references())
    assert refs["r"].target_url == (project_dir / "renders" / "r.mp4").resolve().as_uri()
    assert refs["u"].target_url == "s3://bucket/u.mp4"


def test_write_is_atomic_and_checked(fs_store: Any, fs_sample: dict[str, Any],
                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = export_file(fs_store, out)
    first = path.read_bytes()
    export_file(fs_store, out)  # overwrite in place
    assert path.read_bytes() == first  # deterministic: same store, same bytes
    assert os.listdir(out) == ["cut.otio"]  # no temp file left behind
    with pytest.raises(ValidationError, match=r"\.otio"):
        write_otio(fs_store, PROJECT, EPISODE, out / "cut.edl")
    with pytest.raises(ValidationError, match="does not exist"):
        write_otio(fs_store, PROJECT, EPISODE, out / "nope" / "cut.otio")


def test_missing_opentimelineio_is_a_friendly_error(fs_store: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # as if not installed
    with pytest.raises(ClapboardError, match=r"clapboard\[otio\]"):
        export_timeline(fs_store, PROJECT, EPISODE)


# -- import -------------------------------------------------------------------------------


def test_round_trip_sets_exactly_one_primary(store: Any, sample: dict[str, Any],
                                             tmp_path: Path) -> None:
    path = switch(export_file(store, tmp_path), "A", "t2")
    before, lengths = snapshot(store), history_lengths(store)

    plan = plan_import(store, path)
    assert [(c.scene, c.beat, c.from_take, c.to_take) for c in plan.changes] == [
        ("SC_010", "A", "t1", "t2")]
    assert plan.clips == 5 and plan.unchanged == 4
    assert not plan.unmatched and not plan.conflicts
    assert snapshot(store) == before  # planning writes nothing

    result = apply_import(store, plan, actor="editor@suite")
    assert [c.beat for c in result.applied] == ["A"] and not result.failed
    after = snapshot(store)
    assert after["SC_020"] == before["SC_020"]
    expected = before["SC_010"]
    expected["beats"][0]["primary_take_id"] = "t2"
    assert after["SC_010"] == expected

    assert history_lengths(store) == {"SC_010": lengths["SC_010"] + 1,
                                      "SC_020": lengths["SC_020"]}
    record = store.history(PROJECT, EPISODE, "SC_010")[-1]
    assert record["op"] == "otio_import" and record["actor"] == "editor@suite"
    assert record["version"] == 1
    assert record["detail"]["changes"] == [
        {"path": "beats[A].primary_take_id", "key": ["beats", {"beat_id": "A"}, "primary_take_id"],
         "old": "t1", "new": "t2"}]

    # importing the same edited file again changes nothing
    again = plan_import(store, path)
    assert again.is_noop and again.unchanged == 5
    assert not again.conflicts and not again.unmatched


def test_unchanged_file_is_a_noop(store: Any, sample: dict[str, Any], tmp_path: Path) -> None:
    path = export_file(store, tmp_path)
    lengths = history_lengths(store)
    plan = plan_import(store, path)
    assert plan.is_noop and plan.unchanged == 5
    assert not plan.unmatched and not plan.conflicts
    result = apply_import(store, plan, actor="editor")
    assert not result.applied and not result.failed
    assert history_lengths(store) == lengths


def test_choice_over_a_fallback_take_becomes_primary(fs_store: Any, fs_sample: dict[str, Any],
                                                     tmp_path: Path) -> None:
    path = switch(export_file(fs_store, tmp_path), "C", "c3")  # exported showing c2
    plan = plan_import(fs_store, path)
    assert [(c.beat, c.from_take, c.to_take) for c in plan.changes] == [("C", None, "c3")]
    apply_import(fs_store, plan, actor="ed")
    assert fs_store.load_active(PROJECT, EPISODE, "SC_010").beat("C").primary_take_id == "c3"


def test_several_changes_one_record_per_scene(fs_store: Any, fs_sample: dict[str, Any],
                                              tmp_path: Path) -> None:
    path = export_file(fs_store, tmp_path)
    switch(path, "A", "t2")
    switch(path, "C", "c1")  # a failed take is still the editor's call
    switch(path, "S2", "x1")
    lengths = history_lengths(fs_store)
    result = apply_import(fs_store, plan_import(fs_store, path), actor="ed")
    assert sorted(c.beat for c in result.applied) == ["A", "C", "S2"]
    assert history_lengths(fs_store) == {k: v + 1 for k, v in lengths.items()}


def test_unmatched_clips_are_reported(fs_store: Any, fs_sample: dict[str, Any],
                                      tmp_path: Path) -> None:
    path = export_file(fs_store, tmp_path)
    timeline = otio.adapters.read_from_file(str(path))
    track = timeline.video_tracks()[0]
    clips = list(track.find_clips())
    # a title card the editor added: no clapboard metadata
    track.append(otio.schema.Clip(name="title", source_range=clips[0].source_range))
    # a beat / scene that do not exist
    ghost = clips[0].clone()
    ghost.metadata["clapboard"]["beat"] = "ZZZ"
    track.append(ghost)
    gone = clips[3].clone()
    gone.metadata["clapboard"]["scene"] = "SC_999"
    track.append(gone)
    # a reference the editor added that is not a take of the beat
    refs = dict(clips[0].media_references())
    refs["bogus"] = otio.schema.ExternalReference(target_url="file:///elsewhere.mov")
    clips[0].set_media_references(refs, "bogus")
    # going back to the placeholder from a real take is not a take choice either
    clips[4].metadata["clapboard"]["active_take"] = "x1"  # as if exported on take x1
    otio.adapters.write_to_file(timeline, str(path))
    timeline = otio.adapters.read_from_file(str(path))
    lengths = history_lengths(fs_store)

    plan = plan_import(fs_store, timeline)
    reasons = {(s.clip, s.index): s.reason for s in plan.unmatched}
    assert len(plan.unmatched) == 5, reasons
    by_clip = {s.clip: s.reason for s in plan.unmatched if s.clip != "SC_010 A"}
    assert "no clapboard metadata" in by_clip["title"]
    assert "unknown scene SC_999" in by_clip["SC_020 S1"]
    assert "placeholder" in by_clip["SC_020 S2"]
    a_reasons = sorted(s.reason for s in plan.unmatched if s.clip == "SC_010 A")
    assert any("no take 'bogus'" in r for r in a_reasons)
    assert any("has no beat 'ZZZ'" in r for r in a_reasons)
    assert plan.is_noop and not plan.conflicts
    apply_import(fs_store, plan)
    assert history_lengths(fs_store) == lengths


def test_conflicts_are_reported_not_applied(fs_store: Any, fs_sample: dict[str, Any],
                                            tmp_path: Path) -> None:
    path = export_file(fs_store, tmp_path)
    switch(path, "A", "t2")
    switch(path, "S1", "s2")
    # after the export: someone else picks a primary; the other scene is locked
    fs_store.set_primary_take(PROJECT, EPISODE, "SC_010", "A", None, actor="op")
    fs_store.lock_scene(PROJECT, EPISODE, "SC_020", "picture lock", actor="op")
    before = snapshot(fs_store)
    plan = plan_import(fs_store, path)
    assert plan.is_noop
    reasons = {s.beat: s.reason for s in plan.conflicts}
    assert "changed in the store since the export" in reasons["A"]
    assert "picture-locked" in reasons["S1"]
    apply_import(fs_store, plan)
    assert snapshot(fs_store) == before


def test_conform_after_export_is_a_conflict(fs_store: Any, fs_sample: dict[str, Any],
                                            tmp_path: Path) -> None:
    path = switch(export_file(fs_store, tmp_path), "A", "t2")
    scene = fs_store.load_active(PROJECT, EPISODE, "SC_010")
    scene.beats.reverse()
    fs_store.write_scene_candidate(PROJECT, EPISODE, "SC_010", scene, activate=True)
    plan = plan_import(fs_store, path)
    assert plan.is_noop
    assert "conformed from v1 to v2" in plan.conflicts[0].reason


def test_two_clips_of_one_beat_disagreeing(fs_store: Any, fs_sample: dict[str, Any],
                                           tmp_path: Path) -> None:
    timeline = otio.adapters.read_from_file(str(export_file(fs_store, tmp_path)))
    track = timeline.video_tracks()[0]
    first = next(c for c in track.find_clips() if c.name == "SC_010 C")  # exported on c2
    twin = first.clone()
    track.append(twin)  # the editor used beat C twice
    first.active_media_reference_key = "c3"
    # the twin still shows c2: it expresses no choice, so c3 stands
    assert [c.to_take for c in plan_import(fs_store, timeline).changes] == ["c3"]
    twin.active_media_reference_key = "c3"  # both agree: one change
    plan = plan_import(fs_store, timeline)
    assert [c.to_take for c in plan.changes] == ["c3"] and plan.unchanged == 5
    twin.active_media_reference_key = "c1"  # now they disagree: nothing is guessed
    plan = plan_import(fs_store, timeline)
    assert plan.is_noop
    assert sorted(s.take for s in plan.conflicts) == ["c1", "c3"]
    assert all("2 clips choosing different takes" in s.reason for s in plan.conflicts)


def test_apply_rechecks_under_the_lock(fs_store: Any, fs_sample: dict[str, Any],
                                       tmp_path: Path) -> None:
    path = switch(export_file(fs_store, tmp_path), "A", "t2")
    plan = plan_import(fs_store, path)
    fs_store.set_primary_take(PROJECT, EPISODE, "SC_010", "A", None, actor="op")
    lengths = history_lengths(fs_store)
    result = apply_import(fs_store, plan, actor="ed")
    assert not result.applied and "primary take of beat A" in result.failed[0][1]
    assert history_lengths(fs_store) == lengths

    # A now has no primary, so the export shows t2 (latest succeeded); the editor picks t1
    plan = plan_import(fs_store, switch(export_file(fs_store, tmp_path), "A", "t1"))
    assert len(plan.changes) == 1
    fs_store.lock_scene(PROJECT, EPISODE, "SC_010", "sent to sound", actor="op")
    lengths = history_lengths(fs_store)
    result = apply_import(fs_store, plan, actor="ed")
    assert not result.applied and "is locked" in result.failed[0][1]
    assert history_lengths(fs_store) == lengths


def test_bad_files(fs_store: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.otio"
    broken.write_text("{not json")
    with pytest.raises(CorruptFileError, match=r"broken\.otio"):
        plan_import(fs_store, broken)
    with pytest.raises(ClapboardError, match="no such OTIO file"):
        plan_import(fs_store, tmp_path / "absent.otio")
