"""Turning a production plan into scenes.

A plan is ``{"sequences": {seq_id: {"shots": [shot, ...]}, ...}}``. Each shot becomes
an empty beat whose id is the shot's ``shot_id``, else ``id``, else ``BEAT_NN`` (its
position), and whose ``beat_metadata`` is ``{"scene_id": seq_id, "plan_shot": shot}``.
"""

from __future__ import annotations

from typing import Any

from clapboard.errors import ValidationError
from clapboard.models import Beat, Scene
from clapboard.paths import validate_id


def plan_scenes(project: str, episode: str, plan: Any, max_takes: int) -> list[Scene]:
    """Validated scenes for every sequence of ``plan`` (nothing is written)."""
    if isinstance(max_takes, bool) or not isinstance(max_takes, int) or max_takes < 0:
        raise ValidationError("max_takes", f"must be an integer >= 0, got {max_takes!r}")
    if not isinstance(plan, dict):
        raise ValidationError("plan", f"must be an object, got {type(plan).__name__}")
    sequences = plan.get("sequences") or {}
    if not isinstance(sequences, dict):
        raise ValidationError("plan.sequences", "must map sequence ids to {\"shots\": [...]}")
    scenes = []
    for seq_id, spec in sequences.items():
        validate_id(seq_id, "sequence id")
        if not isinstance(spec, dict):
            raise ValidationError(f"plan.sequences.{seq_id}", "must be an object")
        shots = spec.get("shots", [])
        if not isinstance(shots, list):
            raise ValidationError(f"plan.sequences.{seq_id}.shots", "must be a list")
        beats: list[Beat] = []
        seen: set[str] = set()
        for i, shot in enumerate(shots):
            if not isinstance(shot, dict):
                raise ValidationError(f"plan.sequences.{seq_id}.shots[{i}]", "must be an object")
            beat_id = str(shot.get("shot_id") or shot.get("id") or f"BEAT_{len(beats):02d}")
            if beat_id in seen:
                raise ValidationError(f"plan.sequences.{seq_id}.shots[{i}]",
                                      f"duplicate shot id {beat_id!r}")
            seen.add(beat_id)
            beats.append(Beat(beat_id=beat_id, max_takes=max_takes,
                              beat_metadata={"scene_id": seq_id, "plan_shot": shot}))
        scenes.append(Scene(scene_id=seq_id, beats=beats,
                            scene_metadata={"episode": episode, "project": project}))
    return scenes


def restamp_max_takes(scene: Scene, max_takes: int) -> None:
    """Set ``max_takes`` on every beat (not structural, so the status writer allows it)."""
    for beat in scene.beats:
        beat.max_takes = max_takes
