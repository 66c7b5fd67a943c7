"""A small sample episode for the OTIO tests: two scenes, every take situation.

Scenes are created out of sorted order on purpose (the export must sort them), and the
beats cover each rule of the exporter: a primary take, no takes at all, a fallback to
the latest succeeded take, an output file that is missing, and takes without output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clapboard import Store, Take

PROJECT = "film"
EPISODE = "ep_001"

PLAN = {"sequences": {
    "SC_020": {"shots": [{"shot_id": "S1", "duration_s": 2.0},
                         {"shot_id": "S2", "frames": 36}]},
    "SC_010": {"shots": [{"shot_id": "A", "duration_s": 1.5},
                         {"shot_id": "B"},
                         {"shot_id": "C", "frames": 48, "fps": 48}]},
}}

#: (scene, beat) in timeline order, and the clip length in frames at 24 fps.
ORDER = [("SC_010", "A", 36), ("SC_010", "B", 120), ("SC_010", "C", 24),
         ("SC_020", "S1", 48), ("SC_020", "S2", 36)]


def _take(take_id: str, status: str, output: Path | str | None = None,
          finished: str | None = None) -> Take:
    return Take(take_id=take_id, status=status, outputs=[] if output is None else [str(output)],
                finished_at=finished)


def build_episode(store: Store, media: Path) -> dict[str, Any]:
    """Create the sample episode; returns the media paths by take id."""
    media.mkdir(parents=True, exist_ok=True)
    files = {name: media / f"{name}.mp4" for name in ("t1", "t2", "c3", "s1")}
    for path in files.values():
        path.write_bytes(b"\x00fake-mp4")
    store.init_scenes_from_plan(PROJECT, EPISODE, PLAN, actor="setup")

    def sc010(scene: Any) -> None:
        a = scene.beat("A")
        a.takes += [_take("t1", "succeeded", files["t1"], "2024-01-01T10:00:00+00:00"),
                    _take("t2", "succeeded", files["t2"], "2024-01-01T11:00:00+00:00")]
        a.primary_take_id = "t1"
        scene.beat("C").takes += [
            _take("c1", "failed"),
            _take("c2", "succeeded", media / "never-rendered.mp4", "2024-01-02T10:00:00+00:00"),
            _take("c3", "succeeded", files["c3"], "2024-01-01T09:00:00+00:00"),
        ]

    def sc020(scene: Any) -> None:
        s1 = scene.beat("S1")
        s1.takes += [_take("s1", "succeeded", files["s1"], "2024-01-01T10:00:00+00:00"),
                     _take("s2", "running")]
        s1.primary_take_id = "s1"
        scene.beat("S2").takes.append(_take("x1", "failed"))

    store.save_active_scene_status(PROJECT, EPISODE, "SC_010", expected_version=None,
                                   mutate=sc010, actor="setup")
    store.save_active_scene_status(PROJECT, EPISODE, "SC_020", expected_version=None,
                                   mutate=sc020, actor="setup")
    return {"files": files, "media": media}


def snapshot(store: Store) -> dict[str, Any]:
    """Every scene's active body as a plain dict, to prove what an import changed."""
    return {b: store.load_active_with_version(PROJECT, EPISODE, b)[0].to_dict()
            for b in store.list_batches(PROJECT, EPISODE)}


def history_lengths(store: Store) -> dict[str, int]:
    batches = store.list_batches(PROJECT, EPISODE)
    return {b: len(store.history(PROJECT, EPISODE, b)) for b in batches}
