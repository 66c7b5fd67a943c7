"""The filesystem backend: human-readable JSON files in the SPEC §3 layout.

    <root>/projects/<project>/orchestration/scenes/
        ep_001_B.json              flat body (implicit active v1 when no manifest)
        ep_001_B.versions.json     manifest
        ep_001_B.v002.json         versioned body
        ep_001_B.versions.lock     per-batch lock file (never deleted)
        ep_001_B.journal.jsonl     per-batch journal

Every file is replaced with :func:`~clapboard.io.atomic.atomic_write_bytes`; the batch
transaction remembers the bytes it replaced so a failure inside the block (a
``post_write`` hook, a manifest write) restores them through the same durable writer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from clapboard import codec
from clapboard.backends.base import Backend, BatchTx, BodyState, Doc, Report
from clapboard.backends.fs_state import BodyCache, Entry, JournalPos
from clapboard.backends.replay import COMPACT_EVERY, state_after
from clapboard.codec import Checkpoint
from clapboard.errors import (
    ClapboardError,
    RollbackError,
    SceneIdentityMismatchError,
    StoreReadOnlyError,
    UnsupportedFilesystemError,
)
from clapboard.io import journal as jr
from clapboard.io.atomic import atomic_write_bytes, durable_unlink
from clapboard.io.fsinfo import filesystem_type, is_network_fs
from clapboard.io.lock import FileLock
from clapboard.manifest import artifact_for
from clapboard.paths import (
    ProjectPaths,
    journal_name,
    listed_batch,
    lock_name,
    manifest_name,
    parse_scene_file,
    safe_basename,
    validate_project,
)


def _read(path: Path | str, size_hint: int = -1) -> bytes | None:
    """A whole file, or None when it does not exist (plain system calls: the buffered
    ``open`` costs more than the read of a small body). With ``size_hint`` (the size
    the file is expected to have) one read of one byte more settles it: a regular
    file's read comes back short only at its end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if size_hint >= 0:
            first = os.read(fd, size_hint + 1)
            if len(first) <= size_hint:
                return first
            chunks = [first]
        else:
            chunks = [os.read(fd, os.fstat(fd).st_size + 1)]
        while chunks[-1]:  # the file may have grown since: read to the end
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


_ABSENT = -2  # a manifest size: there was none
# How long after a journal's last change its stat stamp is not trusted to show the next
# one (the coarsest file timestamp clock of a local disk is far finer than this).
_RACY_NS = 2_000_000_000


class _BatchFiles(NamedTuple):
    lock: Path
    manifest: Path
    journal: jr.Journal
    manifest_key: str  # the manifest's path as text: what the hot path opens and keys by
    lock_key: str  # the lock file's, the same


class FilesystemBackend(Backend):
    """A store in a folder. One machine: flock does not reach across NFS."""

    def __init__(self, root: str | os.PathLike[str], *, allow_network_fs: bool = False,
                 compact_every: int = COMPACT_EVERY) -> None:
        self.root = Path(root)
        self.compact_every = compact_every
        self.bodies = BodyCache()
        self._dirs: dict[str, Path] = {}
        self._files: dict[tuple[str, str], tuple[Path, str]] = {}  # the path, as text too
        self.location = str(self.root)
        self.read_only_reason: str | None = None
        self._batches: dict[tuple[str, str, str], _BatchFiles] = {}
        # journal -> (its stat stamp when trusted, the last seq read)
        self._watch_tails: dict[str, tuple[tuple[int, int, int] | None, int]] = {}
        # The size each manifest had when last read: the next read is then one read()
        # of one byte more (see _read), no fstat and no second read; _ABSENT when there
        # was none (a flat batch): the next look is an access() call, not an open()
        # that raises (an exception costs more than the system call).
        self._manifest_sizes: dict[str, int] = {}
        fstype = filesystem_type(self.root)
        if is_network_fs(fstype) and not allow_network_fs:
            raise UnsupportedFilesystemError(
                f"store root {self.root} is on a {fstype} filesystem, whose locks cannot be "
                "trusted across machines",
                path=self.root,
                hint="use the PostgreSQL backend (postgresql://…) for writers on several "
                "machines, or pass allow_network_fs=True for a disk known to honour flock",
            )

    # -- locations --------------------------------------------------------------------

    def scenes_dir(self, project: str) -> Path:
        d = self._dirs.get(project)
        if d is None:  # pathlib is slow enough to show on the hot path: remember it
            d = self._dirs[project] = ProjectPaths.for_project(
                project, self.root).orchestration_scenes_dir
        return d

    def body_path(self, project: str, episode: str, batch_id: str, version: int,
                  manifest: Doc | None) -> Path:
        return self.body_file(project, episode, batch_id, version, manifest)[0]

    def body_file(self, project: str, episode: str, batch_id: str, version: int,
                  manifest: Doc | None) -> tuple[Path, str]:
        """A body's path, and the same as text (see :meth:`file_entry`)."""
        artifact = artifact_for(manifest, episode, batch_id, version)
        return self.file_entry(project, artifact, (batch_id, version))

    def file_path(self, project: str, name: str, context: str | tuple[str, int]) -> Path:
        """The path of a scenes-folder file, its name checked (a bare basename) once."""
        return self.file_entry(project, name, context)[0]

    def file_entry(self, project: str, name: str,
                   context: str | tuple[str, int]) -> tuple[Path, str]:
        """:meth:`file_path`, and the same as text: a save opens its files and keys what
        it keeps by the text (each ``str()`` or hash of a ``Path`` is a Python call).
        ``context`` names the file in an error: text, or (batch id, version) of a body
        (formatted only when the name is checked, the first time)."""
        key = (project, name)
        got = self._files.get(key)
        if got is None:
            if not isinstance(context, str):
                context = f"batch {context[0]} v{context[1]}"
            path = self.scenes_dir(project) / safe_basename(name, context=context)
            got = (path, str(path))
            if len(self._files) < 100_000:
                self._files[key] = got
        return got

    def locate(self, project: str, episode: str, batch_id: str, version: int,
               manifest: Doc | None) -> str:
        try:
            return str(self.body_path(project, episode, batch_id, version, manifest))
        except ClapboardError:
            return super().locate(project, episode, batch_id, version, manifest)

    def journal(self, project: str, episode: str, batch_id: str) -> jr.Journal:
        return self._batch_files(project, episode, batch_id).journal

    def _batch_files(self, project: str, episode: str, batch_id: str) -> _BatchFiles:
        """A batch's lock file, manifest path and journal (names made and checked once)."""
        key = (project, episode, batch_id)
        files = self._batches.get(key)
        if files is None:
            manifest, manifest_key = self.file_entry(project, manifest_name(episode, batch_id),
                                                     "manifest")
            lock, lock_key = self.file_entry(project, lock_name(episode, batch_id), "lock")
            files = _BatchFiles(lock, manifest, jr.Journal(self.journal_path(
                project, episode, batch_id)), manifest_key, lock_key)
            if len(self._batches) < 100_000:
                self._batches[key] = files
        return files

    def forget_journal(self, path: Path) -> None:
        """Drop what this store keeps of the journal at ``path`` (after it was changed
        behind its back: fsck's truncation of a torn tail)."""
        for key in [k for k, f in self._batches.items() if f.journal.path == path]:
            del self._batches[key]

    # -- reads ------------------------------------------------------------------------

    def _load_manifest(self, project: str, episode: str, batch_id: str,
                       files: _BatchFiles | None = None) -> Doc | None:
        files = files or self._batch_files(project, episode, batch_id)
        path, key = files.manifest, files.manifest_key
        sizes = self._manifest_sizes
        size = sizes.get(key, -1)
        if size == _ABSENT and not os.access(key, os.F_OK):
            return None  # still a flat batch (asked without a FileNotFoundError raised)
        data = _read(key, max(size, -1))
        if len(sizes) >= 100_000:
            sizes.clear()
        if data is None:
            sizes[key] = _ABSENT
            return None
        sizes[key] = len(data)
        manifest = codec.decode_manifest(data, path)
        if manifest.get("batch_id") != batch_id:
            raise SceneIdentityMismatchError(batch_id, manifest.get("batch_id"), path=path,
                                             what="manifest")
        return manifest

    def load_entry(self, path: Path, journal_path: Path, version: int,
                   journal_fd: int | None = None, key: str | None = None
                   ) -> tuple[bytes, Entry] | None:
        """The body file at ``path`` (``key``: the same as text) with its journal deltas
        applied (see fs_state)."""
        key = key or str(path)
        data = _read(key, self.bodies.size_of(key))
        if data is None:
            self.bodies.drop(key)
            return None
        return data, self.bodies.materialize(path, journal_path, version, data, journal_fd,
                                             key)

    def journal_path(self, project: str, episode: str, batch_id: str) -> Path:
        return self.file_path(project, journal_name(episode, batch_id), "journal")

    def read_manifest(self, project: str, episode: str, batch_id: str) -> Doc | None:
        return self._load_manifest(project, episode, batch_id)

    def read_state(self, project: str, episode: str, batch_id: str, version: int,
                   manifest: Doc | None) -> BodyState | None:
        got = self.load_entry(self.body_path(project, episode, batch_id, version, manifest),
                              self.journal_path(project, episode, batch_id), version)
        return got[1].state if got is not None else None

    def list_projects(self) -> list[str]:
        base = self.root / "projects"
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            try:
                validate_project(p.name)
            except ClapboardError:
                continue
            if p.is_dir():
                out.append(p.name)
        return sorted(out)

    def _scene_files(self, project: str) -> list[str]:
        d = self.scenes_dir(project)
        try:
            return os.listdir(d)
        except FileNotFoundError:
            return []

    def list_episodes(self, project: str) -> list[str]:
        eps = {got[0] for got in map(listed_batch, self._scene_files(project))
               if got is not None}
        return sorted(eps, key=lambda e: (int(e[3:]), e))

    def list_batches(self, project: str, episode: str) -> list[str]:
        return sorted({got[1] for got in map(listed_batch, self._scene_files(project))
                       if got is not None and got[0] == episode})

    def read_journal(self, project: str, episode: str, batch_id: str) -> list[Doc]:
        return jr.scan(self.journal_path(project, episode, batch_id)).records

    def journal_since(
        self, project: str | None, after: dict[tuple[str, str, str], int]
    ) -> Iterator[tuple[tuple[str, str, str], Doc]]:
        for proj in [project] if project else self.list_projects():
            for name in sorted(self._scene_files(proj)):
                f = parse_scene_file(name)
                if f is None or f.kind != "journal":
                    continue
                key = (proj, f.episode, f.batch_id)
                last = after.get(key, 0)
                path = self.scenes_dir(proj) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
                seen = self._watch_tails.get(str(path))
                if seen is not None and seen[0] == stamp and last >= seen[1]:
                    continue  # unchanged since the last scan, and the caller has it all
                records = jr.scan(path).records
                # An append writes over the journal's padding: the size stays the same,
                # and so do the timestamps within one tick of the clock. A stamp taken
                # that soon after the file's last change is not trusted to show the
                # next one (as git treats a "racy" index entry): scanned again next time.
                trusted = st.st_mtime_ns < time.time_ns() - _RACY_NS
                self._watch_tails[str(path)] = (stamp if trusted else None,
                                                records[-1]["seq"] if records else 0)
                for rec in records:
                    if rec["seq"] > last:
                        yield key, rec

    # -- the batch transaction --------------------------------------------------------

    def batch(self, project: str, episode: str, batch_id: str, *, timeout: float,
              op: str = "") -> AbstractContextManager[BatchTx]:
        return _FsBatch(self, project, episode, batch_id, timeout, op)

    def fsck(self, project: str | None, *, repair: bool) -> Report:
        from clapboard.backends.fs_fsck import fsck_filesystem

        return fsck_filesystem(self, project, repair=repair)

    def migrate(self, project: str | None) -> list[str]:
        from clapboard.backends.fs_fsck import migrate_filesystem

        return migrate_filesystem(self, project)


class _FsBatch:
    """One batch held: its lock for the block, a transaction over it, the files the
    transaction replaced restored when the block raises. (A class, not a generator
    context manager: this runs once per save.)"""

    __slots__ = ("backend", "batch_id", "episode", "files", "lock", "project", "tx")

    def __init__(self, backend: FilesystemBackend, project: str, episode: str, batch_id: str,
                 timeout: float, op: str) -> None:
        self.backend, self.project, self.episode, self.batch_id = (backend, project, episode,
                                                                   batch_id)
        self.files = backend._batch_files(project, episode, batch_id)
        self.lock = FileLock(self.files.lock, timeout=timeout, op=op, key=self.files.lock_key)
        self.tx: FsBatchTx | None = None

    def __enter__(self) -> FsBatchTx:
        backend = self.backend
        if backend.read_only_reason:
            raise StoreReadOnlyError(
                f"store {backend.root} is read-only after a failed write: "
                f"{backend.read_only_reason}",
                hint="reopen the store (a new process) after checking it with `clapboard fsck`",
            )
        self.lock.acquire()
        try:
            tx = self.tx = FsBatchTx(backend, self.project, self.episode, self.batch_id,
                                     self.files)
        except BaseException:
            self.lock.release()
            raise
        return tx

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        tx, self.tx = self.tx, None
        assert tx is not None
        try:
            if ev is not None:
                tx.rollback(ev)  # a failed rollback raises RollbackError, from ev
        finally:
            tx.close_journal()
            self.lock.release()


class _NextEntry:
    """The kept entry after a delta record, made and kept while the record's line is on
    its way to the disk (the journal's ``meanwhile``): the state after the record,
    exactly as a reader replaying the journal would get it (as on PostgreSQL:
    replay.state_after). Work done here instead of before the line is written (the
    Store's ``after`` makes its document here) or after the sync (keeping the entry) is
    done while the disk works: on a 30 KiB scene about 5 and 8 µs less per save
    (docs/PERFORMANCE.md).

    Keeping the entry before the sync shows no reader more than the journal itself
    does: its line is in the file (the page cache) from the write on, and a kept entry
    is used only after proving that line still ends the journal's records. If the
    append fails, the line is cut, so that proof fails, and the entry is withdrawn
    anyway (:meth:`withdraw`). (Building the next save's scene here as well, as
    PostgreSQL does during its round trip, gained nothing: by the time that save uses
    it, its objects are as cold as new ones.)"""

    __slots__ = ("after", "before", "bodies", "entry", "key")

    def __init__(self, before: Entry, after: Callable[[], Doc] | None, bodies: BodyCache,
                 key: str) -> None:
        self.before, self.after, self.bodies, self.key = before, after, bodies, key
        self.entry: Entry | None = None

    def __call__(self, rec: Doc, ino: int, end: int, line: bytes) -> None:
        before = self.before
        state = BodyState(state_after(before.state.doc, rec, self.after), valid=True)
        self.entry = Entry(before.body, before.checkpoint, state,
                           JournalPos(ino, end, rec["seq"], rec["crc"], line),
                           before.pending + 1, before.size)
        self.bodies.put(self.key, self.entry)

    def withdraw(self) -> None:
        """Forget the entry kept for a record whose append failed."""
        if self.entry is not None:
            self.bodies.drop(self.key)


class FsBatchTx(BatchTx):
    def __init__(self, backend: FilesystemBackend, project: str, episode: str,
                 batch_id: str, files: _BatchFiles) -> None:
        self.backend = backend
        self._files = files
        self.project = project
        self.episode = episode
        self.batch_id = batch_id
        self._seen: dict[str, bytes | None] = {}  # bytes as read in this tx, by path text
        self._undo: list[tuple[Path, bytes | None]] = []
        self._manifest: tuple[Doc | None] | None = None
        self._entries: dict[str, Entry] = {}  # bodies read in this tx, as read, by path text
        self._journal = self._files.journal
        # The journal opened once for the whole transaction (its tail checked when a
        # body is read, the record appended): one open and close per save, not two.
        self._journal_fd: int | None = None

    @property
    def dir(self) -> Path:
        """The batch's scenes folder (asked for only by whole-file writes)."""
        return self.backend.scenes_dir(self.project)

    def journal_fd(self) -> int | None:
        if self._journal_fd is None:
            self._journal_fd = self._journal.open()
        return self._journal_fd

    def close_journal(self) -> None:
        fd, self._journal_fd = self._journal_fd, None
        if fd is not None:
            os.close(fd)

    def read_manifest(self) -> Doc | None:
        if self._manifest is None:
            self._manifest = (self.backend._load_manifest(self.project, self.episode,
                                                          self.batch_id, self._files),)
        m = self._manifest[0]
        return dict(m) if m is not None else None

    def read_state(self, version: int, manifest: Doc | None,
                   artifact: str | None = None) -> BodyState | None:
        if artifact is None:
            artifact = artifact_for(manifest, self.episode, self.batch_id, version)
        path, key = self.backend.file_entry(self.project, artifact, (self.batch_id, version))
        got = self.backend.load_entry(path, self._journal.path, version, self.journal_fd(),
                                      key)
        if got is None:
            self._seen[key] = None
            return None
        self._seen[key], entry = got
        self._entries[key] = entry
        return entry.state

    def commit_changes(self, version: int, artifact: str, state: BodyState,
                       new_doc: Callable[[], Doc], record: Doc,
                       after: Callable[[], Doc] | None = None) -> Doc:
        """The journal record is the commit point: one append and its sync, the body
        file untouched. Before that, a body without a checkpoint, or one that already
        has ``compact_every`` deltas pending, is rewritten with its current state
        (so a failure there refuses the save and commits nothing)."""
        path, key = self.backend.file_entry(self.project, artifact, (self.batch_id, version))
        entry = self._entries.get(key)
        if entry is None or entry.state is not state or self.backend.compact_every == 0:
            # Not read in this transaction, or the store keeps every body current:
            # write the body whole (its checkpoint then includes this record's past).
            return super().commit_changes(version, artifact, state, new_doc, record)
        if entry.checkpoint is None or entry.pending >= self.backend.compact_every:
            entry = self._compact(path, entry)
        kept = _NextEntry(entry, after, self.backend.bodies, key)
        try:
            return self._journal_write({**record, "detail": {**record["detail"],
                                                               "delta": True}},
                                       verbatim=False, decode=False, meanwhile=kept)
        except BaseException:
            kept.withdraw()
            raise

    def _compact(self, path: Path, entry: Entry) -> Entry:
        pos = entry.pos if entry.pos is not None else self._position()
        cp = Checkpoint(pos.seq, pos.crc, pos.end)
        data = codec.encode_scene(entry.state.doc, cp)
        self._replace(path, data)
        compacted = Entry(data, cp, entry.state, pos, 0, len(data))
        self.backend.bodies.put(str(path), compacted)
        return compacted

    def _position(self) -> JournalPos:
        ino, tail, line = self._journal.position()
        return JournalPos(ino, tail.valid_end, tail.seq, tail.crc, line)

    def artifact_exists(self, artifact: str) -> bool:
        return (self.dir / safe_basename(artifact)).exists()

    def _replace(self, path: Path, data: bytes) -> None:
        key = str(path)
        if key in self._seen:
            previous = self._seen[key]
        else:
            previous = _read(key)
        self._undo.append((path, previous))
        atomic_write_bytes(path, data)
        self._seen[key] = data

    def write_body(self, version: int, doc: Doc, artifact: str) -> None:
        # A whole body includes everything journaled so far: stamp that position.
        path = self.backend.file_path(self.project, artifact, f"batch {self.batch_id} v{version}")
        pos = self._position()
        self._replace(path, codec.encode_scene(doc, Checkpoint(pos.seq, pos.crc, pos.end)))
        self._entries.pop(str(path), None)
        self.backend.bodies.drop(str(path))

    def create_body(self, version: int, doc: Doc, artifact: str) -> None:
        # A new batch's journal is created (empty) before its first body, so the folder
        # sync of the body's rename makes the journal's name durable too, and the first
        # record then needs no folder sync of its own: three syncs per new batch, not
        # four. The record is still synced after the body is durable.
        self._journal.create()
        self.write_body(version, doc, artifact)

    def write_manifest(self, manifest: Doc) -> None:
        self._replace(self.dir / manifest_name(self.episode, self.batch_id),
                      codec.encode_manifest(manifest))
        self._manifest = (dict(manifest),)

    def append_journal(self, record: Doc) -> Doc:
        return self._journal_write(record, verbatim=False)

    def import_journal(self, record: Doc) -> Doc:
        return self._journal_write(record, verbatim=True)

    def _journal_write(self, record: Doc, *, verbatim: bool, decode: bool = True,
                       meanwhile: jr.Meanwhile | None = None) -> Doc:
        j = self._journal
        try:
            fd = self.journal_fd()
            return (j.append_verbatim(record, fd) if verbatim
                    else j.append(record, fd, decode=decode, meanwhile=meanwhile))
        except OSError as e:
            # After a failed fsync the kernel may have dropped the dirty pages: never
            # retry and trust it. Refuse further writes until the store is reopened and
            # the journal revalidated (fsck truncates whatever tail did not make it).
            self.backend.read_only_reason = f"journal {j.path}: {e}"
            raise

    def rollback(self, cause: BaseException) -> None:
        """Restore every file this transaction replaced, newest first."""
        undo, self._undo = self._undo, []
        failed: tuple[Path, OSError] | None = None
        for path, previous in reversed(undo):
            try:
                if previous is None:
                    durable_unlink(path)
                else:
                    atomic_write_bytes(path, previous)
            except OSError as e:
                failed = failed or (path, e)  # keep restoring the others
        if failed is not None:
            where, err = failed
            # Record "needs recovery": no further writes until reopened and checked.
            self.backend.read_only_reason = f"rollback of {where} failed ({err}); needs recovery"
            raise RollbackError(
                f"could not restore {where} after a failed write", cause=cause,
                rollback_cause=err, path=where,
            ) from cause


__all__ = ["FilesystemBackend", "FsBatchTx"]

