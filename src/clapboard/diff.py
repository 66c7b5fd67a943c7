"""Structural diff between two versions of a scene.

Typed changes an operator can read before moving the active pointer:
``added`` / ``removed`` beats, ``moved`` beats (their position among the beats both
versions share changed) and ``changed`` structural keys with old and new values.
Only structure is compared — takes, boards and locks are not part of a version's shape.
"""

from __future__ import annotations

from typing import Any

from clapboard.fingerprint import STRUCTURAL_BEAT_METADATA_KEYS, raw_fingerprint


def structural_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Diff of scene dicts ``a`` → ``b`` (raw bodies)."""
    a_beats = {x.get("beat_id"): x for x in a.get("beats") or []}
    b_beats = {x.get("beat_id"): x for x in b.get("beats") or []}
    a_order = [x.get("beat_id") for x in a.get("beats") or []]
    b_order = [x.get("beat_id") for x in b.get("beats") or []]
    added = [{"beat_id": i, "position": b_order.index(i)} for i in b_order if i not in a_beats]
    removed = [{"beat_id": i, "position": a_order.index(i)} for i in a_order if i not in b_beats]
    common_a = [i for i in a_order if i in b_beats]
    common_b = [i for i in b_order if i in a_beats]
    moved = [
        {"beat_id": i, "from": a_order.index(i), "to": b_order.index(i)}
        for pos, i in enumerate(common_b)
        if common_a[pos] != i
    ]
    changed = []
    for i in common_b:
        md_a = a_beats[i].get("beat_metadata") or {}
        md_b = b_beats[i].get("beat_metadata") or {}
        for key in STRUCTURAL_BEAT_METADATA_KEYS:
            if key in md_a or key in md_b:
                old, new = md_a.get(key), md_b.get(key)
                if old != new or (key in md_a) != (key in md_b):
                    changed.append({"beat_id": i, "key": key, "old": old, "new": new})
    fa, fb = raw_fingerprint(a), raw_fingerprint(b)
    return {
        "fingerprint_a": fa,
        "fingerprint_b": fb,
        "identical": fa == fb,
        "added": added,
        "removed": removed,
        "moved": moved,
        "changed": changed,
    }


def summarize(diff: dict[str, Any]) -> str:
    """One line: ``+2 beats, -1, 3 moved, 4 keys changed`` or ``no structural change``."""
    if diff["identical"]:
        return "no structural change"
    parts = []
    for label, key in (("added", "added"), ("removed", "removed"), ("moved", "moved"),
                       ("keys changed", "changed")):
        if diff[key]:
            parts.append(f"{len(diff[key])} {label}")
    return ", ".join(parts) if parts else "fingerprint differs"
