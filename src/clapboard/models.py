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

import operator
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from clapboard.changes import TakeEdits
from clapboard.codec import gc_paused, json_copy
from clapboard.errors import ValidationError

TakeStatus: TypeAlias = Literal["pending", "running", "succeeded", "failed", "stale", "cancelled"]
BoardStatus: TypeAlias = Literal["pending", "approved", "rejected", "stale"]
TAKE_STATUSES: frozenset[str] = frozenset(
    ("pending", "running", "succeeded", "failed", "stale", "cancelled")
)
BOARD_STATUSES: frozenset[str] = frozenset(("pending", "approved", "rejected", "stale"))
# How people read take states: what is done first, then what is under way, then trouble.
TAKE_STATUS_ORDER: tuple[str, ...] = (
    "succeeded", "running", "pending", "failed", "stale", "cancelled")

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


def _paths_as_str(items: list[Any]) -> list[Any]:
    """A new list of ``items`` with any ``os.PathLike`` written as its string."""
    out = list(items)
    for i, item in enumerate(out):
        if type(item) is not str and isinstance(item, os.PathLike):
            out[i] = os.fspath(item)
    return out


def _within(prefix: str, err: ValidationError) -> ValidationError:
    """Re-raise a nested model's error with the parent's path in front of its field."""
    return ValidationError(f"{prefix}.{err.field}" if err.field else prefix, err.problem)


def _split(cls_name: str, data: object, known: tuple[str, ...]) -> tuple[JsonDict, JsonDict]:
    if not isinstance(data, dict):
        raise ValidationError("", f"{cls_name} must be an object, got {type(data).__name__}")
    fields = {k: v for k, v in data.items() if k in known}
    extra = {k: v for k, v in data.items() if k not in known}
    return fields, extra


def _fast_fields(cls_name: str, data: object,
                 known: frozenset[str]) -> tuple[JsonDict, JsonDict]:
    """Like :func:`_split`, but skips building ``extra`` when every key is known.

    The first dict returned may be ``data`` itself: callers only read it.
    """
    if type(data) is dict and known.issuperset(data):
        return data, {}
    return _split(cls_name, data, tuple(known))


def _new(cls: type[Any], values: JsonDict) -> Any:
    """An instance with ``values`` as its attributes, without running ``__init__``.

    Used by ``from_dict`` on exact model classes: the caller validates afterwards,
    so the result is indistinguishable from a constructed instance (same fields,
    same defaults, fresh mutable defaults).
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


# Defaults of absent object and list fields where they are only type-checked.
_EMPTY: JsonDict = {}
_NONE: list[Any] = []
_TAKE_TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def _check_take_fields(d: JsonDict) -> None:
    """The rules of a take's own fields over a dict that holds them: a take's
    ``__dict__``, or a stored take (absent keys stand for their defaults). Common
    exact types are accepted inline; anything else goes to the general checks, which
    accept subclasses or raise naming the field."""
    get = d.get
    v: Any = get("take_id")
    if type(v) is not str or not v:
        _nonempty_str("take_id", v)
    v = get("status", "pending")
    if type(v) is not str or v not in TAKE_STATUSES:
        raise ValidationError(
            "status", f"unknown take status {v!r} (one of {sorted(TAKE_STATUSES)})"
        )
    v = get("attempt", 1)
    if type(v) is not int or v < 0:
        _int("attempt", v, 0)
    for name in _TAKE_TIMES:
        v = get(name)
        if v is not None:
            _opt_time(name, v)
    v = get("provider")
    if v is not None and type(v) is not str:
        _opt_str("provider", v)
    v = get("receipt", _EMPTY)
    if type(v) is not dict:
        _dict("receipt", v)
    v = get("outputs", _NONE)
    if type(v) is not list:
        _str_list("outputs", v)
    for o in v:
        if type(o) is not str:
            _str_list("outputs", v)
            break
    v = get("error")
    if v is not None and type(v) is not str:
        _opt_str("error", v)
    v = get("metadata", _EMPTY)
    if type(v) is not dict:
        _dict("metadata", v)


def _unique(kind: str, i: int, ident: str, seen: set[str]) -> None:
    """Add the id of ``{kind}s[i]`` to ``seen``, refusing one already there."""
    if ident in seen:
        raise ValidationError(f"{kind}s[{i}].{kind}_id", f"duplicate {kind} id {ident!r}")
    seen.add(ident)


_NOT_SCALAR: Any = object()  # marks a field that is not a lazy model's scalar


def _lazy_attribute(obj: Any, name: str) -> Any:
    """``__getattr__`` of a lazy model (one that holds only its stored dict, ``_raw``):
    reached only when ordinary lookup fails, that is for a field not built or assigned
    yet. A scalar is answered from the stored dict (immutable: nothing to copy, nothing
    kept, so the model stays untouched); any other field is built (``_build``). The
    class says which are which (``_LAZY``: its scalars with their defaults, and its
    lazily built fields). (The class's ``__getattr__`` itself: no wrapper frame.)"""
    raw = obj.__dict__.get("_raw")
    if raw is None:
        raise AttributeError(name)
    scalars, lazy = type(obj)._LAZY
    default = scalars.get(name, _NOT_SCALAR)
    if default is not _NOT_SCALAR:
        return raw.get(name, default)
    if name not in lazy:
        raise AttributeError(name)
    return obj._build(name)


def _lazy(cls: type[Any], raw: JsonDict) -> Any:
    """A lazy instance of ``cls`` over the validated stored dict ``raw``."""
    obj = object.__new__(cls)
    obj._raw = raw  # an attribute set, cheaper than through ``__dict__`` (no dict made yet)
    return obj


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

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        __getattr__ = _lazy_attribute

    _LAZY: ClassVar[tuple[JsonDict, frozenset[str]]]  # set below the models

    def _build(self, name: str) -> Any:
        self._hydrate()  # a take's few containers are built together
        return self.__dict__[name]

    def _hydrate(self) -> None:
        """Build a lazy take's receipt, outputs, metadata and extras from a copy of its
        stored dict; fields the caller already assigned are kept."""
        d = self.__dict__
        raw = d.pop("_raw")
        for name, default in _TAKE_SCALARS.items():
            if name not in d:
                d[name] = raw.get(name, default)
        fields, extra = _fast_fields("take", json_copy(raw), _TAKE_KNOWN)
        if "receipt" not in d:
            d["receipt"] = fields.get("receipt", {})
        if "outputs" not in d:
            d["outputs"] = fields.get("outputs", [])
        if "metadata" not in d:
            d["metadata"] = fields.get("metadata", {})
        if "extra" not in d:
            d["extra"] = extra

    def validate(self) -> None:
        d = self.__dict__
        raw = d.get("_raw")
        if raw is None:
            _check_take_fields(d)
            if type(self.extra) is not dict:
                _dict("extra", self.extra)
            return
        if len(d) == 1:
            return  # an untouched lazy take: valid as stored
        _check_take_fields({**raw, **d})  # what was assigned, over the stored fields
        if "extra" in d and type(d["extra"]) is not dict:
            _dict("extra", d["extra"])

    def to_dict(self) -> JsonDict:
        raw = untouched_raw(self)
        if raw is not None:
            return json_copy(raw)  # type: ignore[no-any-return]
        if "_raw" in self.__dict__:
            self._hydrate()
        d: JsonDict = {
            "take_id": self.take_id, "status": self.status, "attempt": self.attempt,
            "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "heartbeat_at": self.heartbeat_at,
            "provider": self.provider, "receipt": self.receipt,
            "outputs": _paths_as_str(self.outputs), "error": self.error,
            "metadata": self.metadata,
        }
        if self.extra:
            d = {**self.extra, **d}
        return d

    @classmethod
    def from_dict(cls, data: object, *, validate: bool = True) -> Take:
        if cls is not Take:
            fields, extra = _split("take", data, cls._FIELDS)
            if "take_id" not in fields:
                raise ValidationError("take_id", "missing")
            return cls(**fields, extra=extra)
        fields, extra = _fast_fields("take", data, _TAKE_KNOWN)
        if "take_id" not in fields:
            raise ValidationError("take_id", "missing")
        take: Take = object.__new__(cls)
        values = take.__dict__  # filled in place: one dict per take, no intermediates
        values.update(_TAKE_DEFAULTS)
        values.update(fields)
        values["extra"] = extra
        if "receipt" not in fields:
            values["receipt"] = {}
        if "outputs" not in fields:
            values["outputs"] = []
        if "metadata" not in fields:
            values["metadata"] = {}
        if validate:
            take.validate()
        return take


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
        if type(self.status) is not str or self.status not in BOARD_STATUSES:
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
    def from_dict(cls, data: object, *, validate: bool = True) -> Board:
        if cls is not Board:
            fields, extra = _split("board", data, cls._FIELDS)
            return cls(**fields, extra=extra)
        fields, extra = _fast_fields("board", data, _BOARD_KNOWN)
        values = {**_BOARD_DEFAULTS, **fields, "extra": extra}
        if "frames" not in fields:
            values["frames"] = []
        if "metadata" not in fields:
            values["metadata"] = {}
        board: Board = _new(cls, values)
        if validate:
            board.validate()
        return board


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

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        __getattr__ = _lazy_attribute

    _LAZY: ClassVar[tuple[JsonDict, frozenset[str]]]  # set below the models

    def _build(self, name: str) -> Any:
        """Build one field of a lazy beat, which keeps its stored dict (validated when it
        was loaded): its takes as lazy takes over the stored ones; its board, metadata
        or extras from a copy. A closure that uses only the takes copies nothing else."""
        d = self.__dict__
        raw = d["_raw"]
        value: Any
        if name == "takes":  # _lazy(Take, t) for each, inlined: this runs on every save
            value = []
            new = object.__new__
            for t in raw.get("takes", ()):
                take: Any = new(Take)
                take._raw = t
                value.append(take)
        elif name == "board":
            b = raw.get("board")
            value = Board.from_dict(json_copy(b), validate=False) if b is not None else None
        elif name == "beat_metadata":
            md = raw.get("beat_metadata")
            value = json_copy(md) if md is not None else {}
        else:
            value = json_copy({k: v for k, v in raw.items() if k not in _BEAT_KNOWN})
        d[name] = value
        return value

    def validate(self, *, deep: bool = True) -> None:
        d = self.__dict__
        raw = d.get("_raw")
        if raw is not None and len(d) == 1:
            return  # an untouched lazy beat: valid as stored
        takes = self.takes
        # A lazy beat's metadata, board and extras that were never built are as stored.
        lazy = raw is not None
        _check_beat_head(self.beat_id, self.max_takes,
                         raw.get("beat_metadata", _EMPTY)
                         if raw is not None and "beat_metadata" not in d
                         else self.beat_metadata, takes)
        seen: set[str] = set()
        for i, take in enumerate(takes):
            _check_member(Take, i, take, deep, seen)
        _check_beat_tail(self.primary_take_id, seen, self.phantom_recovery_count,
                         None if lazy and "board" not in d else self.board, deep,
                         _EMPTY if lazy and "extra" not in d else self.extra)

    def take(self, take_id: str) -> Take:
        """The take with ``take_id``; ``KeyError`` if the beat has none."""
        for t in self.takes:
            if t.take_id == take_id:
                return t
        raise KeyError(take_id)

    def to_dict(self) -> JsonDict:
        raw = untouched_raw(self)
        if raw is not None:
            return json_copy(raw)  # type: ignore[no-any-return]
        return self._dict_with_takes([t.to_dict() for t in self.takes])

    def _dict_with_takes(self, takes: list[JsonDict]) -> JsonDict:
        d: JsonDict = dict(self.extra)
        d.update(
            beat_id=self.beat_id, max_takes=self.max_takes, beat_metadata=self.beat_metadata,
            takes=takes, primary_take_id=self.primary_take_id,
            phantom_recovery_count=self.phantom_recovery_count,
            board=self.board.to_dict() if self.board is not None else None,
        )
        return d

    @classmethod
    def from_dict(cls, data: object, *, validate: bool = True) -> Beat:
        fields, extra = _fast_fields("beat", data, _BEAT_KNOWN)
        if "beat_id" not in fields:
            raise ValidationError("beat_id", "missing")
        raw_takes = fields.get("takes", [])
        _list("takes", raw_takes)
        takes = []
        for i, t in enumerate(raw_takes):
            try:
                takes.append(Take.from_dict(t, validate=validate))
            except ValidationError as e:
                raise _within(f"takes[{i}]", e) from None
        raw_board = fields.get("board")
        board = None
        if raw_board is not None:
            try:
                board = Board.from_dict(raw_board, validate=validate)
            except ValidationError as e:
                raise _within("board", e) from None
        if cls is not Beat:
            rest = {k: v for k, v in fields.items() if k not in ("takes", "board")}
            return cls(**rest, takes=takes, board=board, extra=extra)
        values = {**_BEAT_DEFAULTS, **fields, "takes": takes, "board": board, "extra": extra}
        if "beat_metadata" not in fields:
            values["beat_metadata"] = {}
        beat: Beat = _new(cls, values)
        if validate:
            beat.validate(deep=False)  # takes and board were validated as they were built
        return beat


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
        v: Any = self.scene_id
        if type(v) is not str or not v:
            _nonempty_str("scene_id", v)
        if type(self.beats) is not list:
            _list("beats", self.beats)
        seen: set[str] = set()
        for i, beat in enumerate(self.beats):
            _check_member(Beat, i, beat, deep and untouched_raw(beat) is None, seen)
        self._validate_own()

    def _validate_own(self) -> None:
        """The scene's own fields after its beats (the tail of :meth:`validate`)."""
        _check_scene_fields(self.__dict__, self.extra)

    def take_counts(self) -> dict[str, int]:
        """Takes by status over the whole scene, in :data:`TAKE_STATUS_ORDER`, zeros
        omitted: ``{"succeeded": 4, "running": 1}`` (what the CLI and the UI show)."""
        counts = Counter(t.status for b in self.beats for t in b.takes)
        return {s: counts[s] for s in TAKE_STATUS_ORDER if counts[s]}

    def beat(self, beat_id: str) -> Beat:
        """The beat with ``beat_id``; ``KeyError`` if the scene has none."""
        for b in self.beats:
            if b.beat_id == beat_id:
                return b
        raise KeyError(beat_id)

    def to_dict(self) -> JsonDict:
        return self.dict_with_beats([b.to_dict() for b in self.beats])

    def dict_with_beats(self, beats: list[JsonDict]) -> JsonDict:
        """The dict form, with ``beats`` as its beat list."""
        d: JsonDict = dict(self.extra)
        d.update(
            scene_id=self.scene_id, beats=beats, scene_metadata=self.scene_metadata,
            locked=self.locked, lock_reason=self.lock_reason, locked_by=self.locked_by,
            locked_at=self.locked_at,
        )
        return d

    @classmethod
    def from_dict(cls, data: object, *, validate: bool = True) -> Scene:
        """Build a scene from its dict form, validating every field.

        ``validate=False`` skips the field checks (the shape is still required: objects
        where objects belong, ids present). Only for a caller that calls
        :meth:`validate` itself before trusting or writing the result, as the status
        writer does after the closure ran.
        """
        fields, extra = _fast_fields("scene", data, _SCENE_KNOWN)
        if "scene_id" not in fields:
            raise ValidationError("scene_id", "missing")
        raw_beats = fields.get("beats", [])
        _list("beats", raw_beats)
        beats = []
        for i, b in enumerate(raw_beats):
            try:
                beats.append(Beat.from_dict(b, validate=validate))
            except ValidationError as e:
                raise _within(f"beats[{i}]", e) from None
        if cls is not Scene:
            rest = {k: v for k, v in fields.items() if k != "beats"}
            return cls(**rest, beats=beats, extra=extra)
        values = {**_SCENE_DEFAULTS, **fields, "beats": beats, "extra": extra}
        if "scene_metadata" not in fields:
            values["scene_metadata"] = {}
        scene: Scene = _new(cls, values)
        if validate:
            scene.validate(deep=False)  # beats were validated as they were built
        return scene


def _check_beat_head(beat_id: object, max_takes: object, beat_metadata: object,
                     takes: object) -> None:
    """A beat's own fields before its takes are looked at one by one."""
    if type(beat_id) is not str or not beat_id:
        _nonempty_str("beat_id", beat_id)
    if type(max_takes) is not int or max_takes < 0:
        _int("max_takes", max_takes, 0)
    if type(beat_metadata) is not dict:
        _dict("beat_metadata", beat_metadata)
    if type(takes) is not list:
        _list("takes", takes)


def _check_beat_tail(primary: object, take_ids: set[str], phantom: object, board: object,
                     deep: bool, extra: object) -> None:
    """A beat's own fields after its takes (whose ids are ``take_ids``)."""
    if primary is not None:
        if type(primary) is not str:
            _opt_str("primary_take_id", primary)
        if primary not in take_ids:
            raise ValidationError("primary_take_id", f"names no take of this beat: {primary!r}")
    if type(phantom) is not int or phantom < 0:
        _int("phantom_recovery_count", phantom, 0)
    if board is not None:
        if not isinstance(board, Board):
            raise ValidationError("board", f"must be a Board, got {type(board).__name__}")
        if deep:
            try:
                board.validate()
            except ValidationError as e:
                raise _within("board", e) from None
    if type(extra) is not dict:
        _dict("extra", extra)


def _check_scene_fields(d: JsonDict, extra: object) -> None:
    """A scene's own fields other than its id and beats, over a dict that holds them
    (a scene's ``__dict__``, or a stored scene: absent keys stand for their defaults)."""
    get = d.get
    _dict("scene_metadata", get("scene_metadata", _EMPTY))
    v = get("locked", False)
    if not isinstance(v, bool):
        raise ValidationError("locked", f"must be true or false, got {v!r}")
    _opt_str("lock_reason", get("lock_reason"))
    _opt_str("locked_by", get("locked_by"))
    _opt_time("locked_at", get("locked_at"))
    _dict("extra", extra)


# -- stored dicts -----------------------------------------------------------------------
#
# The first read of a body in a process checks every field of it. Building the models
# only to throw them away costs more than the checks, so a stored dict is checked as a
# dict: the same rules (the functions above), in the same order, with the same errors
# as ``Scene.from_dict`` (tests/test_models.py holds the two side by side).


def check_stored_scene(data: object) -> None:
    """Raise the :class:`ValidationError` that ``Scene.from_dict(data)`` would raise,
    or nothing where it would succeed, without building the scene."""
    fields, extra, beats = _stored_members("scene", data, _SCENE_KNOWN, check_stored_beat)
    v = fields["scene_id"]
    if type(v) is not str or not v:
        _nonempty_str("scene_id", v)
    _stored_ids("beat", beats)
    _check_scene_fields(fields, extra)


def check_stored_beat(data: object) -> None:
    """Raise the :class:`ValidationError` that ``Beat.from_dict(data)`` would raise, or
    nothing where it would succeed, without building the beat."""
    fields, extra, takes = _stored_members("beat", data, _BEAT_KNOWN, _check_stored_take)
    board = fields.get("board")
    if board is not None:
        try:
            board = Board.from_dict(board)
        except ValidationError as e:
            raise _within("board", e) from None
    get = fields.get
    _check_beat_head(fields["beat_id"], get("max_takes", 3), get("beat_metadata", _EMPTY), takes)
    _check_beat_tail(get("primary_take_id"), _stored_ids("take", takes),
                     get("phantom_recovery_count", 0), board, False, extra)


def _check_stored_take(data: object) -> None:
    fields, _ = _fast_fields("take", data, _TAKE_KNOWN)
    if "take_id" not in fields:
        raise ValidationError("take_id", "missing")
    _check_take_fields(fields)


def _stored_members(kind: str, data: object, known: frozenset[str],
                    check: Callable[[object], None]) -> tuple[JsonDict, JsonDict, list[Any]]:
    """A stored scene's or beat's (``kind``) shape, then each of its beats or takes
    checked by ``check``: its known fields, its other keys and that member list."""
    fields, extra = _fast_fields(kind, data, known)
    if f"{kind}_id" not in fields:
        raise ValidationError(f"{kind}_id", "missing")
    name = "beats" if kind == "scene" else "takes"
    members = fields.get(name, _NONE)
    _list(name, members)
    for i, member in enumerate(members):
        try:
            check(member)
        except ValidationError as e:
            raise _within(f"{name}[{i}]", e) from None
    return fields, extra, members


def _stored_ids(kind: str, members: list[JsonDict]) -> set[str]:
    """The ids of checked stored beats or takes, refusing a duplicate."""
    seen: set[str] = set()
    for i, member in enumerate(members):
        _unique(kind, i, member[f"{kind}_id"], seen)
    return seen


# -- lazy scenes -------------------------------------------------------------------------
#
# The store keeps the last body of a batch it read (validated, never mutated) and hands
# out scenes whose beats are *lazy*: a beat holds only its stored dict. Reading a scalar
# (id, max_takes, primary take, phantom count) answers from it; the first use of its
# board, metadata or extras builds them from a copy, and its takes as lazy takes over
# the stored ones (scalars — id, status, attempt, times, provider, error — from the
# stored take; receipt, outputs, metadata and extras built from a copy on first use).
# Assigning any field, or building them, adds to the model's ``__dict__``: a beat or
# take whose ``__dict__`` is still just ``{"_raw": ...}`` is untouched, and is written
# back as the very dict it came from. A status save that flips one take's status builds
# one beat and assigns one field of one take (:func:`stored_view` is then the stored
# take with that field on top: keys it never had stay absent).

_BEAT_LAZY = frozenset(("takes", "board", "beat_metadata", "extra"))
_BEAT_SCALARS: dict[str, Any] = {"beat_id": None, "max_takes": 3, "primary_take_id": None,
                                 "phantom_recovery_count": 0}
_TAKE_LAZY = frozenset(("receipt", "outputs", "metadata", "extra"))
Beat._LAZY = (_BEAT_SCALARS, _BEAT_LAZY)


def lazy_scene(doc: JsonDict) -> Scene:
    """A scene over a *validated* stored dict that nobody mutates: the scene's own
    containers (metadata, extras) are copied, its scalars shared (immutable), its beats
    lazy (see above). Mutating the result never reaches ``doc``."""
    extra: JsonDict = {}
    if doc.keys() <= _SCENE_KNOWN:  # the common body: no extras (one set test, in C)
        values = {**_SCENE_DEFAULTS, **doc}  # scalars are shared as they are (immutable)
    else:
        values = dict(_SCENE_DEFAULTS)
        for k, v in doc.items():
            if k in _SCENE_KNOWN:
                values[k] = v
            else:
                extra[k] = v
    md = values.get("scene_metadata")
    values["scene_metadata"] = json_copy(md) if md else {}  # the only container
    values["extra"] = json_copy(extra) if extra else extra
    raws = doc.get("beats", ())
    if len(raws) < _PAUSE_GC_FROM:
        values["beats"] = _lazy_beats(raws)
    else:
        with gc_paused():
            values["beats"] = _lazy_beats(raws)
    scene: Scene = _new(Scene, values)
    return scene


# A lazy scene makes one object per beat: the collector is paused while a scene with
# this many beats is made (fewer allocate too little to trigger a collection).
_PAUSE_GC_FROM = 200


def _lazy_beats(raws: Any) -> list[Beat]:
    beats: list[Beat] = []
    new = object.__new__
    for raw in raws:  # _lazy(Beat, raw), inlined: one per beat per save
        beat: Any = new(Beat)
        beat._raw = raw
        beats.append(beat)
    return beats


def untouched_raw(obj: Beat | Take) -> JsonDict | None:
    """The stored dict of a lazy beat or take nothing was built or assigned on, else
    None."""
    d = obj.__dict__
    if len(d) != 1:  # built, or assigned to: no longer just its stored dict
        return None
    raw: JsonDict | None = d.get("_raw")
    return raw


def _check_member(cls: type[Take] | type[Beat], i: int, item: Any, deep: bool,
                  seen: set[str]) -> None:
    """One take of a beat or beat of a scene (``cls``): its type, its own fields when
    ``deep``, its id unique among ``seen`` (which it joins); errors name ``takes[i]`` or
    ``beats[i]``."""
    kind = "take" if cls is Take else "beat"
    if type(item) is not cls and not isinstance(item, cls):
        raise ValidationError(f"{kind}s[{i}]",
                              f"must be a {cls.__name__}, got {type(item).__name__}")
    if deep:
        try:
            item.validate()
        except ValidationError as e:
            raise _within(f"{kind}s[{i}]", e) from None
    _unique(kind, i, item.take_id if isinstance(item, Take) else item.beat_id, seen)


def validate_changed(scene: Scene, raws: list[JsonDict]) -> list[int] | None:
    """``scene.validate()`` and ``changed_beats(scene, raws)`` in one pass over the
    beats (the same checks, errors and result)."""
    beats = scene.beats
    if type(beats) is not list or len(beats) != len(raws):
        scene.validate()
        return None
    v: Any = scene.scene_id
    if type(v) is not str or not v:
        _nonempty_str("scene_id", v)
    touched: list[int] = []
    for i, beat in enumerate(beats):
        d = beat.__dict__ if type(beat) is Beat else None
        if d is None or len(d) != 1 or d.get("_raw") is not raws[i]:
            break  # a beat was touched, moved or replaced: check them all, below
    else:
        # Every position holds its own stored beat, untouched: each is valid and their
        # ids unique, as stored (and validated) — nothing to check per beat.
        scene._validate_own()
        return touched
    seen: set[str] = set()
    for i, beat in enumerate(beats):
        raw = untouched_raw(beat) if type(beat) is Beat else None
        if raw is None:
            _check_member(Beat, i, beat, True, seen)
            touched.append(i)
            continue
        _unique("beat", i, raw["beat_id"], seen)  # untouched: valid as stored, but unique?
        if raw is not raws[i]:
            touched.append(i)
    scene._validate_own()
    return touched


@dataclass(slots=True, frozen=True)
class MadeBeats:
    """The beats of a lazy scene as they were made, and each one's attribute dict
    (made then too): which of them a closure touched is read off the dicts' sizes, in
    C, without looking at a beat (200 beats: 8 µs instead of 16, or 16 instead of 29
    with cold caches). A backend makes this with the scene, ahead of need (see
    ``BodyState.build_spare``).

    What it sees: every change made through the models — an attribute read (which
    builds it), assigned or deleted, and any key added to or removed from a beat's
    dict. What it does not: a beat's private state replaced behind the model's back
    (its ``__dict__`` object or class reassigned, its ``_raw`` rebound in place)."""

    beats: list[Beat]
    dicts: list[JsonDict]

    @classmethod
    def of(cls, scene: Scene) -> MadeBeats:
        beats = scene.beats
        return cls(list(beats), [beat.__dict__ for beat in beats])

    def maybe_touched(self, beats: object) -> list[int] | None:
        """Positions of ``beats`` whose dict no longer holds just the stored one —
        the only beats that may differ from those made; None when ``beats`` is not the
        list of those very beats (each position is to be looked at)."""
        made = self.beats
        if (type(beats) is not list or len(beats) != len(made)
                or not all(map(operator.is_, beats, made))):
            return None
        return [i for i, d in enumerate(self.dicts) if len(d) != 1]


# The status writer's common case: a closure that only sets a take's status, times,
# attempt, provider or error. What it did is read off the lazy models directly (which
# takes hold assignments, and which fields) instead of validating and diffing beats.

def take_field_edits(scene: Scene, doc: JsonDict,
                     made: MadeBeats | None = None) -> TakeEdits | None:
    """What a closure did to ``lazy_scene(doc)``, when all it did was assign editable
    scalar fields (above) on lazy takes: those assignments, per beat and take position,
    in order, checked as ``validate`` checks them (the same first error, raised the same
    way). None when the closure did anything else (the scene's own fields, a beat's
    field, a take's id or containers, a list itself, another class): the caller then
    takes the general path (``validate_changed``, the structure guard, the diff).

    When this returns, the scene is valid and its structure is the stored one: beat
    ids, beat metadata and take ids are the stored values, untouched. ``made``: how
    the scene's beats were made, when it is known (only the beats it names as
    possibly touched are looked at).
    """
    sd = scene.__dict__
    extra = sd.get("extra")
    if type(extra) is not dict or extra:
        return None  # extras, stored (lazy_scene put them there) or assigned
    # The scene's own fields as stored (and so valid): the same values of the same types
    # (1 == True, so the types are compared too), read and compared in C.
    try:
        as_stored, own = _SCENE_OWN_VALUES(doc), _SCENE_OWN_VALUES(sd)
    except KeyError:
        return None  # absent from the body (a default stands for it) or deleted
    if as_stored != own or list(map(type, as_stored)) != list(map(type, own)):
        return None
    beats, raws = sd.get("beats"), doc.get("beats")
    if type(beats) is not list or type(raws) is not list or len(beats) != len(raws):
        return None
    edits: TakeEdits = []
    touched = None if made is None else made.maybe_touched(beats)
    try:
        for i, beat in (enumerate(beats) if touched is None
                        else ((i, beats[i]) for i in touched)):  # (the common case first)
            d = beat.__dict__
            if len(d) == 1 and d["_raw"] is raws[i] and beat.__class__ is Beat:
                continue  # untouched: a lazy beat over its own stored dict
            if type(beat) is not Beat or d.get("_raw") is not raws[i]:
                return None  # another object, or a beat that is not this position's
            takes, stored = d.get("takes"), raws[i].get("takes")
            if (len(d) != 2 or type(takes) is not list or type(stored) is not list
                    or len(takes) != len(stored)):
                return None  # a beat field other than its takes, or the take list changed
            edited: list[tuple[int, JsonDict]] = []
            for j, take in enumerate(takes):
                if type(take) is not Take:
                    return None
                td = take.__dict__
                if td.get("_raw") is not stored[j]:
                    return None
                if len(td) == 1:
                    continue
                assigned = {k: v for k, v in td.items() if k != "_raw"}
                for k, v in assigned.items():
                    if k not in _EDITABLE_TAKE or type(v) not in _PLAIN_TYPES:
                        return None
                edited.append((j, assigned))
            if edited:
                edits.append((i, edited))
    except (AttributeError, KeyError):
        return None  # an object without a __dict__, or a model that is not lazy
    # Only assigned take fields can be invalid: checked in beat and take order, in the
    # order Take.validate checks a take's fields, so the first error is its first error.
    # The stored fields are valid (the stored body was validated), so they stand aside
    # (absent fields are checked as their defaults; the id is the stored one).
    for i, edited in edits:
        stored = raws[i]["takes"]
        for j, assigned in edited:
            if all(map(_plainly_valid, assigned.items())):
                continue  # (the full check would pass: see _plainly_valid)
            try:
                _check_take_fields({"take_id": stored[j]["take_id"], **assigned})
            except ValidationError as e:
                raise _within(f"beats[{i}]", _within(f"takes[{j}]", e)) from None
    return edits


def _plainly_valid(item: tuple[str, Any]) -> bool:
    """True when an assigned take field's value is one ``_check_take_fields`` certainly
    accepts — a known status, a non-negative int attempt, a str or null provider or
    error, a null time — checked without it; False means "let it judge" (it raises the
    error, or accepts a timestamp after parsing it)."""
    k, v = item
    if k == "status":
        return type(v) is str and v in TAKE_STATUSES
    if k == "attempt":
        return type(v) is int and v >= 0
    return v is None or (type(v) is str and k in _FREE_TEXT_TAKE)


_FREE_TEXT_TAKE = frozenset(("provider", "error"))


def changed_beats(scene: Scene, raws: list[JsonDict]) -> list[int] | None:
    """Positions of the beats of ``scene`` that are not untouched lazy beats over the
    same position of ``raws`` (what a write must look at); None when the beat list
    itself is not the same length."""
    beats = scene.beats
    if type(beats) is not list or len(beats) != len(raws):
        return None
    return [i for i, (b, raw) in enumerate(zip(beats, raws, strict=True))
            if untouched_raw(b) is not raw]


def beat_metadata_view(beat: Beat) -> Any:
    """A beat's ``beat_metadata`` for reading, without building it: a lazy beat's
    stored one until it was built or assigned."""
    d = beat.__dict__
    raw = d.get("_raw")
    if raw is None or "beat_metadata" in d:
        return beat.beat_metadata
    return raw.get("beat_metadata")


def stored_view(model: Beat | Take) -> JsonDict:
    """A beat's or take's dict for diffing and encoding only (shared, read-only: never
    handed out). A lazy one is its stored dict with what was assigned or built on top
    (a beat's takes as their own views); anything else is its ``to_dict()``."""
    d = model.__dict__
    raw = d.get("_raw")
    if raw is not None:
        if len(d) == 1:
            return raw  # type: ignore[no-any-return]
        if isinstance(model, Take):
            if all(k in _TAKE_SCALARS for k in d if k != "_raw"):
                out = dict(raw)
                out.update((k, v) for k, v in d.items() if k != "_raw")
                return out
            model._hydrate()
        elif "extra" not in d:  # the stored beat, with what was built or assigned on top
            out = dict(raw)
            for k, v in d.items():
                if k == "takes":
                    out[k] = [stored_view(t) for t in v]
                elif k == "board":
                    out[k] = v.to_dict() if v is not None else None
                elif k != "_raw":
                    out[k] = v
            return out
    if isinstance(model, Beat):
        return model._dict_with_takes([stored_view(t) for t in model.takes])
    return model.to_dict()


def shared_dict(scene: Scene) -> JsonDict:
    """The scene's dict form with its beats as :func:`stored_view` gives them (shared,
    read-only: for diffing and encoding, never for handing out)."""
    return scene.dict_with_beats([stored_view(b) for b in scene.beats])


# Known keys and immutable defaults for the from_dict fast path (mutable defaults are
# created fresh per instance there).
_TAKE_KNOWN = frozenset(Take._FIELDS)
_TAKE_DEFAULTS: JsonDict = {
    "status": "pending", "attempt": 1, "created_at": None, "started_at": None,
    "finished_at": None, "heartbeat_at": None, "provider": None, "error": None,
}
# A lazy take's scalar fields and their defaults (see lazy scenes).
_TAKE_SCALARS: dict[str, Any] = {"take_id": None, **_TAKE_DEFAULTS}
_BOARD_KNOWN = frozenset(Board._FIELDS)
_BOARD_DEFAULTS: JsonDict = {"status": "pending", "decided_by": None, "decided_at": None,
                             "note": None}
_BEAT_KNOWN = frozenset(Beat._FIELDS)
_BEAT_DEFAULTS: JsonDict = {"max_takes": 3, "primary_take_id": None,
                            "phantom_recovery_count": 0}
_SCENE_KNOWN = frozenset(Scene._FIELDS)
_SCENE_DEFAULTS: JsonDict = {"locked": False, "lock_reason": None, "locked_by": None,
                             "locked_at": None}
# Fields of a take the status writer's short path (take_field_edits) accepts as assigned
# (never the id: take ids are what the beat's rules are about), holding values of these
# exact types (what JSON gives back as they were; nothing a caller can change in place).
_EDITABLE_TAKE = frozenset(_TAKE_SCALARS) - {"take_id"}
Take._LAZY = (_TAKE_SCALARS, _TAKE_LAZY)
_PLAIN_TYPES = frozenset((str, int, type(None)))
_SCENE_OWN = tuple(f for f in Scene._FIELDS if f != "beats")
_SCENE_OWN_VALUES = operator.itemgetter(*_SCENE_OWN)

# A lazy field must not have a class-level default: attribute lookup would find the
# default before ``__getattr__`` could build the real value. (The generated
# ``__init__`` keeps its own copy of the default.)
del Beat.board
# The same for the scalars a lazy beat or take answers from its stored dict.
del Beat.max_takes, Beat.primary_take_id, Beat.phantom_recovery_count
del (Take.status, Take.attempt, Take.created_at, Take.started_at, Take.finished_at,
     Take.heartbeat_at, Take.provider, Take.error)


__all__ = [
    "BOARD_STATUSES",
    "TAKE_STATUSES",
    "Beat",
    "Board",
    "BoardStatus",
    "MadeBeats",
    "Scene",
    "Take",
    "TakeStatus",
    "beat_metadata_view",
    "changed_beats",
    "check_stored_scene",
    "lazy_scene",
    "shared_dict",
    "stored_view",
    "untouched_raw",
    "validate_changed",
]
