"""What a write changed, as paths with old and new values (the journal's ``detail``).

Lists of beats and takes are matched by id, not position, so a path reads like
``beats[B010].takes[t2].status``; other lists compare whole.
"""

from __future__ import annotations

from typing import Any

_ID_KEYS = {"beats": "beat_id", "takes": "take_id"}
_MISSING: Any = None


def _by_id(items: list[Any], key: str) -> dict[Any, Any] | None:
    out: dict[Any, Any] = {}
    for item in items:
        if not isinstance(item, dict) or key not in item or item[key] in out:
            return None
        ident = item[key]
        try:
            hash(ident)
        except TypeError:
            return None
        out[ident] = item
    return out


def changed_paths(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Leaf-level changes from ``old`` to ``new``: ``[{path, old, new}]`` (empty if equal)."""
    if old == new and type(old) is type(new):
        return []
    out: list[dict[str, Any]] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old.keys()) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append({"path": sub, "old": old[key], "new": _MISSING})
            elif key not in old:
                out.append({"path": sub, "old": _MISSING, "new": new[key]})
            elif key in _ID_KEYS and isinstance(old[key], list) and isinstance(new[key], list):
                out.extend(_list_changes(old[key], new[key], sub, _ID_KEYS[key]))
            else:
                out.extend(changed_paths(old[key], new[key], sub))
        return out
    return [{"path": path, "old": old, "new": new}]


def _list_changes(old: list[Any], new: list[Any], path: str, key: str) -> list[dict[str, Any]]:
    if old == new:
        return []
    a, b = _by_id(old, key), _by_id(new, key)
    if a is None or b is None or [i for i in a if i in b] != [i for i in b if i in a]:
        return [{"path": path, "old": old, "new": new}]  # reordered or unkeyed: whole list
    out: list[dict[str, Any]] = []
    for ident, item in a.items():
        sub = f"{path}[{ident}]"
        out.extend(changed_paths(item, b[ident], sub) if ident in b
                   else [{"path": sub, "old": item, "new": _MISSING}])
    for ident, item in b.items():
        if ident not in a:
            out.append({"path": f"{path}[{ident}]", "old": _MISSING, "new": item})
    return out
