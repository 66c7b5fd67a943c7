"""Discovery of command modules: every ``clapboard.cli.cmd_*`` module registers its
commands on the group when imported, so commands written in separate files (copy,
serve, OTIO) appear without this package naming them.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False
#: Command modules skipped because an optional dependency is missing: name -> reason.
unavailable: dict[str, str] = {}


def load_commands() -> None:
    """Import every ``cmd_*`` module once (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import clapboard.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("cmd_"):
            continue
        name = f"{package.__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            # An optional extra (fastapi, psycopg, opentimelineio) not installed: the
            # rest of the CLI must keep working. A missing clapboard module is a bug.
            if e.name is None or e.name.startswith("clapboard"):
                raise
            unavailable[info.name] = f"needs {e.name} (pip install 'clapboard[dev]')"
