"""Canonical bytes for bodies and manifests, ``schema_version``, and the migration chain.

One encoding for every published JSON file: orjson, two-space indent, sorted keys and
a trailing newline — human-readable, diff-friendly and deterministic, so equal content
always gives equal bytes. ``pathlib.Path`` values anywhere are written as strings.

Reading checks ``schema_version``: missing or unknown raises
:class:`~clapboard.errors.SchemaVersionError` naming the file and both versions;
an older known version is upgraded step by step through :data:`MIGRATIONS`.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from clapboard.errors import CorruptFileError, SchemaVersionError, ValidationError

# Scene bodies: 1 = clapboard 0.1 and the seed; 2 = a body may carry a journal
# checkpoint (journal records after it still apply to it, see ``decode_body``).
SCENE_SCHEMA_VERSION = 2
MANIFEST_SCHEMA_VERSION = 1
CHECKPOINT_KEY = "journal_checkpoint"

Migration = Callable[[dict[str, Any]], dict[str, Any]]



def _scene_1_to_2(doc: dict[str, Any]) -> dict[str, Any]:
    # A version-1 body has no checkpoint: it is complete as it stands.
    return doc


# MIGRATIONS[kind][n] upgrades a document of schema n to n + 1; a schema bump adds one
# step here and a test with a body of the old version (tests/test_fs_store.py).
MIGRATIONS: dict[str, dict[int, Migration]] = {"scene": {1: _scene_1_to_2}, "manifest": {}}
CURRENT: dict[str, int] = {"scene": SCENE_SCHEMA_VERSION, "manifest": MANIFEST_SCHEMA_VERSION}

_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def _default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(doc: dict[str, Any]) -> bytes:
    """Canonical bytes of a JSON document (the on-disk form)."""
    try:
        return orjson.dumps(doc, default=_default, option=_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        # orjson refuses a few things the standard library accepts (integers beyond
        # 64 bits, non-string keys). Fall back so such a body still saves, in the same
        # layout; anything json cannot encode either is the caller's bad input.
        try:
            text = json.dumps(doc, indent=2, sort_keys=True, default=_default,
                              ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValidationError("", f"body is not JSON-serialisable: {e}") from None
        return (text + "\n").encode("utf-8")


_FLAT_VALUES = frozenset((str, int, bool, type(None)))


def json_copy(doc: Any) -> Any:
    """An independent deep copy of a JSON value (an orjson round trip is faster than
    ``copy.deepcopy``; values orjson refuses fall back to it). Paths become strings.
    A small dict of strings, integers, booleans and nulls (a scene's metadata, often)
    is copied as it is: its values are immutable, and the round trip would give the
    same dict."""
    if type(doc) is dict and len(doc) <= 32:
        for v in doc.values():
            if type(v) not in _FLAT_VALUES:
                break
        else:
            return dict(doc)
    try:
        return orjson.loads(orjson.dumps(doc, default=_default))
    except (orjson.JSONEncodeError, TypeError):
        import copy

        return copy.deepcopy(doc)


class gc_paused:
    """Pause the cyclic garbage collector while building a large document.

    Hydrating a 1.4 MiB scene allocates tens of thousands of containers, which would
    trigger several needless collections (JSON documents hold no cycles). The
    collector is re-enabled on exit only if this block disabled it, so nesting and
    threads never leave it off.
    """

    __slots__ = ("_was",)

    def __enter__(self) -> None:
        self._was = gc.isenabled()
        if self._was:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            gc.enable()


@dataclass(frozen=True)
class Checkpoint:
    """A position in a batch journal: record ``seq`` with ``crc``, ending at ``offset``
    (a hint: the reader verifies the record it points at)."""

    seq: int
    crc: str
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "crc": self.crc, "offset": self.offset}

    @classmethod
    def from_dict(cls, raw: object, path: Path | str | None = None) -> Checkpoint:
        ok = (isinstance(raw, dict) and set(raw) == {"seq", "crc", "offset"}
              and all(type(raw[k]) is int and raw[k] >= 0 for k in ("seq", "offset"))
              and isinstance(raw["crc"], str))
        if not ok:
            raise CorruptFileError(f"malformed {CHECKPOINT_KEY} in {path}: {raw!r}", path=path)
        assert isinstance(raw, dict)
        return cls(raw["seq"], raw["crc"], raw["offset"])


def loads(data: bytes, path: Path | str | None = None) -> Any:
    """Parse bytes; unparseable input raises ``CorruptFileError`` (a ``ValueError``)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        where = f" in {path}" if path is not None else ""
        raise CorruptFileError(f"unparseable JSON{where}: {e}", path=path) from None


def encode_scene(scene_dict: dict[str, Any], checkpoint: Checkpoint | None = None) -> bytes:
    """Body bytes for a scene dict (as from ``Scene.to_dict()``), with the journal
    position it includes when given."""
    doc = {**scene_dict, "schema_version": SCENE_SCHEMA_VERSION}
    if checkpoint is not None:
        doc[CHECKPOINT_KEY] = checkpoint.to_dict()
    else:
        doc.pop(CHECKPOINT_KEY, None)
    return dumps(doc)


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return dumps({**manifest, "schema_version": MANIFEST_SCHEMA_VERSION})


def upgrade(kind: str, doc: dict[str, Any], path: Path | str | None = None) -> dict[str, Any]:
    """Check ``doc['schema_version']`` and migrate it to the current version.

    Returns the document without its ``schema_version`` key for scenes (the models do
    not carry it) and with the current one for manifests.
    """
    label = "Scene JSON" if kind == "scene" else "Scene versions manifest"
    current = CURRENT[kind]
    if not isinstance(doc, dict):
        raise CorruptFileError(f"{label} is not a JSON object", path=path)
    found = doc.get("schema_version")
    if isinstance(found, bool) or not isinstance(found, int):
        raise SchemaVersionError(
            f"{label} schema_version mismatch in {path}: expected {current}, got {found!r}",
            path=path, found=found, expected=current,
        )
    chain = MIGRATIONS[kind]
    version = found
    while version < current and version in chain:
        doc = chain[version](dict(doc))
        version += 1
        doc["schema_version"] = version
    if version != current:
        raise SchemaVersionError(
            f"{label} schema_version mismatch in {path}: expected {current}, got {found!r}"
            + (" (written by a newer clapboard; upgrade clapboard)" if found > current else ""),
            path=path, found=found, expected=current,
        )
    if kind == "scene":
        doc = dict(doc)
        del doc["schema_version"]
    return doc


def decode_scene(data: bytes, path: Path | str | None = None) -> dict[str, Any]:
    """Scene dict (without ``schema_version``) from body bytes, upgraded if older.

    The body's journal checkpoint is dropped: use :func:`decode_body` to replay."""
    return decode_body(data, path)[0]


def decode_body(data: bytes,
                path: Path | str | None = None) -> tuple[dict[str, Any], Checkpoint | None]:
    """Scene dict and the journal checkpoint the body carries (None: it is complete).

    A body with a checkpoint includes every journal record up to ``seq``; delta
    records after it (for the body's version) still have to be applied to it.
    """
    doc = upgrade("scene", loads(data, path), path)
    raw = doc.pop(CHECKPOINT_KEY, None)
    if raw is None:
        return doc, None
    return doc, Checkpoint.from_dict(raw, path)


_CHECKPOINT_AT = b'\n  "' + CHECKPOINT_KEY.encode() + b'": {'


def peek_checkpoint(data: bytes) -> Checkpoint | None:
    """The checkpoint of body bytes in this module's own encoding, read without decoding
    the body (a top-level key is the only one indented by two spaces); None when it is
    not found that way. A hint only: whoever uses it proves the bytes by re-encoding."""
    start = data.rfind(_CHECKPOINT_AT)
    if start < 0:
        return None
    start += len(_CHECKPOINT_AT) - 1
    end = data.find(b"\n  }", start)
    if end < 0:
        return None
    try:
        return Checkpoint.from_dict(orjson.loads(data[start:end + 4]))
    except (orjson.JSONDecodeError, CorruptFileError):
        return None


def decode_manifest(data: bytes, path: Path | str | None = None) -> dict[str, Any]:
    return upgrade("manifest", loads(data, path), path)


def needs_upgrade(kind: str, data: bytes) -> bool:
    """True when the bytes hold an older, migratable schema version."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    found = doc.get("schema_version") if isinstance(doc, dict) else None
    return isinstance(found, int) and not isinstance(found, bool) and found < CURRENT[kind]
