"""``clapboard init``: create one scene per plan sequence (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from clapboard.cli.common import emit, fail, get_store, global_options, progress
from clapboard.cli.group import cli
from clapboard.errors import CorruptFileError


def read_plan(path: Path) -> Any:
    """The plan JSON; malformed JSON names the file and the spot, and writes nothing."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        fail(f"plan {path} is a folder; give a plan JSON file")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise CorruptFileError(f"plan {path} is not valid JSON ({e})", path=path,
                               hint="fix the file; nothing was written") from None


@cli.command("init")
@click.argument("project")
@click.argument("episode")
@click.option("--plan", "plan_path", required=True, metavar="PLAN.json",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Plan JSON: {"sequences": {SEQ_ID: {"shots": [...]}}}.')
@click.option("--max-takes", type=click.IntRange(min=0), default=3, show_default=True,
              help="Takes allowed per beat; re-stamped on scenes that already exist.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@global_options
@click.pass_context
def init_cmd(ctx: click.Context, project: str, episode: str, plan_path: Path, max_takes: int,
             dry_run: bool) -> None:
    """Create one scene (batch) per sequence of a plan.

    Idempotent: scenes that already exist keep their takes and versions and only get
    --max-takes re-stamped on their active body.

    \b
    Example:
        clapboard init my-film 1 --plan plan.json --max-takes 4
        clapboard init my-film 1 --plan plan.json --dry-run --json
    """
    plan = read_plan(plan_path)
    store = get_store(ctx)
    existing = set(store.list_batches(project, episode))
    with progress("init scenes") as update:
        scenes = store.init_scenes_from_plan(project, episode, plan, max_takes,
                                             persist=not dry_run, progress=update)
    verb = ("would restamp", "would create") if dry_run else ("restamped", "created")
    rows = [{"batch_id": s.scene_id, "beats": len(s.beats),
             "action": verb[0] if s.scene_id in existing else verb[1]} for s in scenes]
    emit(ctx, {"project": project, "episode": episode, "dry_run": dry_run,
               "max_takes": max_takes, "scenes": rows},
         rows=rows, columns=[("batch_id", "batch"), ("beats", "beats"), ("action", "action")],
         text=f"{len(rows)} scene(s) {'checked (dry run, nothing written)' if dry_run else 'ready'}"
              f" in {project} episode {episode}")
