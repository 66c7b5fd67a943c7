"""Filesystem backend specifics: layout, bytes on disk, corrupt input, schema, fsck."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import clapboard
from clapboard import (
    CorruptFileError,
    Scene,
    SceneIdentityMismatchError,
    SchemaVersionError,
    Store,
    UnsafePathError,
    UnsupportedFilesystemError,
    codec,
)
from clapboard.backends.filesystem import FilesystemBackend
from tests.test_contract import PLAN, bump, rederived

P, EP = "show", 1


def scenes_dir(store: Store) -> Path:
    backend = store.backend
    assert isinstance(backend, FilesystemBackend)
    return backend.scenes_dir(P)


@pytest.fixture
def seeded(fs_store: Store) -> Store:
    fs_store.init_scenes_from_plan(P, EP, PLAN)
    return fs_store


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if not p.name.endswith(".lock")}


def test_layout_and_schema_version(seeded: Store) -> None:
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    d = scenes_dir(seeded)
    assert sorted(os.listdir(d)) == sorted([
        "ep_001_SEQ_A.json", "ep_001_SEQ_A.v002.json", "ep_001_SEQ_A.versions.json",
        "ep_001_SEQ_A.versions.lock", "ep_001_SEQ_A.journal.jsonl",
        "ep_001_SEQ_B.json", "ep_001_SEQ_B.versions.lock", "ep_001_SEQ_B.journal.jsonl"])
    for name in ("ep_001_SEQ_A.json", "ep_001_SEQ_A.v002.json"):
        doc = json.loads((d / name).read_text())
        assert doc["schema_version"] == 2
        assert set(doc["journal_checkpoint"]) == {"seq", "crc", "offset"}
    assert json.loads((d / "ep_001_SEQ_A.versions.json").read_text())["schema_version"] == 1
    manifest = json.loads((d / "ep_001_SEQ_A.versions.json").read_text())
    assert set(manifest) == {"schema_version", "batch_id", "active_version", "versions",
                             "history"}
    assert set(manifest["versions"][1]) == {"version", "artifact", "created_at", "actor",
                                            "fingerprint", "parent_version", "note"}
    body = (d / "ep_001_SEQ_A.json").read_bytes()
    assert body.endswith(b"\n") and b'\n  "beats": [' in body  # indented, human-readable


def test_candidate_leaves_flat_file_byte_identical(seeded: Store) -> None:
    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    before = flat.read_bytes()
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    seeded.revert(P, EP, "SEQ_A")
    assert flat.read_bytes() == before


def test_identity_mismatch_writes_no_file(seeded: Store) -> None:
    before = snapshot(scenes_dir(seeded))
    with pytest.raises(SceneIdentityMismatchError):
        seeded.write_scene_candidate(P, EP, "SEQ_A", rederived("SEQ_Q"))
    assert snapshot(scenes_dir(seeded)) == before


def corrupt_cases() -> list[tuple[str, Any, type[Exception]]]:
    return [
        ("truncated", lambda b: b[: len(b) // 2], CorruptFileError),
        ("garbage", lambda b: b"\x00\xff not json", CorruptFileError),
        ("no-schema", lambda b: json.dumps({k: v for k, v in json.loads(b).items()
                                            if k != "schema_version"}).encode(),
         SchemaVersionError),
        ("future-schema", lambda b: json.dumps({**json.loads(b), "schema_version": 99}).encode(),
         SchemaVersionError),
        ("wrong-types", lambda b: json.dumps({**json.loads(b), "beats": "x"}).encode(),
         ValueError),
        ("foreign-scene", lambda b: json.dumps({**json.loads(b), "scene_id": "OTHER"}).encode(),
         SceneIdentityMismatchError),
    ]


@pytest.mark.parametrize(("name", "damage", "error"), corrupt_cases())
def test_corrupt_body_is_typed_and_left_in_place(seeded: Store, name: str, damage: Any,
                                                 error: type[Exception]) -> None:
    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    bad = damage(flat.read_bytes())
    flat.write_bytes(bad)
    with pytest.raises(error) as ei:
        seeded.load_active(P, EP, "SEQ_A")
    assert isinstance(ei.value, clapboard.ClapboardError)
    if name != "foreign-scene":
        assert str(flat) in str(ei.value)
    with pytest.raises(error):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert flat.read_bytes() == bad  # never "repaired" by overwriting
    assert not seeded.fsck().clean


def test_unparseable_json_is_also_a_value_error(seeded: Store) -> None:
    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    flat.write_bytes(b"{")
    with pytest.raises(ValueError):
        seeded.load_active(P, EP, "SEQ_A")


def test_schema_error_is_a_key_error_naming_both_versions(seeded: Store) -> None:
    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    flat.write_text(json.dumps({**json.loads(flat.read_text()), "schema_version": 7}))
    with pytest.raises(KeyError) as ei:
        seeded.load_active(P, EP, "SEQ_A")
    msg = str(ei.value)
    assert "expected 2" in msg and "got 7" in msg and str(flat) in msg


def manifest_path(store: Store) -> Path:
    return scenes_dir(store) / "ep_001_SEQ_A.versions.json"


def edit_manifest(store: Store, fn: Any) -> bytes:
    path = manifest_path(store)
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return path.read_bytes()


@pytest.mark.parametrize(("edit", "error"), [
    (lambda m: m.__setitem__("batch_id", "SEQ_B"), SceneIdentityMismatchError),
    (lambda m: m["versions"][1].__setitem__("artifact", "../../../etc/passwd"), UnsafePathError),
    (lambda m: m["versions"][1].__setitem__("artifact", "/etc/passwd"), UnsafePathError),
    (lambda m: m["versions"][1].__setitem__("artifact", "sub/x.json"), UnsafePathError),
    (lambda m: m.__setitem__("schema_version", 0), SchemaVersionError),
])
def test_bad_manifest_is_typed_and_nothing_written(seeded: Store, edit: Any,
                                                   error: type[Exception]) -> None:
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    bad = edit_manifest(seeded, edit)
    before = snapshot(scenes_dir(seeded))
    with pytest.raises(error):
        seeded.load_active(P, EP, "SEQ_A")
    with pytest.raises(error):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    with pytest.raises(error):
        seeded.conform(P, EP, "SEQ_A", 1)
    assert snapshot(scenes_dir(seeded)) == before
    assert manifest_path(seeded).read_bytes() == bad
    assert isinstance(error("x") if error is UnsafePathError else None, ValueError | None)


def test_manifest_naming_missing_body(seeded: Store) -> None:
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived(), activate=True)
    (scenes_dir(seeded) / "ep_001_SEQ_A.v002.json").unlink()
    with pytest.raises(FileNotFoundError):
        seeded.load_active(P, EP, "SEQ_A")
    with pytest.raises(FileNotFoundError):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    kinds = {p.kind for p in seeded.fsck().problems}
    assert "missing-body" in kinds


def test_fsck_finds_and_repairs_only_what_is_safe(seeded: Store) -> None:
    d = scenes_dir(seeded)
    seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    (d / "ep_001_SEQ_A.json.tmp").write_text("{")  # the seed's fixed temp name
    (d / "ep_001_SEQ_B.json.cbtmp-999999999-abcd").write_text("{")  # dead writer
    orphan = d / "ep_001_SEQ_A.v007.json"
    orphan.write_bytes(codec.encode_scene(rederived().to_dict()))
    with (d / "ep_001_SEQ_A.journal.jsonl").open("ab") as f:
        f.write(b'{"seq": 99, "torn')
    v2 = d / "ep_001_SEQ_A.v002.json"
    doc = json.loads(v2.read_text())
    doc["beats"].reverse()
    v2.write_text(json.dumps(doc))  # someone edited structure by hand
    kinds = sorted(p.kind for p in seeded.fsck().problems)
    assert kinds == ["fingerprint", "orphan-body", "orphan-temp", "orphan-temp",
                     "torn-journal-tail"]
    report = seeded.fsck(repair=True)
    assert sorted(p.kind for p in report.problems if p.repaired) == [
        "orphan-temp", "orphan-temp", "torn-journal-tail"]
    assert orphan.exists() and v2.exists()  # bodies are never deleted or rewritten
    assert sorted(p.kind for p in seeded.fsck().problems) == ["fingerprint", "orphan-body"]
    assert [r["seq"] for r in seeded.history(P, EP, "SEQ_A")][-1] == 2


def test_next_candidate_skips_orphan_name(seeded: Store) -> None:
    d = scenes_dir(seeded)
    orphan = d / "ep_001_SEQ_A.v002.json"
    orphan.write_bytes(b"left by a crash")
    v = seeded.write_scene_candidate(P, EP, "SEQ_A", rederived())
    assert v == 3 and orphan.read_bytes() == b"left by a crash"


def test_list_batches_ignores_sidecars_and_strays(seeded: Store) -> None:
    d = scenes_dir(seeded)
    seeded.write_scene_candidate(P, EP, "MANIFEST_ONLY", rederived("MANIFEST_ONLY"))
    (d / "ep_001_SEQ_C.json.cbtmp-1-aa").write_text("{")
    (d / "ep_002_OTHER.json").write_text("{}")
    (d / "README.txt").write_text("hi")
    assert seeded.list_batches(P, EP) == ["MANIFEST_ONLY", "SEQ_A", "SEQ_B"]
    assert seeded.list_episodes(P) == ["ep_001", "ep_002"]


def test_migration_chain_upgrades_old_bodies(seeded: Store,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic schema bump: v2 bodies are upgraded on read and by migrate, and the
    body's journal checkpoint survives the rewrite."""
    def v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
        doc["scene_metadata"] = {**doc.get("scene_metadata", {}), "migrated": True}
        return doc

    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    checkpoint = json.loads(flat.read_text())["journal_checkpoint"]
    monkeypatch.setitem(codec.MIGRATIONS, "scene", {**codec.MIGRATIONS["scene"], 2: v2_to_v3})
    monkeypatch.setitem(codec.CURRENT, "scene", 3)
    monkeypatch.setattr(codec, "SCENE_SCHEMA_VERSION", 3)
    assert seeded.load_active(P, EP, "SEQ_A").scene_metadata["migrated"] is True
    assert json.loads(flat.read_text())["schema_version"] == 2  # reading does not rewrite
    migrated = seeded.migrate(P)
    assert sorted(Path(p).name for p in migrated) == ["ep_001_SEQ_A.json", "ep_001_SEQ_B.json"]
    doc = json.loads(flat.read_text())
    assert doc["schema_version"] == 3 and doc["scene_metadata"]["migrated"] is True
    assert doc["journal_checkpoint"] == checkpoint
    assert seeded.migrate(P) == []


def test_version_1_bodies_load_and_migrate(seeded: Store) -> None:
    """Bodies of clapboard 0.1 and the seed (schema 1, no checkpoint) are complete as
    they stand: they load, take status saves, and migrate to schema 2."""
    flat = scenes_dir(seeded) / "ep_001_SEQ_B.json"
    doc = json.loads(flat.read_text())
    del doc["journal_checkpoint"]
    doc["schema_version"] = 1
    flat.write_text(json.dumps(doc))
    scene, v = seeded.load_active_with_version(P, EP, "SEQ_B")
    assert scene.scene_id == "SEQ_B"
    assert [Path(p).name for p in seeded.migrate(P)] == ["ep_001_SEQ_B.json"]
    migrated = json.loads(flat.read_text())
    assert migrated["schema_version"] == 2 and "journal_checkpoint" not in migrated

    def bump(s: Any) -> None:
        s.scene_metadata["n"] = 1

    seeded.save_active_scene_status(P, EP, "SEQ_B", expected_version=v, mutate=bump)
    assert seeded.load_active(P, EP, "SEQ_B").scene_metadata["n"] == 1
    assert "journal_checkpoint" in json.loads(flat.read_text())  # stamped on first save


def test_network_filesystem_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clapboard.backends.filesystem.filesystem_type", lambda p: "nfs4")
    with pytest.raises(UnsupportedFilesystemError, match="PostgreSQL"):
        clapboard.open_store(tmp_path)
    clapboard.open_store(tmp_path, allow_network_fs=True)


def test_open_store_location_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAPBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAPBOARD_STORE", raising=False)
    assert clapboard.open_store().backend.location == str(tmp_path / "home")
    monkeypatch.setenv("CLAPBOARD_STORE", str(tmp_path / "store"))
    assert clapboard.open_store().backend.location == str(tmp_path / "store")
    monkeypatch.setenv("CLAPBOARD_LOCK_TIMEOUT", "2.5")
    assert clapboard.open_store().lock_timeout == 2.5
    assert clapboard.open_store(lock_timeout=1).lock_timeout == 1


def test_scene_model_on_disk_round_trip(seeded: Store) -> None:
    scene = seeded.load_active(P, EP, "SEQ_A")
    body = (scenes_dir(seeded) / "ep_001_SEQ_A.json").read_bytes()
    assert Scene.from_dict(codec.decode_scene(body)) == scene


def test_journal_since_serves_every_consumer_in_full(seeded: Store) -> None:
    """Two consumers at different positions on one backend both get what they lack."""
    backend = seeded.backend
    key = (P, "ep_001", "SEQ_A")
    ahead = list(backend.journal_since(P, {}))
    assert [r["seq"] for k, r in ahead if k == key] == [1]
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert [r["seq"] for k, r in backend.journal_since(P, {key: 1}) if k == key] == [2]
    assert [r["seq"] for k, r in backend.journal_since(P, {key: 2}) if k == key] == []
    behind = [r["seq"] for k, r in backend.journal_since(P, {key: 0}) if k == key]
    assert behind == [1, 2]


def test_a_flat_batch_is_looked_at_without_opening_a_missing_manifest(
        seeded: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that found no manifest for a batch asks again with access(), not an
    open() that raises; a manifest another process writes since is still seen at once
    (the active version moves: a stale expected_version is refused), and one removed
    makes the batch flat again."""
    for _ in range(2):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: Any, *a: Any, **k: Any) -> int:
        opened.append(os.path.basename(os.fspath(path)))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", counting_open)
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.undo()
    assert not [n for n in opened if n.endswith(".versions.json")], opened

    other = clapboard.open_store(seeded.backend.root)  # another process's view
    scene = other.load_active(P, EP, "SEQ_A")
    scene.beats.append(clapboard.Beat(beat_id="NEW"))
    assert other.write_scene_candidate(P, EP, "SEQ_A", scene, activate=True) == 2
    with pytest.raises(clapboard.SceneVersionConflictError):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=2, mutate=bump)
    assert other.load_active_with_version(P, EP, "SEQ_A")[1] == 2

    manifest = scenes_dir(seeded) / "ep_001_SEQ_A.versions.json"
    flat = scenes_dir(seeded) / "ep_001_SEQ_A.json"
    manifest.unlink()  # by hand: the batch is flat again (v1, the flat body)
    assert flat.exists()
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    assert seeded.load_active_with_version(P, EP, "SEQ_A")[1] == 1


def test_a_warm_status_save_opens_its_journal_once(seeded: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal's tail check, the append and its sync share one descriptor; the
    manifest is read with one read() of its last size plus one byte (no fstat)."""
    scene = seeded.load_active("show", 1, "SEQ_A")
    scene.beats.append(clapboard.Beat(beat_id="NEW"))
    seeded.write_scene_candidate("show", 1, "SEQ_A", scene, activate=True)  # a manifest
    for _ in range(2):
        seeded.save_active_scene_status("show", 1, "SEQ_A", expected_version=None,
                                        mutate=bump)
    opened: list[str] = []
    fstats: list[int] = []
    real_open, real_fstat = os.open, os.fstat
    fds: dict[int, str] = {}

    def counting_open(path: Any, *a: Any, **k: Any) -> int:
        fd = real_open(path, *a, **k)
        fds[fd] = os.path.basename(os.fspath(path))
        opened.append(fds[fd])
        return fd

    def counting_fstat(fd: int) -> os.stat_result:
        fstats.append(fd)
        return real_fstat(fd)

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "fstat", counting_fstat)
    seeded.save_active_scene_status("show", 1, "SEQ_A", expected_version=None, mutate=bump)
    monkeypatch.undo()
    journal = [n for n in opened if n.endswith(".journal.jsonl")]
    manifest = [n for n in opened if n.endswith(".versions.json")]
    assert len(journal) == 1 and len(manifest) == 1, opened
    assert not [fd for fd in fstats if fds.get(fd, "").endswith(".versions.json")]
    assert seeded.load_active("show", 1, "SEQ_A").scene_metadata["counter"] == 3


def test_remembered_names_never_admit_an_equal_name_of_another_type(fs_store: Store) -> None:
    """Names found valid are remembered per save; 1 == True == 1.0 in Python, so the
    memory is keyed by the episode's type too: after saves with episode 1, a bool or a
    float episode is still refused, an unhashable one gets the name error (not a
    TypeError), and "1" and "ep_001" name the same batch."""
    from clapboard.errors import InvalidNameError

    for _ in range(2):
        fs_store.save_active_scene_status(P, 1, "B", expected_version=None, mutate=bump)
    for bad in (True, 1.0, [1]):
        with pytest.raises(InvalidNameError):
            fs_store.save_active_scene_status(P, bad, "B", expected_version=None, mutate=bump)
    with pytest.raises(InvalidNameError):
        fs_store.save_active_scene_status(["show"], 1, "B",  # type: ignore[arg-type]
                                          expected_version=None, mutate=bump)
    for same in ("1", "ep_001", 1):
        fs_store.save_active_scene_status(P, same, "B", expected_version=None, mutate=bump)
    assert fs_store.load_active(P, 1, "B").scene_metadata["counter"] == 5


def test_a_record_appended_with_shell_redirection_is_seen_by_a_store_that_kept_the_batch(
        seeded: Store, tmp_path: Path) -> None:
    """A store proves its journal's end by the last line and the file's size, not by a
    stat: a record another tool appended to the file's end (``>>``, after the padding)
    is still seen by a store that keeps the batch, and the store's next save continues
    the chain after it; a fresh store reads the same."""
    from clapboard.io.journal import BLOCK, encode_record

    for _ in range(2):
        seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    journal = scenes_dir(seeded) / "ep_001_SEQ_A.journal.jsonl"
    last = seeded.history(P, EP, "SEQ_A")[-1]
    assert journal.stat().st_size % BLOCK == 0  # padded
    note = {"at": last["at"], "actor": "ops@desk", "op": "note", "version": 1,
            "detail": {"text": "checked by hand"}, "seq": last["seq"] + 1, "prev": last["crc"]}
    with journal.open("ab") as f:
        f.write(encode_record(note))
    seeded.save_active_scene_status(P, EP, "SEQ_A", expected_version=1, mutate=bump)
    ops = [r["op"] for r in seeded.history(P, EP, "SEQ_A")]
    assert ops[-2:] == ["note", "status"]
    fresh = clapboard.open_store(seeded.backend.root)
    assert fresh.history(P, EP, "SEQ_A") == seeded.history(P, EP, "SEQ_A")
    assert fresh.load_active(P, EP, "SEQ_A") == seeded.load_active(P, EP, "SEQ_A")
    assert fresh.fsck(P).problems == []
