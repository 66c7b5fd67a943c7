"""``clapboard copy``: move a whole store between backends with nothing lost.

Every project, episode and batch of the source is copied with every registered version
body, the manifest (pointer and history) and the journal **verbatim** — the same seq,
prev and crc — so the copy's history is provably the same chain. It works between any
two backends because it only uses the :class:`~clapboard.backends.base.Backend`
interface: reads under the source batch's lock (a consistent snapshot even while
writers run), writes in one destination batch transaction (PostgreSQL: one SQL
transaction; filesystem: journal → bodies → manifest, each durable). Bodies are copied
as their current content (every journal delta applied).

Per destination batch, exactly one of:

* **copied** — the destination has nothing for it (no manifest, no flat body, no journal);
* **unchanged** — it already holds the same manifest, bodies and journal: a second copy
  is a no-op that writes nothing;
* **updated** — its journal is a strict prefix of the source's (the same chain, only
  shorter): it is an older state of the same batch, brought forward;
* **conflict** — anything else. The batch is left untouched and named in
  :class:`CopyConflictError`, raised after every other batch was copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapboard.backends.base import Backend, BatchTx, Doc
from clapboard.errors import ClapboardError, ConflictError
from clapboard.manifest import artifact_for, registered
from clapboard.store import Store

Progress = Callable[[int, int], object]


class CopyConflictError(ConflictError):
    """Destination batches that differ from the source and are not an older state of it."""

    def __init__(self, conflicts: list[str], report: CopyReport) -> None:
        self.conflicts = list(conflicts)
        self.report = report
        shown = "; ".join(conflicts[:3]) + (f"; and {len(conflicts) - 3} more"
                                            if len(conflicts) > 3 else "")
        super().__init__(
            f"{len(conflicts)} destination batch(es) differ from the source and were left "
            f"untouched: {shown}",
            hint="copy into an empty store, or remove those batches from the destination",
        )


@dataclass
class CopyReport:
    """What a copy did. ``written`` is False for a no-op (everything already there)."""

    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    bodies: int = 0
    journal_records: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return bool(self.copied or self.updated)

    def to_dict(self) -> dict[str, Any]:
        return {"copied": self.copied, "updated": self.updated, "unchanged": self.unchanged,
                "conflicts": self.conflicts, "bodies": self.bodies,
                "journal_records": self.journal_records, "warnings": self.warnings,
                "written": self.written}


@dataclass
class BatchState:
    """Everything a batch holds, decoded: what a copy compares and writes."""

    manifest: Doc | None
    bodies: dict[str, tuple[int, Doc]]  # artifact -> (version, body)
    journal: list[Doc]

    @property
    def empty(self) -> bool:
        return self.manifest is None and not self.bodies and not self.journal


def read_state(tx: BatchTx, backend: Backend, artifacts: dict[str, int] | None = None,
               missing: list[str] | None = None) -> BatchState:
    """The batch held by ``tx``: its manifest, every registered body (plus ``artifacts``
    when given: the ones a copy is about to write), and its journal."""
    manifest = tx.read_manifest()
    wanted = {artifact_for(manifest, tx.episode, tx.batch_id, v): v
              for v in registered(manifest)}
    wanted.update(artifacts or {})
    bodies: dict[str, tuple[int, Doc]] = {}
    for artifact, version in sorted(wanted.items()):
        doc = tx.read_body(version, _naming(artifact, version, tx))
        if doc is not None:
            bodies[artifact] = (version, doc)
        elif missing is not None and manifest is not None:
            missing.append(f"{_name(tx)} v{version}: registered body {artifact} is missing")
    journal = backend.read_journal(tx.project, tx.episode, tx.batch_id)
    return BatchState(manifest, bodies, journal)


def _naming(artifact: str, version: int, tx: BatchTx) -> Doc:
    """A one-entry manifest under which ``version`` resolves to ``artifact``: reads a
    body by its artifact name through the ordinary ``read_body``."""
    return {"batch_id": tx.batch_id, "active_version": version,
            "versions": [{"version": version, "artifact": artifact}], "history": []}


def _name(tx: BatchTx) -> str:
    return f"{tx.project}/{tx.episode}/{tx.batch_id}"


def _same(have: BatchState, want: BatchState) -> bool:
    return (have.manifest == want.manifest and have.journal == want.journal
            and all(have.bodies.get(a) == b for a, b in want.bodies.items()))


def _is_older_state(have: BatchState, want: BatchState) -> bool:
    """The destination's journal is a prefix of the source's (an equal one: a copy that
    was interrupted before its bodies or manifest)."""
    n = len(have.journal)
    return 0 < n <= len(want.journal) and want.journal[:n] == have.journal


def _write(tx: BatchTx, have: BatchState, want: BatchState) -> tuple[int, int]:
    """Bring the destination batch to ``want``: journal, then bodies, then manifest.

    The journal goes first: a body written afterwards includes every record (its
    checkpoint is the journal's end), so no imported delta record applies to it twice.
    A copy interrupted after the journal leaves a batch with only a journal, which the
    next copy completes (an older state of the same chain)."""
    new = want.journal[len(have.journal):]
    for record in new:
        tx.import_journal(record)
    bodies = 0
    for artifact, (version, doc) in sorted(want.bodies.items()):
        if have.bodies.get(artifact) != (version, doc):
            tx.write_body(version, doc, artifact)
            bodies += 1
    if want.manifest is not None and want.manifest != have.manifest:
        tx.write_manifest(want.manifest)
    return bodies, len(new)


def _copy_batch(src: Store, dst: Store, project: str, ep: str, batch: str,
                report: CopyReport) -> None:
    name = f"{project}/{ep}/{batch}"
    with src.transaction(project, ep, batch, "copy") as stx:
        want = read_state(stx, src.backend, missing=report.warnings)
    artifacts = {a: v for a, (v, _) in want.bodies.items()}
    with dst.transaction(project, ep, batch, "copy") as dtx:
        have = read_state(dtx, dst.backend, artifacts)
        if _same(have, want):
            report.unchanged.append(name)
            return
        if not (have.empty or _is_older_state(have, want)):
            report.conflicts.append(
                f"{name} (destination has {len(have.journal)} journal record(s), "
                f"source {len(want.journal)}; the histories differ)")
            return
        bodies, records = _write(dtx, have, want)
    report.bodies += bodies
    report.journal_records += records
    (report.copied if have.empty else report.updated).append(name)


def _same_location(a: Store, b: Store) -> bool:
    la, lb = a.backend.location, b.backend.location
    if "://" in la or "://" in lb:
        return la == lb
    return os.path.realpath(la) == os.path.realpath(lb)


def list_all_batches(store: Store) -> list[tuple[str, str, str]]:
    """Every (project, episode, batch) of a store, in order."""
    return [(p, e, b) for p in store.list_projects() for e in store.list_episodes(p)
            for b in store.list_batches(p, e)]


def copy_store(src: Store | str | os.PathLike[str], dst: Store | str | os.PathLike[str], *,
               progress: Progress | None = None,
               lock_timeout: float | None = None) -> CopyReport:
    """Copy every batch of ``src`` into ``dst`` (stores, folders or ``postgresql://`` URLs).

    Returns a :class:`CopyReport`; raises :class:`CopyConflictError` at the end when a
    destination batch differs (every other batch is copied first). Idempotent.
    """
    from clapboard.opener import open_store

    opened: list[Store] = []

    def as_store(x: Store | str | os.PathLike[str]) -> Store:
        if isinstance(x, Store):
            return x
        s = open_store(os.fspath(x) if isinstance(x, Path) else x, lock_timeout=lock_timeout)
        opened.append(s)
        return s

    try:
        source, dest = as_store(src), as_store(dst)
        if _same_location(source, dest):
            raise ClapboardError(f"source and destination are the same store "
                                 f"({source.backend.location})")
        report = CopyReport()
        batches = list_all_batches(source)
        for n, (project, ep, batch) in enumerate(batches, 1):
            _copy_batch(source, dest, project, ep, batch, report)
            if progress is not None:
                progress(n, len(batches))
        if report.conflicts:
            raise CopyConflictError(report.conflicts, report)
        return report
    finally:
        for s in opened:
            s.close()


__all__ = ["BatchState", "CopyConflictError", "CopyReport", "copy_store", "list_all_batches",
           "read_state"]
