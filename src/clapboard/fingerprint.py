"""The structural projection of a scene, its fingerprint, and the Writer 1 guard.

A scene's *structure* is what determines prompts and renders: its id, the ordered
beat ids, and the structural subset of each beat's ``beat_metadata``
(:data:`STRUCTURAL_BEAT_METADATA_KEYS`). Takes, boards, locks, ``max_takes`` and the
volatile ``inputs_fingerprint`` are not structure.

:func:`structure_fingerprint` must equal the seed's digest byte for byte (fingerprints
the seed recorded stay valid), so it hashes the standard library's
``json.dumps(sort_keys=True, separators=(",", ":"))`` with ASCII escapes. The hot path
only needs to know whether structure *changed*, which :func:`structure_key` answers
with orjson bytes of the same projection — equal keys exactly when equal fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

import orjson

from clapboard.codec import json_copy
from clapboard.models import Scene, beat_metadata_view

# Order matters: the projection takes present keys in this order (as the seed does).
STRUCTURAL_BEAT_METADATA_KEYS: tuple[str, ...] = (
    "plan_shot",
    "shot",
    "batch_shots",
    "batch_summary",
    "grouping",
    "modality",
    "generation_config",
    "element_config",
    "prompt_directive",
    "scene_id",
)

# Shot fields that differ between builders without changing what is rendered.
BUILDER_VARIANT_SHOT_KEYS: frozenset[str] = frozenset({"is_env_only", "aspect_ratio", "raw"})

# Runner-owned beat_metadata keys that Writer 1 copies over the disk body.
RUNNER_METADATA_KEYS: tuple[str, ...] = ("inputs_fingerprint", "reroll_cleared_stale")

BeatItems = Iterable[tuple[Any, Any]]


def canonical_shot_identity(shot_dict: dict[str, Any] | None) -> dict[str, Any]:
    """A shot without its builder-variant fields (new fields count as structural)."""
    return {k: v for k, v in (shot_dict or {}).items() if k not in BUILDER_VARIANT_SHOT_KEYS}


def _projection(scene_id: Any, beat_items: BeatItems) -> dict[str, Any]:
    beats = []
    ids = []
    for beat_id, metadata in beat_items:
        md = metadata or {}
        beats.append({
            "beat_id": beat_id,
            "beat_metadata": {k: md[k] for k in STRUCTURAL_BEAT_METADATA_KEYS if k in md},
        })
        ids.append(beat_id)
    return {"beats": beats, "scene_id": scene_id, "beat_ids": ids, "shot_count": len(ids)}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def fingerprint_items(scene_id: Any, beat_items: BeatItems) -> str:
    """sha256 hex of the structural projection, exactly as the seed computes it."""
    canonical = json.dumps(
        _projection(scene_id, beat_items), sort_keys=True, separators=(",", ":"),
        default=_json_default,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def structure_fingerprint(scene: Scene) -> str:
    """The seed-compatible structural fingerprint of a Scene."""
    return fingerprint_items(scene.scene_id, ((b.beat_id, b.beat_metadata) for b in scene.beats))


def raw_fingerprint(raw: dict[str, Any]) -> str:
    """The same fingerprint from a raw body dict, without building models."""
    beats = raw.get("beats") or []
    return fingerprint_items(raw.get("scene_id"), ((b.get("beat_id"), b.get("beat_metadata"))
                                                   for b in beats))


def structure_key(scene: Scene) -> bytes:
    """Bytes that are equal exactly when two scenes' fingerprints are equal (fast path).

    Reads lazy beats without building them."""
    return _key_of(scene.scene_id, ((b.beat_id, beat_metadata_view(b)) for b in scene.beats))


def structure_changed(scene: Scene, raw: dict[str, Any], touched: list[int] | None) -> bool:
    """True when ``scene``'s structure differs from that of the raw body it was loaded
    from — exactly when their :func:`structure_key` bytes differ — looking only at the
    beats at ``touched`` (from :func:`clapboard.models.changed_beats`; None: the beat
    list changed length, which is a structure change)."""
    raws = raw.get("beats") or []
    if touched is None or scene.scene_id != raw.get("scene_id"):
        return True
    for i in touched:
        beat, stored = scene.beats[i], raws[i]
        md, stored_md = beat_metadata_view(beat), stored.get("beat_metadata")
        if beat.beat_id == stored.get("beat_id") and (md is stored_md
                                                       or _same_json(md, stored_md)):
            continue  # the common case: the same bytes give the same projection
        if (_key_of(scene.scene_id, [(beat.beat_id, md)])
                != _key_of(scene.scene_id, [(stored.get("beat_id"),
                                             stored.get("beat_metadata"))])):
            return True
    return False


def _same_json(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` encode to the same JSON bytes (``==`` alone would take
    1, 1.0 and true for one another); False when unsure."""
    try:
        return orjson.dumps(a) == orjson.dumps(b)
    except (orjson.JSONEncodeError, TypeError):
        return False


def _key_of(scene_id: Any, beat_items: BeatItems) -> bytes:
    projection = _projection(scene_id, beat_items)
    try:
        return orjson.dumps(projection, default=_json_default, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        # Values orjson refuses (huge ints, non-str keys): the seed's own encoding.
        return json.dumps(projection, sort_keys=True, separators=(",", ":"),
                          default=_json_default).encode("utf-8")


def _project_value(key: str, value: Any) -> Any:
    if key == "shot" and isinstance(value, dict):
        return canonical_shot_identity(value)
    if key == "batch_shots" and isinstance(value, list):
        return [canonical_shot_identity(i) if isinstance(i, dict) else i for i in value]
    return value


def structural_mutations(disk_dict: dict[str, Any], rebuild_dict: dict[str, Any]) -> list[str]:
    """Structural differences of a runner rebuild against the disk body (raw dicts).

    Absent structural keys on disk may be enriched (not a mutation); present values of
    ``shot`` / ``batch_shots`` compare through :func:`canonical_shot_identity`; any other
    present difference or removal is a mutation. A changed beat topology stops the walk.
    """
    mutations: list[str] = []
    if disk_dict.get("scene_id") != rebuild_dict.get("scene_id"):
        mutations.append("scene_id")
    disk_beats = disk_dict.get("beats") or []
    rebuild_beats = rebuild_dict.get("beats") or []
    if [b.get("beat_id") for b in disk_beats] != [b.get("beat_id") for b in rebuild_beats]:
        mutations.append("beat_topology")
        return mutations
    for index, (disk_beat, rebuild_beat) in enumerate(zip(disk_beats, rebuild_beats, strict=True)):
        disk_md = disk_beat.get("beat_metadata") or {}
        rebuild_md = rebuild_beat.get("beat_metadata") or {}
        beat_id = disk_beat.get("beat_id", index)
        for key in STRUCTURAL_BEAT_METADATA_KEYS:
            on_disk, in_rebuild = key in disk_md, key in rebuild_md
            if not on_disk:
                continue  # absent on disk: enrichment, never a mutation
            if not in_rebuild:
                mutations.append(f"{beat_id}.{key}:removed")
            elif _project_value(key, disk_md[key]) != _project_value(key, rebuild_md[key]):
                mutations.append(f"{beat_id}.{key}:changed")
    return mutations


def runner_overlay(
    disk_dict: dict[str, Any], runner_dict: dict[str, Any], *, allow_structural_enrichment: bool
) -> dict[str, Any]:
    """Writer 1's merge: runner-owned status over a fresh disk body, structure kept.

    Per beat: ``takes``, ``primary_take_id`` and ``phantom_recovery_count`` come from
    the runner, as do the runner-owned metadata keys; boards and everything else stay
    as on disk (an operator's board decision is never clobbered). On an un-versioned
    batch, structural keys absent on disk are enriched from the runner (builder-variant
    shot fields dropped). Call only after :func:`structural_mutations` found nothing.
    """
    # Both inputs are copied once, whole, at C speed (orjson), so the result shares
    # nothing with either and the per-key copies below are unnecessary.
    merged: dict[str, Any] = json_copy(disk_dict)
    runner_dict = json_copy(runner_dict)
    runner_beats = {b.get("beat_id"): b for b in (runner_dict.get("beats") or [])}
    for disk_beat in merged.get("beats") or []:
        runner_beat = runner_beats[disk_beat.get("beat_id")]
        disk_beat["takes"] = runner_beat.get("takes") or []
        disk_beat["primary_take_id"] = runner_beat.get("primary_take_id")
        disk_beat["phantom_recovery_count"] = runner_beat.get(
            "phantom_recovery_count", disk_beat.get("phantom_recovery_count", 0)
        )
        disk_md = disk_beat.setdefault("beat_metadata", {})
        runner_md = runner_beat.get("beat_metadata") or {}
        for key in RUNNER_METADATA_KEYS:
            if key in runner_md:
                disk_md[key] = runner_md[key]
        if allow_structural_enrichment:
            for key in STRUCTURAL_BEAT_METADATA_KEYS:
                if key not in disk_md and key in runner_md:
                    disk_md[key] = _project_value(key, runner_md[key])
    return merged
