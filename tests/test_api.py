"""The public surface is pinned: a change here is a change for every user."""

import clapboard


def test_all_is_pinned() -> None:
    assert set(clapboard.__all__) == {
        "Beat", "Board", "BoardStatus", "ClapboardError", "ConflictError", "CorruptFileError",
        "CorruptJournalError", "InvalidNameError", "LockReentryError", "LockTimeoutError",
        "NothingToRevertError", "Problem", "Report", "RollbackError", "Scene",
        "SceneIdentityMismatchError", "SceneLockedError", "SceneNotFoundError",
        "SceneStructureImmutableError", "SceneVersionConflictError", "SchemaVersionError",
        "Store", "StoreReadOnlyError", "Take", "TakeStatus", "UnsafePathError",
        "UnsupportedFilesystemError", "ValidationError", "VersionNotFoundError", "__version__",
        "open_store",
    }
    for name in clapboard.__all__:
        assert hasattr(clapboard, name)


def test_errors_inherit_the_builtins_the_seed_promised() -> None:
    assert issubclass(clapboard.SchemaVersionError, KeyError)
    assert issubclass(clapboard.LockTimeoutError, TimeoutError)
    assert issubclass(clapboard.SceneNotFoundError, FileNotFoundError)
    assert issubclass(clapboard.ValidationError, ValueError)
    assert issubclass(clapboard.UnsafePathError, ValueError)
    assert issubclass(clapboard.CorruptFileError, ValueError)
    for name in clapboard.__all__:
        obj = getattr(clapboard, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, clapboard.ClapboardError)
    assert str(clapboard.SchemaVersionError("m")) == "m"  # not KeyError's quoted repr
