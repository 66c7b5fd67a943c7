"""Plain-text renderings shared by several commands (diffs, take counts, journal lines).

Kept apart from the commands so ``conform``, ``revert``, ``diff`` and ``watch`` describe
the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from clapboard.diff import summarize

Doc = dict[str, Any]


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no takes"


def diff_lines(diff: Doc) -> list[str]:
    """A structural diff as lines a person reads before moving a pointer."""
    head = f"batch {diff['batch_id']}: v{diff['a']} -> v{diff['b']}: {summarize(diff)}"
    lines = [head]
    for b in diff["added"]:
        lines.append(f"  + beat {b['beat_id']} added at position {b['position']}")
    for b in diff["removed"]:
        lines.append(f"  - beat {b['beat_id']} removed (was at position {b['position']})")
    for b in diff["moved"]:
        lines.append(f"  ~ beat {b['beat_id']} moved {b['from']} -> {b['to']}")
    for c in diff["changed"]:
        for key, old, new in _leaf_changes(c["key"], c["old"], c["new"]):
            lines.append(f"  * beat {c['beat_id']}: {key} {_short(old)} -> {_short(new)}")
    return lines


def _leaf_changes(key: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``plan_shot.duration_s 5.0 -> 6.5`` instead of two whole shot dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for k in [*old, *(k for k in new if k not in old)]:
            if old.get(k) != new.get(k) or (k in old) != (k in new):
                out.extend(_leaf_changes(f"{key}.{k}", old.get(k), new.get(k)))
        return out or [(key, old, new)]
    return [(key, old, new)]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def detail_text(record: Doc) -> str:
    """A journal record's ``detail`` in a few words."""
    detail = record.get("detail") or {}
    op = record.get("op")
    if op in ("conform", "revert"):
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        return f"v{detail.get('from')} -> v{detail.get('to')}{reason}"
    if op == "candidate":
        note = f" {detail['note']!r}" if detail.get("note") else ""
        active = ", activated" if detail.get("activated") else ""
        return f"from v{detail.get('parent_version')}{note}{active}"
    if op == "init":
        return f"{detail.get('beats')} beats, max_takes {detail.get('max_takes')}"
    changes = detail.get("changes")
    if isinstance(changes, list):
        paths = [str(c.get("path", c)) if isinstance(c, dict) else str(c) for c in changes]
        more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
        return ", ".join(paths[:3]) + more
    return _short(detail, 80)


def journal_line(key: tuple[str, str, str] | None, record: Doc) -> str:
    """One journal record on one line (``log`` omits the batch, ``watch`` names it)."""
    where = f"{key[0]}/{key[1]}/{key[2]} " if key else ""
    version = record.get("version")
    v = f" v{version}" if version is not None else ""
    return (f"{record.get('at')}  {where}#{record.get('seq')} {record.get('op')}{v} "
            f"by {record.get('actor')}: {detail_text(record)}")
