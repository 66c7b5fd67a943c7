"""What a write changed — and applying those changes again (journal replay).

:func:`changed_paths` lists the leaf-level changes between two documents. Lists of
beats and takes are matched by id, not position, so a change reads like
``beats[B010].takes[t2].status``; other lists compare whole. Each change carries:

* ``path`` — that readable form (ids may contain any character, so it is for people);
* ``key`` — the same location as a list of segments a program can follow: a string is
  a dict key, a one-entry object such as ``{"take_id": "t2"}`` is the list element
  with that id;
* ``old`` / ``new`` — the values (``None`` stands for "absent");
* ``removed: true`` when the key or element is gone, and ``index`` (its position in
  the new list) when a list element was added.

:func:`apply_changes` replays such a list onto a document, copy-on-write: the result
shares every untouched sub-document with its input and never mutates it. Replaying
the changes of ``old → new`` onto ``old`` gives ``new`` (the journal's delta records
rely on this; tests/test_changes.py checks it by property).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from clapboard.errors import CorruptJournalError

_ID_KEYS = {"beats": "beat_id", "takes": "take_id"}
_MISSING: Any = None
_ABSENT: Any = object()

Change = dict[str, Any]


def _by_id(items: list[Any], key: str) -> dict[Any, Any] | None:
    out: dict[Any, Any] = {}
    for item in items:
        if not isinstance(item, dict) or key not in item or item[key] in out:
            return None
        ident = item[key]
        if type(ident) is not str:  # ids become path text and keys: strings only
            return None
        out[ident] = item
    return out


def changed_paths(old: Any, new: Any, path: str = "",
                  key: tuple[Any, ...] = ()) -> list[Change]:
    """Leaf-level changes from ``old`` to ``new`` (empty if equal); see the module doc."""
    out: list[Change] = []
    if not (old == new and type(old) is type(new)):
        _diff(old, new, path, key, out)
    return out


def _diff(old: Any, new: Any, path: str, key: tuple[Any, ...], out: list[Change]) -> None:
    """Append to ``out`` the changes from ``old`` to ``new``, which the caller found to
    differ (so no comparison of the whole is repeated on the way down)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        out.append(_change(path, key, old, new))
        return
    for k, o in old.items():
        if k in new:
            n = new[k]
            if o is n or (type(o) is type(n) and o == n):
                continue  # the common case: skip before building any path
            sub = f"{path}.{k}" if path else str(k)
            id_key = _ID_KEYS.get(k)
            if id_key is not None and isinstance(o, list) and isinstance(n, list):
                _list_diff(o, n, sub, (*key, k), id_key, out)
            else:
                _diff(o, n, sub, (*key, k), out)
        else:
            out.append(_change(f"{path}.{k}" if path else str(k), (*key, k), o, _MISSING,
                               removed=True))
    for k, n in new.items():
        if k not in old:
            out.append(_change(f"{path}.{k}" if path else str(k), (*key, k), _MISSING, n))


def _change(path: str, key: tuple[Any, ...], old: Any, new: Any, *, removed: bool = False,
            index: int | None = None) -> Change:
    c: Change = {"path": path, "key": list(key), "old": old, "new": new}
    if removed:
        c["removed"] = True
    if index is not None:
        c["index"] = index
    return c


def _list_diff(old: list[Any], new: list[Any], path: str, key: tuple[Any, ...],
               id_key: str, out: list[Change]) -> None:
    a, b = _by_id(old, id_key), _by_id(new, id_key)
    if a is None or b is None or [i for i in a if i in b] != [i for i in b if i in a]:
        out.append(_change(path, key, old, new))  # reordered or unkeyed: the whole list
        return
    for ident, item in a.items():
        other = b.get(ident, _ABSENT)
        if other is item or (type(other) is type(item) and other == item):
            continue
        sub, subkey = f"{path}[{ident}]", (*key, {id_key: ident})
        if other is not _ABSENT:
            _diff(item, other, sub, subkey, out)
        else:
            out.append(_change(sub, subkey, item, _MISSING, removed=True))
    for index, (ident, item) in enumerate(b.items()):
        if ident not in a:
            out.append(_change(f"{path}[{ident}]", (*key, {id_key: ident}), _MISSING, item,
                               index=index))


def beat_changes(old: dict[str, Any], new: dict[str, Any], touched: list[int]) -> list[Change]:
    """:func:`changed_paths` from scene dict ``old`` to a new scene whose beats hold the
    same ids in the same order and may differ only at the positions ``touched``;
    ``new`` has the new scene's fields and, as its beat list, the new dicts of just
    those beats, in order. The same list, without visiting the other beats — nor
    comparing the touched ones whole on the way down to their changes."""
    out: list[Change] = []
    for k, o in old.items():
        if k == "beats":
            beats = old["beats"]
            for i, n in zip(touched, new["beats"], strict=True):
                b = beats[i]
                if b is not n:
                    ident = b["beat_id"]
                    _diff(b, n, f"beats[{ident}]", ("beats", {"beat_id": ident}), out)
        elif k not in new:
            _diff({k: o}, {}, "", (), out)
        elif not (o is new[k] or (type(o) is type(new[k]) and o == new[k])):
            _diff({k: o}, {k: new[k]}, "", (), out)
    for k, n in new.items():
        if k not in old:
            _diff({}, {k: n}, "", (), out)
    return out


# Per beat position, (take position, {field: value}) of each edited take.
TakeEdits = list[tuple[int, list[tuple[int, dict[str, Any]]]]]


def take_field_changes(doc: dict[str, Any], edits: TakeEdits
                       ) -> tuple[list[Change], Callable[[], dict[str, Any]]]:
    """The changes of assigning take fields on ``doc`` — ``edits`` as
    :func:`clapboard.models.take_field_edits` gives them: per beat position, (take
    position, {field: value}) — and a function that makes ``doc`` with them applied.

    The same list :func:`beat_changes` gives for those edits (a field is changed when
    its value is not the stored one, or the same type and equal; a field the take did
    not have is added), and the same document :func:`apply_changes` makes of it
    (copy-on-write: ``doc`` is untouched, the result shares everything else with it).
    The document is made only when asked for: a status save asks while its journal
    line is on its way to the disk, not before writing it. The values must be immutable
    (as that function guarantees): the result keeps them.
    """
    out: list[Change] = []
    spans: list[tuple[int, int, int, int]] = []  # (beat, take, first change, end)
    beats = doc["beats"]
    for i, edited in edits:
        beat = beats[i]
        ident = beat["beat_id"]
        takes = beat["takes"]
        for j, assigned in edited:
            take = takes[j]
            tid = take["take_id"]
            path = f"beats[{ident}].takes[{tid}]"
            key = ("beats", {"beat_id": ident}, "takes", {"take_id": tid})
            before = len(out)
            if len(assigned) == 1:  # the common edit (a status): no pass over the take
                (k, n), = assigned.items()
                o = take.get(k, _ABSENT)
                if o is _ABSENT:  # a field the take did not have: added, whatever its value
                    out.append(_change(f"{path}.{k}", (*key, k), _MISSING, n))
                elif not (o is n or (type(o) is type(n) and o == n)):
                    out.append(_change(f"{path}.{k}", (*key, k), o, n))
            else:  # in the stored take's order, then the added fields in assignment order
                for k, o in take.items():
                    n = assigned.get(k, _ABSENT)
                    if n is not _ABSENT and not (o is n or (type(o) is type(n) and o == n)):
                        out.append(_change(f"{path}.{k}", (*key, k), o, n))
                for k, n in assigned.items():
                    if k not in take:
                        out.append(_change(f"{path}.{k}", (*key, k), _MISSING, n))
            if len(out) > before:
                spans.append((i, j, before, len(out)))
    return out, partial(_take_changes_applied, doc, out, spans)


def _take_changes_applied(doc: dict[str, Any], changes: list[Change],
                          spans: list[tuple[int, int, int, int]]) -> dict[str, Any]:
    """``doc`` with the take field changes ``changes[first:end]`` set on each (beat,
    take) position of ``spans`` (grouped by beat, as :func:`take_field_changes` makes
    them), copy-on-write."""
    if not spans:
        return doc
    beats = doc["beats"]
    new_beats = list(beats)
    at = -1
    new_takes: list[Any] = []
    for i, j, first, end in spans:
        if i != at:
            if at >= 0:
                new_beats[at] = {**beats[at], "takes": new_takes}
            at, new_takes = i, list(beats[i]["takes"])
        changed = dict(new_takes[j])
        for c in changes[first:end]:
            changed[c["key"][-1]] = c["new"]
        new_takes[j] = changed
    new_beats[at] = {**beats[at], "takes": new_takes}
    return {**doc, "beats": new_beats}


# -- replay ------------------------------------------------------------------------------


def apply_changes(doc: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """``doc`` with ``changes`` applied, copy-on-write (``doc`` itself is untouched).

    Raises :class:`CorruptJournalError` when a change does not fit the document (its
    location does not exist): a delta record that cannot be replayed is damage, never
    something to skip.
    """
    out = doc
    for change in changes:
        segments = change.get("key")
        if not isinstance(segments, list) or not segments:
            raise CorruptJournalError(f"change {change.get('path')!r} has no replayable key")
        try:
            out = _apply(out, segments, change)
        except (KeyError, IndexError, TypeError, ValueError):
            raise CorruptJournalError(
                f"change {change.get('path')!r} does not fit the stored body") from None
    return out


def _apply(node: Any, segments: list[Any], change: Change) -> Any:
    seg, rest = segments[0], segments[1:]
    if isinstance(seg, dict):  # the list element with this id
        ((id_key, ident),) = seg.items()
        items = list(node)
        if not rest and not change.get("removed"):
            # An added element (the change says it was absent): no search needed.
            items.insert(min(int(change.get("index", len(items))), len(items)), change["new"])
            return items
        pos = _position(items, id_key, ident)
        if rest:
            if pos is None:
                raise KeyError(ident)
            items[pos] = _apply(items[pos], rest, change)
        elif pos is not None:
            del items[pos]
        return items
    if not isinstance(node, dict) or not isinstance(seg, str):
        raise TypeError(seg)
    out = dict(node)
    if rest:
        out[seg] = _apply(out[seg], rest, change)
    elif change.get("removed"):
        out.pop(seg, None)
    else:
        out[seg] = change["new"]
    return out


def _position(items: list[Any], id_key: str, ident: Any) -> int | None:
    """Where the element with ``ident`` is; searched from the end, where the takes a
    runner is working on are."""
    for i in range(len(items) - 1, -1, -1):
        item = items[i]
        if type(item) is dict and item.get(id_key) == ident:
            return i
    return None


def touched_parts(changes: list[Change]) -> tuple[set[str], bool] | None:
    """What ``changes`` reach: the ids of the beats they reach into, and whether they
    reach a scene-level field other than the beat list; None when one replaces or
    reorders the beat list itself."""
    ids: set[str] = set()
    top = False
    for change in changes:
        key = change.get("key") or []
        if len(key) >= 2 and key[0] == "beats" and isinstance(key[1], dict):
            ids.add(str(next(iter(key[1].values()))))
        elif key and key[0] != "beats":
            top = True
        else:
            return None
    return ids, top
