"""The per-batch versions manifest: its shape and the few reads everyone needs.

    {schema_version, batch_id, active_version,
     versions: [{version, artifact, created_at, actor, fingerprint, parent_version, note}],
     history:  [{from, to, at, actor, reason}]}

A batch without a manifest is an un-versioned (flat) batch whose only version, 1, is
active. Artifacts are bare file names, checked before any use.
"""

from __future__ import annotations

from typing import Any

from clapboard.errors import CorruptFileError, VersionNotFoundError
from clapboard.paths import flat_name

Doc = dict[str, Any]


def active_of(manifest: Doc | None) -> int:
    """The active version: the manifest's pointer, or 1 for a flat batch."""
    if manifest is None:
        return 1
    v = manifest.get("active_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise CorruptFileError(f"manifest of batch {manifest.get('batch_id')!r} has no valid "
                               f"active_version (got {v!r})")
    return v


def entry(manifest: Doc, version: int, batch_id: str) -> Doc:
    """The manifest entry of ``version``, else ``VersionNotFoundError``."""
    for e in manifest.get("versions") or []:
        if isinstance(e, dict) and e.get("version") == version:
            return e
    raise VersionNotFoundError(
        f"version {version} is not registered for batch {batch_id}",
        hint="list the versions with `clapboard versions`",
    )


def registered(manifest: Doc | None) -> list[int]:
    if manifest is None:
        return [1]
    return [e["version"] for e in manifest.get("versions") or []
            if isinstance(e, dict) and isinstance(e.get("version"), int)]


def artifact_for(manifest: Doc | None, episode: str, batch_id: str, version: int) -> str:
    """The artifact (file name) of a version's body; the flat name without a manifest."""
    if manifest is None:
        if version != 1:
            raise VersionNotFoundError(
                f"batch {batch_id} is not versioned: only version 1 exists (asked for "
                f"v{version})", hint="list the versions with `clapboard versions`")
        return flat_name(episode, batch_id)
    artifact = entry(manifest, version, batch_id).get("artifact")
    if not isinstance(artifact, str):
        raise CorruptFileError(f"manifest entry v{version} of batch {batch_id} has no artifact")
    return artifact
