"""``versions``, ``diff``, ``conform`` and ``revert``: an operator moving a scene between
its immutable versions.

A pointer move shown to a person must be the move that happens: after showing the
diff, the move is made with ``expected_active`` set to the version the diff started
from, so if anyone moved the pointer meanwhile the store refuses (exit 3) instead of
applying a change nobody reviewed.
"""

from __future__ import annotations

import click

from clapboard.cli.common import (
    EXIT_PROBLEMS,
    confirm,
    emit,
    get_store,
    global_options,
    stdout_is_terminal,
    wants_json,
)
from clapboard.cli.failures import CommandFailed
from clapboard.cli.group import cli
from clapboard.cli.render import diff_lines
from clapboard.errors import SceneLockedError, SceneVersionConflictError
from clapboard.manifest import active_of


@cli.command("versions")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@global_options
@click.pass_context
def versions_cmd(ctx: click.Context, project: str, episode: str, batch: str) -> None:
    """List a scene's versions; the active one is marked.

    \b
    Example:
        clapboard versions my-film 1 SEQ_010
        clapboard versions my-film 1 SEQ_010 --json
    """
    entries = get_store(ctx).versions(project, episode, batch)
    rows = [{**e, "fingerprint_short": str(e.get("fingerprint") or "")[:12],
             "marker": "*" if e.get("active") else ""} for e in entries]
    emit(ctx, {"batch_id": batch, "versions": entries}, rows=rows,
         columns=[("marker", "active"), ("version", "version"), ("created_at", "created"),
                  ("actor", "actor"), ("parent_version", "parent"), ("note", "note"),
                  ("fingerprint_short", "fingerprint")])


@cli.command("diff")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@click.argument("a", type=click.IntRange(min=1))
@click.argument("b", type=click.IntRange(min=1))
@global_options
@click.pass_context
def diff_cmd(ctx: click.Context, project: str, episode: str, batch: str, a: int,
             b: int) -> None:
    """Structural diff between versions A and B: beats added, removed, moved, changed.

    \b
    Example:
        clapboard diff my-film 1 SEQ_010 1 2
        clapboard diff my-film 1 SEQ_010 1 2 --json
    """
    diff = get_store(ctx).diff(project, episode, batch, a, b)
    emit(ctx, diff, text="\n".join(diff_lines(diff)))


def _move(ctx: click.Context, project: str, episode: str, batch: str, version: int | None,
          *, reason: str | None, expect: int | None, yes: bool, op: str) -> None:
    store = get_store(ctx)
    current = active_of(store.manifest(project, episode, batch))
    if expect is not None and expect != current:
        raise SceneVersionConflictError(batch, expect, current)
    scene = store.load_active(project, episode, batch)
    if scene.locked:  # refuse before asking anyone to review a move that cannot happen
        raise SceneLockedError(batch, scene.lock_reason, scene.locked_by)
    preview = store.preview(project, episode, batch, version)
    target = int(preview["b"])
    guard = expect
    if target != current and stdout_is_terminal() and not wants_json(ctx):
        click.echo("\n".join(diff_lines(preview)))
        if not confirm(f"{op} {batch} from v{current} to v{target}?", yes=yes):
            raise CommandFailed(f"{op} cancelled; {batch} stays at v{current}", EXIT_PROBLEMS)
        guard = current  # the reviewed diff starts here; refuse if it moved meanwhile
    if op == "conform":
        assert version is not None
        moved_to = store.conform(project, episode, batch, version, expected_active=guard,
                                 reason=reason)
    else:
        moved_to = store.revert(project, episode, batch, expected_active=guard, reason=reason)
    changed = moved_to != current
    text = (f"{batch}: v{current} -> v{moved_to} ({op})" if changed
            else f"{batch} is already at v{moved_to}; nothing changed")
    emit(ctx, {"batch_id": batch, "op": op, "from": current, "to": moved_to,
               "changed": changed, "reason": reason, "diff": preview}, text=text)


_REASON = click.option("--reason", default=None, help="Why; recorded in history and journal.")
_EXPECT = click.option("--expect", type=click.IntRange(min=1), default=None, metavar="VERSION",
                       help="Refuse (exit 3) unless VERSION is still the active version.")
_YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@cli.command("conform")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@click.argument("version", type=click.IntRange(min=1))
@_REASON
@_EXPECT
@_YES
@global_options
@click.pass_context
def conform_cmd(ctx: click.Context, project: str, episode: str, batch: str, version: int,
                reason: str | None, expect: int | None, yes: bool) -> None:
    """Make VERSION the scene's active version.

    On a terminal the structural diff is shown first and you are asked to confirm
    (--yes skips the question). Refused with exit 3 when the scene is locked or when
    --expect names a version that is no longer active.

    \b
    Example:
        clapboard conform my-film 1 SEQ_010 2 --reason "new coverage" --expect 1 --yes
    """
    _move(ctx, project, episode, batch, version, reason=reason, expect=expect, yes=yes,
          op="conform")


@cli.command("revert")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@_REASON
@_EXPECT
@_YES
@global_options
@click.pass_context
def revert_cmd(ctx: click.Context, project: str, episode: str, batch: str,
               reason: str | None, expect: int | None, yes: bool) -> None:
    """Move the active pointer back to where the last move came from.

    Same safety as conform: diff and confirmation on a terminal, --expect, --yes;
    exit 3 when locked, moved, or when there is no move to undo.

    \b
    Example:
        clapboard revert my-film 1 SEQ_010 --reason "director prefers v1" --yes
    """
    _move(ctx, project, episode, batch, None, reason=reason, expect=expect, yes=yes,
          op="revert")
