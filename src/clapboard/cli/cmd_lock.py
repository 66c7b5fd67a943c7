"""``lock`` / ``unlock``: picture lock. A locked scene refuses pointer moves (conform,
revert, activated candidates) until it is unlocked; status writes still work, so
runners can finish their takes."""

from __future__ import annotations

import click

from clapboard.cli.common import emit, get_store, global_options
from clapboard.cli.group import cli
from clapboard.store import Store


def require_scene(store: Store, project: str, episode: str, batch: str) -> None:
    """The status writer would create a missing scene (a runner's cold start); an
    operator naming a scene that does not exist has made a typo, so refuse it."""
    store.load_active(project, episode, batch)


@cli.command("lock")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@click.option("--reason", required=True, help="Why the scene is locked (required).")
@global_options
@click.pass_context
def lock_cmd(ctx: click.Context, project: str, episode: str, batch: str, reason: str) -> None:
    """Picture-lock a scene: no conform or revert until it is unlocked.

    \b
    Example:
        clapboard lock my-film 1 SEQ_010 --reason "sent to sound"
    """
    store = get_store(ctx)
    require_scene(store, project, episode, batch)
    scene = store.lock_scene(project, episode, batch, reason)
    emit(ctx, {"batch_id": batch, "locked": True, "lock_reason": scene.lock_reason,
               "locked_by": scene.locked_by, "locked_at": scene.locked_at},
         text=f"{batch} locked by {scene.locked_by}: {scene.lock_reason}")


@cli.command("unlock")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@global_options
@click.pass_context
def unlock_cmd(ctx: click.Context, project: str, episode: str, batch: str) -> None:
    """Remove a scene's picture lock.

    \b
    Example:
        clapboard unlock my-film 1 SEQ_010
    """
    store = get_store(ctx)
    require_scene(store, project, episode, batch)
    store.unlock_scene(project, episode, batch)
    emit(ctx, {"batch_id": batch, "locked": False}, text=f"{batch} unlocked")
