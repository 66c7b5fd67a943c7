"""The Store: every operation of SPEC §5.1, written once over any backend.

Writer semantics live here and nowhere else. A backend only offers a locked batch
transaction (``backends/base.py``), so the filesystem and PostgreSQL stores share the
structure guard, the runner overlay, versions, picture lock, journal and recovery.

Concurrency rules, in one place:

* every mutation runs inside ``backend.batch(...)`` — the per-batch exclusive lock;
* a write names the version it was based on (``expected_version`` /
  ``expected_active``) and is refused with :class:`SceneVersionConflictError` when the
  active pointer has moved;
* the status writer applies the caller's closure to a *fresh* load under the lock,
  so concurrent writers merge instead of clobbering (no lost update);
* every successful mutation appends one journal record, last (body → manifest →
  journal), and a failure anywhere before the commit undoes the block's writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from clapboard import codec
from clapboard import versions as _versions
from clapboard.backends.base import Backend, BatchTx, BodyState, Doc, OptimisticMiss, Report
from clapboard.changes import beat_changes, changed_paths, take_field_changes
from clapboard.errors import (
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneStructureImmutableError,
    SceneVersionConflictError,
    ValidationError,
)
from clapboard.fingerprint import (
    runner_overlay,
    structural_mutations,
    structure_changed,
)
from clapboard.manifest import active_of, artifact_for
from clapboard.models import (
    MadeBeats,
    Scene,
    changed_beats,
    check_stored_scene,
    lazy_scene,
    shared_dict,
    stored_view,
    take_field_edits,
    validate_changed,
)
from clapboard.paths import (
    episode_token,
    flat_name,
    resolve_actor,
    validate_id,
    validate_project,
)
from clapboard.plan import plan_scenes, restamp_max_takes

DEFAULT_LOCK_TIMEOUT = 30.0

Mutate = Callable[[Scene], object]
PostWrite = Callable[[Scene], object]


_SECOND: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def utc_now() -> str:
    """An ISO-8601 UTC timestamp, millisecond precision (what
    ``datetime.now(UTC).isoformat(timespec="milliseconds")`` gives; the text of the
    whole second is kept, as a journal record takes one per save)."""
    global _SECOND
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    kept = _SECOND  # one read of an immutable pair: threads never mix two seconds
    if kept[0] != second:
        kept = _SECOND = (second, datetime.fromtimestamp(second, UTC).isoformat()[:19])
    return f"{kept[1]}.{_MILLIS[nanos // 1_000_000]}+00:00"


_MILLIS = tuple(f"{ms:03d}" for ms in range(1000))  # formatted once, not per record


def default_lock_timeout() -> float:
    env = os.environ.get("CLAPBOARD_LOCK_TIMEOUT")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ValidationError(
                "CLAPBOARD_LOCK_TIMEOUT", f"must be a number of seconds, got {env!r}"
            ) from None
        if value < 0:
            raise ValidationError("CLAPBOARD_LOCK_TIMEOUT", f"must be >= 0, got {env!r}")
        return value
    return DEFAULT_LOCK_TIMEOUT


# (project, episode, batch id) -> episode token, of names found valid.
_VALID_NAMES: dict[tuple[str, type, object, str | None], str] = {}


class Store:
    """The backend-neutral store. Open one with :func:`clapboard.open_store`."""

    def __init__(self, backend: Backend, *, lock_timeout: float | None = None) -> None:
        self.backend = backend
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else lock_timeout

    def __repr__(self) -> str:
        return f"Store({self.backend.location!r})"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- names ---------------------------------------------------------------------------

    @staticmethod
    def _names(project: str, episode: object, batch_id: str | None = None) -> tuple[str, str]:
        # Names already found valid are remembered, keyed with the episode's type too:
        # 1 == True and 1 == 1.0 in Python, but a bool or float episode is refused.
        key = (project, type(episode), episode, batch_id)
        try:
            ep = _VALID_NAMES.get(key)
        except TypeError:  # an unhashable name: the checks below say what is wrong with it
            ep = None
        if ep is not None:
            return project, ep
        validate_project(project)
        ep = episode_token(episode)
        if batch_id is not None:
            validate_id(batch_id, "batch_id")
        if (type(project) is str and type(episode) in (int, str)
                and (batch_id is None or type(batch_id) is str) and len(_VALID_NAMES) < 10_000):
            _VALID_NAMES[key] = ep
        return project, ep

    def transaction(self, project: str, episode: object, batch_id: str,
                    op: str = "") -> AbstractContextManager[BatchTx]:
        """Hold one batch exclusively (advanced use; every writer goes through this).
        The names are checked here; the backend's context manager is returned as is."""
        _, ep = self._names(project, episode, batch_id)
        return self.backend.batch(project, ep, batch_id, timeout=self.lock_timeout, op=op)

    @staticmethod
    def _record(op: str, version: int | None, actor: str, detail: Doc) -> Doc:
        return {"at": utc_now(), "actor": actor, "op": op, "version": version, "detail": detail}

    def _journal(self, tx: BatchTx, op: str, version: int | None, actor: str,
                 detail: Doc) -> Doc:
        return tx.append_journal(self._record(op, version, actor, detail))

    # -- reads ---------------------------------------------------------------------------

    def list_projects(self) -> list[str]:
        return self.backend.list_projects()

    def list_episodes(self, project: str) -> list[str]:
        validate_project(project)
        return self.backend.list_episodes(project)

    def list_batches(self, project: str, episode: object) -> list[str]:
        """Batch ids with a flat body or a manifest, sorted (sidecars never listed)."""
        _, ep = self._names(project, episode)
        return self.backend.list_batches(project, ep)

    def manifest(self, project: str, episode: object, batch_id: str) -> Doc | None:
        """The validated manifest, or None for an un-versioned (flat) batch."""
        _, ep = self._names(project, episode, batch_id)
        return self.backend.read_manifest(project, ep, batch_id)

    def _scene_of(self, state: BodyState | None, project: str, ep: str, batch_id: str,
                  version: int, manifest: Doc | None) -> Scene:
        """A scene over a stored body (validated once per stored state; beats built
        lazily), naming where the body lives in any error."""
        return self._lazy_of(state, project, ep, batch_id, version, manifest)[0]

    def _lazy_of(self, state: BodyState | None, project: str, ep: str, batch_id: str,
                 version: int, manifest: Doc | None) -> tuple[Scene, MadeBeats | None]:
        """:meth:`_scene_of`, and how its beats were made when it was built ahead."""
        if state is None:
            what = (f"no scene for batch {batch_id} ({ep} of project {project})"
                    if manifest is None else f"no scene body for batch {batch_id} v{version}")
            raise SceneNotFoundError(
                what, path=self.backend.locate(project, ep, batch_id, version, manifest),
                hint="check the names with `clapboard ls`",
            )
        self._check_state(state, project, ep, batch_id, version, manifest)
        built = state.spare() if state.spares else None  # (one built ahead: see spare)
        return built if built is not None else (lazy_scene(state.doc), None)

    def _check_state(self, state: BodyState, project: str, ep: str, batch_id: str,
                     version: int, manifest: Doc | None) -> None:
        """Identity, and every field validated once per stored state (errors name the
        body's location)."""
        doc = state.doc
        if doc.get("scene_id") != batch_id:
            raise SceneIdentityMismatchError(
                batch_id, doc.get("scene_id"), what="scene body",
                path=self.backend.locate(project, ep, batch_id, version, manifest))
        if not state.valid:
            try:
                with codec.gc_paused():
                    check_stored_scene(doc)  # every field checked, nothing built
            except ValidationError as e:
                raise ValidationError(
                    e.field, f"{e.problem} (batch {batch_id} v{version})",
                    path=self.backend.locate(project, ep, batch_id, version, manifest),
                ) from None
            state.valid = True

    def load_active_with_version(self, project: str, episode: object,
                                 batch_id: str) -> tuple[Scene, int]:
        """The active body and the version it came from, from one manifest read."""
        _, ep = self._names(project, episode, batch_id)
        manifest = self.backend.read_manifest(project, ep, batch_id)
        version = active_of(manifest)
        state = self.backend.read_state(project, ep, batch_id, version, manifest)
        if state is None and manifest is None:
            raise SceneNotFoundError(
                f"no scene for batch {batch_id} ({ep} of project {project}): no manifest and "
                "no flat body", hint="check the names with `clapboard ls`",
            )
        return self._scene_of(state, project, ep, batch_id, version, manifest), version

    def load_active(self, project: str, episode: object, batch_id: str) -> Scene:
        return self.load_active_with_version(project, episode, batch_id)[0]

    def load_version(self, project: str, episode: object, batch_id: str,
                     version: int) -> Scene:
        """Any registered version's body."""
        _, ep = self._names(project, episode, batch_id)
        manifest = self.backend.read_manifest(project, ep, batch_id)
        state = self.backend.read_state(project, ep, batch_id, version, manifest)
        return self._scene_of(state, project, ep, batch_id, version, manifest)

    def load_raw(self, project: str, episode: object, batch_id: str,
                 version: int | None = None) -> tuple[Doc, int]:
        """A body as a plain dict (no models), and its version (default: active)."""
        _, ep = self._names(project, episode, batch_id)
        manifest = self.backend.read_manifest(project, ep, batch_id)
        v = active_of(manifest) if version is None else version
        doc = self.backend.read_body(project, ep, batch_id, v, manifest)
        if doc is None:
            self._scene_of(None, project, ep, batch_id, v, manifest)  # raises, naming it
        assert doc is not None
        return doc, v

    def history(self, project: str, episode: object, batch_id: str) -> list[Doc]:
        """The batch's journal: one record per successful mutation, in seq order."""
        _, ep = self._names(project, episode, batch_id)
        return self.backend.read_journal(project, ep, batch_id)

    # -- the common start of every writer --------------------------------------------------

    @staticmethod
    def _locked_active(tx: BatchTx, expected_version: int | None) -> tuple[Doc | None, int, str]:
        """Under the lock: (manifest, the version to write, its artifact), refusing with
        ``SceneVersionConflictError`` when ``expected_version`` is no longer active."""
        manifest = tx.read_manifest()
        current = active_of(manifest)
        version = current if expected_version is None else expected_version
        if current != version:
            raise SceneVersionConflictError(tx.batch_id, version, current)
        return manifest, version, artifact_for(manifest, tx.episode, tx.batch_id, version)

    def _missing(self, tx: BatchTx, manifest: Doc | None, version: int,
                 artifact: str) -> SceneNotFoundError:
        where = self.backend.locate(tx.project, tx.episode, tx.batch_id, version, manifest)
        if manifest is None:
            return SceneNotFoundError(
                f"no scene for batch {tx.batch_id} ({tx.episode} of project {tx.project})",
                path=where, hint="check the names with `clapboard ls`")
        return SceneNotFoundError(
            f"registered body {artifact} of batch {tx.batch_id} v{version} is missing",
            path=where, hint="restore it from a backup or conform to another version")

    # -- Writer 2: the status writer -----------------------------------------------------

    def save_active_scene_status(
        self,
        project: str,
        episode: object,
        batch_id: str,
        *,
        expected_version: int | None,
        mutate: Mutate,
        post_write: PostWrite | None = None,
        actor: str | None = None,
        op: str = "status",
        create_missing: bool = True,
    ) -> Scene:
        """Apply ``mutate`` to a fresh load of the active body under the batch lock.

        Refuses (writing nothing) when the active version is no longer
        ``expected_version`` or when the closure changed the structure. A cold start
        (no body, no manifest) materialises ``Scene(scene_id=batch_id)`` first.
        ``post_write`` runs after the body write, still under the lock; if it raises,
        the previous bytes are restored before the exception escapes. A closure that
        changes nothing writes nothing. ``expected_version=None`` means "whatever is
        active under the lock" (for operations that need no load first);
        ``create_missing=False`` refuses the cold start with ``SceneNotFoundError``
        (operator actions on a scene that does not exist).
        Returns the scene as written.

        On a backend that offers it (PostgreSQL, unless opened with
        ``optimistic=False``), a save without ``post_write`` is first tried against the
        state this process last saw, and commits only if no other writer committed since
        — one round trip instead of two. When another writer got there first, nothing
        is written and the closure runs again, on the newest state, under the lock: a
        closure must only change the scene it is given (a side effect of its own may
        happen twice).
        """
        who = resolve_actor(actor)
        _, ep = self._names(project, episode, batch_id)
        args = (batch_id, expected_version, mutate, post_write, who, op, create_missing)
        backend = self.backend
        if post_write is None and backend.optimistic:
            attempt = backend.optimistic_batch(project, ep, batch_id,
                                               timeout=self.lock_timeout, op=op)
            if attempt is not None:
                try:
                    with attempt as tx:
                        return self._save_status(tx, *args)
                except OptimisticMiss:
                    pass  # nothing was written: again, under the lock
        with backend.batch(project, ep, batch_id, timeout=self.lock_timeout, op=op) as tx:
            return self._save_status(tx, *args)

    def _save_status(self, tx: BatchTx, batch_id: str, expected_version: int | None,
                     mutate: Mutate, post_write: PostWrite | None, who: str, op: str,
                     create_missing: bool) -> Scene:
        project = tx.project
        manifest, version, artifact = self._locked_active(tx, expected_version)
        state = tx.read_state(version, manifest, artifact)
        if state is None:
            if manifest is not None or not create_missing:
                raise self._missing(tx, manifest, version, artifact)
            scene = Scene(scene_id=batch_id)
            mutate(scene)
            scene.validate()
            new = scene.to_dict()
            tx.create_body(version, new, artifact)
            if post_write is not None:
                post_write(scene)
            self._journal(tx, "create", version, who,
                          {"changes": changed_paths({}, new), "via": op})
            return scene
        # The stored body is validated (once per stored state) before the closure
        # sees it, so a corrupt body is reported as such, naming its file. The scene
        # is lazy: only the beats the closure uses are built, each from its own copy.
        scene, made = self._lazy_of(state, project, tx.episode, batch_id, version, manifest)
        mutate(scene)
        after: Callable[[], Doc] | None = None
        edits = take_field_edits(scene, state.doc, made)  # validated, structure as stored
        if edits is not None:  # only take fields assigned: the changes are read off
            changes, after = take_field_changes(state.doc, edits)
        else:
            # Every beat the closure built or assigned, and the scene, validated;
            # the positions of those beats are the only ones that need looking at.
            touched = validate_changed(scene, state.doc.get("beats") or [])
            if structure_changed(scene, state.doc, touched):
                raise SceneStructureImmutableError(
                    batch_id, version, structural_mutations(state.doc, scene.to_dict())
                )
            assert touched is not None
            with codec.gc_paused():
                new = scene.dict_with_beats([stored_view(scene.beats[i]) for i in touched])
                changes = beat_changes(state.doc, new, touched)
        if not changes:  # nothing to write, nothing to journal
            if post_write is not None:
                post_write(scene)
            return scene
        record = self._record(op, version, who, {"changes": changes})
        if post_write is None:
            tx.commit_changes(version, artifact, state, lambda: shared_dict(scene), record,
                              after)
        else:  # the hook may fail: write the whole body, so a rollback restores it
            tx.write_body(version, shared_dict(scene), artifact)
            post_write(scene)
            tx.append_journal(record)
        return scene

    # -- Writer 1: the runner overlay ----------------------------------------------------

    def save_active_scene(
        self,
        project: str,
        episode: object,
        batch_id: str,
        scene: Scene,
        *,
        expected_version: int,
        actor: str | None = None,
    ) -> None:
        """Persist runner-owned status (takes, primary take, phantom recoveries,
        ``inputs_fingerprint``, ``reroll_cleared_stale``) onto the active body.

        Structure on disk is kept; a runner scene whose structure differs
        (``structural_mutations``) is refused. Structural keys absent on disk are
        enriched only on un-versioned batches. A flat cold start writes the runner's
        whole scene as the implicit v1.
        """
        who = resolve_actor(actor)
        scene.validate()  # what the runner built or assigned (untouched lazy beats are valid)
        with self.transaction(project, episode, batch_id, "runner") as tx:
            manifest, current, artifact = self._locked_active(tx, expected_version)
            state = tx.read_state(current, manifest, artifact)
            if state is None:
                if manifest is not None:
                    raise self._missing(tx, manifest, current, artifact)
                if scene.scene_id != batch_id:
                    raise SceneIdentityMismatchError(batch_id, scene.scene_id, what="runner scene")
                runner = scene.to_dict()
                tx.create_body(current, runner, artifact)
                self._journal(tx, "create", current, who,
                              {"changes": changed_paths({}, runner), "via": "runner"})
                return
            self._check_state(state, project, tx.episode, batch_id, current, manifest)
            doc = state.doc  # shared: read only (the overlay copies it)
            # A beat of the runner's scene that is still the stored beat it was loaded
            # from (an untouched lazy beat), or that equals the stored beat, merges to
            # that beat unchanged: only the other beats are compared, merged, validated
            # and diffed (a runner holds its scene and changes a take or two per save).
            raws = doc.get("beats") or []
            touched = changed_beats(scene, raws)
            if touched is None:  # another number of beats: compare them all (and refuse)
                disk, runner = doc, scene.to_dict()
            else:
                differing = [(i, d) for i in touched
                             if (d := stored_view(scene.beats[i])) != raws[i]]
                touched = [i for i, _ in differing]
                disk = {**doc, "beats": [raws[i] for i in touched]}
                runner = scene.dict_with_beats([d for _, d in differing])
            mutations = structural_mutations(disk, runner)
            if mutations:
                raise SceneStructureImmutableError(batch_id, current, mutations)
            merged = runner_overlay(disk, runner, allow_structural_enrichment=manifest is None)
            check_stored_scene(merged)  # validate the merge before writing it
            changes = changed_paths(disk, merged)
            if not changes:
                return

            def whole() -> Doc:
                if touched is None:
                    return merged
                beats = list(raws)
                for j, i in enumerate(touched):
                    beats[i] = merged["beats"][j]
                return {**merged, "beats": beats}

            tx.commit_changes(current, artifact, state, whole,
                              self._record("runner", current, who, {"changes": changes}))

    # -- plans ---------------------------------------------------------------------------

    def init_scenes_from_plan(
        self,
        project: str,
        episode: object,
        plan: Doc,
        max_takes: int = 3,
        *,
        persist: bool = True,
        actor: str | None = None,
        progress: Callable[[int, int], object] | None = None,
    ) -> list[Scene]:
        """Idempotent create of one scene per plan sequence; re-stamp ``max_takes`` on
        scenes that exist (on their active body, through the status writer).
        ``persist=False`` writes nothing. Returns the scenes as they stand after."""
        _, ep = self._names(project, episode)
        fresh = plan_scenes(project, ep, plan, max_takes)
        existing = set(self.backend.list_batches(project, ep))
        who = resolve_actor(actor)
        result: list[Scene] = []
        for n, scene in enumerate(fresh, 1):
            sid = scene.scene_id
            if sid in existing:
                result.append(self._restamp(project, ep, sid, max_takes, persist, who))
            elif not persist:
                result.append(scene)
            else:
                result.append(self._create_or_restamp(project, ep, scene, max_takes, who))
            if progress is not None:
                progress(n, len(fresh))
        return result

    def _restamp(self, project: str, ep: str, sid: str, max_takes: int, persist: bool,
                 who: str) -> Scene:
        if not persist:
            scene = self.load_active(project, ep, sid)
            restamp_max_takes(scene, max_takes)
            return scene
        return self.save_active_scene_status(
            project, ep, sid, expected_version=None,
            mutate=lambda s: restamp_max_takes(s, max_takes), actor=who, op="restamp",
            create_missing=False,
        )

    def _create_or_restamp(self, project: str, ep: str, scene: Scene, max_takes: int,
                           who: str) -> Scene:
        sid = scene.scene_id
        with self.transaction(project, ep, sid, "init") as tx:
            manifest = tx.read_manifest()
            if manifest is None and tx.read_body(1, None) is None:
                doc = scene.to_dict()
                tx.create_body(1, doc, flat_name(ep, sid))
                self._journal(tx, "init", 1, who, {"beats": len(scene.beats),
                                                   "max_takes": max_takes})
                return scene
        # Created by someone else between the listing and the lock: re-stamp instead.
        return self._restamp(project, ep, sid, max_takes, True, who)

    # -- versions, lock, recovery (services in versions.py / recovery.py) ----------------

    def write_scene_candidate(self, project: str, episode: object, requested_batch_id: str,
                              scene: Scene, *, note: str | None = None, activate: bool = False,
                              actor: str | None = None) -> int:
        """Register ``scene`` as a new immutable version (or return the equal one)."""
        return _versions.write_candidate(self, project, episode, requested_batch_id, scene,
                                         note=note, activate=activate, actor=actor)

    def conform(self, project: str, episode: object, batch_id: str, version: int, *,
                expected_active: int | None = None, reason: str | None = None,
                actor: str | None = None) -> int:
        """Move the active pointer to ``version``; returns it."""
        return _versions.move_pointer(self, project, episode, batch_id, version,
                                      expected_active=expected_active, reason=reason,
                                      actor=actor, op="conform")

    def revert(self, project: str, episode: object, batch_id: str, *,
               expected_active: int | None = None, reason: str | None = None,
               actor: str | None = None) -> int:
        """Move the pointer back to where the last move came from; returns it."""
        return _versions.move_pointer(self, project, episode, batch_id, None,
                                      expected_active=expected_active, reason=reason,
                                      actor=actor, op="revert")

    def versions(self, project: str, episode: object, batch_id: str) -> list[Doc]:
        return _versions.list_versions(self, project, episode, batch_id)

    def diff(self, project: str, episode: object, batch_id: str, a: int, b: int) -> Doc:
        return _versions.diff_versions(self, project, episode, batch_id, a, b)

    def preview(self, project: str, episode: object, batch_id: str,
                version: int | None = None) -> Doc:
        """The diff a conform to ``version`` (None: a revert) would make, without moving."""
        return _versions.preview_move(self, project, episode, batch_id, version)

    def lock_scene(self, project: str, episode: object, batch_id: str, reason: str, *,
                   expected_version: int | None = None, actor: str | None = None) -> Scene:
        """Picture lock; ``expected_version`` refuses it when the active version moved."""
        return _versions.set_lock(self, project, episode, batch_id, True, reason, actor,
                                  expected_version=expected_version)

    def unlock_scene(self, project: str, episode: object, batch_id: str, *,
                     expected_version: int | None = None, actor: str | None = None) -> Scene:
        return _versions.set_lock(self, project, episode, batch_id, False, None, actor,
                                  expected_version=expected_version)

    def recover_stale_takes(self, project: str, episode: object, *,
                            older_than_s: float = 300, now: datetime | str | None = None,
                            actor: str | None = None) -> list[tuple[str, str, str]]:
        from clapboard.recovery import recover_stale_takes

        return recover_stale_takes(self, project, episode, older_than_s=older_than_s, now=now,
                                   actor=actor)

    # -- operator actions (CLI, web UI, OTIO import share these) ------------------------

    def set_primary_take(self, project: str, episode: object, batch_id: str, beat_id: str,
                         take_id: str | None, *, expected_version: int | None = None,
                         refuse_locked: bool = False, actor: str | None = None) -> Scene:
        """Pick a beat's primary take. ``refuse_locked`` (the web UI, the CLI) raises
        :class:`SceneLockedError` on a picture-locked scene; runners keep the seed's rule
        that a lock is inert for status writes. The check runs on the fresh load under
        the batch lock, so it cannot race an operator locking the scene."""
        def mutate(scene: Scene) -> None:
            if refuse_locked:
                _refuse_if_locked(scene)
            beat = _beat_or_error(scene, beat_id)
            if take_id is not None and take_id not in {t.take_id for t in beat.takes}:
                raise ValidationError("take_id", f"beat {beat_id} has no take {take_id!r}")
            beat.primary_take_id = take_id

        return self.save_active_scene_status(project, episode, batch_id,
                                             expected_version=expected_version, mutate=mutate,
                                             actor=actor, op="primary", create_missing=False)

    def decide_board(self, project: str, episode: object, batch_id: str, beat_id: str,
                     status: str, *, note: str | None = None,
                     expected_version: int | None = None, refuse_locked: bool = False,
                     actor: str | None = None) -> Scene:
        """Approve / reject (or reset) a beat's board, recording who and when.
        ``refuse_locked`` as in :meth:`set_primary_take`."""
        from clapboard.models import BOARD_STATUSES, Board

        if not isinstance(status, str) or status not in BOARD_STATUSES:
            raise ValidationError("status", f"unknown board status {status!r}")
        who = resolve_actor(actor)

        def mutate(scene: Scene) -> None:
            if refuse_locked:
                _refuse_if_locked(scene)
            beat = _beat_or_error(scene, beat_id)
            if beat.board is None:
                beat.board = Board()
            beat.board.status = status
            beat.board.note = note
            beat.board.decided_by = who
            beat.board.decided_at = utc_now()

        return self.save_active_scene_status(project, episode, batch_id,
                                             expected_version=expected_version, mutate=mutate,
                                             actor=who, op="board", create_missing=False)

    # -- whole-store -----------------------------------------------------------------------

    def fsck(self, project: str | None = None, *, repair: bool = False) -> Report:
        """Check every file / row; ``repair`` fixes only what is safe (see SPEC §5.1)."""
        if project is not None:
            validate_project(project)
        return self.backend.fsck(project, repair=repair)

    def migrate(self, project: str | None = None) -> list[str]:
        """Rewrite documents of older schema versions in the current one."""
        if project is not None:
            validate_project(project)
        return self.backend.migrate(project)


def _beat_or_error(scene: Scene, beat_id: str) -> Any:
    try:
        return scene.beat(beat_id)
    except KeyError:
        raise ValidationError("beat_id", f"scene {scene.scene_id} has no beat {beat_id!r}") \
            from None


def _refuse_if_locked(scene: Scene) -> None:
    if scene.locked:
        raise SceneLockedError(scene.scene_id, scene.lock_reason, scene.locked_by)
