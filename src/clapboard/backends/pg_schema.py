"""The PostgreSQL schema of a clapboard store, created and migrated by clapboard itself.

Tables live in the connection's current schema (the first entry of ``search_path``),
so one database can hold several stores, one per schema
(``postgresql://…/db?options=-csearch_path%3Dfilm_a``).

    clapboard_schema (version)                      one row: the layout version below
    clapboard_batches (project, episode, batch_id,  one row per batch: the row lock,
                       manifest, journal_seq,       the manifest (NULL: a flat batch),
                       journal_crc)                 the journal's chain tail
    clapboard_bodies (project, episode, batch_id,   one row per stored body, keyed by
                      artifact, body, token,        its artifact name (as on disk); the
                      checkpoint)                   journal seq it includes, and a
                                                    random token new on every write
    clapboard_journal (gid, project, episode,       one row per journal record, the
                       batch_id, seq, crc, record)  record's exact line as text (no
                                                    foreign key: see STEPS[3]; gid
                                                    orders records across batches)

Documents are kept as **text** holding clapboard's canonical JSON bytes rather than
``jsonb``: jsonb rewrites numbers and refuses ``\\u0000``, while text keeps every byte,
so a store copied to a folder and back is byte-identical. ``body::jsonb`` still works
for ad-hoc SQL.

Migrations: :data:`STEPS` ``[n]`` brings the layout from version ``n`` to ``n + 1``.
:func:`ensure_schema` runs the missing steps in one transaction under an advisory lock
(so two processes opening a new store at once do not race on ``CREATE TABLE``), and
refuses a database written by a newer clapboard.

Every committed journal record is announced with ``NOTIFY`` on the store's channel
(``clapboard watch`` listens): the payload is :func:`notify_payload`.
"""

from __future__ import annotations

import functools

import orjson
import psycopg
from psycopg import sql

from clapboard.errors import SchemaVersionError

LAYOUT_VERSION = 5

STEPS: dict[int, list[str]] = {
    0: [
        """CREATE TABLE clapboard_batches (
               project text NOT NULL,
               episode text NOT NULL,
               batch_id text NOT NULL,
               manifest text,
               journal_seq bigint NOT NULL DEFAULT 0,
               journal_crc text NOT NULL DEFAULT '',
               PRIMARY KEY (project, episode, batch_id))""",
        """CREATE TABLE clapboard_bodies (
               project text NOT NULL,
               episode text NOT NULL,
               batch_id text NOT NULL,
               artifact text NOT NULL,
               body text NOT NULL,
               PRIMARY KEY (project, episode, batch_id, artifact),
               FOREIGN KEY (project, episode, batch_id)
                   REFERENCES clapboard_batches ON DELETE CASCADE)""",
        """CREATE TABLE clapboard_journal (
               gid bigint GENERATED ALWAYS AS IDENTITY,
               project text NOT NULL,
               episode text NOT NULL,
               batch_id text NOT NULL,
               seq bigint NOT NULL,
               crc text NOT NULL,
               record text NOT NULL,
               PRIMARY KEY (project, episode, batch_id, seq),
               FOREIGN KEY (project, episode, batch_id)
                   REFERENCES clapboard_batches ON DELETE CASCADE)""",
        "CREATE INDEX clapboard_journal_gid ON clapboard_journal (gid)",
    ],
    1: [],  # documents stored with a fast compression: see _fast_toast
    # Status saves commit by their journal record; a body row says which journal seq it
    # includes, and a random token names each write of it (kept states check it).
    2: ["""ALTER TABLE clapboard_bodies
               ADD COLUMN token text NOT NULL DEFAULT '',
               ADD COLUMN checkpoint bigint NOT NULL DEFAULT 0""",
        # Any change of a body's text gets a new token, even one made by hand in SQL
        # that left the token as it was: a kept state is never taken for the new text.
        """CREATE FUNCTION clapboard_body_token() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               IF NEW.body IS DISTINCT FROM OLD.body AND NEW.token = OLD.token THEN
                   NEW.token := md5(random()::text || clock_timestamp()::text);
               END IF;
               RETURN NEW;
           END $$""",
        """CREATE TRIGGER clapboard_body_token BEFORE UPDATE ON clapboard_bodies
           FOR EACH ROW EXECUTE FUNCTION clapboard_body_token()"""],
    # The journal's foreign key is checked on every insert — a query of its own per
    # status save (~0.05 ms, a fifth of a bare UPDATE commit). Every insert clapboard
    # makes already moves the batch row's chain tail in the same statement (the row
    # exists and is locked), so the key is kept by construction, and fsck reports rows
    # of a batch that has none; what the key also did, drop a batch's journal with its
    # row, a delete trigger does (deletes are rare and by hand; it names the journal
    # with the table's own schema, whatever the deleting session's search_path).
    3: ["""DO $$ DECLARE c name;
           BEGIN
               FOR c IN SELECT conname FROM pg_constraint
                        WHERE conrelid = 'clapboard_journal'::regclass AND contype = 'f'
               LOOP
                   EXECUTE format('ALTER TABLE clapboard_journal DROP CONSTRAINT %I', c);
               END LOOP;
           END $$""",
        """CREATE FUNCTION clapboard_batch_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               EXECUTE format('DELETE FROM %I.clapboard_journal WHERE project = $1 '
                              'AND episode = $2 AND batch_id = $3', TG_TABLE_SCHEMA)
                   USING OLD.project, OLD.episode, OLD.batch_id;
               RETURN OLD;
           END $$""",
        """CREATE TRIGGER clapboard_batch_deleted AFTER DELETE ON clapboard_batches
           FOR EACH ROW EXECUTE FUNCTION clapboard_batch_deleted()"""],
    # The journal's gid index served no query (``watch`` sorts the few records it reads
    # by gid; every other read goes by the primary key) and was one more index entry
    # per status save (~5 µs of the server's time, 0.05x a bare UPDATE commit).
    4: ["DROP INDEX IF EXISTS clapboard_journal_gid"],
}

# Bodies are rewritten whole on every status save; PostgreSQL's default pglz
# compression of such a 200 KiB text costs more than the rest of the save (measured:
# 10.0 ms → 5.4 ms per status save of a 50-beat scene with lz4). lz4 when the server
# has it, else no compression at all (STORAGE EXTERNAL), which is nearly as fast.
_DOC_COLUMNS = (("clapboard_bodies", "body"), ("clapboard_journal", "record"))


def _fast_toast(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for table, column in _DOC_COLUMNS:
        ident = (sql.Identifier(table), sql.Identifier(column))
        try:
            with conn.transaction():  # a savepoint: a server without lz4 refuses it
                conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET COMPRESSION lz4")
                             .format(*ident))
        except psycopg.errors.FeatureNotSupported:
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE EXTERNAL")
                         .format(*ident))


def current_schema(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """The schema the store's tables live in, creating it when the URL names a new one."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is not None and row[0]:
        return str(row[0])
    # search_path names a schema that does not exist yet: create the first one.
    path_row = conn.execute("SELECT current_setting('search_path')").fetchone()
    first = str(path_row[0] if path_row else "").split(",")[0].strip().strip('"')
    if not first or first.startswith("$"):
        raise psycopg.errors.InvalidSchemaName("no schema selected for the clapboard tables")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(first)))
    return first


def ensure_schema(conn: psycopg.Connection[tuple[object, ...]], label: str) -> str:
    """Create or upgrade the tables; returns the schema name. ``conn`` is autocommit."""
    with conn.transaction():
        schema = current_schema(conn)
        # One creator at a time per schema (CREATE TABLE IF NOT EXISTS can still collide
        # on the catalog's unique index when two sessions race).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('clapboard:' || %s))", (schema,))
        conn.execute("CREATE TABLE IF NOT EXISTS clapboard_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM clapboard_schema").fetchone()
        found = int(str(row[0])) if row is not None else 0
        if found > LAYOUT_VERSION:
            raise SchemaVersionError(
                f"PostgreSQL store {label} has layout version {found}, this clapboard knows "
                f"{LAYOUT_VERSION} (written by a newer clapboard; upgrade clapboard)",
                path=label, found=found, expected=LAYOUT_VERSION,
            )
        for step in range(found, LAYOUT_VERSION):
            for statement in STEPS[step]:
                conn.execute(statement.encode())
            if step == 1:
                _fast_toast(conn)
        if row is None:
            conn.execute("INSERT INTO clapboard_schema (version) VALUES (%s)", (LAYOUT_VERSION,))
        elif found != LAYOUT_VERSION:
            conn.execute("UPDATE clapboard_schema SET version = %s", (LAYOUT_VERSION,))
    return schema


@functools.lru_cache(maxsize=256)
def _payload_head(project: str, episode: str, batch_id: str) -> str:
    return orjson.dumps({"project": project, "episode": episode,
                         "batch_id": batch_id})[:-1].decode() + ',"seq":'


def notify_payload(key: tuple[str, str, str], seq: int) -> str:
    """The notification of journal record ``seq`` of a batch: its JSON
    ``{"project", "episode", "batch_id", "seq"}`` (the batch's part encoded once)."""
    return f"{_payload_head(*key)}{seq:d}}}"


@functools.lru_cache(maxsize=256)
def utf8_key(project: str, episode: str, batch_id: str) -> tuple[bytes, bytes, bytes]:
    """A batch's key columns as UTF-8 parameters (encoded once per batch)."""
    return project.encode(), episode.encode(), batch_id.encode()


__all__ = ["LAYOUT_VERSION", "STEPS", "current_schema", "ensure_schema", "notify_payload",
           "utf8_key"]
