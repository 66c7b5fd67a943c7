"""Every command registered on the group is documented in docs/cli*.md with an example,
and its own --help carries an ``Example:`` block (other engineers' commands included:
they document theirs in docs/cli-<name>.md)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from clapboard.cli import cli
from clapboard.cli.registry import load_commands

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands() -> list[tuple[str, click.Command]]:
    load_commands()
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, parent=ctx)
            for sub in cmd.list_commands(sub_ctx):
                sub_cmd = cmd.get_command(sub_ctx, sub)
                assert sub_cmd is not None
                out.append((f"{name} {sub}", sub_cmd))
    return out


def _docs_text() -> str:
    files = sorted(DOCS.glob("cli*.md"))
    assert files, "docs/cli.md is missing"
    return "\n".join(p.read_text() for p in files)


@pytest.mark.parametrize("name, cmd", _commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_command_documented_with_example(name: str, cmd: click.Command) -> None:
    docs = _docs_text()
    assert f"clapboard {name}" in docs, f"`clapboard {name}` is not in docs/cli*.md"
    # an example invocation inside a fenced or indented block, not only a heading
    example = re.compile(rf"^(\$ |    |)clapboard (--\S+ (\S+ )?)*{re.escape(name)}\b", re.M)
    assert example.search(docs), f"no example of `clapboard {name}` in docs/cli*.md"
    assert "Example:" in (cmd.help or ""), f"`clapboard {name} --help` has no Example: block"


def test_own_commands_are_all_present() -> None:
    names = {n for n, _ in _commands()}
    assert {"init", "ls", "show", "versions", "diff", "conform", "revert", "lock", "unlock",
            "log", "watch", "recover-stale", "fsck", "migrate", "demo"} <= names
