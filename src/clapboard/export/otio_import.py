"""The editor's take choice back from an OpenTimelineIO timeline (SPEC §9).

An editor swaps takes by changing a clip's *active media reference* (the exporter keys
every reference by take id). Importing compares each clip's active key with the key the
exporter made active (``active_take`` in the clip's ``clapboard`` metadata):

* the same key → the editor expressed no choice: nothing to do. An untouched file is
  therefore a no-op even when the exporter showed a fallback take (no primary yet);
* another key → that take becomes the beat's primary take, through the status writer
  (:meth:`Store.save_active_scene_status`, one journaled ``otio_import`` record per
  scene, actor recorded), with ``expected_version`` = the version that was exported.

Nothing is guessed. A clip is **unmatched** (reported, skipped) when it has no clapboard
metadata, names a project / episode / scene / beat that does not exist, or its active
key is not a take of that beat. A choice is a **conflict** (reported, skipped) when the
store moved on since the export: the scene was conformed to another version, the
primary take was changed by someone else, the scene is picture-locked, or two clips of
one beat choose different takes. Re-export and redo the choice in those cases.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clapboard.errors import (
    ClapboardError,
    ConflictError,
    CorruptFileError,
    LockTimeoutError,
    SceneLockedError,
    SceneNotFoundError,
    ValidationError,
)
from clapboard.export._otio_common import FORMAT, IMPORT_OP, NAMESPACE, plain, require_otio
from clapboard.models import Scene
from clapboard.paths import episode_token, resolve_actor, validate_id, validate_project
from clapboard.store import Store


@dataclass(frozen=True)
class Change:
    """One beat whose primary take the editor's timeline changes."""

    project: str
    episode: str
    scene: str
    beat: str
    version: int
    from_take: str | None
    to_take: str
    clip: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skip:
    """A clip that was not applied, and why. ``kind``: ``unmatched`` or ``conflict``."""

    kind: str
    clip: str
    index: int
    reason: str
    scene: str | None = None
    beat: str | None = None
    take: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImportPlan:
    """What an import would do: the changes, and every clip it skips with the reason."""

    source: str | None
    clips: int = 0
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    unmatched: list[Skip] = field(default_factory=list)
    conflicts: list[Skip] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "clips": self.clips, "unchanged": self.unchanged,
                "changes": [c.to_dict() for c in self.changes],
                "unmatched": [s.to_dict() for s in self.unmatched],
                "conflicts": [s.to_dict() for s in self.conflicts]}


@dataclass
class ApplyResult:
    """What :func:`apply_import` wrote, and the scenes it could not write."""

    actor: str
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"actor": self.actor, "applied": [c.to_dict() for c in self.applied],
                "failed": [{**c.to_dict(), "error": e} for c, e in self.failed]}


class _Unmatched(Exception):
    """Internal: this clip cannot be matched (the message says why)."""


class _Conflict(Exception):
    """Internal: this clip's choice collides with what the store holds now."""


@dataclass(frozen=True)
class _ClipRef:
    """A clip's clapboard identity, as the exporter wrote it."""

    project: str
    episode: str
    scene: str
    beat: str
    version: int
    exported_active: str
    exported_primary: str | None
    placeholder: str | None


#: Not CorruptFileError's default hint: that one is about store files (`clapboard fsck`),
#: and an editor's timeline is not one.
_NOT_OTIO_HINT = "give an OpenTimelineIO timeline written by `clapboard export otio`"


def read_timeline(path: str | os.PathLike[str]) -> Any:
    """Read an OTIO file with OpenTimelineIO's own reader; errors name the file."""
    otio = require_otio()
    source = Path(path)
    if not source.is_file():
        raise ClapboardError(f"no such OTIO file: {source}", path=source,
                             hint="check the path given to `clapboard import otio`")
    try:
        timeline = otio.adapters.read_from_file(str(source))
    except Exception as e:  # OTIO raises its own, ValueError and more for bad input
        raise CorruptFileError(f"cannot read OTIO file {source}: {e}", path=source,
                               hint=_NOT_OTIO_HINT) from None
    if not hasattr(timeline, "find_clips"):
        raise CorruptFileError(f"{source} holds a {type(timeline).__name__}, not a timeline",
                               path=source, hint=_NOT_OTIO_HINT)
    return timeline


def _clip_ref(meta: Any) -> _ClipRef:
    if not isinstance(meta, dict):
        raise _Unmatched("no clapboard metadata (not exported by clapboard)")
    if meta.get("format", FORMAT) != FORMAT:
        raise _Unmatched(f"clapboard metadata format {meta.get('format')!r} is not {FORMAT}")
    try:
        project = validate_project(meta.get("project"))
        episode = episode_token(meta.get("episode"))
        scene = validate_id(meta.get("scene"), "scene id")
    except ValidationError as e:
        raise _Unmatched(f"bad clapboard metadata: {e}") from None
    beat, version, active = meta.get("beat"), meta.get("version"), meta.get("active_take")
    primary, placeholder = meta.get("primary_take"), meta.get("placeholder_key")
    if not isinstance(beat, str) or not beat:
        raise _Unmatched("clapboard metadata names no beat")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _Unmatched("clapboard metadata names no version")
    if not isinstance(active, str) or not (primary is None or isinstance(primary, str)):
        raise _Unmatched("clapboard metadata has no exported active take")
    return _ClipRef(project, episode, scene, beat, version, active, primary,
                    placeholder if isinstance(placeholder, str) else None)


class _Scenes:
    """Active scenes loaded once each; a load error is remembered as the reason."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[tuple[str, str, str], tuple[Scene, int] | str] = {}

    def get(self, ref: _ClipRef) -> tuple[Scene, int]:
        key = (ref.project, ref.episode, ref.scene)
        if key not in self.cache:
            try:
                self.cache[key] = self.store.load_active_with_version(*key)
            except SceneNotFoundError:
                self.cache[key] = (f"unknown scene {ref.scene} ({ref.episode} of project "
                                   f"{ref.project})")
        got = self.cache[key]
        if isinstance(got, str):
            raise _Unmatched(got)
        return got


def _check(clip: Any, ref: _ClipRef, scenes: _Scenes) -> tuple[int, str | None, str] | None:
    """Match one clip: None when it expresses no choice, else (version, current primary,
    chosen take). Raises :class:`_Unmatched` or :class:`_Conflict`."""
    key = str(clip.active_media_reference_key)
    scene, version = scenes.get(ref)
    try:
        beat = scene.beat(ref.beat)
    except KeyError:
        raise _Unmatched(f"scene {ref.scene} has no beat {ref.beat!r}") from None
    changed = key != ref.exported_active
    if key == ref.placeholder:
        if changed:
            raise _Unmatched("the placeholder (no take) is active; clearing a primary "
                             "take from a timeline is not supported")
        return None
    if key not in {t.take_id for t in beat.takes}:
        raise _Unmatched(f"beat {ref.beat} of scene {ref.scene} has no take {key!r}")
    if not changed or beat.primary_take_id == key:
        return None  # no choice expressed, or the store already holds it (re-import)
    if version != ref.version:
        raise _Conflict(f"scene {ref.scene} was conformed from v{ref.version} to v{version} "
                        "since the export; re-export and choose again")
    if beat.primary_take_id != ref.exported_primary:
        raise _Conflict(f"the primary take of beat {ref.beat} changed in the store since "
                        f"the export ({ref.exported_primary!r} -> {beat.primary_take_id!r})")
    if scene.locked:
        raise _Conflict(f"scene {ref.scene} is picture-locked "
                        f"({scene.lock_reason or 'no reason given'})")
    return version, beat.primary_take_id, key


def plan_import(store: Store, timeline_or_path: Any) -> ImportPlan:
    """What importing this timeline (an OTIO object or a file path) would change.

    Reads the store, writes nothing. Every clip is accounted for: unchanged, a change,
    unmatched or a conflict.
    """
    if isinstance(timeline_or_path, str | os.PathLike):
        source: str | None = os.fspath(timeline_or_path)
        timeline = read_timeline(timeline_or_path)
    else:
        require_otio()
        source, timeline = None, timeline_or_path
    plan = ImportPlan(source=source)
    scenes = _Scenes(store)
    choices: dict[tuple[str, str, str, str], list[tuple[Change, int]]] = {}
    for index, clip in enumerate(timeline.find_clips()):
        plan.clips += 1
        name = str(clip.name)
        meta = plain(clip.metadata.get(NAMESPACE))
        key = str(clip.active_media_reference_key)
        ref: _ClipRef | None = None
        try:
            ref = _clip_ref(meta)
            got = _check(clip, ref, scenes)
        except (_Unmatched, _Conflict) as e:
            kind = "unmatched" if isinstance(e, _Unmatched) else "conflict"
            (plan.unmatched if kind == "unmatched" else plan.conflicts).append(
                Skip(kind, name, index, str(e), ref.scene if ref else None,
                     ref.beat if ref else None, key))
            continue
        if got is None:
            plan.unchanged += 1
            continue
        version, current, chosen = got
        change = Change(ref.project, ref.episode, ref.scene, ref.beat, version, current,
                        chosen, name)
        choices.setdefault((ref.project, ref.episode, ref.scene, ref.beat), []).append(
            (change, index))
    for (_, _, scene_id, beat_id), picks in choices.items():
        takes = {c.to_take for c, _ in picks}
        if len(takes) == 1:
            plan.changes.append(picks[0][0])
            plan.unchanged += len(picks) - 1
            continue
        for change, index in picks:
            plan.conflicts.append(Skip(
                "conflict", change.clip, index,
                f"beat {beat_id} appears in {len(picks)} clips choosing different takes "
                f"({', '.join(sorted(takes))})", scene_id, beat_id, change.to_take))
    return plan


def _grouped(changes: Iterable[Change]) -> dict[tuple[str, str, str, int], list[Change]]:
    groups: dict[tuple[str, str, str, int], list[Change]] = {}
    for c in changes:
        groups.setdefault((c.project, c.episode, c.scene, c.version), []).append(c)
    return groups


def apply_import(store: Store, plan: ImportPlan, *, actor: str | None = None) -> ApplyResult:
    """Write the plan's changes: one status write (one journal record) per scene.

    Each write names the exported version (``expected_version``) and re-checks, under
    the batch lock, that every beat still has the primary take the plan saw; if not,
    that scene is refused as a whole (nothing written for it) and reported in
    ``failed``; so is a scene picture-locked since the plan. Other scenes still apply.
    """
    who = resolve_actor(actor)
    result = ApplyResult(actor=who)
    for (project, episode, scene_id, version), group in _grouped(plan.changes).items():

        def mutate(scene: Scene, group: list[Change] = group) -> None:
            if scene.locked:  # locked between the plan and now: the cut is frozen
                raise SceneLockedError(scene.scene_id, scene.lock_reason, scene.locked_by)
            for c in group:
                beat = scene.beat(c.beat)
                if beat.primary_take_id != c.from_take:
                    raise ConflictError(
                        f"primary take of beat {c.beat} in scene {c.scene} is now "
                        f"{beat.primary_take_id!r}, not {c.from_take!r}",
                        hint="re-run the import to see the current state")
                if c.to_take not in {t.take_id for t in beat.takes}:
                    raise ValidationError("take_id", f"beat {c.beat} has no take {c.to_take!r}")
                beat.primary_take_id = c.to_take

        try:
            store.save_active_scene_status(project, episode, scene_id,
                                           expected_version=version, mutate=mutate,
                                           actor=who, op=IMPORT_OP, create_missing=False)
        except (ConflictError, LockTimeoutError, ValidationError, SceneNotFoundError) as e:
            result.failed.extend((c, str(e)) for c in group)
            continue
        result.applied.extend(group)
    return result


__all__ = ["ApplyResult", "Change", "ImportPlan", "Skip", "apply_import", "plan_import",
           "read_timeline"]
