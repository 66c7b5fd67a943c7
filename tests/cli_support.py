"""Shared helpers of the CLI tests: a small production on disk and a CliRunner wrapper."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click.testing
import pytest

import clapboard
from clapboard.cli import cli
from clapboard.cli.registry import load_commands

PROJECT = "film"
PLAN: dict[str, Any] = {"sequences": {
    "SEQ_010": {"shots": [
        {"shot_id": "A", "description": "wide of the harbour", "duration_s": 4.0},
        {"shot_id": "B", "description": "close on the rope", "duration_s": 2.5},
    ]},
    "SEQ_020": {"shots": [{"id": "C", "description": "gull takes off", "duration_s": 3.0}]},
}}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs ``clapboard`` in-process against one store folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = click.testing.CliRunner()
        load_commands()

    def __call__(self, *args: str, input: str | None = None, root: bool = True) -> Result:
        argv = [*(("--root", str(self.root)) if root else ()), *args]
        r = self.runner.invoke(cli, argv, input=input, catch_exceptions=False)
        return Result(r.exit_code, r.stdout, r.stderr)

    def store(self) -> clapboard.Store:
        return clapboard.open_store(self.root, lock_timeout=5)


def add_candidate(cli_: Cli, batch: str = "SEQ_010", *, activate: bool = False) -> int:
    """Register a re-derived SEQ_010 (an extra beat D) as a new version."""
    with cli_.store() as store:
        scene = store.load_active(PROJECT, 1, batch)
        scene.beats.append(clapboard.Beat(beat_id="D", beat_metadata={
            "scene_id": batch, "plan_shot": {"shot_id": "D", "duration_s": 1.0}}))
        return store.write_scene_candidate(PROJECT, 1, batch, scene, note="insert D",
                                           activate=activate)


def one_error_line(r: Result) -> str:
    """The single stderr line of a failed command (and no traceback anywhere)."""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("clapboard: error: "), r.err
    assert "Traceback" not in r.err + r.out
    return lines[0]


def write_plan(folder: Path, plan: Any = None) -> Path:
    path = folder / "plan.json"
    path.write_text(json.dumps(PLAN if plan is None else plan))
    return path


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No store location or timeout leaks in from the caller's environment."""
    for name in ("CLAPBOARD_STORE", "CLAPBOARD_HOME", "CLAPBOARD_LOCK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLAPBOARD_ACTOR", "tester@cli")
