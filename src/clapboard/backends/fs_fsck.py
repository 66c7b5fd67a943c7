"""fsck and migrate for the filesystem backend.

fsck reads every file of the scenes folders and reports, naming each file: unparseable
JSON, unknown schema, identity mismatches, manifest artifacts that do not exist,
recorded fingerprints that no longer match their body, orphan temp files, bodies no
manifest names, and journal damage. ``repair`` only removes orphan temp files whose
writer is gone and truncates a torn journal tail — it never deletes or rewrites a body
or a manifest (a damaged file stays for a person to inspect).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from clapboard import codec
from clapboard.backends.base import Problem, Report
from clapboard.backends.fs_state import materialize
from clapboard.errors import ClapboardError, CorruptJournalError, LockTimeoutError
from clapboard.fingerprint import raw_fingerprint
from clapboard.io import journal as jr
from clapboard.io.atomic import atomic_write_bytes, durable_unlink
from clapboard.io.lock import FileLock
from clapboard.models import check_stored_scene
from clapboard.paths import (
    TEMP_MARKER,
    flat_name,
    journal_name,
    lock_name,
    parse_scene_file,
    safe_basename,
)

if TYPE_CHECKING:
    from clapboard.backends.filesystem import FilesystemBackend

# A temp file younger than this may belong to a writer that is still running.
TEMP_GRACE_S = 60.0


def _writer_alive(name: str) -> bool:
    """Whether the temp file's writer (pid in its name) still runs on this machine."""
    if TEMP_MARKER not in name:
        return False  # the seed's fixed "<target>.tmp": no owner to ask
    try:
        pid = int(name.split(TEMP_MARKER, 1)[1].split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsck_filesystem(backend: FilesystemBackend, project: str | None, *, repair: bool,
                    progress: Callable[[int, int], object] | None = None) -> Report:
    report = Report()
    projects = [project] if project else backend.list_projects()
    for proj in projects:
        d = backend.scenes_dir(proj)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        _check_folder(backend, d, names, report, repair)
    return report


def _check_folder(backend: FilesystemBackend, d: Path, names: list[str], report: Report,
                  repair: bool) -> None:
    problems = report.problems
    named: set[str] = set()
    batches: dict[tuple[str, str], set[str]] = {}
    for name in names:
        f = parse_scene_file(name)
        if f is not None:
            batches.setdefault((f.episode, f.batch_id), set()).add(f.kind)
    for name in names:
        path = d / name
        f = parse_scene_file(name)
        if f is None:
            if name.endswith(".tmp") or TEMP_MARKER in name:
                _temp(backend, path, report, repair)
            continue
        report.checked += 1
        if f.kind == "temp":
            _temp(backend, path, report, repair)
        elif f.kind == "manifest":
            named |= _check_manifest(path, f.episode, f.batch_id, problems)
        elif f.kind == "journal":
            _check_journal(backend, path, f.episode, f.batch_id, problems, repair)
    for name in names:
        f = parse_scene_file(name)
        if f is None or f.kind not in ("flat", "version"):
            continue
        path = d / name
        _check_body(path, path.parent / journal_name(f.episode, f.batch_id), f.version or 1,
                    f.batch_id, problems)
        has_manifest = "manifest" in batches.get((f.episode, f.batch_id), set())
        if f.kind == "version" and name not in named:
            problems.append(Problem(str(path), "orphan-body",
                                    "body that no manifest registers (left by an interrupted "
                                    "candidate write?); kept for inspection"))
        elif f.kind == "flat" and has_manifest and name not in named:
            problems.append(Problem(str(path), "orphan-body",
                                    "flat body not registered by the batch's manifest"))


def _temp(backend: FilesystemBackend, path: Path, report: Report, repair: bool) -> None:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return
    alive = _writer_alive(path.name) and age < TEMP_GRACE_S * 60
    p = Problem(str(path), "orphan-temp", "temp file left by an interrupted write")
    if alive:
        p.message += " (its writer is still running; left alone)"
    elif repair:
        target = path.name.split(TEMP_MARKER, 1)[0] if TEMP_MARKER in path.name \
            else path.name[: -len(".tmp")]
        tf = parse_scene_file(target)
        try:
            if tf is not None:  # sweep under the batch lock, so no live writer races us
                with FileLock(path.parent / lock_name(tf.episode, tf.batch_id), timeout=5.0,
                              op="fsck"):
                    durable_unlink(path)
            else:
                durable_unlink(path)
            p.repaired = True
        except (LockTimeoutError, OSError) as err:
            p.message += f" (not removed: {err})"
    report.problems.append(p)


def _check_body(path: Path, journal: Path, version: int, batch_id: str,
                problems: list[Problem]) -> None:
    """The body as readers see it: decoded, with the journal deltas after its
    checkpoint applied (a checkpoint the journal lacks, or a delta that does not fit,
    is reported here)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(Problem(str(path), "unreadable", str(e)))
        return
    try:
        doc = materialize(path, journal, version, data).state.doc
    except CorruptJournalError as e:  # the body decoded; its journal deltas did not apply
        problems.append(Problem(str(path), "journal-replay",
                                f"journal deltas after this body cannot be applied: {e}"))
        doc = codec.decode_scene(data, path)
    except ClapboardError as e:
        problems.append(Problem(str(path), type(e).__name__, str(e)))
        return
    except OSError as e:
        problems.append(Problem(str(path), "unreadable", f"{journal}: {e}"))
        return
    if doc.get("scene_id") != batch_id:
        problems.append(Problem(str(path), "identity",
                                f"scene_id {doc.get('scene_id')!r} != batch {batch_id!r}"))
    try:
        check_stored_scene(doc)
    except ClapboardError as e:
        problems.append(Problem(str(path), "invalid-body", str(e)))


def _check_manifest(path: Path, ep: str, batch_id: str, problems: list[Problem]) -> set[str]:
    named: set[str] = set()
    try:
        manifest = codec.decode_manifest(path.read_bytes(), path)
    except ClapboardError as e:
        problems.append(Problem(str(path), type(e).__name__, str(e)))
        return {flat_name(ep, batch_id)}  # do not call the flat body an orphan
    if manifest.get("batch_id") != batch_id:
        problems.append(Problem(str(path), "identity",
                                f"manifest batch_id {manifest.get('batch_id')!r} != {batch_id!r}"))
    versions = manifest.get("versions") or []
    registered = {e.get("version") for e in versions
                  if isinstance(e, dict) and isinstance(e.get("version"), int)}
    active = manifest.get("active_version")
    if isinstance(active, bool) or not isinstance(active, int) or active not in registered:
        problems.append(Problem(str(path), "active-version",
                                f"active_version {manifest.get('active_version')!r} is not "
                                "registered"))
    for ent in versions:
        if not isinstance(ent, dict):
            problems.append(Problem(str(path), "invalid-manifest", f"version entry {ent!r}"))
            continue
        try:
            artifact = safe_basename(ent.get("artifact"), context=f"v{ent.get('version')}")
        except ClapboardError as err:
            problems.append(Problem(str(path), "unsafe-artifact", str(err)))
            continue
        named.add(artifact)
        body = path.parent / artifact
        try:
            doc = codec.decode_scene(body.read_bytes(), body)
        except FileNotFoundError:
            problems.append(Problem(str(path), "missing-body",
                                    f"v{ent.get('version')} names {artifact}, which is missing"))
            continue
        except ClapboardError:
            continue  # reported when the body itself is checked
        try:
            check_stored_scene(doc)
        except ClapboardError:
            continue  # malformed: reported when the body itself is checked
        recorded = ent.get("fingerprint")
        if recorded and raw_fingerprint(doc) != recorded:
            problems.append(Problem(str(body), "fingerprint",
                                    f"structure of v{ent.get('version')} no longer matches the "
                                    "fingerprint its manifest recorded"))
    return named


def _check_journal(backend: FilesystemBackend, path: Path, ep: str, batch_id: str,
                   problems: list[Problem], repair: bool) -> None:
    try:
        scan = jr.scan(path)
    except CorruptJournalError as e:
        problems.append(Problem(str(path), "corrupt-journal", str(e)))
        return
    tail = scan.tail
    if tail.junk:
        p = Problem(str(path), "torn-journal-tail",
                    f"{tail.junk} bytes after the last valid record "
                    f"(seq {tail.seq})")
        if repair:
            with FileLock(path.parent / lock_name(ep, batch_id), timeout=5.0, op="fsck"):
                # Re-scan under the lock: an append may have happened since.
                again = jr.scan(path).tail
                if again.junk:
                    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                    try:
                        os.ftruncate(fd, again.valid_end)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            backend.forget_journal(path)
            p.repaired = True
        problems.append(p)


def migrate_filesystem(backend: FilesystemBackend, project: str | None) -> list[str]:
    """Rewrite bodies and manifests of older schema versions, each under its batch lock."""
    done: list[str] = []
    for proj in [project] if project else backend.list_projects():
        d = backend.scenes_dir(proj)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for name in names:
            f = parse_scene_file(name)
            if f is None or f.kind not in ("flat", "version", "manifest"):
                continue
            path = d / name
            kind = "manifest" if f.kind == "manifest" else "scene"
            if not codec.needs_upgrade(kind, path.read_bytes()):
                continue
            with FileLock(d / lock_name(f.episode, f.batch_id), timeout=backend_timeout(),
                          op="migrate"):
                data = path.read_bytes()
                if kind == "manifest":
                    new = codec.encode_manifest(codec.decode_manifest(data, path))
                else:
                    new = codec.encode_scene(*codec.decode_body(data, path))
                atomic_write_bytes(path, new)
            done.append(str(path))
    return done


def backend_timeout() -> float:
    from clapboard.store import default_lock_timeout

    return default_lock_timeout()


