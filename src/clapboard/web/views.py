"""What the pages show, built from Store reads (no writes here).

The templates stay dumb: every count, label and media URL is decided here, once,
so the scenes table, the scene page and the JSON API agree on what they report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clapboard.diff import summarize
from clapboard.errors import ClapboardError
from clapboard.models import Beat, Take
from clapboard.store import Store
from clapboard.web.media import Media, MediaLibrary

#: Take statuses in the order people scan them: done, in flight, waiting, trouble.
#: ``plan_shot`` keys worth a line on a beat card, first match is the title.
TITLE_KEYS = ("title", "description", "summary", "action", "prompt")
FACT_KEYS = ("duration_s", "frames", "shot_type", "camera", "lens", "location")


@dataclass
class TakeView:
    take_id: str
    status: str
    attempt: int
    provider: str | None
    primary: bool
    outputs: list[Media]
    error: str | None
    finished_at: str | None

    @property
    def thumb(self) -> Media | None:
        return next((m for m in self.outputs if m.url), self.outputs[0] if self.outputs else None)


@dataclass
class BeatView:
    index: int
    beat_id: str
    title: str
    facts: list[tuple[str, str]]
    board_status: str
    board_note: str | None
    decided_by: str | None
    decided_at: str | None
    frames: list[Media]
    takes: list[TakeView]
    primary_take_id: str | None
    max_takes: int

    @property
    def primary(self) -> TakeView | None:
        return next((t for t in self.takes if t.primary), None)

    @property
    def hero(self) -> Media | None:
        """The picture that best represents the beat: primary take, else first frame."""
        candidates: list[Media] = []
        if self.primary is not None:
            candidates += self.primary.outputs
        candidates += self.frames
        return next((m for m in candidates if m.url), candidates[0] if candidates else None)


def _plan_shot(beat: Beat) -> dict[str, Any]:
    shot = beat.beat_metadata.get("plan_shot")
    return shot if isinstance(shot, dict) else {}


def _take_view(project: str, media: MediaLibrary, beat: Beat, take: Take) -> TakeView:
    return TakeView(
        take_id=take.take_id, status=take.status, attempt=take.attempt, provider=take.provider,
        primary=take.take_id == beat.primary_take_id,
        outputs=[media.describe(project, o) for o in take.outputs], error=take.error,
        finished_at=take.finished_at,
    )


def _fact(key: str, value: object) -> tuple[str, str]:
    """``duration_s: 4`` → ``("duration", "4 s")``; other keys lose their underscores."""
    if key.endswith("_s"):
        return key[:-2].replace("_", " "), f"{value} s"
    return key.replace("_", " "), str(value)


def beat_view(project: str, media: MediaLibrary, index: int, beat: Beat) -> BeatView:
    shot = _plan_shot(beat)
    title = next((str(shot[k]) for k in TITLE_KEYS if shot.get(k)), "")
    facts = [_fact(k, shot[k]) for k in FACT_KEYS if shot.get(k) not in (None, "")]
    board = beat.board
    return BeatView(
        index=index, beat_id=beat.beat_id, title=title, facts=facts,
        board_status=board.status if board else "none",
        board_note=board.note if board else None,
        decided_by=board.decided_by if board else None,
        decided_at=board.decided_at if board else None,
        frames=[media.describe(project, f) for f in (board.frames if board else [])],
        takes=[_take_view(project, media, beat, t) for t in beat.takes],
        primary_take_id=beat.primary_take_id, max_takes=beat.max_takes,
    )


@dataclass
class SceneRow:
    """One line of the scenes table; ``error`` set when the scene could not be read."""

    batch_id: str
    version: int | None = None
    versions: int = 0
    beats: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    boards_approved: int = 0
    locked: bool = False
    lock_reason: str | None = None
    error: str | None = None


def scene_rows(store: Store, project: str, episode: str) -> list[SceneRow]:
    rows = []
    for batch in store.list_batches(project, episode):
        try:
            scene, version = store.load_active_with_version(project, episode, batch)
            manifest = store.manifest(project, episode, batch)
        except ClapboardError as e:  # one damaged scene must not hide the others
            rows.append(SceneRow(batch, error=str(e)))
            continue
        rows.append(SceneRow(
            batch, version=version,
            versions=len(manifest.get("versions") or []) if manifest else 1,
            beats=len(scene.beats), counts=scene.take_counts(),
            boards_approved=sum(1 for b in scene.beats if b.board and b.board.status == "approved"),
            locked=scene.locked, lock_reason=scene.lock_reason,
        ))
    return rows


def diff_summary(diff: dict[str, Any]) -> str:
    """``1 beat added, 2 moved, 1 key changed`` (the CLI's one-liner, in plain English)."""
    if diff["identical"]:
        return summarize(diff)
    parts = []
    for key, noun, verb in (("added", "beat", "added"), ("removed", "beat", "removed"),
                            ("moved", "beat", "moved"), ("changed", "key", "changed")):
        n = len(diff[key])
        if n:
            parts.append(f"{n} {noun}{'' if n == 1 else 's'} {verb}")
    return ", ".join(parts) or summarize(diff)
