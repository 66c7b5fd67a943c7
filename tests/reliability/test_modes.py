"""Fault #18: file mode after an atomic replace (mkstemp-style temps would be 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from clapboard.io.atomic import atomic_write_bytes
from tests.reliability import scenarios as sc


@pytest.fixture(params=[0o022, 0o007])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_new_file_gets_the_umask_default(umask: int, tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_bytes(target, b"{}\n")
    assert _mode(target) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444])
def test_replace_keeps_the_targets_mode(umask: int, mode: int, tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    os.chmod(target, mode)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == mode


def test_store_operations_keep_modes(umask: int, tmp_path: Path,
                                     base_states: dict[str, Path]) -> None:
    """Every body, manifest and journal keeps its mode across a whole sequence."""
    root = tmp_path / "s"
    sc.copy_tree(base_states["seq_status_candidate_revert"], root)
    scenes = root / "projects" / sc.PROJECT / "orchestration" / "scenes"
    existing = {p.name for p in scenes.iterdir()}
    for p in scenes.iterdir():
        os.chmod(p, 0o640)
    s = sc.open_at(root)
    with sc.frozen_time():
        for op in sc.SCENARIOS["seq_status_candidate_revert"].ops:
            op(s, root)
    s.close()
    for p in scenes.iterdir():
        if p.name not in existing:  # created by the sequence (manifest, v002 body)
            assert _mode(p) == 0o666 & ~umask, p.name
        else:
            assert _mode(p) == 0o640, p.name
