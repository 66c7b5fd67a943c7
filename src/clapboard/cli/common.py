"""Helpers every command module uses: the global options, the Store, output, progress.

Output rules (SPEC §7): data goes to stdout — JSON with ``--json`` (stable, sorted
keys), a rich table when stdout is a terminal, plain aligned text otherwise (so pipes
and ``grep`` see no box drawing). Progress bars and errors go to stderr, and a
progress bar only appears when stderr is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
import orjson

from clapboard.cli.failures import (
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    CommandFailed,
    fail,
)
from clapboard.cli.settings import Settings, global_options, settings
from clapboard.opener import open_store
from clapboard.paths import episode_token, validate_project
from clapboard.store import Store

Row = dict[str, Any]
Columns = Sequence[tuple[str, str]]  # (key in the row, header shown to people)


def store_location(ctx: click.Context) -> str | None:
    """``--store`` / ``--root`` (they must agree), else None: ``open_store`` then reads
    ``CLAPBOARD_STORE``, else ``CLAPBOARD_HOME``, else ``./clapboard-data``."""
    s = settings(ctx)
    if s.root and s.store_url and s.root != s.store_url:
        fail(f"--root {s.root!r} and --store {s.store_url!r} name different stores; "
             "give only one")
    return s.store_url or s.root


def get_store(ctx: click.Context) -> Store:
    """The Store of this invocation, opened once and closed when the command ends."""
    s = settings(ctx)
    if s.store is None:
        s.store = open_store(store_location(ctx), lock_timeout=s.lock_timeout)
    return s.store


def require_project(store: Store, project: str) -> None:
    """Refuse a project the store does not hold (a typo must not look like "empty")."""
    validate_project(project)
    known = store.list_projects()
    if project not in known:
        hint = f"known: {', '.join(known)}" if known else "the store has no projects yet"
        fail(f"no project {project!r} in store {store.backend.location} ({hint}); "
             "check --root / CLAPBOARD_HOME or run `clapboard init`")


def require_episode(store: Store, project: str, episode: str) -> tuple[str, list[str]]:
    """The canonical episode token and its batches; an episode without scenes is refused
    (a typo must not look like an empty result)."""
    require_project(store, project)
    ep = episode_token(episode)
    batches = store.list_batches(project, ep)
    if not batches:
        fail(f"project {project} has no scenes in episode {ep}; see `clapboard ls {project}`")
    return ep, batches


def wants_json(ctx: click.Context) -> bool:
    return settings(ctx).json


def to_json(data: Any) -> str:
    """Indented JSON with sorted keys: the one encoding of ``--json`` output."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
                        | orjson.OPT_NON_STR_KEYS).decode()


def to_json_line(data: Any) -> str:
    """Compact one-line JSON with sorted keys (JSON Lines, for streams like ``watch``)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def render_table(rows: list[Row], columns: Columns, *, title: str | None = None) -> None:
    """Rows for people: a rich table on a terminal, aligned plain text otherwise."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, header_style="bold")
        for _, header in columns:
            table.add_column(header)
        for row in rows:
            table.add_row(*(_cell(row.get(k)) for k, _ in columns))
        Console().print(table)
        return
    cells = [[h for _, h in columns]] + [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    if title:
        click.echo(title)
    for line in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def emit(ctx: click.Context, data: Any, *, rows: list[Row] | None = None,
         columns: Columns | None = None, title: str | None = None,
         text: str | Callable[[], None] | None = None) -> None:
    """Print a command's result: ``data`` as JSON with ``--json``; else ``rows`` as a
    table, or ``text`` (a string, or a function that prints)."""
    if wants_json(ctx):
        click.echo(to_json(data))
        return
    if rows is not None and columns is not None:
        render_table(rows, columns, title=title)
    if callable(text):
        text()
    elif text:
        click.echo(text)


def note(message: str) -> None:
    """A human remark on stderr (never mixed into data on stdout)."""
    click.echo(message, err=True)


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while the block runs; a no-op unless stderr is a TTY.

    Yields ``update(done, total)``, the callback shape ``init_scenes_from_plan`` takes.
    """
    if not stderr_is_terminal() or os.environ.get("CLAPBOARD_NO_PROGRESS"):
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def interactive() -> bool:
    """A person is at the keyboard: stdin and stdout are both terminals."""
    return sys.stdin.isatty() and stdout_is_terminal()


def confirm(question: str, *, yes: bool) -> bool:
    """Ask on a terminal; ``--yes`` or a non-interactive stdin means "go ahead" (scripts
    cannot answer, and they already said what they want on the command line)."""
    if yes or not interactive():
        return True
    return click.confirm(question, default=False, err=True)


def example(text: str) -> str:
    """An ``Example:`` block for a command's help (kept verbatim by click)."""
    lines = "\n".join(f"    {line}" for line in text.strip().splitlines())
    return f"\n\n\b\nExample:\n{lines}\n"


__all__ = [
    "EXIT_CONFLICT",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "CommandFailed",
    "Settings",
    "confirm",
    "emit",
    "example",
    "fail",
    "get_store",
    "global_options",
    "interactive",
    "note",
    "progress",
    "render_table",
    "require_project",
    "settings",
    "store_location",
    "to_json",
    "to_json_line",
    "wants_json",
]
