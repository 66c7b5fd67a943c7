"""PostgreSQL test isolation: each test gets an empty schema of its own.

A schema is created and dropped in milliseconds (a ``CREATE DATABASE`` copies a
template and checkpoints, hundreds of times slower), so the whole contract suite can
run on PostgreSQL test by test. The yielded URL selects the schema through libpq's
``options=-csearch_path=…``, exactly as a user would point clapboard at one schema of a
shared database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql


def with_schema(url: str, schema: str) -> str:
    """``url`` with its search_path set to ``schema`` (other query parameters kept)."""
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A URL to an empty, isolated namespace on the server at ``url``; dropped after."""
    schema = f"cbtest_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SET lock_timeout = '20s'")
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def sql_rows(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of one query on the store at ``url`` (raw access that bypasses clapboard)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL store location (import this fixture into a test module)."""
    from tests.conftest import pg_url_or_skip

    with fresh_database(pg_url_or_skip()) as url:
        yield url


__all__ = ["fresh_database", "pg_url", "sql_rows", "with_schema"]
