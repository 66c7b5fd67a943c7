"""``clapboard demo``: the whole loop really happened in the store it leaves behind."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

import clapboard
from clapboard.demo import CRASH_JOB, EPISODE, LOCKED, PROJECT, REDERIVED, load_plan, png_bytes
from tests.cli_support import Cli, clean_env, one_error_line


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def test_bundled_plan_is_a_real_production() -> None:
    plan = load_plan()
    assert len(plan["sequences"]) >= 3
    for seq in plan["sequences"].values():
        assert len(seq["shots"]) >= 3
        for shot in seq["shots"]:
            assert shot["description"] and shot["duration_s"] > 0 and shot["camera"]


def test_png_is_valid() -> None:
    data = png_bytes(8, 4, "x")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (8, 4)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_len])
    assert len(raw) == height * (1 + width * 3)


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    run = Cli(root)
    r = run("demo", "--runners", "2")
    assert r.code == 0, r.err
    assert "SIGKILL" in r.out and f"clapboard serve --root {root}" in r.out
    with clapboard.open_store(root) as store:
        # the killed runner's take was recovered as stale, then re-rolled
        beat = store.load_active(PROJECT, EPISODE, CRASH_JOB[0]).beat(CRASH_JOB[1])
        assert [t.status for t in beat.takes] == ["stale", "succeeded"]
        assert not [t for b in store.list_batches(PROJECT, EPISODE)
                    for beat in store.load_active(PROJECT, EPISODE, b).beats
                    for t in beat.takes if t.status == "running"]
        # every other beat got a successful take from the concurrent runners
        for batch in store.list_batches(PROJECT, EPISODE):
            scene = store.load_active(PROJECT, EPISODE, batch)
            for b in scene.beats:
                if batch == REDERIVED and b.beat_id in ("SH010", "SH025"):
                    continue  # new / changed shots of the re-derived v2 start empty
                assert any(t.status == "succeeded" for t in b.takes), (batch, b.beat_id)
        # re-derived, diffed, conformed
        assert store.load_active_with_version(PROJECT, EPISODE, REDERIVED)[1] == 2
        diff = store.diff(PROJECT, EPISODE, REDERIVED, 1, 2)
        assert [a["beat_id"] for a in diff["added"]] == ["SH025"]
        # board decisions, primary takes, picture lock (and a refused re-cut)
        locked = store.load_active(PROJECT, EPISODE, LOCKED)
        assert locked.locked and all(b.board and b.board.status == "approved"
                                     for b in locked.beats)
        assert all(b.primary_take_id for b in locked.beats)
        assert len(store.versions(PROJECT, EPISODE, LOCKED)) == 1
        assert store.fsck().clean
        # media exists inside the project folder, named relative to it
        project_dir = root / "projects" / PROJECT
        refs = [f for b in locked.beats if b.board for f in b.board.frames]
        refs += [o for b in locked.beats for t in b.takes for o in t.outputs]
        assert refs and all(not Path(x).is_absolute() and (project_dir / x).is_file()
                            for x in refs)
        ops = {r["op"] for r in store.history(PROJECT, EPISODE, CRASH_JOB[0])}
        assert {"take-start", "heartbeat", "recover-stale", "runner"} <= ops
    again = run("demo")
    assert again.code == 2 and "already holds" in one_error_line(again)
