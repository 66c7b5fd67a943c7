"""The ``clapboard`` click group. Command modules (``cmd_*.py``) import ``cli`` from here
and register themselves with ``@cli.command()``; :mod:`clapboard.cli.registry` imports
them all. Error handling lives in :meth:`ClapboardGroup.main`, so the real entry point
and click's ``CliRunner`` behave the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from clapboard._version import __version__
from clapboard.cli.settings import Settings, global_options

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"],
                                    "max_content_width": 100}


class ClapboardGroup(click.Group):
    """A group that loads every command module and turns errors into one stderr line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from clapboard.cli.registry import load_commands

        load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from clapboard.cli.registry import load_commands

        load_commands()
        return super().get_command(ctx, cmd_name)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        from clapboard.cli.failures import run_guarded

        extra.setdefault("obj", Settings())
        return run_guarded(
            lambda argv: super(ClapboardGroup, self).main(
                argv, prog_name or "clapboard", complete_var, standalone_mode=False, **extra),
            args, extra["obj"], standalone=standalone_mode,
        )


@click.group(cls=ClapboardGroup, context_settings=CONTEXT_SETTINGS)
@global_options
@click.version_option(__version__, "--version", prog_name="clapboard",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """clapboard: the durable, versioned state store of a generative film pipeline.

    Global options (--root, --store, --json, --lock-timeout, --debug) work before or
    after the command name. Exit codes: 0 ok, 1 problems found, 2 usage or bad input,
    3 conflict, locked scene or lock timeout.

    \b
    Example:
        clapboard demo --root /tmp/clap
        clapboard --root /tmp/clap ls demo-film 1
    """
