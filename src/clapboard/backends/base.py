"""The seam between the Store (all writer semantics) and where bytes live.

A backend offers *a locked batch transaction* and a few unlocked reads. It knows
nothing about structure guards, overlays or versions policy: ``store.py`` builds every
operation on top of this interface, so the filesystem and PostgreSQL behave the same.

Transaction contract:

* ``backend.batch(...)`` holds the batch exclusively for the ``with`` block (a flock,
  or ``SELECT … FOR UPDATE``), waiting at most ``timeout`` seconds
  (:class:`~clapboard.errors.LockTimeoutError`).
* Reads inside the block see the latest committed state plus the block's own writes.
* Leaving the block normally commits; leaving it with an exception undoes every write
  of the block (filesystem: previous bytes restored durably; PostgreSQL: ROLLBACK)
  and re-raises. If undoing fails, :class:`~clapboard.errors.RollbackError` carries
  both causes.
* Writes are ordered body → manifest → journal by the Store; the filesystem makes each
  durable as it happens, so every prefix of a crashed operation still loads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from clapboard.codec import json_copy
from clapboard.models import MadeBeats, Scene, lazy_scene

Doc = dict[str, Any]


@dataclass
class Problem:
    """One finding of ``fsck``: what is wrong, where, and whether repair fixed it."""

    path: str
    kind: str
    message: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "message": self.message,
                "repaired": self.repaired}


@dataclass
class Report:
    """The result of ``fsck``: ``problems`` is empty when the store is clean."""

    problems: list[Problem] = field(default_factory=list)
    checked: int = 0

    @property
    def clean(self) -> bool:
        return not [p for p in self.problems if not p.repaired]

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "clean": self.clean,
                "problems": [p.to_dict() for p in self.problems]}


@dataclass(slots=True)
class BodyState:
    """A body as the store reads it: ``doc`` is the scene dict with every journal delta
    applied. ``doc`` is shared (a backend may cache it): never mutate it — build a
    scene with :func:`clapboard.models.lazy_scene` or copy it first.

    ``valid`` says the whole document has passed model validation (set by the Store,
    kept with the cached state). ``spares``: scenes over ``doc`` a backend built ahead
    of need (``lazy_scene``, with how their beats were made), never handed out — a
    reader takes one with :meth:`spare` instead of building it.
    """

    doc: Doc
    valid: bool = False
    spares: list[tuple[Scene, MadeBeats]] | None = None

    def spare(self) -> tuple[Scene, MadeBeats] | None:
        """A scene built ahead over ``doc`` (a ``Scene`` nobody else holds) and how its
        beats were made, or None. Threads may race for it: ``list.pop`` hands each one
        to one of them."""
        spares = self.spares
        if spares:
            try:
                return spares.pop()
            except IndexError:
                pass
        return None

    def build_spare(self) -> None:
        """Build one scene over ``doc`` for the next reader (while waiting for a server
        that is committing this state, say): a failure here only means the reader
        builds its own."""
        try:
            scene = lazy_scene(self.doc)
            made = MadeBeats.of(scene)
        except Exception:
            return
        self.spares = [(scene, made)]


class OptimisticMiss(Exception):
    """An optimistic write did not stand (another writer got there first, or the write
    needs what only the lock can give): nothing was written; the Store runs the write
    again under the batch lock. Never leaves the Store."""


class BatchTx(ABC):
    """One batch held exclusively. See the module docstring for the contract."""

    project: str
    episode: str
    batch_id: str

    @abstractmethod
    def read_manifest(self) -> Doc | None:
        """The validated manifest (schema and identity checked), None when absent."""

    @abstractmethod
    def read_state(self, version: int, manifest: Doc | None,
                   artifact: str | None = None) -> BodyState | None:
        """The body of ``version`` as a shared :class:`BodyState` (None if absent), its
        journal deltas applied. With ``manifest`` None only version 1 (the flat body)
        exists. ``artifact``: the version's artifact, when the caller has looked it up
        already (``manifest.artifact_for``). A backend may keep states between calls,
        proving them current first."""

    def read_body(self, version: int, manifest: Doc | None) -> Doc | None:
        """The body of ``version`` as the caller's own document, None if absent."""
        state = self.read_state(version, manifest)
        return json_copy(state.doc) if state is not None else None

    def commit_changes(self, version: int, artifact: str, state: BodyState,
                       new_doc: Callable[[], Doc], record: Doc,
                       after: Callable[[], Doc] | None = None) -> Doc:
        """Make a change of ``state`` durable and journal it; returns the record (which
        may share values with what the backend keeps: read it, do not change it).

        ``new_doc()`` gives the whole new body (it may share sub-documents with
        ``state.doc``: read it, do not keep it); ``record`` is the journal record, whose
        ``detail.changes`` lists the changes. ``after``, when given, makes ``state.doc``
        with those changes applied, shared with nobody else (a backend may keep it
        instead of applying them again; call it once the record is written: it is
        not needed before). Default: write the whole body, then the
        record. A backend may instead make the record itself the commit point (see the
        filesystem backend), as long as every read applies it.
        """
        self.write_body(version, new_doc(), artifact)
        return self.append_journal(record)

    @abstractmethod
    def write_body(self, version: int, doc: Doc, artifact: str) -> None:
        """Write a body (scene dict) under its artifact name, durably."""

    def create_body(self, version: int, doc: Doc, artifact: str) -> None:
        """Write the first body of a new batch, whose journal record follows in this
        transaction (a backend may prepare that journal along with the body)."""
        self.write_body(version, doc, artifact)

    @abstractmethod
    def write_manifest(self, manifest: Doc) -> None:
        """Write the manifest, durably."""

    @abstractmethod
    def append_journal(self, record: Doc) -> Doc:
        """Append a journal record (seq/prev/crc assigned here); returns it complete."""

    @abstractmethod
    def import_journal(self, record: Doc) -> Doc:
        """Append a complete record verbatim — its ``seq``, ``prev`` and ``crc`` as given
        (``clapboard copy``). Refused with :class:`~clapboard.errors.CorruptJournalError`
        unless its crc holds and it continues the batch's chain."""

    def artifact_exists(self, artifact: str) -> bool:
        """True if a body is stored under ``artifact`` whether registered or not (an
        orphan left by a crash). Backends without orphans answer False."""
        return False


class Backend(ABC):
    """A place to keep stores: a folder, or a PostgreSQL database."""

    location: str
    optimistic = False  # True when optimistic_batch may offer a block

    @abstractmethod
    def batch(
        self, project: str, episode: str, batch_id: str, *, timeout: float, op: str = ""
    ) -> AbstractContextManager[BatchTx]:
        """Hold a batch exclusively (see the module docstring)."""

    def optimistic_batch(
        self, project: str, episode: str, batch_id: str, *, timeout: float, op: str = ""
    ) -> AbstractContextManager[BatchTx] | None:
        """A batch transaction that takes no lock up front, or None when the backend has
        none to offer for this batch (the default). Its reads are what this process last
        saw; leaving the block commits its one change only if the batch is still exactly
        that, as one atomic step. Anything else — another writer got there first, the
        block raised, it wrote nothing, or it asked for more than one journal-committed
        change — raises :class:`OptimisticMiss` having written nothing, and the caller
        runs the block again in :meth:`batch`."""
        return None

    @abstractmethod
    def read_manifest(self, project: str, episode: str, batch_id: str) -> Doc | None:
        """Unlocked read of the validated manifest."""

    @abstractmethod
    def read_state(self, project: str, episode: str, batch_id: str, version: int,
                   manifest: Doc | None) -> BodyState | None:
        """Unlocked read of a body as a shared :class:`BodyState` (see BatchTx)."""

    def read_body(
        self, project: str, episode: str, batch_id: str, version: int, manifest: Doc | None
    ) -> Doc | None:
        """Unlocked read of a body, the caller's own document."""
        state = self.read_state(project, episode, batch_id, version, manifest)
        return json_copy(state.doc) if state is not None else None

    def locate(self, project: str, episode: str, batch_id: str, version: int,
               manifest: Doc | None) -> str:
        """Where a body lives, for error messages (a file path, or a URL-like name)."""
        return f"{self.location}#{project}/{episode}/{batch_id}/v{version}"

    @abstractmethod
    def list_projects(self) -> list[str]: ...

    @abstractmethod
    def list_episodes(self, project: str) -> list[str]: ...

    @abstractmethod
    def list_batches(self, project: str, episode: str) -> list[str]:
        """Batch ids with a flat body or a manifest, sorted."""

    @abstractmethod
    def read_journal(self, project: str, episode: str, batch_id: str) -> list[Doc]:
        """Every valid journal record of a batch, in seq order."""

    @abstractmethod
    def journal_since(
        self, project: str | None, after: dict[tuple[str, str, str], int]
    ) -> Iterator[tuple[tuple[str, str, str], Doc]]:
        """Journal records newer than ``after[(project, episode, batch)]`` (for watch)."""

    @abstractmethod
    def fsck(self, project: str | None, *, repair: bool) -> Report:
        """Check every stored object; with ``repair``, fix only what is safe to fix."""

    @abstractmethod
    def migrate(self, project: str | None) -> list[str]:
        """Rewrite documents of older schema versions in the current one; names them."""

    def wait_for_change(self, timeout: float) -> None:
        """Block until something may have changed, or ``timeout`` (default: sleep)."""
        import time

        time.sleep(timeout)

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections and caches."""
