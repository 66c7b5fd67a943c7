"""clapboard errors → HTTP statuses, in one place.

The JSON API and the HTML pages both ask :func:`status_for`, so an operator in a
browser and a script see the same verdict for the same refusal:

=====================================  ======  =====================================
error                                  status  why
=====================================  ======  =====================================
SceneVersionConflictError              412     the ``If-Match`` version is stale
SceneLockedError                       423     picture lock refuses the change
other ConflictError, identity mismatch 409     structure / nothing-to-revert conflict
SceneNotFoundError, VersionNotFound,   404     no such project / episode / scene /
InvalidNameError                               version (a malformed name cannot exist)
ValidationError                        422     bad input (field named in the message);
                                               404 when the field is a URL part (beat_id)
LockTimeoutError, StoreReadOnlyError   503     busy or read-only; retry later
anything else from clapboard           500     corrupt file, schema, rollback
=====================================  ======  =====================================
"""

from __future__ import annotations

from typing import Any

from clapboard.errors import (
    ClapboardError,
    ConflictError,
    InvalidNameError,
    LockTimeoutError,
    SceneIdentityMismatchError,
    SceneLockedError,
    SceneNotFoundError,
    SceneVersionConflictError,
    StoreReadOnlyError,
    ValidationError,
    VersionNotFoundError,
)

# Order matters: the first matching class wins (subclasses before their bases).
_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (SceneVersionConflictError, 412, "stale"),
    (SceneLockedError, 423, "locked"),
    (ConflictError, 409, "conflict"),
    (SceneIdentityMismatchError, 409, "conflict"),
    (SceneNotFoundError, 404, "not_found"),
    (VersionNotFoundError, 404, "not_found"),
    (InvalidNameError, 404, "not_found"),
    (ValidationError, 422, "invalid"),
    (LockTimeoutError, 503, "busy"),
    (StoreReadOnlyError, 503, "read_only"),
)


#: ValidationError fields that name a resource in the URL: unknown there means 404.
_URL_FIELDS = frozenset({"beat_id"})


def status_for(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and a short machine-readable code for a clapboard error."""
    if isinstance(exc, ValidationError) and exc.field in _URL_FIELDS:
        return 404, "not_found"
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "store_error"


def problem(exc: ClapboardError) -> dict[str, Any]:
    """The JSON body of an error response: what happened, and what to do."""
    status, code = status_for(exc)
    body: dict[str, Any] = {"error": code, "status": status, "type": type(exc).__name__,
                            "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    if isinstance(exc, SceneVersionConflictError):
        body["expected_version"] = exc.expected_version
        body["active_version"] = exc.actual_version
    if isinstance(exc, SceneLockedError):
        body["lock_reason"] = exc.lock_reason
        body["locked_by"] = exc.locked_by
    if isinstance(exc, ValidationError):
        body["field"] = exc.field
    return body


class HttpProblem(Exception):
    """A refusal decided by the web layer itself (bad token, bad CSRF, missing If-Match)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "status": self.status, "message": self.message}
