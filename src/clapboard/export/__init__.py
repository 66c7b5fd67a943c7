"""Exports of the store to the formats other tools speak.

:mod:`clapboard.export.otio` writes an episode's active cut as an OpenTimelineIO
timeline and brings an editor's take choice back (SPEC §9). OpenTimelineIO itself is
an optional extra, imported only when one of these functions runs.
"""

from __future__ import annotations

from clapboard.export.otio import (
    ApplyResult,
    Change,
    ImportPlan,
    Skip,
    apply_import,
    export_timeline,
    plan_import,
    read_timeline,
    write_otio,
)

__all__ = [
    "ApplyResult",
    "Change",
    "ImportPlan",
    "Skip",
    "apply_import",
    "export_timeline",
    "plan_import",
    "read_timeline",
    "write_otio",
]
