"""Versions: candidates, conform / revert, listing, diff, and picture lock.

Every version body is immutable in structure; the manifest's ``active_version`` says
which one is live, and ``history`` records every pointer move. Writes keep the order
body → manifest → journal, each durable before the next, so a crash at any point
leaves a loadable batch (at worst an orphan body that fsck reports and keeps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clapboard.diff import structural_diff
from clapboard.errors import (
    NothingToRevertError,
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneVersionConflictError,
    ValidationError,
)
from clapboard.fingerprint import raw_fingerprint, structure_fingerprint
from clapboard.manifest import active_of, artifact_for, entry, registered
from clapboard.models import Scene, check_stored_scene
from clapboard.paths import flat_name, resolve_actor, version_name

if TYPE_CHECKING:
    from clapboard.backends.base import BatchTx
    from clapboard.store import Store

Doc = dict[str, Any]


def _now() -> str:
    from clapboard.store import utc_now

    return utc_now()


def _require_body(tx: BatchTx, manifest: Doc | None, version: int) -> Doc:
    doc = tx.read_body(version, manifest)
    if doc is None:
        raise SceneNotFoundError(
            f"body of batch {tx.batch_id} v{version} "
            f"({artifact_for(manifest, tx.episode, tx.batch_id, version)}) is missing",
            hint="run `clapboard fsck`",
        )
    if doc.get("scene_id") != tx.batch_id:
        raise SceneIdentityMismatchError(tx.batch_id, doc.get("scene_id"), what="scene body")
    return doc


def write_candidate(store: Store, project: str, episode: object, requested_batch_id: str,
                    scene: Scene, *, note: str | None, activate: bool,
                    actor: str | None) -> int:
    # The identity guard runs before anything else: a renumber writes nothing at all.
    if scene.scene_id != requested_batch_id:
        raise SceneIdentityMismatchError(requested_batch_id, scene.scene_id)
    scene.validate()
    who = resolve_actor(actor)
    fingerprint = structure_fingerprint(scene)
    body = scene.to_dict()
    with store.transaction(project, episode, requested_batch_id, "candidate") as tx:
        ep, batch = tx.episode, tx.batch_id
        manifest = tx.read_manifest()
        if manifest is None:
            flat = tx.read_body(1, None)
            if flat is not None:
                if flat.get("scene_id") != batch:
                    raise SceneIdentityMismatchError(batch, flat.get("scene_id"),
                                                     what="flat body")
                check_stored_scene(flat)  # malformed: a typed ValidationError, nothing written
                flat_fp = raw_fingerprint(flat)
                if flat_fp == fingerprint:
                    return 1  # the flat body already is this structure
                # Register the legacy flat body as v1; its file is never rewritten.
                manifest = _new_manifest(batch, [_entry(1, flat_name(ep, batch), who, flat_fp,
                                                        None, "legacy flat body")], 1)
        else:
            for e in manifest.get("versions") or []:
                if e.get("fingerprint") == fingerprint:
                    version = int(e["version"])
                    if activate and version != active_of(manifest):
                        _check_unlocked(tx, manifest)
                        _move(store, tx, manifest, version, None, who, "conform")
                    return version
        if manifest is None:  # a brand-new batch: the candidate is v1, and active
            tx.write_body(1, body, version_name(ep, batch, 1))
            manifest = _new_manifest(batch, [_entry(1, version_name(ep, batch, 1), who,
                                                    fingerprint, None, note)], 1)
            tx.write_manifest(manifest)
            store._journal(tx, "candidate", 1, who, {"fingerprint": fingerprint, "note": note,
                                                    "parent_version": None, "activated": True})
            return 1
        active = active_of(manifest)
        if activate:
            _check_unlocked(tx, manifest)
        version = max(registered(manifest) or [0]) + 1
        while tx.artifact_exists(version_name(ep, batch, version)):
            version += 1  # an orphan body from a crash keeps its name; fsck reports it
        artifact = version_name(ep, batch, version)
        tx.write_body(version, body, artifact)
        manifest["versions"] = [*manifest.get("versions", []),
                                _entry(version, artifact, who, fingerprint, active, note)]
        if activate:
            manifest["history"] = [*manifest.get("history", []),
                                   {"from": active, "to": version, "at": _now(), "actor": who,
                                    "reason": note or "candidate activated"}]
            manifest["active_version"] = version
        tx.write_manifest(manifest)
        store._journal(tx, "candidate", version, who,
                       {"fingerprint": fingerprint, "note": note, "parent_version": active,
                        "activated": activate})
        return version


def _new_manifest(batch_id: str, entries: list[Doc], active: int) -> Doc:
    return {"batch_id": batch_id, "active_version": active, "versions": entries, "history": []}


def _entry(version: int, artifact: str, actor: str, fingerprint: str, parent: int | None,
           note: str | None) -> Doc:
    return {"version": version, "artifact": artifact, "created_at": _now(), "actor": actor,
            "fingerprint": fingerprint, "parent_version": parent, "note": note}


def _check_unlocked(tx: BatchTx, manifest: Doc | None) -> None:
    doc = _require_body(tx, manifest, active_of(manifest))
    if doc.get("locked"):
        raise SceneLockedError(tx.batch_id, doc.get("lock_reason"), doc.get("locked_by"))


def _move(store: Store, tx: BatchTx, manifest: Doc, target: int, reason: str | None,
          who: str, op: str) -> None:
    current = active_of(manifest)
    manifest["history"] = [*manifest.get("history", []),
                           {"from": current, "to": target, "at": _now(), "actor": who,
                            "reason": reason}]
    manifest["active_version"] = target
    tx.write_manifest(manifest)
    store._journal(tx, op, target, who, {"from": current, "to": target, "reason": reason})


def move_pointer(store: Store, project: str, episode: object, batch_id: str,
                 version: int | None, *, expected_active: int | None, reason: str | None,
                 actor: str | None, op: str) -> int:
    """Conform to ``version`` (or, with None, revert to where the last move came from)."""
    who = resolve_actor(actor)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationError("version", f"must be an integer, got {version!r}")
    with store.transaction(project, episode, batch_id, op) as tx:
        manifest = tx.read_manifest()
        current = active_of(manifest)
        if manifest is None and tx.read_body(1, None) is None:
            raise SceneNotFoundError(f"no scene for batch {batch_id}",
                                     hint="check the names with `clapboard ls`")
        if expected_active is not None and expected_active != current:
            raise SceneVersionConflictError(batch_id, expected_active, current)
        target = _revert_target(manifest, batch_id) if version is None else version
        artifact_for(manifest, tx.episode, batch_id, target)  # registered?
        _require_body(tx, manifest, target)
        _check_unlocked(tx, manifest)
        if target == current or manifest is None:
            return current
        _move(store, tx, manifest, target, reason, who, op)
        return target


def _revert_target(manifest: Doc | None, batch_id: str) -> int:
    history = (manifest or {}).get("history") or []
    if not history:
        raise NothingToRevertError(
            f"batch {batch_id} has no pointer move to revert",
            hint="see `clapboard versions` for what exists",
        )
    target = history[-1].get("from")
    if not isinstance(target, int):
        raise ValidationError("history", f"last history entry of {batch_id} has no 'from'")
    return target


def list_versions(store: Store, project: str, episode: object, batch_id: str) -> list[Doc]:
    manifest = store.manifest(project, episode, batch_id)
    if manifest is None:
        doc, _ = store.load_raw(project, episode, batch_id, 1)
        check_stored_scene(doc)  # a malformed body is a ValidationError, not a crash below
        _, ep = store._names(project, episode, batch_id)
        return [{"version": 1, "artifact": flat_name(ep, batch_id), "created_at": None,
                 "actor": None, "fingerprint": raw_fingerprint(doc), "parent_version": None,
                 "note": "un-versioned (flat) body", "active": True}]
    active = active_of(manifest)
    return [{**e, "active": e.get("version") == active} for e in manifest.get("versions", [])]


def diff_versions(store: Store, project: str, episode: object, batch_id: str, a: int,
                  b: int) -> Doc:
    doc_a, _ = store.load_raw(project, episode, batch_id, a)
    doc_b, _ = store.load_raw(project, episode, batch_id, b)
    return {"batch_id": batch_id, "a": a, "b": b, **structural_diff(doc_a, doc_b)}


def preview_move(store: Store, project: str, episode: object, batch_id: str,
                 version: int | None) -> Doc:
    manifest = store.manifest(project, episode, batch_id)
    current = active_of(manifest)
    target = _revert_target(manifest, batch_id) if version is None else version
    if manifest is not None:
        entry(manifest, target, batch_id)
    return diff_versions(store, project, episode, batch_id, current, target)


def set_lock(store: Store, project: str, episode: object, batch_id: str, locked: bool,
             reason: str | None, actor: str | None, *,
             expected_version: int | None = None) -> Scene:
    """Picture lock / unlock through the status writer (lock state is not structure)."""
    if locked and (not isinstance(reason, str) or not reason.strip()):
        raise ValidationError("reason", "a picture lock needs a reason")
    who = resolve_actor(actor)
    at = _now()

    def mutate(scene: Scene) -> None:
        scene.locked = locked
        scene.lock_reason = reason if locked else None
        scene.locked_by = who if locked else None
        scene.locked_at = at if locked else None

    return store.save_active_scene_status(project, episode, batch_id,
                                          expected_version=expected_version,
                                          mutate=mutate, actor=who,
                                          op="lock" if locked else "unlock",
                                          create_missing=False)
