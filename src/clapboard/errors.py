"""Every error clapboard raises, under one base.

    ClapboardError
    ├── ValidationError            (ValueError)   a model field or an input is invalid
    │   └── InvalidNameError                      a project / episode / id is not allowed
    ├── UnsafePathError            (ValueError)   an artifact or path would leave the store
    ├── CorruptFileError           (ValueError)   a published file is unparseable or ill-typed
    │   └── CorruptJournalError                   damage inside a journal, before valid records
    ├── SchemaVersionError         (KeyError)     missing or unknown schema_version
    ├── SceneNotFoundError         (FileNotFoundError)
    ├── VersionNotFoundError       (ValueError)   a version the manifest does not register
    ├── SceneIdentityMismatchError (ValueError)   a body / manifest / candidate names another batch
    ├── ConflictError                             refused because of concurrent state (exit code 3)
    │   ├── SceneVersionConflictError             the active version moved since the caller loaded
    │   ├── SceneStructureImmutableError          a status write would change the shot structure
    │   ├── SceneLockedError                      picture lock refuses the move
    │   └── NothingToRevertError                  no pointer move to undo
    ├── LockTimeoutError           (TimeoutError) the batch lock was not acquired in time
    ├── LockReentryError           (RuntimeError) this thread already holds that batch lock
    ├── UnsupportedFilesystemError (OSError)      network filesystem, or flock unsupported
    ├── StoreReadOnlyError         (OSError)      a journal fsync failed; reopen the store
    └── RollbackError              (OSError)      restoring after a failed hook failed too

The PostgreSQL backend adds two, defined beside the code that raises them (they name
database failures, not store semantics): ``PostgresBatchError`` (a database error while a
batch was held) and ``PostgresUnavailableError`` (``ConnectionError``: a read failed).

The builtin bases keep code written against the seed module working: it caught
``KeyError`` for schema problems, ``ValueError`` for bad names and identity, and
``FileNotFoundError`` for missing scenes.
"""

from __future__ import annotations

from pathlib import Path


class ClapboardError(Exception):
    """Base of every clapboard error. ``path`` names the file involved, when one is."""

    path: Path | None = None
    hint: str = ""

    def __init__(self, message: str, *, path: Path | str | None = None, hint: str = "") -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        if hint:
            self.hint = hint
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments than ``args`` holds: rebuild from
        # the attributes, so errors cross process boundaries (multiprocessing pools).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def __str__(self) -> str:
        text = self.message
        if self.path is not None and str(self.path) not in text:
            text = f"{text} [{self.path}]"
        if self.hint:
            text = f"{text}; {self.hint}"
        return text


def _rebuild(cls: type[ClapboardError], args: tuple[object, ...],
             state: dict[str, object]) -> ClapboardError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ValidationError(ClapboardError, ValueError):
    """An invalid value. ``field`` is the dotted path of the offending field."""

    def __init__(self, field: str, problem: str, *, path: Path | str | None = None) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem, path=path)


class InvalidNameError(ValidationError):
    """A project, episode, batch or other id that the naming rules refuse."""


class UnsafePathError(ClapboardError, ValueError):
    """A manifest artifact or requested path that is not a bare name inside the store."""


class CorruptFileError(ClapboardError, ValueError):
    """A published file that cannot be parsed, or whose content has the wrong shape.

    The file is left in place for inspection; clapboard never overwrites it.
    """

    hint = "the file is left untouched for inspection; restore it or run `clapboard fsck`"


class CorruptJournalError(CorruptFileError):
    """A journal with a damaged record followed by valid records (not a torn tail)."""


class SchemaVersionError(ClapboardError, KeyError):
    """A body or manifest whose ``schema_version`` is missing or unknown."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        found: object = None,
        expected: int | None = None,
    ) -> None:
        self.found = found
        self.expected = expected
        super().__init__(message, path=path)

    # KeyError's own __str__ quotes the message; keep it readable.
    __str__ = ClapboardError.__str__


class SceneNotFoundError(ClapboardError, FileNotFoundError):
    """No body (flat or versioned) exists for the batch, or a registered body is missing."""


class VersionNotFoundError(ClapboardError, ValueError):
    """A version number that the batch's manifest does not register."""


class SceneIdentityMismatchError(ClapboardError, ValueError):
    """A scene or manifest that belongs to another batch than the one requested."""

    def __init__(
        self,
        requested_batch_id: str,
        generated_scene_id: object,
        *,
        path: Path | str | None = None,
        what: str = "candidate",
    ) -> None:
        self.requested_batch_id = requested_batch_id
        self.generated_scene_id = generated_scene_id
        super().__init__(
            f"{what} identity mismatch: requested batch {requested_batch_id!r} but it names "
            f"{generated_scene_id!r}; a renumber is a new batch, never a version (nothing written)",
            path=path,
        )


class ConflictError(ClapboardError):
    """The write was refused because of the batch's current state; nothing was written."""


class SceneVersionConflictError(ConflictError):
    """The active version moved between the caller's load and its save."""

    def __init__(self, batch_id: str, expected_version: int, actual_version: int) -> None:
        self.batch_id = batch_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"active version of batch {batch_id} moved from expected v{expected_version} "
            f"to v{actual_version} since it was loaded; nothing written",
            hint="reload the scene and apply the change again",
        )


class SceneStructureImmutableError(ConflictError):
    """A status write would change the structural fingerprint of a version body."""

    def __init__(self, batch_id: str, version: int, changes: list[str] | None = None) -> None:
        self.batch_id = batch_id
        self.version = version
        self.changes = list(changes or [])
        detail = f" ({', '.join(self.changes[:5])})" if self.changes else ""
        super().__init__(
            f"status save for batch {batch_id} v{version} would change the shot structure "
            f"of an immutable version body{detail}; nothing written",
            hint="write a candidate version (write_scene_candidate) and conform to it",
        )


class SceneLockedError(ConflictError):
    """The scene is picture-locked; pointer moves are refused until it is unlocked."""

    def __init__(
        self, scene_id: str, lock_reason: str | None, locked_by: str | None = None
    ) -> None:
        self.scene_id = scene_id
        self.batch_id = scene_id
        self.lock_reason = lock_reason
        self.locked_by = locked_by
        by = f" by {locked_by}" if locked_by else ""
        super().__init__(
            f"scene {scene_id} is locked{by}; lock_reason={lock_reason!r}",
            hint="unlock it first (`clapboard unlock`)",
        )


class NothingToRevertError(ConflictError):
    """``revert`` on a batch whose pointer never moved."""


class LockTimeoutError(ClapboardError, TimeoutError):
    """The batch lock was not acquired within the timeout."""

    def __init__(
        self,
        lock: str,
        timeout: float,
        *,
        holder: dict[str, object] | None = None,
    ) -> None:
        self.lock = lock
        self.timeout = timeout
        self.holder = dict(holder or {})
        who = ""
        if self.holder:
            parts = [f"{k}={v}" for k, v in self.holder.items() if k in ("pid", "host", "op")]
            who = f" (held by {' '.join(parts)})" if parts else ""
        super().__init__(
            f"timed out after {timeout:g}s waiting for lock {lock}{who}",
            hint="retry later or raise --lock-timeout / CLAPBOARD_LOCK_TIMEOUT",
        )


class LockReentryError(ClapboardError, RuntimeError):
    """The current thread already holds this batch's lock (e.g. a post_write hook saving)."""


class UnsupportedFilesystemError(ClapboardError, OSError):
    """The store root is on a filesystem whose locks cannot be trusted."""


class StoreReadOnlyError(ClapboardError, OSError):
    """A journal fsync failed; the store refuses writes until it is reopened."""


class RollbackError(ClapboardError, OSError):
    """A failed operation could not be undone; carries both causes. Run ``clapboard fsck``."""

    def __init__(self, message: str, *, cause: BaseException, rollback_cause: BaseException,
                 path: Path | str | None = None) -> None:
        self.cause = cause
        self.rollback_cause = rollback_cause
        super().__init__(f"{message}: {cause!r}; rollback failed: {rollback_cause!r}", path=path,
                         hint="the batch needs recovery: run `clapboard fsck`")


__all__ = [
    "ClapboardError",
    "ConflictError",
    "CorruptFileError",
    "CorruptJournalError",
    "InvalidNameError",
    "LockReentryError",
    "LockTimeoutError",
    "NothingToRevertError",
    "RollbackError",
    "SceneIdentityMismatchError",
    "SceneLockedError",
    "SceneNotFoundError",
    "SceneStructureImmutableError",
    "SceneVersionConflictError",
    "SchemaVersionError",
    "StoreReadOnlyError",
    "UnsafePathError",
    "UnsupportedFilesystemError",
    "ValidationError",
    "VersionNotFoundError",
]
