"""``log`` (a batch's journal) and ``watch`` (every journal, followed live).

``watch`` polls ``backend.journal_since`` with the last seq seen per batch and sleeps
in ``backend.wait_for_change`` between polls — a plain sleep on the filesystem,
LISTEN/NOTIFY on PostgreSQL — so it never holds a lock and never slows writers.
"""

from __future__ import annotations

import time

import click

from clapboard.cli.common import (
    emit,
    get_store,
    global_options,
    require_project,
    to_json_line,
    wants_json,
)
from clapboard.cli.group import cli
from clapboard.cli.render import detail_text, journal_line
from clapboard.store import Store

Key = tuple[str, str, str]


@cli.command("log")
@click.argument("project")
@click.argument("episode")
@click.argument("batch")
@click.option("--last", "last", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the N most recent records.")
@global_options
@click.pass_context
def log_cmd(ctx: click.Context, project: str, episode: str, batch: str,
            last: int | None) -> None:
    """Show a scene's journal: one record per successful change, oldest first.

    \b
    Example:
        clapboard log my-film 1 SEQ_010
        clapboard log my-film 1 SEQ_010 --last 5 --json
    """
    store = get_store(ctx)
    records = store.history(project, episode, batch)
    if not records:
        store.load_active(project, episode, batch)  # an unknown batch is an error, not ""
    if last is not None:
        records = records[-last:]
    rows = [{**r, "what": detail_text(r)} for r in records]
    emit(ctx, {"batch_id": batch, "records": records}, rows=rows,
         columns=[("seq", "seq"), ("at", "at"), ("actor", "actor"), ("op", "op"),
                  ("version", "version"), ("what", "what")])


def _positions(store: Store, project: str | None) -> dict[Key, int]:
    """The last seq of every journal now: where a live watch starts."""
    seen: dict[Key, int] = {}
    for key, record in store.backend.journal_since(project, {}):
        seen[key] = max(seen.get(key, 0), int(record["seq"]))
    return seen


def _print(key: Key, record: dict[str, object], as_json: bool) -> None:
    if as_json:
        # One compact object per line (JSON Lines), so a script can read it as it comes.
        click.echo(to_json_line({"project": key[0], "episode": key[1], "batch_id": key[2],
                                 "record": record}))
    else:
        click.echo(journal_line(key, record))


@cli.command("watch")
@click.argument("project", required=False)
@click.option("--all", "replay", is_flag=True,
              help="Print the existing records first (default: only new ones).")
@click.option("--once", is_flag=True, help="Print what is there and stop (no following).")
@click.option("--max-events", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after printing N records.")
@click.option("--interval", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              metavar="SECONDS", help="Longest wait between polls.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop after this many seconds.")
@global_options
@click.pass_context
def watch_cmd(ctx: click.Context, project: str | None, replay: bool, once: bool,
              max_events: int | None, interval: float, timeout: float | None) -> None:
    """Follow every scene's journal live (of one project, or the whole store).

    One line per change as it is committed; --json prints JSON Lines. Ctrl-C stops
    it cleanly (exit 0).

    \b
    Example:
        clapboard watch my-film
        clapboard watch --all --once --json
    """
    store = get_store(ctx)
    if project is not None:
        require_project(store, project)
    as_json = wants_json(ctx)
    after: dict[Key, int] = {} if replay else _positions(store, project)
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    try:
        while True:
            for key, record in store.backend.journal_since(project, after):
                after[key] = max(after.get(key, 0), int(record["seq"]))
                _print(key, record, as_json)
                printed += 1
                if max_events is not None and printed >= max_events:
                    return
            if once or (deadline is not None and time.monotonic() >= deadline):
                return
            wait = interval if deadline is None else min(interval,
                                                         max(0.0, deadline - time.monotonic()))
            store.backend.wait_for_change(wait)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a person stops watching; not an error
