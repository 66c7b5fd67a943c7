"""What the OTIO exporter and importer share: the lazy import, the metadata namespace,
and the conversion of OTIO's metadata containers back to plain Python.

OpenTimelineIO is an optional extra (``clapboard[otio]``); it is imported only when an
export or import actually runs, so ``import clapboard`` and the rest of the CLI work
without it, and a missing install gives one friendly line instead of a traceback.
"""

from __future__ import annotations

from typing import Any

from clapboard.errors import ClapboardError

#: Every piece of metadata clapboard writes sits under this key, so an editor's own
#: metadata (and other tools') never collides with ours.
NAMESPACE = "clapboard"
#: Bumped when the meaning of the metadata changes; the importer refuses newer ones.
FORMAT = 1
DEFAULT_RATE = 24.0
#: Clip length when a plan shot gives neither ``duration_s`` nor ``frames``.
DEFAULT_DURATION_S = 5.0
#: Key of the stand-in reference of a beat with nothing to show (OTIO's own default key).
PLACEHOLDER_KEY = "DEFAULT_MEDIA"
#: The journal ``op`` of a primary-take change brought back from an editor's timeline.
IMPORT_OP = "otio_import"

INSTALL_HINT = "pip install 'clapboard[otio]'"


def require_otio() -> Any:
    """The ``opentimelineio`` module, or a :class:`ClapboardError` saying how to get it."""
    try:
        import opentimelineio
    except ImportError as e:
        raise ClapboardError(
            f"OpenTimelineIO export/import needs the opentimelineio package ({e})",
            hint=INSTALL_HINT,
        ) from None
    return opentimelineio


def plain(value: Any) -> Any:
    """OTIO metadata (``AnyDictionary`` / ``AnyVector``) as plain dicts and lists.

    Values read back from a file are OTIO containers, which compare and serialise
    differently from dicts; everything downstream (JSON output, equality) wants plain
    Python.
    """
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "__iter__"):
        return [plain(v) for v in value]
    return value
