"""``export otio`` / ``import otio``: the active cut out to an editor, and the editor's
take choice back in (SPEC §9). The work is done by :mod:`clapboard.export.otio`; these
commands only parse, print and pick the exit code.

``import otio`` is a dry run unless ``--apply`` is given: the editor's file may be old or
from another store, so a person sees what would change first. Exit codes: 0 when every
clip was matched (with or without changes), 1 when clips were left unmatched, 3 when a
choice conflicts with the store's current state (or a write was refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clapboard.cli.common import (
    EXIT_CONFLICT,
    EXIT_PROBLEMS,
    emit,
    get_store,
    global_options,
    require_episode,
)
from clapboard.cli.group import cli
from clapboard.export.otio import ApplyResult, ImportPlan, apply_import, plan_import, write_otio


@cli.group("export")
@global_options
def export_group() -> None:
    """Write an episode out in another tool's format (OpenTimelineIO).

    \b
    Example:
        clapboard export otio my-film 1 -o cut.otio
    """


@cli.group("import")
@global_options
def import_group() -> None:
    """Bring an editor's decisions back from another tool's format (OpenTimelineIO).

    \b
    Example:
        clapboard import otio cut.otio --apply
    """


def _export_summary(timeline: Any, path: Path, project: str, episode: str,
                    rate: float) -> dict[str, Any]:
    from clapboard.export._otio_common import NAMESPACE, plain

    clips = list(timeline.find_clips())
    metas = [plain(c.metadata[NAMESPACE]) for c in clips]
    missing = sum(1 for c in clips for r in c.media_references().values()
                  if "missing" in plain(r.metadata.get(NAMESPACE) or {}))
    return {
        "file": str(path), "project": project, "episode": episode, "rate": rate,
        "clips": len(clips),
        "frames": sum(int(m["frames"]) for m in metas),
        "scenes": plain(timeline.metadata[NAMESPACE])["scenes"],
        "placeholders": sum(1 for m in metas if m["active_choice"] == "placeholder"),
        "missing_references": missing,
    }


@export_group.command("otio")
@click.argument("project")
@click.argument("episode")
@click.option("-o", "--output", required=True, metavar="FILE.otio",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The timeline file to write (replaced atomically).")
@click.option("--rate", default=24.0, show_default=True, metavar="FPS",
              type=click.FloatRange(min=0, min_open=True), help="Frame rate of the timeline.")
@click.option("--media-root", default=None, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder that relative take outputs are relative to "
                   "(default: the project folder of a filesystem store).")
@global_options
@click.pass_context
def export_otio_cmd(ctx: click.Context, project: str, episode: str, output: Path,
                    rate: float, media_root: Path | None) -> None:
    """Write the episode's active cut as an OpenTimelineIO timeline.

    One clip per beat of each scene's active version, scenes in order; every take is
    a media reference keyed by its take id, the primary take active. Durations come
    from the plan shot (duration_s, else frames, else 5 s).

    \b
    Example:
        clapboard export otio my-film 1 -o cut.otio
        clapboard export otio my-film ep_001 -o cut.otio --rate 25 --json
    """
    store = get_store(ctx)
    ep, _ = require_episode(store, project, episode)
    timeline = write_otio(store, project, ep, output, rate=rate, media_root=media_root)
    summary = _export_summary(timeline, output, project, ep, rate)
    emit(ctx, summary, text=(
        f"wrote {output}: {summary['clips']} clips in {len(summary['scenes'])} scenes, "
        f"{summary['frames']} frames at {rate:g} fps ({summary['placeholders']} without a "
        f"take, {summary['missing_references']} takes without media)"))


def _plan_lines(plan: ImportPlan, result: ApplyResult | None) -> list[str]:
    verb = "set" if result is not None else "would set"
    failed = {(c.scene, c.beat) for c, _ in result.failed} if result else set()
    lines = []
    for c in plan.changes:
        if (c.scene, c.beat) in failed:
            continue
        lines.append(f"{verb} {c.project}/{c.episode}/{c.scene} beat {c.beat}: primary take "
                     f"{c.from_take or '(none)'} -> {c.to_take}")
    for c, error in result.failed if result else []:
        lines.append(f"refused {c.scene} beat {c.beat} ({c.to_take}): {error}")
    for s in plan.unmatched:
        lines.append(f"unmatched clip #{s.index} {s.clip!r}: {s.reason}")
    for s in plan.conflicts:
        lines.append(f"conflict clip #{s.index} {s.clip!r}: {s.reason}")
    if not plan.changes:
        done = "nothing to change"
    elif result is None:
        done = f"{len(plan.changes)} to apply (rerun with --apply)"
    else:
        done = f"{len(result.applied)} applied by {result.actor}"
    lines.append(f"{plan.clips} clips: {done}, {plan.unchanged} unchanged, "
                 f"{len(plan.unmatched)} unmatched, {len(plan.conflicts)} conflicts")
    return lines


@import_group.command("otio")
@click.argument("file", metavar="FILE.otio", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--apply", "do_apply", is_flag=True,
              help="Write the changes (default: only show what would change).")
@global_options
@click.pass_context
def import_otio_cmd(ctx: click.Context, file: Path, do_apply: bool) -> None:
    """Set primary takes from the active references an editor chose in FILE.

    Every clip whose active media reference now names another take of its beat sets
    that beat's primary take (journaled as `otio_import`, actor from
    CLAPBOARD_ACTOR). Clips that cannot be matched, and choices that conflict with
    later changes in the store, are reported and skipped. Without --apply nothing is
    written. Exit code 1 if clips were unmatched, 3 on conflicts.

    \b
    Example:
        clapboard import otio cut.otio
        clapboard import otio cut.otio --apply --json
    """
    store = get_store(ctx)
    plan = plan_import(store, file)
    result = apply_import(store, plan) if do_apply else None
    data = {**plan.to_dict(), "apply": do_apply,
            "result": result.to_dict() if result is not None else None}
    emit(ctx, data, text="\n".join(_plan_lines(plan, result)))
    if plan.conflicts or (result is not None and result.failed):
        ctx.exit(EXIT_CONFLICT)
    if plan.unmatched:
        ctx.exit(EXIT_PROBLEMS)
