"""The ``clapboard`` command line.

``main()`` loads the group (:mod:`clapboard.cli.group`), imports every
``clapboard.cli.cmd_*`` module so each registers its commands, and runs it. Errors are
turned into one line on stderr and an exit code by the group itself
(:mod:`clapboard.cli.failures`).
"""

from __future__ import annotations

from clapboard.cli.group import cli
from clapboard.cli.registry import load_commands


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``clapboard`` script and ``python -m clapboard``."""
    load_commands()
    cli.main(argv, prog_name="clapboard")


__all__ = ["cli", "main"]
