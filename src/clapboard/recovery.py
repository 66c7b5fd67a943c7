"""Stale-take recovery: runners that died leave takes ``running`` forever.

A ``running`` take whose last sign of life — ``heartbeat_at``, else ``started_at``, else
``created_at`` — is older than the threshold becomes ``stale``, through the status
writer (so it is locked, guarded and journaled like any other status change). The age
is re-checked on the fresh load under the lock: a heartbeat that arrived meanwhile wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from clapboard.errors import ValidationError
from clapboard.models import Scene, Take

if TYPE_CHECKING:
    from clapboard.store import Store


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def last_sign_of_life(take: Take) -> datetime | None:
    for ts in (take.heartbeat_at, take.started_at, take.created_at):
        dt = _parse(ts)
        if dt is not None:
            return dt
    return None


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, str):
        parsed = _parse(now)
        if parsed is None:
            raise ValidationError("now", f"not an ISO-8601 timestamp: {now!r}")
        return parsed
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def stale_takes(scene: Scene, cutoff: datetime) -> list[tuple[str, str]]:
    """(beat_id, take_id) of running takes last seen before ``cutoff``.

    A running take with no timestamp at all is stale: nothing says it is alive.
    """
    out = []
    for beat in scene.beats:
        for take in beat.takes:
            if take.status == "running":
                seen = last_sign_of_life(take)
                if seen is None or seen < cutoff:
                    out.append((beat.beat_id, take.take_id))
    return out


def recover_stale_takes(store: Store, project: str, episode: object, *, older_than_s: float,
                        now: datetime | str | None, actor: str | None
                        ) -> list[tuple[str, str, str]]:
    if isinstance(older_than_s, bool) or not isinstance(older_than_s, int | float) \
            or older_than_s < 0:
        raise ValidationError("older_than_s", f"must be a number >= 0, got {older_than_s!r}")
    moment = _now(now)
    cutoff = moment - timedelta(seconds=older_than_s)
    stamp = moment.isoformat(timespec="milliseconds")
    recovered: list[tuple[str, str, str]] = []
    for batch_id in store.list_batches(project, episode):
        scene = store.load_active(project, episode, batch_id)
        if not stale_takes(scene, cutoff):
            continue  # cheap unlocked pre-check; the decision is re-made under the lock
        found: list[tuple[str, str]] = []

        def mutate(s: Scene, found: list[tuple[str, str]] = found) -> None:
            found.clear()
            for beat_id, take_id in stale_takes(s, cutoff):
                take = s.beat(beat_id).take(take_id)
                take.status = "stale"
                take.finished_at = take.finished_at or stamp
                take.error = take.error or (
                    f"stale: no heartbeat for over {older_than_s:g}s (recovered {stamp})")
                found.append((beat_id, take_id))

        store.save_active_scene_status(project, episode, batch_id, expected_version=None,
                                       mutate=mutate, actor=actor, op="recover-stale",
                                       create_missing=False)
        recovered.extend((batch_id, b, t) for b, t in found)
    return recovered
