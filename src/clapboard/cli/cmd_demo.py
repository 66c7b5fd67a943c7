"""``clapboard demo``: the README's first command (see :mod:`clapboard.demo`)."""

from __future__ import annotations

from pathlib import Path

import click

from clapboard.cli.common import emit, global_options, settings, wants_json
from clapboard.cli.group import cli


@cli.command("demo")
@click.option("--runners", type=click.IntRange(min=1, max=16), default=3, show_default=True,
              help="Concurrent runner processes (one more is started and killed).")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Seed for which takes fail and for the placeholder images.")
@global_options
@click.pass_context
def demo_cmd(ctx: click.Context, runners: int, seed: int) -> None:
    """Build a sample production and run the whole loop on it, in a few seconds.

    Runner processes write takes concurrently, one is killed mid-take and its take is
    recovered as stale, a scene is re-derived into a candidate version and conformed,
    boards are approved, a scene is picture-locked, and fsck checks everything. Uses
    --root if given (it must not hold a demo yet), else a new temp folder.

    \b
    Example:
        clapboard demo
        clapboard demo --root /tmp/clap && clapboard serve --root /tmp/clap
    """
    from clapboard.demo import run_demo

    s = settings(ctx)
    root = s.root or s.store_url
    if root is not None and "://" in root:
        raise click.UsageError("demo needs a folder (--root DIR), not a URL", ctx)
    as_json = wants_json(ctx)
    result = run_demo(Path(root) if root else None, runners=runners, seed=seed,
                      say=(lambda line: click.echo(line, err=True)) if as_json else click.echo)
    if as_json:
        emit(ctx, result.to_dict())
