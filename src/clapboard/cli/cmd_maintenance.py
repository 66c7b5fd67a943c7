"""``recover-stale``, ``fsck`` and ``migrate``: keeping a store healthy.

fsck and migrate go project by project so a progress bar can show real progress on
a large store (on stderr, and only on a terminal).
"""

from __future__ import annotations

import click

from clapboard.backends.base import Report
from clapboard.cli.common import (
    EXIT_PROBLEMS,
    emit,
    get_store,
    global_options,
    progress,
    require_episode,
    require_project,
)
from clapboard.cli.group import cli


@cli.command("recover-stale")
@click.argument("project")
@click.argument("episode")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=300.0,
              show_default=True, metavar="SECONDS",
              help="A running take silent for longer than this is stale.")
@global_options
@click.pass_context
def recover_stale_cmd(ctx: click.Context, project: str, episode: str,
                      older_than: float) -> None:
    """Mark running takes whose runner died (no heartbeat for --older-than) as stale.

    \b
    Example:
        clapboard recover-stale my-film 1 --older-than 120
    """
    store = get_store(ctx)
    require_episode(store, project, episode)  # a typo must not report "0 recovered"
    found = store.recover_stale_takes(project, episode, older_than_s=older_than)
    rows = [{"batch_id": b, "beat_id": beat, "take_id": t} for b, beat, t in found]
    emit(ctx, {"project": project, "episode": episode, "older_than_s": older_than,
               "recovered": rows},
         rows=rows if rows else None,
         columns=[("batch_id", "batch"), ("beat_id", "beat"), ("take_id", "take")],
         text=f"{len(rows)} stale take(s) recovered")


def _projects(ctx: click.Context, project: str | None) -> list[str]:
    store = get_store(ctx)
    if project is not None:
        require_project(store, project)
        return [project]
    return store.list_projects()


@cli.command("fsck")
@click.argument("project", required=False)
@click.option("--repair", is_flag=True,
              help="Remove orphan temp files and truncate torn journal tails (nothing else).")
@global_options
@click.pass_context
def fsck_cmd(ctx: click.Context, project: str | None, repair: bool) -> None:
    """Check every file of the store (or of PROJECT). Exit 1 if problems remain.

    Checks parsing, schema, identity, manifest artifacts, orphan temp files and bodies,
    recorded fingerprints and journal chains. Corrupt files are reported, never changed.

    \b
    Example:
        clapboard fsck
        clapboard fsck my-film --repair --json
    """
    store = get_store(ctx)
    projects = _projects(ctx, project)
    report = Report()
    with progress("fsck", len(projects)) as update:
        for n, name in enumerate(projects, 1):
            part = store.fsck(name, repair=repair)
            report.problems.extend(part.problems)
            report.checked += part.checked
            update(n, len(projects))
    rows = [p.to_dict() for p in report.problems]
    status = "clean" if report.clean else \
        f"{sum(1 for p in report.problems if not p.repaired)} problem(s) remain"
    emit(ctx, {**report.to_dict(), "projects": projects, "repair": repair},
         rows=rows if rows else None,
         columns=[("kind", "kind"), ("path", "file"), ("message", "problem"),
                  ("repaired", "repaired")],
         text=f"fsck: {len(projects)} project(s), {report.checked} file(s) checked: {status}")
    if not report.clean:
        ctx.exit(EXIT_PROBLEMS)


@cli.command("migrate")
@click.argument("project", required=False)
@global_options
@click.pass_context
def migrate_cmd(ctx: click.Context, project: str | None) -> None:
    """Rewrite bodies and manifests of older schema versions in the current one.

    Each file is rewritten atomically under its batch lock; current files are untouched.

    \b
    Example:
        clapboard migrate my-film
    """
    store = get_store(ctx)
    projects = _projects(ctx, project)
    done: list[str] = []
    with progress("migrate", len(projects)) as update:
        for n, name in enumerate(projects, 1):
            done.extend(store.migrate(name))
            update(n, len(projects))
    emit(ctx, {"projects": projects, "migrated": done},
         text="\n".join([*done, f"{len(done)} file(s) migrated"]))
