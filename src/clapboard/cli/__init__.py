"""The ``clapboard`` command line (placeholder until the CLI issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from clapboard import __version__

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--version":
        print(f"clapboard {__version__}")
        return
    print("clapboard: CLI not built yet", file=sys.stderr)
    sys.exit(2)
