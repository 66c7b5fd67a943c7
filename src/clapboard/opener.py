"""``open_store``: from a location (folder or ``postgresql://`` URL) to a Store."""

from __future__ import annotations

import os
from typing import Any

from clapboard.backends.replay import COMPACT_EVERY
from clapboard.errors import ClapboardError, ValidationError
from clapboard.paths import store_root
from clapboard.store import Store

PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(PG_SCHEMES)


def open_store(location: str | os.PathLike[str] | None = None, **options: Any) -> Store:
    """Open a store.

    ``location``: a folder (filesystem backend), a ``postgresql://`` URL, or None for
    ``CLAPBOARD_STORE``, else ``CLAPBOARD_HOME``, else ``./clapboard-data``.
    Options: ``lock_timeout`` (seconds, default ``CLAPBOARD_LOCK_TIMEOUT`` or 30),
    ``compact_every`` (status saves committed by their journal record before a body is
    rewritten whole, default 64; 0 rewrites it on every save), ``allow_network_fs``
    (filesystem), ``pool_size`` (PostgreSQL), ``optimistic`` (PostgreSQL, default True:
    a status save is first tried in one round trip against the state this process last
    saw, and after a conflict its closure runs a second time, under the lock; False runs
    every closure once, under the lock, as a folder store always does).
    """
    if location is None:
        location = os.environ.get("CLAPBOARD_STORE") or None
    lock_timeout = options.pop("lock_timeout", None)
    compact_every = options.pop("compact_every", COMPACT_EVERY)
    if isinstance(compact_every, bool) or not isinstance(compact_every, int) or compact_every < 0:
        raise ValidationError("compact_every", f"must be an integer >= 0, got {compact_every!r}")
    if is_postgres_url(location):
        try:
            from clapboard.backends.postgres import PostgresBackend
        except ImportError as e:
            raise ClapboardError(
                f"the PostgreSQL backend needs psycopg 3 ({e})",
                hint="pip install 'clapboard[postgres]'",
            ) from None
        assert isinstance(location, str)
        return Store(PostgresBackend(location, compact_every=compact_every, **options),
                     lock_timeout=lock_timeout)
    from clapboard.backends.filesystem import FilesystemBackend

    allow = bool(options.pop("allow_network_fs", False))
    options.pop("optimistic", None)  # a folder store's closures always run once
    if options:
        raise TypeError(f"unknown open_store options: {sorted(options)}")
    return Store(FilesystemBackend(store_root(location), allow_network_fs=allow,
                                   compact_every=compact_every),
                 lock_timeout=lock_timeout)
