"""Names and on-disk layout: the one place that turns identities into file names.

Every file name clapboard builds goes through this module, so the naming rules of
SPEC §2 are enforced in exactly one place:

* project:  ``[a-z0-9][a-z0-9._-]{0,63}`` and never ``..``
* episode:  canonical ``ep_NNN`` (3+ digits); see :func:`episode_token`
* batch / scene / sequence id: ``[A-Za-z0-9][A-Za-z0-9_-]{0,127}`` — no dot and no
  separator, so an id can never collide with a sidecar suffix or leave the folder.
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from clapboard.errors import InvalidNameError, UnsafePathError

DEFAULT_ROOT = "./clapboard-data"

_PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EPISODE_RE = re.compile(r"ep_([0-9]{3,})")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

# Sidecar suffixes that share the scenes folder with flat bodies.
MANIFEST_SUFFIX = ".versions.json"
LOCK_SUFFIX = ".versions.lock"
JOURNAL_SUFFIX = ".journal.jsonl"
_VERSION_BODY_RE = re.compile(r"\.v([0-9]+)\.json$")
# ep_NNN_<batch>[.vNNN|.versions].json — group 1 episode, 2 batch, 3 the rest (matched
# whole: a name with a newline at its end is not a clapboard name).
_SCENE_FILE_RE = re.compile(r"(ep_[0-9]{3,})_([A-Za-z0-9][A-Za-z0-9_-]{0,127})(\..+)")
# The names that make a batch listed: its flat body or its manifest.
_LISTED_RE = re.compile(r"(ep_[0-9]{3,})_([A-Za-z0-9][A-Za-z0-9_-]{0,127})(?:\.versions)?\.json")


def episode_token(episode: object) -> str:
    """The canonical ``ep_NNN`` token for an episode given as int, digits or token.

    ``1``, ``"1"`` and ``"ep_001"`` all give ``"ep_001"``. Booleans, negatives and
    anything else raise :class:`InvalidNameError` (a ``ValueError``): a bare episode
    number must never fork the scene-file namespace.
    """
    if isinstance(episode, bool):
        raise InvalidNameError("episode", f"must be an int or 'ep_NNN', not bool {episode!r}")
    if isinstance(episode, int):
        if episode < 0:
            raise InvalidNameError("episode", f"negative episode {episode!r} (episodes are >= 0)")
        return f"ep_{episode:03d}"
    if isinstance(episode, str):
        token = episode.strip()
        if _EPISODE_RE.fullmatch(token):
            return token
        if token.isascii() and token.isdigit():
            return f"ep_{int(token):03d}"
    raise InvalidNameError(
        "episode", f"non-canonical episode {episode!r}: expected an int >= 0, digits or 'ep_NNN'"
    )


def validate_project(project: object) -> str:
    """Return ``project`` if it is a valid project name, else raise ``InvalidNameError``."""
    if not isinstance(project, str) or not _PROJECT_RE.fullmatch(project) or ".." in project:
        raise InvalidNameError(
            "project",
            f"invalid project name {project!r}: use lowercase letters, digits, '.', '_' "
            "or '-' (1-64 chars, starting with a letter or digit)",
        )
    return project


def validate_id(value: object, what: str = "batch_id") -> str:
    """Return a valid batch / scene / sequence id, else raise ``InvalidNameError``."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidNameError(
            what,
            f"invalid {what} {value!r}: use letters, digits, '_' or '-' (1-128 chars, "
            "no dots or separators)",
        )
    return value


def safe_basename(artifact: object, *, context: str = "") -> str:
    """Return ``artifact`` if it is a bare file name, else raise ``UnsafePathError``."""
    if not isinstance(artifact, str) or not _is_bare_name(artifact):
        where = f" for {context}" if context else ""
        raise UnsafePathError(
            f"unsafe manifest artifact {artifact!r}{where}: must be a bare file name "
            "(no separator, no '..')"
        )
    return artifact


@functools.lru_cache(maxsize=4096)
def _is_bare_name(name: str) -> bool:
    # (remembered: a store asks about the same few artifact names on every write)
    return (bool(name) and "/" not in name and "\\" not in name and "\x00" not in name
            and ".." not in name and name != "." and Path(name).name == name)


def store_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The filesystem store root: ``root``, else ``CLAPBOARD_HOME``, else ``./clapboard-data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("CLAPBOARD_HOME") or DEFAULT_ROOT)


# os.environ on POSIX keeps its variables in a dict of bytes (``_data``), which its
# setters and deleters update. ``os.environ.get`` of an unset name goes through three
# Python frames and a KeyError raised and caught — a few percent of a small status save
# after other work, which asks for CLAPBOARD_ACTOR on every call. Where that dict is
# there (CPython on POSIX, os.environ not replaced), the actor is looked up in it.
_ENVIRON = os.environ
_ENVIRON_DATA: dict[bytes, bytes] | None = (
    getattr(os.environ, "_data", None) if os.name == "posix" else None)
_ACTOR_KEY = b"CLAPBOARD_ACTOR"


def resolve_actor(actor: str | None = None) -> str:
    """Who does a write: ``actor``, else ``CLAPBOARD_ACTOR``, else ``user@host``."""
    if actor:
        return actor
    data = _ENVIRON_DATA
    if type(data) is dict and os.environ is _ENVIRON:
        raw = data.get(_ACTOR_KEY)
        env = os.fsdecode(raw) if raw else None
    else:
        env = os.environ.get("CLAPBOARD_ACTOR")
    if env:
        return env
    return _default_actor()


@functools.lru_cache(maxsize=1)
def _default_actor() -> str:
    # user@host, looked up once per process (a passwd lookup costs more than the rest
    # of a small status save's bookkeeping)
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


# -- file names inside a project's scenes folder ---------------------------------------


def flat_name(ep: str, batch_id: str) -> str:
    return f"{ep}_{batch_id}.json"


def manifest_name(ep: str, batch_id: str) -> str:
    return f"{ep}_{batch_id}{MANIFEST_SUFFIX}"


def version_name(ep: str, batch_id: str, version: int) -> str:
    return f"{ep}_{batch_id}.v{version:03d}.json"


def lock_name(ep: str, batch_id: str) -> str:
    return f"{ep}_{batch_id}{LOCK_SUFFIX}"


def journal_name(ep: str, batch_id: str) -> str:
    return f"{ep}_{batch_id}{JOURNAL_SUFFIX}"


@dataclass(frozen=True)
class SceneFile:
    """A parsed scenes-folder file name."""

    episode: str
    batch_id: str
    kind: str  # "flat" | "manifest" | "version" | "lock" | "journal" | "temp" | "other"
    version: int | None = None


def parse_scene_file(name: str) -> SceneFile | None:
    """Classify a file name of the scenes folder, or None if it is not a clapboard name."""
    m = _SCENE_FILE_RE.fullmatch(name)
    if m is None:
        return None
    ep, batch, rest = m.group(1), m.group(2), m.group(3)
    if rest == ".json":
        return SceneFile(ep, batch, "flat")
    if rest == MANIFEST_SUFFIX:
        return SceneFile(ep, batch, "manifest")
    if rest == LOCK_SUFFIX:
        return SceneFile(ep, batch, "lock")
    if rest == JOURNAL_SUFFIX:
        return SceneFile(ep, batch, "journal")
    vm = _VERSION_BODY_RE.fullmatch(rest)
    if vm is not None:
        return SceneFile(ep, batch, "version", int(vm.group(1)))
    if is_temp_name(name):
        return SceneFile(ep, batch, "temp")
    return SceneFile(ep, batch, "other")


def listed_batch(name: str) -> tuple[str, str] | None:
    """(episode, batch id) when ``name`` is a batch's flat body or manifest — what
    :func:`parse_scene_file` classifies as ``flat`` or ``manifest`` — else None. One
    match per name and no object made: listing 10,000 batches reads 30,000 names."""
    m = _LISTED_RE.fullmatch(name)
    return None if m is None else (m[1], m[2])


TEMP_MARKER = ".cbtmp-"


def is_temp_name(name: str) -> bool:
    """Temp files of clapboard's atomic writer, or the seed's fixed ``<target>.tmp``."""
    return TEMP_MARKER in name or name.endswith(".tmp")


@dataclass(frozen=True)
class ProjectPaths:
    """Where a project's files live in a filesystem store."""

    root: Path

    @classmethod
    def for_project(cls, project: str, root: str | os.PathLike[str] | None = None) -> ProjectPaths:
        """Paths of ``project`` under ``root`` (else ``CLAPBOARD_HOME``, read at call time)."""
        return cls(store_root(root) / "projects" / validate_project(project))

    @property
    def orchestration_scenes_dir(self) -> Path:
        return self.root / "orchestration" / "scenes"
