"""fsck and migrate for the PostgreSQL backend.

The checks mirror the filesystem's, row for row: every body parses, has a known
``schema_version``, names its batch and validates; every manifest parses, names its
batch, points at a registered version, and every artifact it registers exists with the
fingerprint it recorded; every journal's crc chain holds and the batch row's chain tail
agrees with it; bodies that no manifest registers are reported and kept.

``repair`` fixes nothing here: transactions leave no temp files or torn journal tails
behind, so everything fsck can find in a database was edited by hand and needs a person.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from clapboard import codec
from clapboard.backends.base import Problem, Report
from clapboard.backends.pg_state import new_token
from clapboard.errors import ClapboardError
from clapboard.fingerprint import raw_fingerprint
from clapboard.io import journal as jr
from clapboard.paths import flat_name, manifest_name, safe_basename

if TYPE_CHECKING:
    from clapboard.backends.postgres import PostgresBackend

Key = tuple[str, str, str]


def _where(project: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("WHERE project = %s", (project,)) if project else ("", ())


def fsck_postgres(backend: PostgresBackend, project: str | None, *, repair: bool) -> Report:
    del repair  # nothing in a database is safe to repair automatically (module docstring)
    report = Report()
    where, args = _where(project)
    with backend.connection() as conn:
        batches = conn.execute(
            "SELECT project, episode, batch_id, manifest, journal_seq, journal_crc "
            f"FROM clapboard_batches {where} ORDER BY 1, 2, 3", args).fetchall()
        bodies: dict[Key, dict[str, str]] = defaultdict(dict)
        for p, e, b, artifact, body in conn.execute(
                "SELECT project, episode, batch_id, artifact, body "
                f"FROM clapboard_bodies {where} ORDER BY 1, 2, 3, 4", args):
            bodies[(p, e, b)][artifact] = body
        journals: dict[Key, list[str]] = defaultdict(list)
        for p, e, b, record in conn.execute(
                "SELECT project, episode, batch_id, record "
                f"FROM clapboard_journal {where} ORDER BY 1, 2, 3, seq", args):
            journals[(p, e, b)].append(record)
    for p, e, b, manifest_text, seq, crc in batches:
        key = (p, e, b)
        named = _check_manifest(backend, key, manifest_text, bodies[key], report)
        for artifact, text in bodies[key].items():
            report.checked += 1
            _check_body(backend, key, artifact, text, report)
            if artifact not in named:
                report.problems.append(Problem(
                    backend.label(p, artifact), "orphan-body",
                    "body that no manifest registers; kept for inspection"))
        _check_journal(backend, key, journals.pop(key, []), int(seq), crc, report)
    for p, e, b in journals:  # (the journal has no foreign key: pg_schema.STEPS[3])
        report.problems.append(Problem(
            backend.label(p, f"{e}_{b}.journal"), "orphan-journal",
            "journal records of a batch that has no row (left by a hand edit in SQL); "
            "kept for inspection"))
    return report


def _check_manifest(backend: PostgresBackend, key: Key, text: str | None,
                    bodies: dict[str, str], report: Report) -> set[str]:
    """Check a batch's manifest; returns the artifacts it registers."""
    p, e, b = key
    if text is None:
        return {flat_name(e, b)}
    report.checked += 1
    label = backend.label(p, manifest_name(e, b))
    problems = report.problems
    try:
        manifest = codec.decode_manifest(text.encode(), label)
    except ClapboardError as err:
        problems.append(Problem(label, type(err).__name__, str(err)))
        return set(bodies)  # do not call every body an orphan of an unreadable manifest
    if manifest.get("batch_id") != b:
        problems.append(Problem(label, "identity",
                                f"manifest batch_id {manifest.get('batch_id')!r} != {b!r}"))
    versions = [v for v in manifest.get("versions") or [] if isinstance(v, dict)]
    if manifest.get("active_version") not in {v.get("version") for v in versions}:
        problems.append(Problem(label, "active-version",
                                f"active_version {manifest.get('active_version')!r} is not "
                                "registered"))
    named: set[str] = set()
    for entry in versions:
        try:
            artifact = safe_basename(entry.get("artifact"), context=f"v{entry.get('version')}")
        except ClapboardError as err:
            problems.append(Problem(label, "unsafe-artifact", str(err)))
            continue
        named.add(artifact)
        body = bodies.get(artifact)
        if body is None:
            problems.append(Problem(label, "missing-body",
                                    f"v{entry.get('version')} names {artifact}, which does "
                                    "not exist"))
            continue
        try:
            doc = codec.decode_scene(body.encode(), backend.label(p, artifact))
        except ClapboardError:
            continue  # reported when the body itself is checked
        recorded = entry.get("fingerprint")
        if recorded and raw_fingerprint(doc) != recorded:
            problems.append(Problem(backend.label(p, artifact), "fingerprint",
                                    f"structure of v{entry.get('version')} no longer matches "
                                    "the fingerprint its manifest recorded"))
    return named


def _check_body(backend: PostgresBackend, key: Key, artifact: str, text: str,
                report: Report) -> None:
    label = backend.label(key[0], artifact)
    try:
        doc = codec.decode_scene(text.encode(), label)
    except ClapboardError as err:
        report.problems.append(Problem(label, type(err).__name__, str(err)))
        return
    if doc.get("scene_id") != key[2]:
        report.problems.append(Problem(label, "identity",
                                       f"scene_id {doc.get('scene_id')!r} != batch {key[2]!r}"))
        return
    from clapboard.models import check_stored_scene

    try:
        check_stored_scene(doc)
    except ClapboardError as err:
        report.problems.append(Problem(label, "invalid-body", str(err)))


def _check_journal(backend: PostgresBackend, key: Key, records: list[str], seq: int,
                   crc: str, report: Report) -> None:
    if not records and seq == 0:
        return
    report.checked += 1
    label = backend.label(key[0], f"{key[1]}_{key[2]}.journal")
    try:
        scan = jr.scan_bytes(b"".join(r.encode() + b"\n" for r in records), label)
    except ClapboardError as err:
        report.problems.append(Problem(label, "corrupt-journal", str(err)))
        return
    if len(scan.records) != len(records):
        report.problems.append(Problem(
            label, "corrupt-journal",
            f"{len(records) - len(scan.records)} record(s) after seq {scan.tail.seq} fail "
            "their crc or chain check"))
    elif (scan.tail.seq, scan.tail.crc) != (seq, crc):
        report.problems.append(Problem(
            label, "journal-tail",
            f"batch row says the journal ends at seq {seq}, the records end at "
            f"seq {scan.tail.seq}"))


def migrate_postgres(backend: PostgresBackend, project: str | None) -> list[str]:
    """Rewrite bodies and manifests of older schema versions, each under its batch lock."""
    from clapboard.backends.postgres import PgBatchTx
    from clapboard.store import default_lock_timeout

    where, args = _where(project)
    with backend.connection() as conn:
        stale_bodies = [
            (p, e, b, a) for p, e, b, a, body in conn.execute(
                "SELECT project, episode, batch_id, artifact, body "
                f"FROM clapboard_bodies {where} ORDER BY 1, 2, 3, 4", args)
            if codec.needs_upgrade("scene", body.encode())]
        stale_manifests = [
            (p, e, b) for p, e, b, m in conn.execute(
                "SELECT project, episode, batch_id, manifest "
                f"FROM clapboard_batches {where} ORDER BY 1, 2, 3", args)
            if m is not None and codec.needs_upgrade("manifest", m.encode())]
    done: list[str] = []
    timeout = default_lock_timeout()
    for p, e, b, artifact in stale_bodies:
        with backend.batch(p, e, b, timeout=timeout, op="migrate") as tx:
            assert isinstance(tx, PgBatchTx)
            text = tx.select_body(artifact)
            if text is None:
                continue
            label = backend.label(p, artifact)
            new = codec.encode_scene(codec.decode_scene(text.encode(), label)).decode()
            # A new token: processes that kept the old text must read the row again.
            tx.execute(
                "UPDATE clapboard_bodies SET body = %s, token = %s WHERE project = %s "
                "AND episode = %s AND batch_id = %s AND artifact = %s",
                (new, new_token(), p, e, b, artifact))
            done.append(label)
    for p, e, b in stale_manifests:
        with backend.batch(p, e, b, timeout=timeout, op="migrate") as tx:
            manifest = tx.read_manifest()  # upgraded on decode
            if manifest is not None:
                tx.write_manifest(manifest)
                done.append(backend.label(p, manifest_name(e, b)))
    return done


__all__ = ["fsck_postgres", "migrate_postgres"]
