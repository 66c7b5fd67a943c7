"""clapboard: the durable, versioned state store of a generative film pipeline."""

from clapboard._version import __version__
from clapboard.backends.base import Problem, Report
from clapboard.errors import (
    ClapboardError,
    ConflictError,
    CorruptFileError,
    CorruptJournalError,
    InvalidNameError,
    LockReentryError,
    LockTimeoutError,
    NothingToRevertError,
    RollbackError,
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneStructureImmutableError,
    SceneVersionConflictError,
    SchemaVersionError,
    StoreReadOnlyError,
    UnsafePathError,
    UnsupportedFilesystemError,
    ValidationError,
    VersionNotFoundError,
)
from clapboard.models import Beat, Board, BoardStatus, Scene, Take, TakeStatus
from clapboard.opener import open_store
from clapboard.store import Store

__all__ = [
    "Beat",
    "Board",
    "BoardStatus",
    "ClapboardError",
    "ConflictError",
    "CorruptFileError",
    "CorruptJournalError",
    "InvalidNameError",
    "LockReentryError",
    "LockTimeoutError",
    "NothingToRevertError",
    "Problem",
    "Report",
    "RollbackError",
    "Scene",
    "SceneIdentityMismatchError",
    "SceneLockedError",
    "SceneNotFoundError",
    "SceneStructureImmutableError",
    "SceneVersionConflictError",
    "SchemaVersionError",
    "Store",
    "StoreReadOnlyError",
    "Take",
    "TakeStatus",
    "UnsafePathError",
    "UnsupportedFilesystemError",
    "ValidationError",
    "VersionNotFoundError",
    "__version__",
    "open_store",
]
