"""The global options (``--root``, ``--store``, ``--json``, ``--lock-timeout``, ``--debug``).

They are accepted both before and after the command name (``clapboard --json ls …`` and
``clapboard ls … --json``). Click only knows options where they are declared, so the same
options are declared twice: on the group, and on every command through
:func:`global_options`. Both write into one :class:`Settings` object kept on the root
context; nothing reads the option values directly, so the two places can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from clapboard.store import Store

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    """What the global options said, merged from both positions."""

    root: str | None = None
    store_url: str | None = None
    json: bool = False
    lock_timeout: float | None = None
    debug: bool = False
    store: Store | None = field(default=None, repr=False)


def settings(ctx: click.Context) -> Settings:
    """The one Settings object of this invocation (created on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # Only a value the user actually gave overrides: a flag's False / an option's
    # None must not undo what the other position set.
    if value is None or value is False or param.name is None:
        return
    setattr(settings(ctx), param.name, value)


def _options() -> list[Callable[[F], F]]:
    common: dict[str, Any] = {"expose_value": False, "callback": _remember}
    return [
        click.option("--root", "root", metavar="DIR", default=None, **common,
                     help="Store folder (else CLAPBOARD_STORE, CLAPBOARD_HOME, "
                          "./clapboard-data)."),
        click.option("--store", "store_url", metavar="URL", default=None, **common,
                     help="Store location: a folder or a postgresql:// URL."),
        click.option("--json", "json", is_flag=True, default=False, **common,
                     help="Machine-readable JSON on stdout (stable keys)."),
        click.option("--lock-timeout", "lock_timeout", metavar="SECONDS",
                     type=click.FloatRange(min=0), default=None, **common,
                     help="Seconds to wait for a batch lock (else CLAPBOARD_LOCK_TIMEOUT, "
                          "else 30)."),
        click.option("--debug", "debug", is_flag=True, default=False, **common,
                     help="Show the full traceback on errors."),
    ]


def global_options(f: F) -> F:
    """Add the global options to a command so they also work after its name."""
    for option in reversed(_options()):
        f = option(f)
    return f
