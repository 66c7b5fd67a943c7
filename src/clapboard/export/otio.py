"""OpenTimelineIO export of an episode's active cut (SPEC §9).

The timeline is what an editor opens: one video track, the scenes in ``list_batches``
order (sorted ids), one clip per beat of each scene's **active** version. A clip carries
*every* take of its beat as a named media reference keyed by take id, so the editor can
swap takes inside the editing tool; :mod:`clapboard.export.otio_import` brings that
choice back as the beat's primary take.

Choices, and why:

* **Active reference**: the primary take; without one, the most recently finished
  succeeded take (the best the runner has produced); without that, a placeholder
  ``MissingReference`` under the key ``DEFAULT_MEDIA`` so the clip still has its slot
  and length in the cut. The clip metadata records which rule picked it
  (``active_choice``) and the key it picked (``active_take``): the importer compares
  against that key, so an untouched file never writes anything.
* **Media**: a take's first output. A local path (relative paths are resolved against
  the project folder of a filesystem store, else ``media_root``) becomes an
  ``ExternalReference`` with a ``file://`` URL when the file exists, else a
  ``MissingReference`` that keeps the path in metadata (the render may land later, or
  on another machine). A URL with another scheme (``s3://``, ``https://``) is passed
  through as an ``ExternalReference``; it cannot be checked from here.
* **Duration**: the plan shot's ``duration_s`` × rate, else its ``frames`` (rescaled
  when the shot names its own ``fps``), else :data:`DEFAULT_DURATION_S`; the clip
  metadata says which (``duration_source``).
* **Metadata** lives under the ``clapboard`` namespace: project, episode, scene (and
  batch, the same id), version, beat; per reference the take id, status and path.

The file is written with :func:`clapboard.io.atomic.atomic_write_bytes`: an editor's
tool watching the path never reads half a timeline.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from clapboard.errors import ValidationError
from clapboard.export._otio_common import (
    DEFAULT_DURATION_S,
    DEFAULT_RATE,
    FORMAT,
    NAMESPACE,
    PLACEHOLDER_KEY,
    require_otio,
)
from clapboard.export.otio_import import (
    ApplyResult,
    Change,
    ImportPlan,
    Skip,
    apply_import,
    plan_import,
    read_timeline,
)
from clapboard.io.atomic import atomic_write_bytes
from clapboard.models import Beat, Scene, Take
from clapboard.paths import ProjectPaths, episode_token, validate_project
from clapboard.store import Store

OTIO_SUFFIX = ".otio"


def check_rate(rate: object) -> float:
    """A frame rate must be a finite number > 0 (not a bool)."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) \
            or not math.isfinite(rate) or rate <= 0:
        raise ValidationError("rate", f"must be a frame rate > 0, got {rate!r}")
    return float(rate)


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def shot_duration(shot: object, rate: float) -> tuple[int, str]:
    """Frames at ``rate`` for a plan shot, and which field gave them.

    Never below one frame: a zero-length clip would vanish from the editor's cut and
    its take choice with it.
    """
    if isinstance(shot, dict):
        seconds = _positive(shot.get("duration_s"))
        if seconds is not None:
            return max(1, round(seconds * rate)), "duration_s"
        frames = _positive(shot.get("frames"))
        if frames is not None:
            fps = _positive(shot.get("fps"))
            if fps is not None and fps != rate:
                frames = frames * rate / fps
            return max(1, round(frames)), "frames"
    return max(1, round(DEFAULT_DURATION_S * rate)), "default"


def active_take(beat: Beat) -> tuple[str | None, str]:
    """The take to show, and the rule that chose it (see the module docstring)."""
    if beat.primary_take_id is not None:
        return beat.primary_take_id, "primary"
    done = [(t.finished_at or "", i, t.take_id) for i, t in enumerate(beat.takes)
            if t.status == "succeeded"]
    if done:
        return max(done)[2], "latest_succeeded"
    return None, "placeholder"


def default_media_root(store: Store, project: str) -> Path:
    """Where relative output paths live: the project folder of a filesystem store.

    Other backends have no folder, so relative paths resolve against the working
    directory (pass ``media_root`` to say otherwise).
    """
    root = getattr(store.backend, "root", None)
    if isinstance(root, str | os.PathLike):
        return ProjectPaths.for_project(project, root).root
    return Path.cwd()


def _media(output: str, media_root: Path) -> tuple[str | None, Path | None]:
    """(URL to use as-is, local path to check) for one output string."""
    parsed = urlparse(output)
    if parsed.scheme == "file":
        return None, Path(unquote(parsed.path))
    if len(parsed.scheme) > 1 and parsed.netloc:  # s3://, https://: not ours to check
        return output, None
    path = Path(output).expanduser()
    return None, path if path.is_absolute() else media_root / path


def take_reference(otio: Any, take: Take, media_root: Path) -> Any:
    """One take as an OTIO media reference (external when its file is there)."""
    outputs = [os.fspath(o) for o in take.outputs]
    meta: dict[str, Any] = {
        "take": take.take_id, "status": take.status, "attempt": take.attempt,
        "provider": take.provider, "finished_at": take.finished_at,
        "path": outputs[0] if outputs else None, "outputs": outputs,
    }
    ref: Any
    if not outputs:
        ref, meta["missing"] = otio.schema.MissingReference(), "no output"
    else:
        url, local = _media(outputs[0], media_root)
        if url is not None:
            ref = otio.schema.ExternalReference(target_url=url)
        elif local is not None and local.is_file():
            ref = otio.schema.ExternalReference(target_url=local.resolve().as_uri())
        else:
            ref, meta["missing"] = otio.schema.MissingReference(), "file not found"
            meta["resolved_path"] = str(local)
    ref.name = take.take_id
    ref.metadata[NAMESPACE] = meta
    return ref


def beat_clip(otio: Any, project: str, episode: str, scene: Scene, version: int, beat: Beat,
              rate: float, media_root: Path) -> Any:
    """One beat as a clip holding every take, the chosen one active."""
    frames, source = shot_duration(beat.beat_metadata.get("plan_shot"), rate)
    refs = {t.take_id: take_reference(otio, t, media_root) for t in beat.takes}
    key, choice = active_take(beat)
    placeholder = None
    if key is None:
        placeholder = PLACEHOLDER_KEY
        while placeholder in refs:  # a take literally named like the placeholder
            placeholder += "_"
        stand_in = otio.schema.MissingReference(name="no take yet")
        stand_in.metadata[NAMESPACE] = {"placeholder": True}
        refs[placeholder] = stand_in
        key = placeholder
    clip = otio.schema.Clip(
        name=f"{scene.scene_id} {beat.beat_id}",
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(frames, rate)),
    )
    clip.set_media_references(refs, key)
    clip.metadata[NAMESPACE] = {
        "format": FORMAT, "project": project, "episode": episode,
        "scene": scene.scene_id, "batch": scene.scene_id, "version": version,
        "beat": beat.beat_id, "primary_take": beat.primary_take_id,
        "active_take": key, "active_choice": choice, "placeholder_key": placeholder,
        "takes": [{"take": t.take_id, "status": t.status} for t in beat.takes],
        "duration_source": source, "frames": frames,
    }
    return clip


def export_timeline(store: Store, project: str, episode: object, *, rate: float = DEFAULT_RATE,
                    media_root: str | os.PathLike[str] | None = None) -> Any:
    """The episode's active cut as an ``opentimelineio.schema.Timeline``.

    Reads each scene's active body once (``load_active_with_version``); writes nothing.
    """
    otio = require_otio()
    rate = check_rate(rate)
    validate_project(project)
    ep = episode_token(episode)
    root = Path(media_root) if media_root is not None else default_media_root(store, project)
    timeline = otio.schema.Timeline(name=f"{project} {ep}")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    scenes: list[dict[str, Any]] = []
    for batch_id in store.list_batches(project, ep):
        scene, version = store.load_active_with_version(project, ep, batch_id)
        scenes.append({"scene": batch_id, "version": version, "beats": len(scene.beats),
                       "locked": scene.locked})
        for n, beat in enumerate(scene.beats):
            clip = beat_clip(otio, project, ep, scene, version, beat, rate, root)
            if n == 0:  # a marker at each scene's head, for the editor's navigation
                clip.markers.append(otio.schema.Marker(
                    name=batch_id,
                    marked_range=otio.opentime.TimeRange(
                        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(0, rate)),
                    metadata={NAMESPACE: {"scene": batch_id, "version": version}},
                ))
            track.append(clip)
    timeline.metadata[NAMESPACE] = {"format": FORMAT, "project": project, "episode": ep,
                                    "rate": rate, "scenes": scenes}
    return timeline


def timeline_bytes(timeline: Any) -> bytes:
    """The timeline as ``.otio`` JSON, the format every OTIO reader accepts."""
    otio = require_otio()
    text: str = otio.adapters.write_to_string(timeline, "otio_json")
    return text.encode("utf-8") + (b"" if text.endswith("\n") else b"\n")


def write_otio(store: Store, project: str, episode: object,
               path: str | os.PathLike[str], *, rate: float = DEFAULT_RATE,
               media_root: str | os.PathLike[str] | None = None) -> Any:
    """Export and write ``path`` atomically (an ``.otio`` file); returns the timeline."""
    target = Path(path)
    if target.suffix.lower() != OTIO_SUFFIX:
        raise ValidationError("path", f"{target} must end in {OTIO_SUFFIX} (OTIO JSON)")
    timeline = export_timeline(store, project, episode, rate=rate, media_root=media_root)
    data = timeline_bytes(timeline)
    if not target.parent.is_dir():
        raise ValidationError("path", f"folder {target.parent} does not exist")
    atomic_write_bytes(target, data)
    return timeline


__all__ = [
    "ApplyResult",
    "Change",
    "ImportPlan",
    "Skip",
    "active_take",
    "apply_import",
    "export_timeline",
    "plan_import",
    "read_timeline",
    "shot_duration",
    "timeline_bytes",
    "write_otio",
]
