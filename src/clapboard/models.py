"""The production tree: Scene → Beat → Take, and each beat's Board.

Models are plain mutable dataclasses: the status writer applies a caller's closure to
a freshly loaded scene, so fields are assigned in place. They know nothing of files.

* ``to_dict()`` / ``from_dict()`` round-trip exactly: ``from_dict(to_dict(x)) == x``.
* Keys a model does not know are kept in ``extra`` and written back unchanged, so a
  newer writer's field survives an older reader's status save.
* Construction validates (``__post_init__``) and so does ``from_dict``; errors are
  :class:`~clapboard.errors.ValidationError` naming the dotted field path, such as
  ``beats[2].takes[0].status``. Because models are mutable, the store validates
  again before it writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from clapboard.errors import ValidationError

TakeStatus: TypeAlias = Literal["pending", "running", "succeeded", "failed", "stale", "cancelled"]
BoardStatus: TypeAlias = Literal["pending", "approved", "rejected", "stale"]
TAKE_STATUSES: frozenset[str] = frozenset(
    ("pending", "running", "succeeded", "failed", "stale", "cancelled")
)
BOARD_STATUSES: frozenset[str] = frozenset(("pending", "approved", "rejected", "stale"))

JsonDict: TypeAlias = dict[str, Any]


# -- small checks, each naming the field ------------------------------------------------


def _nonempty_str(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(name, f"must be a non-empty string, got {value!r}")


def _opt_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(name, f"must be a string or null, got {type(value).__name__}")


def _opt_time(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(name, f"must be an ISO-8601 string or null, got {value!r}")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, f"not an ISO-8601 timestamp: {value!r}") from None


def _int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(name, f"must be an integer >= {minimum}, got {value!r}")


def _dict(name: str, value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError(name, f"must be an object, got {type(value).__name__}")


def _list(name: str, value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError(name, f"must be a list, got {type(value).__name__}")


def _str_list(name: str, value: object) -> None:
    _list(name, value)
    assert isinstance(value, list)
    for i, item in enumerate(value):
        if not isinstance(item, str | os.PathLike):
            raise ValidationError(f"{name}[{i}]", f"must be a string path, got {item!r}")


def _within(prefix: str, err: ValidationError) -> ValidationError:
    """Re-raise a nested model's error with the parent's path in front of its field."""
    return ValidationError(f"{prefix}.{err.field}" if err.field else prefix, err.problem)


def _split(cls_name: str, data: object, known: tuple[str, ...]) -> tuple[JsonDict, JsonDict]:
    if not isinstance(data, dict):
        raise ValidationError("", f"{cls_name} must be an object, got {type(data).__name__}")
    fields = {k: v for k, v in data.items() if k in known}
    extra = {k: v for k, v in data.items() if k not in known}
    return fields, extra


# -- models -----------------------------------------------------------------------------


@dataclass
class Take:
    """One generation attempt for a beat."""

    take_id: str
    status: str = "pending"
    attempt: int = 1
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None
    provider: str | None = None
    receipt: JsonDict = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=list)
    error: str | None = None
    metadata: JsonDict = field(default_factory=dict)
    extra: JsonDict = field(default_factory=dict, repr=False)

    _FIELDS = (
        "take_id", "status", "attempt", "created_at", "started_at", "finished_at",
        "heartbeat_at", "provider", "receipt", "outputs", "error", "metadata",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _nonempty_str("take_id", self.take_id)
        if self.status not in TAKE_STATUSES:
            raise ValidationError(
                "status", f"unknown take status {self.status!r} (one of {sorted(TAKE_STATUSES)})"
            )
        _int("attempt", self.attempt, 0)
        for name in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            _opt_time(name, getattr(self, name))
        _opt_str("provider", self.provider)
        _dict("receipt", self.receipt)
        _str_list("outputs", self.outputs)
        _opt_str("error", self.error)
        _dict("metadata", self.metadata)
        _dict("extra", self.extra)

    def to_dict(self) -> JsonDict:
        d: JsonDict = dict(self.extra)
        d.update(
            take_id=self.take_id, status=self.status, attempt=self.attempt,
            created_at=self.created_at, started_at=self.started_at,
            finished_at=self.finished_at, heartbeat_at=self.heartbeat_at,
            provider=self.provider, receipt=self.receipt,
            outputs=[os.fspath(o) if isinstance(o, os.PathLike) else o for o in self.outputs],
            error=self.error, metadata=self.metadata,
        )
        return d

    @classmethod
    def from_dict(cls, data: object) -> Take:
        fields, extra = _split("take", data, cls._FIELDS)
        if "take_id" not in fields:
            raise ValidationError("take_id", "missing")
        return cls(**fields, extra=extra)


@dataclass
class Board:
    """A beat's storyboard frames and the operator's decision on them."""

    status: str = "pending"
    frames: list[Any] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: str | None = None
    note: str | None = None
    metadata: JsonDict = field(default_factory=dict)
    extra: JsonDict = field(default_factory=dict, repr=False)

    _FIELDS = ("status", "frames", "decided_by", "decided_at", "note", "metadata")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.status not in BOARD_STATUSES:
            raise ValidationError(
                "status",
                f"unknown board status {self.status!r} (one of {sorted(BOARD_STATUSES)})",
            )
        _str_list("frames", self.frames)
        _opt_str("decided_by", self.decided_by)
        _opt_time("decided_at", self.decided_at)
        _opt_str("note", self.note)
        _dict("metadata", self.metadata)
        _dict("extra", self.extra)

    def to_dict(self) -> JsonDict:
        d: JsonDict = dict(self.extra)
        d.update(
            status=self.status,
            frames=[os.fspath(f) if isinstance(f, os.PathLike) else f for f in self.frames],
            decided_by=self.decided_by, decided_at=self.decided_at, note=self.note,
            metadata=self.metadata,
        )
        return d

    @classmethod
    def from_dict(cls, data: object) -> Board:
        fields, extra = _split("board", data, cls._FIELDS)
        return cls(**fields, extra=extra)


@dataclass
class Beat:
    """One shot of a scene: its takes, its primary take and its board."""

    beat_id: str
    max_takes: int = 3
    beat_metadata: JsonDict = field(default_factory=dict)
    takes: list[Take] = field(default_factory=list)
    primary_take_id: str | None = None
    phantom_recovery_count: int = 0
    board: Board | None = None
    extra: JsonDict = field(default_factory=dict, repr=False)

    _FIELDS = (
        "beat_id", "max_takes", "beat_metadata", "takes", "primary_take_id",
        "phantom_recovery_count", "board",
    )

    def __post_init__(self) -> None:
        self.validate(deep=False)

    def validate(self, *, deep: bool = True) -> None:
        _nonempty_str("beat_id", self.beat_id)
        _int("max_takes", self.max_takes, 0)
        _dict("beat_metadata", self.beat_metadata)
        _list("takes", self.takes)
        seen: set[str] = set()
        for i, take in enumerate(self.takes):
            if not isinstance(take, Take):
                raise ValidationError(f"takes[{i}]", f"must be a Take, got {type(take).__name__}")
            if deep:
                try:
                    take.validate()
                except ValidationError as e:
                    raise _within(f"takes[{i}]", e) from None
            if take.take_id in seen:
                raise ValidationError(f"takes[{i}].take_id", f"duplicate take id {take.take_id!r}")
            seen.add(take.take_id)
        _opt_str("primary_take_id", self.primary_take_id)
        if self.primary_take_id is not None and self.primary_take_id not in seen:
            raise ValidationError(
                "primary_take_id", f"names no take of this beat: {self.primary_take_id!r}"
            )
        _int("phantom_recovery_count", self.phantom_recovery_count, 0)
        if self.board is not None:
            if not isinstance(self.board, Board):
                raise ValidationError("board", f"must be a Board, got {type(self.board).__name__}")
            if deep:
                try:
                    self.board.validate()
                except ValidationError as e:
                    raise _within("board", e) from None
        _dict("extra", self.extra)

    def take(self, take_id: str) -> Take:
        """The take with ``take_id``; ``KeyError`` if the beat has none."""
        for t in self.takes:
            if t.take_id == take_id:
                return t
        raise KeyError(take_id)

    def to_dict(self) -> JsonDict:
        d: JsonDict = dict(self.extra)
        d.update(
            beat_id=self.beat_id, max_takes=self.max_takes, beat_metadata=self.beat_metadata,
            takes=[t.to_dict() for t in self.takes], primary_take_id=self.primary_take_id,
            phantom_recovery_count=self.phantom_recovery_count,
            board=self.board.to_dict() if self.board is not None else None,
        )
        return d

    @classmethod
    def from_dict(cls, data: object) -> Beat:
        fields, extra = _split("beat", data, cls._FIELDS)
        if "beat_id" not in fields:
            raise ValidationError("beat_id", "missing")
        raw_takes = fields.pop("takes", [])
        _list("takes", raw_takes)
        takes = []
        for i, t in enumerate(raw_takes):
            try:
                takes.append(Take.from_dict(t))
            except ValidationError as e:
                raise _within(f"takes[{i}]", e) from None
        raw_board = fields.pop("board", None)
        board = None
        if raw_board is not None:
            try:
                board = Board.from_dict(raw_board)
            except ValidationError as e:
                raise _within("board", e) from None
        return cls(**fields, takes=takes, board=board, extra=extra)


@dataclass
class Scene:
    """A scene (batch): its ordered beats, metadata and picture lock."""

    scene_id: str
    beats: list[Beat] = field(default_factory=list)
    scene_metadata: JsonDict = field(default_factory=dict)
    locked: bool = False
    lock_reason: str | None = None
    locked_by: str | None = None
    locked_at: str | None = None
    extra: JsonDict = field(default_factory=dict, repr=False)

    _FIELDS = (
        "scene_id", "beats", "scene_metadata", "locked", "lock_reason", "locked_by",
        "locked_at",
    )

    def __post_init__(self) -> None:
        self.validate(deep=False)

    def validate(self, *, deep: bool = True) -> None:
        _nonempty_str("scene_id", self.scene_id)
        _list("beats", self.beats)
        seen: set[str] = set()
        for i, beat in enumerate(self.beats):
            if not isinstance(beat, Beat):
                raise ValidationError(f"beats[{i}]", f"must be a Beat, got {type(beat).__name__}")
            if deep:
                try:
                    beat.validate()
                except ValidationError as e:
                    raise _within(f"beats[{i}]", e) from None
            if beat.beat_id in seen:
                raise ValidationError(f"beats[{i}].beat_id", f"duplicate beat id {beat.beat_id!r}")
            seen.add(beat.beat_id)
        _dict("scene_metadata", self.scene_metadata)
        if not isinstance(self.locked, bool):
            raise ValidationError("locked", f"must be true or false, got {self.locked!r}")
        _opt_str("lock_reason", self.lock_reason)
        _opt_str("locked_by", self.locked_by)
        _opt_time("locked_at", self.locked_at)
        _dict("extra", self.extra)

    def beat(self, beat_id: str) -> Beat:
        """The beat with ``beat_id``; ``KeyError`` if the scene has none."""
        for b in self.beats:
            if b.beat_id == beat_id:
                return b
        raise KeyError(beat_id)

    def to_dict(self) -> JsonDict:
        d: JsonDict = dict(self.extra)
        d.update(
            scene_id=self.scene_id, beats=[b.to_dict() for b in self.beats],
            scene_metadata=self.scene_metadata, locked=self.locked,
            lock_reason=self.lock_reason, locked_by=self.locked_by, locked_at=self.locked_at,
        )
        return d

    @classmethod
    def from_dict(cls, data: object) -> Scene:
        fields, extra = _split("scene", data, cls._FIELDS)
        if "scene_id" not in fields:
            raise ValidationError("scene_id", "missing")
        raw_beats = fields.pop("beats", [])
        _list("beats", raw_beats)
        beats = []
        for i, b in enumerate(raw_beats):
            try:
                beats.append(Beat.from_dict(b))
            except ValidationError as e:
                raise _within(f"beats[{i}]", e) from None
        scene = cls(**fields, beats=beats, extra=extra)
        return scene


__all__ = [
    "BOARD_STATUSES",
    "TAKE_STATUSES",
    "Beat",
    "Board",
    "BoardStatus",
    "Scene",
    "Take",
    "TakeStatus",
]
