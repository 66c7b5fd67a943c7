"""What every backend shares about journal delta records and kept bodies.

A status save may commit by its journal record alone (a *delta record*: its
``detail.delta`` is true and ``detail.changes`` lists every changed path with a
replayable ``key``, see :mod:`clapboard.changes`). A stored body then says which journal
position it includes (its checkpoint); reading it means applying the delta records of
its version that follow. Backends keep the resulting states per process
(:class:`KeptBodies`) and prove them current against what is stored before use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import orjson

from clapboard import codec
from clapboard.backends.base import BodyState, Doc
from clapboard.changes import apply_changes, touched_parts
from clapboard.errors import CorruptJournalError, ValidationError
from clapboard.io import journal as jr
from clapboard.models import check_stored_beat, check_stored_scene

KEPT_BYTES = 16 << 20  # stored bytes of the bodies kept per process (the decoded
# documents take a few times more); the least recently used go first
COMPACT_EVERY = 64  # delta records of a body before it is rewritten whole


def is_delta(record: Doc, version: int) -> bool:
    """True for a record of ``version`` whose changes are not in bodies written before."""
    detail = record.get("detail")
    return (record.get("version") == version and isinstance(detail, dict)
            and detail.get("delta") is True)


def delta_line(record: Doc, seq: int, prev: str) -> tuple[bytes, Doc]:
    """A status save's journal line — ``record`` marked as a delta, numbered ``seq``
    after ``prev`` — and the record as written, with its crc (sharing the values of
    ``record``: :func:`state_after` copies the changes it applies)."""
    return jr.encoded_record({**record, "detail": {**record["detail"], "delta": True},
                              "seq": seq, "prev": prev})


def state_after(doc: Doc, rec: Doc, after: Callable[[], Doc] | None) -> Doc:
    """``doc`` with the changes of delta record ``rec`` applied, as a reader replaying
    it gets them: made by ``after`` when the caller gave that (a document shared with
    nobody), else applied from a copy of the record's changes (the record is returned
    to callers)."""
    if after is not None:
        return after()
    return apply_changes(doc, orjson.loads(orjson.dumps(rec["detail"]["changes"])))


def apply_deltas(state: BodyState, deltas: list[Doc], where: object) -> BodyState:
    """``state`` with the changes of the delta records ``deltas`` applied (``state``
    itself is untouched). The beats they touched are validated again — a record that
    passes its crc may still have been written by hand — and the result stays valid
    only if they pass; otherwise the Store's full validation reports it, naming where
    the body lives."""
    doc = state.doc
    changes: list[Any] = []
    for rec in deltas:
        got = rec["detail"].get("changes")
        if not isinstance(got, list):
            raise CorruptJournalError(f"delta record seq {rec.get('seq')} has no changes",
                                      path=str(where))
        try:
            doc = apply_changes(doc, got)
        except CorruptJournalError as e:
            raise CorruptJournalError(f"delta record seq {rec.get('seq')}: {e.message}",
                                      path=str(where)) from None
        changes.extend(got)
    parts = touched_parts(changes)
    if not state.valid or parts is None:
        return BodyState(doc)
    beats, top = parts
    try:  # the stored-form checks: the same verdicts as building the models
        if top:
            check_stored_scene({**doc, "beats": []})  # the scene's own fields
        for raw in doc.get("beats") or []:
            if raw.get("beat_id") in beats:
                check_stored_beat(raw)
    except ValidationError:
        return BodyState(doc)
    return BodyState(doc, valid=True)


def reencoded(state: BodyState, records: list[Doc], version: int, where: object,
              stored: bytes, checkpoint: codec.Checkpoint | None = None) -> BodyState | None:
    """``state`` with the delta records among ``records`` applied, when that encodes to
    the ``stored`` body bytes exactly (with ``checkpoint`` stamped in, as a folder body
    carries it): the proof that decoding and validating ``stored`` would give the same
    state. None when it does not, or a record does not apply (the whole read decides)."""
    deltas = [r for r in records if is_delta(r, version)]
    try:
        state = apply_deltas(state, deltas, where) if deltas else state
    except CorruptJournalError:
        return None
    return state if codec.encode_scene(state.doc, checkpoint) == stored else None


class Sized(Protocol):
    @property
    def size(self) -> int: ...


E = TypeVar("E", bound=Sized)


class KeptBodies(Generic[E]):
    """Kept entries by name, least recently used dropped past ``max_bytes``; safe
    across threads (entries themselves are immutable; a change takes the lock, a lookup
    is one atomic dict operation)."""

    def __init__(self, max_bytes: int = KEPT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, E] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> E | None:
        return self._entries.get(key)  # one lookup: atomic, as size_of's

    def size_of(self, key: str) -> int:
        """The size of the entry kept under ``key``, -1 when none is."""
        entry = self._entries.get(key)  # one dict lookup: atomic, no lock needed
        return entry.size if entry is not None else -1

    def put(self, key: str, entry: E) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.size

    def drop(self, key: str) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
