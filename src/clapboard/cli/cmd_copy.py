"""``copy``: a whole store from one backend to another (folder or ``postgresql://``).

The work is :func:`clapboard.copy.copy_store`; this command only opens the two stores,
shows a progress bar on stderr, and reports what was copied. A destination batch that
differs from the source is refused (exit 3) and left untouched.
"""

from __future__ import annotations

import click

from clapboard.cli.common import emit, global_options, note, progress, settings
from clapboard.cli.group import cli


def _summary(report_dict: dict[str, object]) -> str:
    copied = report_dict["copied"]
    updated = report_dict["updated"]
    unchanged = report_dict["unchanged"]
    assert isinstance(copied, list) and isinstance(updated, list)
    assert isinstance(unchanged, list)
    if not copied and not updated:
        return f"nothing to copy: all {len(unchanged)} batch(es) already identical"
    return (f"copied {len(copied)} batch(es), brought {len(updated)} forward, "
            f"{len(unchanged)} already identical ({report_dict['bodies']} body(ies), "
            f"{report_dict['journal_records']} journal record(s) written)")


@cli.command("copy")
@click.argument("src")
@click.argument("dst")
@global_options
@click.pass_context
def copy_cmd(ctx: click.Context, src: str, dst: str) -> None:
    """Copy every scene of store SRC into store DST, both directions (a folder or a
    postgresql:// URL): every version, the active pointer and its history, and the
    journal verbatim. Running it again copies nothing. A batch that exists in DST with
    a different history is refused and left untouched (exit code 3).

    \b
    Example:
        clapboard copy ./clapboard-data postgresql://clap@db/film
        clapboard copy postgresql://clap@db/film /backups/film-2024-06-01
    """
    from clapboard.copy import CopyConflictError, copy_store

    with progress("copying batches") as update:
        try:
            report = copy_store(src, dst, progress=update,
                                lock_timeout=settings(ctx).lock_timeout)
        except CopyConflictError as e:
            data = e.report.to_dict()
            emit(ctx, data, text=_summary(data))
            raise
    data = report.to_dict()
    for warning in report.warnings:
        note(f"clapboard: warning: {warning}")
    emit(ctx, data, text=_summary(data))
