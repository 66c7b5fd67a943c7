"""``clapboard ls`` and ``clapboard show``: read-only views of what is stored."""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from clapboard.cli.common import (
    emit,
    get_store,
    global_options,
    require_episode,
    require_project,
)
from clapboard.cli.group import cli
from clapboard.cli.render import counts_text
from clapboard.manifest import active_of
from clapboard.paths import episode_token
from clapboard.store import Store


def _scene_row(store: Store, project: str, episode: str, batch_id: str) -> dict[str, Any]:
    manifest = store.manifest(project, episode, batch_id)
    scene, version = store.load_active_with_version(project, episode, batch_id)
    counts = scene.take_counts()
    return {
        "batch_id": batch_id,
        "active_version": version,
        "versions": len((manifest or {}).get("versions") or [1]),
        "beats": len(scene.beats),
        "takes": counts,
        "takes_text": counts_text(counts),
        "primary_takes": sum(1 for b in scene.beats if b.primary_take_id),
        "boards_approved": sum(1 for b in scene.beats
                               if b.board is not None and b.board.status == "approved"),
        "locked": scene.locked,
        "lock_reason": scene.lock_reason,
    }


@cli.command("ls")
@click.argument("project", required=False)
@click.argument("episode", required=False)
@global_options
@click.pass_context
def ls_cmd(ctx: click.Context, project: str | None, episode: str | None) -> None:
    """List scenes with active version, beats, take counts and lock.

    Without EPISODE, lists the project's episodes; without PROJECT, the store's projects.

    \b
    Example:
        clapboard ls my-film 1
        clapboard ls my-film
        clapboard ls --json my-film ep_001
    """
    store = get_store(ctx)
    if project is None:
        projects = [{"project": p, "episodes": len(store.list_episodes(p))}
                    for p in store.list_projects()]
        emit(ctx, {"projects": projects}, rows=projects,
             columns=[("project", "project"), ("episodes", "episodes")],
             text=None if projects else f"no projects in {store.backend.location}")
        return
    require_project(store, project)
    if episode is None:
        episodes = [{"episode": e, "scenes": len(store.list_batches(project, e))}
                    for e in store.list_episodes(project)]
        emit(ctx, {"project": project, "episodes": episodes}, rows=episodes,
             columns=[("episode", "episode"), ("scenes", "scenes")])
        return
    ep, batches = require_episode(store, project, episode)
    rows = [_scene_row(store, project, ep, b) for b in batches]
    columns = [("batch_id", "batch"), ("active_version", "active"), ("versions", "versions"),
               ("beats", "beats"), ("takes_text", "takes"), ("primary_takes", "primary"),
               ("boards_approved", "boards ok"), ("locked", "locked")]
    emit(ctx, {"project": project, "episode": ep,
               "scenes": [{k: v for k, v in r.items() if k != "takes_text"} for r in rows]},
         rows=rows, columns=columns, title=f"{project} {ep}")


def _beat_row(beat: Any) -> dict[str, Any]:
    shot = (beat.beat_metadata or {}).get("plan_shot") or {}
    description = shot.get("description") or shot.get("action") or ""
    return {
        "beat_id": beat.beat_id,
        "description": description if len(description) <= 48 else description[:45] + "...",
        "duration_s": shot.get("duration_s"),
        "takes": counts_text(dict(sorted(Counter(t.status for t in beat.takes).items()))),
        "primary": beat.primary_take_id,
        "board": beat.board.status if beat.board is not None else None,
    }


@cli.command("show")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Show this version instead of the active one.")
@global_options
@click.pass_context
def show_cmd(ctx: click.Context, project: str, episode: str, batch: str,
             version: int | None) -> None:
    """Show one scene: its beats, takes, primary takes, boards and lock.

    \b
    Example:
        clapboard show my-film 1 SEQ_010
        clapboard show my-film 1 SEQ_010 --version 2 --json
    """
    store = get_store(ctx)
    manifest = store.manifest(project, episode, batch)
    active = active_of(manifest)
    if version is None:
        scene, shown = store.load_active_with_version(project, episode, batch)
    else:
        scene, shown = store.load_version(project, episode, batch, version), version
    rows = [_beat_row(b) for b in scene.beats]
    lock = f"locked by {scene.locked_by}: {scene.lock_reason}" if scene.locked else "unlocked"
    header = (f"{project} {episode_token(episode)} {batch}  v{shown}"
              f"{' (active)' if shown == active else f' (active is v{active})'}  {lock}")
    emit(ctx, {"project": project, "episode": episode_token(episode), "batch_id": batch,
               "version": shown, "active_version": active, "scene": scene.to_dict()},
         rows=rows, title=header,
         columns=[("beat_id", "beat"), ("description", "description"),
                  ("duration_s", "dur s"), ("takes", "takes"), ("primary", "primary"),
                  ("board", "board")])
