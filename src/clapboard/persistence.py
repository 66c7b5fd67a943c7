"""The seed module's names, for code written against it. Every function delegates.

Module-level functions act on the filesystem store at ``CLAPBOARD_HOME`` (else
``./clapboard-data``), read at call time, exactly as the seed read its project root.
Signatures, return values and exceptions follow the seed; where clapboard is stricter
(unique temp names, errors raised instead of swallowed, the batch lock on every
mutation) the SPEC says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clapboard import codec
from clapboard.backends.fs_state import materialize
from clapboard.errors import (
    LockTimeoutError,
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneStructureImmutableError,
    SceneVersionConflictError,
    SchemaVersionError,
)
from clapboard.fingerprint import (
    canonical_shot_identity,
    structural_mutations,
    structure_fingerprint,
)
from clapboard.io.atomic import atomic_write_bytes
from clapboard.io.journal import append_line_locked
from clapboard.manifest import artifact_for
from clapboard.models import Scene
from clapboard.paths import (
    ProjectPaths,
    episode_token,
    flat_name,
    journal_name,
    manifest_name,
    parse_scene_file,
    safe_basename,
    store_root,
    version_name,
)
from clapboard.store import Store

__all__ = [
    "LockTimeoutError",
    "SceneIdentityMismatchError",
    "SceneLockedError",
    "SceneStructureImmutableError",
    "SceneVersionConflictError",
    "SceneVersionStore",
    "SchemaVersionError",
    "active_scene_body_path",
    "active_version",
    "assert_batch_identity",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_shot_identity",
    "init_scenes_from_plan",
    "jsonl_append_locked",
    "list_scenes",
    "load_manifest",
    "load_scene",
    "load_scene_active",
    "load_scene_active_with_version",
    "manifest_artifact_path",
    "save_active_scene",
    "save_active_scene_status",
    "save_scene",
    "save_scene_guarded",
    "scene_manifest_path",
    "scene_path",
    "scene_version_path",
    "structural_mutations",
    "structure_fingerprint",
]

_STORES: dict[str, Store] = {}


def _store() -> Store:
    """The default filesystem store (one per root, so per-file caches are shared)."""
    root = str(store_root())
    store = _STORES.get(root)
    if store is None:
        from clapboard.opener import open_store

        store = _STORES[root] = open_store(root)
    return store


def _dir(project: str) -> Path:
    return ProjectPaths.for_project(project).orchestration_scenes_dir


# -- paths ------------------------------------------------------------------------------


def scene_path(project: str, episode: int | str, seq_id: str) -> Path:
    return _dir(project) / flat_name(episode_token(episode), seq_id)


def scene_manifest_path(project: str, episode: int | str, batch_id: str) -> Path:
    return _dir(project) / manifest_name(episode_token(episode), batch_id)


def scene_version_path(project: str, episode: int | str, batch_id: str, version: int) -> Path:
    return _dir(project) / version_name(episode_token(episode), batch_id, version)


def active_version(manifest: dict[str, Any]) -> int:
    result: int = manifest["active_version"]
    return result


def manifest_artifact_path(project: str, episode: int | str, batch_id: str,
                           manifest: dict[str, Any], version: int) -> Path:
    artifact = artifact_for(manifest, episode_token(episode), batch_id, version)
    return _dir(project) / safe_basename(artifact, context=f"batch {batch_id} v{version}")


def active_scene_body_path(project: str, episode: int | str, batch_id: str) -> Path:
    manifest = load_manifest(project, episode, batch_id)
    if manifest is None:
        return scene_path(project, episode, batch_id)
    return manifest_artifact_path(project, episode, batch_id, manifest,
                                  active_version(manifest))


# -- plain file I/O ---------------------------------------------------------------------


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_bytes(path, codec.dumps(obj))


def jsonl_append_locked(path: Path | str, obj: Any) -> None:
    append_line_locked(path, obj)


def save_scene(scene: Scene, path: Path) -> None:
    """Atomic, durable write of ``scene`` to ``path`` (no batch lock, as in the seed)."""
    scene.validate()
    atomic_write_bytes(path, codec.encode_scene(scene.to_dict()))


def load_scene(path: Path) -> Scene:
    """The scene in a body file, with the journal deltas recorded after it applied when
    the file is a store body (its journal beside it)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SceneNotFoundError(f"Scene JSON not found: {p}", path=p) from None
    f = parse_scene_file(p.name)
    if f is None or f.kind not in ("flat", "version"):
        return Scene.from_dict(codec.decode_scene(data, p))
    journal = p.with_name(journal_name(f.episode, f.batch_id))
    state = materialize(p, journal, f.version or 1, data).state
    return Scene.from_dict(state.doc)


def save_scene_guarded(scene: Scene, path: Path) -> None:
    """``save_scene`` unless the existing body is locked (``SceneLockedError``)."""
    p = Path(path)
    if p.exists():
        existing = load_scene(p)
        if existing.locked:
            raise SceneLockedError(existing.scene_id, existing.lock_reason, existing.locked_by)
    save_scene(scene, p)


def list_scenes(project: str, episode: int | str) -> list[Path]:
    """Flat scene bodies of an episode, sorted; sidecars and versioned bodies excluded."""
    d = _dir(project)
    token = episode_token(episode)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        f = parse_scene_file(p.name)
        if f is not None and f.kind == "flat" and f.episode == token and p.is_file():
            out.append(p)
    return sorted(out)


# -- store operations -------------------------------------------------------------------


def load_manifest(project: str, episode: int | str, batch_id: str) -> dict[str, Any] | None:
    manifest = _store().manifest(project, episode, batch_id)
    if manifest is not None:
        manifest = {**manifest, "schema_version": codec.MANIFEST_SCHEMA_VERSION}
    return manifest


def load_scene_active_with_version(project: str, episode: int | str,
                                   batch_id: str) -> tuple[Scene, int]:
    return _store().load_active_with_version(project, episode, batch_id)


def load_scene_active(project: str, episode: int | str, batch_id: str) -> Scene:
    return _store().load_active(project, episode, batch_id)


def assert_batch_identity(requested_batch_id: str, scene: Scene) -> None:
    if scene.scene_id != requested_batch_id:
        raise SceneIdentityMismatchError(requested_batch_id, scene.scene_id)


def save_active_scene_status(project: str, episode: int | str, batch_id: str, *,
                             expected_version: int, mutate: Callable[[Scene], None],
                             post_write: Callable[[Scene], None] | None = None) -> None:
    _store().save_active_scene_status(project, episode, batch_id,
                                      expected_version=expected_version, mutate=mutate,
                                      post_write=post_write)


def save_active_scene(project: str, episode: int | str, batch_id: str, scene: Scene, *,
                      expected_version: int) -> None:
    _store().save_active_scene(project, episode, batch_id, scene,
                               expected_version=expected_version)


def init_scenes_from_plan(project: str, episode: int | str, plan: dict[str, Any],
                          max_takes: int = 3, *, persist: bool = True) -> list[Scene]:
    return _store().init_scenes_from_plan(project, episode, plan, max_takes, persist=persist)


class SceneVersionStore:
    """The seed's per-episode version store, over the default Store."""

    def __init__(self, project: str, episode: int | str) -> None:
        self.project = project
        self.episode = episode_token(episode)

    def write_scene_candidate(self, requested_batch_id: str, scene: Scene, *,
                              note: str | None = None, activate: bool = False) -> int:
        return _store().write_scene_candidate(self.project, self.episode, requested_batch_id,
                                              scene, note=note, activate=activate)

    def conform(self, batch_id: str, version: int, *, expected_active: int | None = None,
                reason: str | None = None) -> int:
        return _store().conform(self.project, self.episode, batch_id, version,
                                expected_active=expected_active, reason=reason)

    def revert(self, batch_id: str, *, expected_active: int | None = None,
               reason: str | None = None) -> int:
        return _store().revert(self.project, self.episode, batch_id,
                               expected_active=expected_active, reason=reason)

    def versions(self, batch_id: str) -> list[dict[str, Any]]:
        return _store().versions(self.project, self.episode, batch_id)
