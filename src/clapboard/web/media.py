"""Board frames and take outputs: shown only when the file is inside the project folder.

A scene body names media as strings (relative to the project folder, or absolute).
Those strings come from runners and plans, so they are untrusted: a reference is
served only if its *real* path (symlinks resolved) lies inside the project folder's
real path, and only for image and video types. Everything else renders as a
placeholder saying why, and ``/media/...`` answers 403 / 404 for it.

The project folder is ``<media_root>/<project>``. For the filesystem backend the
default media root is ``<store root>/projects``, so a project's media sits next to
its ``orchestration/`` folder; a PostgreSQL store has no folder, so the media root
must be given (``clapboard serve --media-root``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from clapboard.paths import validate_project

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif"}
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
               ".mov": "video/quicktime", ".ogv": "video/ogg"}
MEDIA_TYPES = {**IMAGE_TYPES, **VIDEO_TYPES}


class MediaRefused(Exception):
    """A media request that must not be served; ``status`` is 403 (escape) or 404."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Media:
    """One media reference as a page shows it: a URL, or a placeholder with a reason."""

    ref: str
    kind: str  # "image", "video" or "missing"
    url: str | None
    reason: str = ""

    @property
    def name(self) -> str:
        return PurePosixPath(self.ref).name or self.ref


class MediaLibrary:
    """Maps media references to files inside a project folder, safely."""

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) if root is not None else None

    def project_dir(self, project: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / validate_project(project)

    def describe(self, project: str, ref: object) -> Media:
        """How to show ``ref`` (never raises: a bad reference is a placeholder)."""
        text = str(ref)
        suffix = PurePosixPath(text).suffix.lower()
        try:
            relative = self._relative(project, text)
        except MediaRefused as e:
            return Media(text, "missing", None, e.reason)
        kind = "video" if suffix in VIDEO_TYPES else "image"
        url = f"/media/{quote(project)}/" + "/".join(quote(p) for p in relative.parts)
        return Media(text, kind, url)

    def resolve_request(self, project: str, relative: str) -> tuple[Path, str]:
        """The file to send for ``/media/<project>/<relative>`` and its content type."""
        if "\\" in relative or relative.startswith("/"):
            raise MediaRefused(403, "absolute or backslash paths are not served")
        parts = PurePosixPath(relative).parts
        if not parts or any(p in ("..", ".") for p in parts):
            raise MediaRefused(403, "path components '..' and '.' are not served")
        rel = self._relative(project, relative)
        base = self.project_dir(project)
        assert base is not None
        return base / rel, MEDIA_TYPES[rel.suffix.lower()]

    def _relative(self, project: str, ref: str) -> PurePosixPath:
        """``ref`` as a path relative to the project's real folder, or MediaRefused."""
        if "\x00" in ref or not ref:
            raise MediaRefused(403, "not a usable path")
        suffix = PurePosixPath(ref).suffix.lower()
        if suffix not in MEDIA_TYPES:
            raise MediaRefused(404, f"not an image or video type ({suffix or 'no extension'})")
        base = self.project_dir(project)
        if base is None:
            raise MediaRefused(404, "no media root configured (clapboard serve --media-root)")
        try:
            real_base = base.resolve(strict=True)
        except (OSError, RuntimeError):
            raise MediaRefused(404, "the project folder does not exist") from None
        candidate = Path(ref) if os.path.isabs(ref) else base / ref
        try:
            # strict: the file must exist; resolve() also follows every symlink, so a
            # link pointing outside is judged by where it really leads.
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise MediaRefused(404, "file not found") from None
        if not real.is_relative_to(real_base):
            raise MediaRefused(403, "outside the project folder")
        if not real.is_file():
            raise MediaRefused(404, "not a file")
        return PurePosixPath(real.relative_to(real_base).as_posix())
