"""``clapboard export otio`` / ``clapboard import otio`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import clapboard
from clapboard.cli import cli
from tests.otio_support import EPISODE, PROJECT, build_episode, history_lengths, snapshot

otio = pytest.importorskip("opentimelineio")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store_root = tmp_path / "store"
    with clapboard.open_store(store_root) as store:
        build_episode(store, tmp_path / "media")
    return store_root


def run(root: Path, *args: str, actor: str = "cli-editor") -> Any:
    result = CliRunner().invoke(cli, ["--root", str(root), *args],
                                env={"CLAPBOARD_ACTOR": actor})
    return result


def test_export_writes_a_readable_timeline(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.otio"
    result = run(root, "export", "otio", PROJECT, "1", "-o", str(out), "--rate", "25")
    assert result.exit_code == 0, result.output
    assert "5 clips in 2 scenes" in result.output
    clips = list(otio.adapters.read_from_file(str(out)).find_clips())
    assert len(clips) == 5 and clips[0].source_range.duration.rate == 25


def test_export_json_summary(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.otio"
    result = run(root, "export", "otio", PROJECT, EPISODE, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["clips"] == 5 and data["frames"] == 264 and data["placeholders"] == 2
    assert [s["scene"] for s in data["scenes"]] == ["SC_010", "SC_020"]
    assert data["missing_references"] == 4  # c1, c2, s2, x1 (placeholders not counted)


def test_export_bad_input_exit_2(root: Path, tmp_path: Path) -> None:
    assert run(root, "export", "otio", "nope", "1", "-o", str(tmp_path / "a.otio")).exit_code == 2
    assert run(root, "export", "otio", PROJECT, "9", "-o", str(tmp_path / "a.otio")).exit_code == 2
    bad = run(root, "export", "otio", PROJECT, "1", "-o", str(tmp_path / "a.edl"))
    assert bad.exit_code == 2 and "must end in .otio" in bad.output
    assert run(root, "export", "otio", PROJECT, "1", "-o", str(tmp_path / "a.otio"),
               "--rate", "0").exit_code == 2


def test_import_dry_run_then_apply(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.otio"
    assert run(root, "export", "otio", PROJECT, "1", "-o", str(out)).exit_code == 0
    unchanged = run(root, "import", "otio", str(out))
    assert unchanged.exit_code == 0 and "nothing to change" in unchanged.output

    timeline = otio.adapters.read_from_file(str(out))
    next(iter(timeline.find_clips())).active_media_reference_key = "t2"
    otio.adapters.write_to_file(timeline, str(out))

    with clapboard.open_store(root) as store:
        before, lengths = snapshot(store), history_lengths(store)
    dry = run(root, "import", "otio", str(out))
    assert dry.exit_code == 0, dry.output
    assert "would set film/ep_001/SC_010 beat A: primary take t1 -> t2" in dry.output
    with clapboard.open_store(root) as store:
        assert snapshot(store) == before

    applied = run(root, "--json", "import", "otio", str(out), "--apply")
    assert applied.exit_code == 0, applied.output
    data = json.loads(applied.output)
    assert data["apply"] is True and data["result"]["actor"] == "cli-editor"
    assert [(c["beat"], c["to_take"]) for c in data["result"]["applied"]] == [("A", "t2")]
    with clapboard.open_store(root) as store:
        assert store.load_active(PROJECT, EPISODE, "SC_010").beat("A").primary_take_id == "t2"
        assert history_lengths(store)["SC_010"] == lengths["SC_010"] + 1
        record = store.history(PROJECT, EPISODE, "SC_010")[-1]
        assert (record["op"], record["actor"]) == ("otio_import", "cli-editor")

    again = run(root, "import", "otio", str(out), "--apply")
    assert again.exit_code == 0 and "nothing to change" in again.output


def test_import_reports_unmatched_and_conflicts(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cut.otio"
    run(root, "export", "otio", PROJECT, "1", "-o", str(out))
    timeline = otio.adapters.read_from_file(str(out))
    track = timeline.video_tracks()[0]
    track.append(otio.schema.Clip(name="title card"))
    otio.adapters.write_to_file(timeline, str(out))
    result = run(root, "--json", "import", "otio", str(out))
    assert result.exit_code == 1
    assert json.loads(result.output)["unmatched"][0]["clip"] == "title card"

    next(iter(timeline.find_clips())).active_media_reference_key = "t2"
    otio.adapters.write_to_file(timeline, str(out))
    run(root, "lock", PROJECT, "1", "SC_010", "--reason", "picture lock")
    locked = run(root, "import", "otio", str(out), "--apply")
    assert locked.exit_code == 3
    assert "conflict clip #0 'SC_010 A'" in locked.output and "picture-locked" in locked.output


def test_import_bad_file_exit_2(root: Path, tmp_path: Path) -> None:
    missing = run(root, "import", "otio", str(tmp_path / "none.otio"))
    assert missing.exit_code == 2 and "no such OTIO file" in missing.output
    broken = tmp_path / "broken.otio"
    broken.write_text("{")
    result = run(root, "import", "otio", str(broken))
    assert result.exit_code == 2 and "cannot read OTIO file" in result.output
    # the editor's file is not a store file: no advice to run `clapboard fsck` on it
    assert "fsck" not in result.output and "clapboard export otio" in result.output


def test_commands_have_examples() -> None:
    for args in (["export", "otio", "--help"], ["import", "otio", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Example:" in result.output
