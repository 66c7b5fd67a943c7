"""``clapboard copy``: folder → PostgreSQL → folder with nothing lost, idempotent, and
refusing to overwrite a destination whose history differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import clapboard
from clapboard import Beat, Scene, Store, Take, codec, persistence
from clapboard.cli import cli
from clapboard.copy import CopyConflictError, copy_store, list_all_batches
from clapboard.paths import ProjectPaths, parse_scene_file
from tests.pg_support import pg_url  # noqa: F401  (a fixture)

PLAN: dict[str, Any] = {"sequences": {
    "SEQ_A": {"shots": [{"shot_id": "A1", "duration_s": 4}, {"id": "A2", "note": "雨の夜"}]},
    "SEQ_B": {"shots": [{"shot_id": "B1"}]},
}}


def bump(scene: Scene) -> None:
    md = scene.scene_metadata
    md["counter"] = md.get("counter", 0) + 1


def build(root: Path) -> Store:
    """A folder store with every kind of state: versions, pointer history, a picture
    lock, runner takes, non-ASCII text, two projects and episodes, and a legacy flat
    body the seed wrote (no journal)."""
    store = clapboard.open_store(root, lock_timeout=10)
    store.init_scenes_from_plan("film", 1, PLAN)
    store.init_scenes_from_plan("film", 2, {"sequences": {"SEQ_C": {"shots": [{"id": "c"}]}}})
    store.save_active_scene_status("film", 1, "SEQ_A", expected_version=1,
                                   mutate=lambda s: s.scene_metadata.update(title="Ночь 🎬"))
    scene, v = store.load_active_with_version("film", 1, "SEQ_A")
    scene.beats[0].takes.append(Take(take_id="t1", status="succeeded", outputs=["a.mp4"]))
    scene.beats[0].primary_take_id = "t1"
    store.save_active_scene("film", 1, "SEQ_A", scene, expected_version=v)
    rederived = Scene(scene_id="SEQ_A", beats=[
        Beat(beat_id="A2", beat_metadata={"scene_id": "SEQ_A", "plan_shot": {"id": "A2"}}),
        Beat(beat_id="A3", beat_metadata={"scene_id": "SEQ_A"})])
    v2 = store.write_scene_candidate("film", 1, "SEQ_A", rederived, note="re-derived")
    store.conform("film", 1, "SEQ_A", v2, reason="director's cut")
    store.revert("film", 1, "SEQ_A", reason="back")
    store.conform("film", 1, "SEQ_A", v2)
    store.lock_scene("film", 1, "SEQ_B", "picture lock")
    legacy = ProjectPaths.for_project("old", root).orchestration_scenes_dir
    legacy.mkdir(parents=True)
    (legacy / "ep_000_LEGACY.json").write_bytes(codec.encode_scene(
        {"scene_id": "LEGACY", "beats": [], "scene_metadata": {"seed": True}}))
    return store


def snapshot(store: Store) -> dict[tuple[str, str, str], Any]:
    """Everything a batch holds, through the public API."""
    out: dict[tuple[str, str, str], Any] = {}
    for p, e, b in list_all_batches(store):
        manifest = store.manifest(p, e, b)
        versions = [x["version"] for x in manifest["versions"]] if manifest else [1]
        out[(p, e, b)] = {"manifest": manifest, "history": store.history(p, e, b),
                          "bodies": {v: store.load_raw(p, e, b, v)[0] for v in versions}}
    return out


def store_files(root: Path) -> dict[str, bytes]:
    """Every manifest and journal file byte for byte, and every body as its content
    (journal deltas applied; its checkpoint is a position in its own store's journal,
    which a copy writes afresh). Lock files hold only a holder hint."""
    out = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.name.endswith(".lock"):
            continue
        name = parse_scene_file(f.name)
        if name is not None and name.kind in ("flat", "version"):
            out[str(f.relative_to(root))] = codec.encode_scene(
                persistence.load_scene(f).to_dict())
        else:
            out[str(f.relative_to(root))] = f.read_bytes()
    return out


def test_copy_between_folders(tmp_path: Path) -> None:
    src = build(tmp_path / "a")
    report = copy_store(src, tmp_path / "b")
    assert len(report.copied) == 4 and report.written and report.journal_records == 10
    assert store_files(tmp_path / "a") == store_files(tmp_path / "b")
    again = copy_store(tmp_path / "a", tmp_path / "b")
    assert not again.written and len(again.unchanged) == 4
    with pytest.raises(clapboard.ClapboardError, match="same store"):
        copy_store(src, tmp_path / "a")
    src.close()


@pytest.mark.postgres
def test_folder_to_postgres_to_folder_round_trip(tmp_path: Path,
                                                 pg_url: str) -> None:  # noqa: F811
    src = build(tmp_path / "a")
    expected = snapshot(src)
    first = copy_store(src, pg_url)
    assert sorted(first.copied) == sorted("/".join(k) for k in expected)
    pg = clapboard.open_store(pg_url, lock_timeout=10)
    try:
        assert snapshot(pg) == expected
        assert pg.fsck().problems == []
        assert not copy_store(src, pg).written  # the second copy is a no-op

        back = copy_store(pg, tmp_path / "c")
        assert len(back.copied) == len(expected)
        # Byte for byte: bodies, manifests and journals (same seq, prev and crc).
        assert store_files(tmp_path / "a") == store_files(tmp_path / "c")
        assert not copy_store(pg_url, tmp_path / "c").written

        # The copied journal is a live chain: a new write continues it.
        last = pg.history("film", 1, "SEQ_A")[-1]
        pg.save_active_scene_status("film", 1, "SEQ_A", expected_version=None, mutate=bump)
        new = pg.history("film", 1, "SEQ_A")[-1]
        assert (new["seq"], new["prev"]) == (last["seq"] + 1, last["crc"])
    finally:
        pg.close()
        src.close()


@pytest.mark.postgres
def test_older_destination_is_brought_forward(tmp_path: Path,
                                              pg_url: str) -> None:  # noqa: F811
    src = build(tmp_path / "a")
    copy_store(src, pg_url)
    src.save_active_scene_status("film", 1, "SEQ_B", expected_version=None, mutate=bump)
    src.write_scene_candidate("film", 2, "SEQ_C", Scene(scene_id="SEQ_C"), activate=True)
    report = copy_store(src, pg_url)
    assert sorted(report.updated) == ["film/ep_001/SEQ_B", "film/ep_002/SEQ_C"]
    with clapboard.open_store(pg_url) as pg:
        assert snapshot(pg) == snapshot(src)
    src.close()


@pytest.mark.postgres
def test_a_diverged_destination_is_refused_and_untouched(tmp_path: Path,
                                                         pg_url: str) -> None:  # noqa: F811
    src = build(tmp_path / "a")
    copy_store(src, pg_url)
    pg = clapboard.open_store(pg_url, lock_timeout=10)
    try:
        pg.save_active_scene_status("film", 1, "SEQ_B", expected_version=None, mutate=bump)
        src.save_active_scene_status("film", 1, "SEQ_B", expected_version=None,
                                     mutate=lambda s: s.scene_metadata.update(other=1))
        src.init_scenes_from_plan("film", 3, {"sequences": {"NEW": {"shots": []}}})
        before = snapshot(pg)[("film", "ep_001", "SEQ_B")]
        with pytest.raises(CopyConflictError, match="SEQ_B") as e:
            copy_store(src, pg)
        assert isinstance(e.value, clapboard.ConflictError)
        assert e.value.report.copied == ["film/ep_003/NEW"]  # the rest was still copied
        assert snapshot(pg)[("film", "ep_001", "SEQ_B")] == before
    finally:
        pg.close()
        src.close()


@pytest.mark.postgres
def test_cli_copy_both_directions(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    build(tmp_path / "a").close()
    runner = CliRunner()
    result = runner.invoke(cli, ["copy", str(tmp_path / "a"), pg_url])
    assert result.exit_code == 0, result.output
    assert "copied 4 batch(es)" in result.stdout
    result = runner.invoke(cli, ["--json", "copy", str(tmp_path / "a"), pg_url])
    assert result.exit_code == 0 and '"written": false' in result.stdout
    result = runner.invoke(cli, ["copy", pg_url, str(tmp_path / "b")])
    assert result.exit_code == 0 and "copied 4" in result.stdout
    with clapboard.open_store(tmp_path / "b") as b:
        b.save_active_scene_status("film", 1, "SEQ_A", expected_version=None, mutate=bump)
    with clapboard.open_store(pg_url) as pg:
        pg.save_active_scene_status("film", 1, "SEQ_A", expected_version=None, mutate=bump)
    result = runner.invoke(cli, ["copy", pg_url, str(tmp_path / "b")])
    assert result.exit_code == 3
    assert "SEQ_A" in result.stderr and "Traceback" not in result.stderr


def test_copy_from_postgres_with_a_one_connection_pool(tmp_path: Path,
                                                       pg_url: str) -> None:  # noqa: F811
    import time

    build(tmp_path / "a").close()
    copy_store(tmp_path / "a", pg_url)
    src = clapboard.open_store(pg_url, lock_timeout=5, pool_size=1)
    try:
        start = time.monotonic()
        # read_state reads the journal while holding the batch: on the held connection,
        # not a second pooled one (which used to wait 30 s, then raise PoolTimeout).
        report = copy_store(src, tmp_path / "b")
        assert time.monotonic() - start < 10
        assert report.copied and not report.conflicts
    finally:
        src.close()
