"""The durable write protocol: errors raised, old bytes kept, folder fsynced after rename."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import clapboard
from clapboard.errors import StoreReadOnlyError
from clapboard.io import atomic
from clapboard.io.atomic import atomic_write_bytes
from tests.test_contract import PLAN, bump


def fail_nth_fsync(monkeypatch: pytest.MonkeyPatch, n: int, err: int = errno.EIO) -> list[int]:
    """The nth sync of a file fails: fsync, or fdatasync (a journal append's)."""
    calls: list[int] = []

    def failing(real: Any) -> Any:
        def sync(fd: int) -> None:
            calls.append(fd)
            if len(calls) == n:
                raise OSError(err, os.strerror(err))
            real(fd)
        return sync

    monkeypatch.setattr(os, "fsync", failing(os.fsync))
    monkeypatch.setattr(os, "fdatasync", failing(os.fdatasync))
    return calls


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC, errno.EDQUOT])
def test_fsync_error_raises_keeps_old_bytes_and_removes_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    target = tmp_path / "body.json"
    atomic_write_bytes(target, b"old\n")
    fail_nth_fsync(monkeypatch, 1, err)
    with pytest.raises(OSError) as ei:
        atomic_write_bytes(target, b"new\n")
    assert ei.value.errno == err
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["body.json"]


def test_status_save_fsync_error_keeps_last_good(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = clapboard.open_store(tmp_path / "s")
    store.init_scenes_from_plan("show", 1, PLAN)
    before = store.load_raw("show", 1, "SEQ_A")
    history = store.history("show", 1, "SEQ_A")
    fail_nth_fsync(monkeypatch, 1)
    with pytest.raises(OSError):
        store.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.undo()
    assert store.load_raw("show", 1, "SEQ_A") == before
    assert store.history("show", 1, "SEQ_A") == history
    folder = Path(store.backend.location) / "projects/show/orchestration/scenes"
    assert not [n for n in os.listdir(folder) if "cbtmp" in n]
    # The failed fsync was the journal's (the status save's commit point): after it the
    # kernel's view of the file is unknown, so this store refuses writes until reopened.
    with pytest.raises(StoreReadOnlyError):
        store.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    reopened = clapboard.open_store(tmp_path / "s")
    assert reopened.load_raw("show", 1, "SEQ_A") == before
    reopened.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    assert reopened.load_raw("show", 1, "SEQ_A") != before


def test_write_error_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "t"
    atomic_write_bytes(target, b"old")
    real = os.write

    def short_then_fail(fd: int, data: Any) -> int:
        if len(data) > 3:
            return real(fd, bytes(data[:3]))  # a short write...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["t"]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    atomic_write_bytes(tmp_path / "t", b"0123456789" * 100)
    monkeypatch.undo()
    assert (tmp_path / "t").read_bytes() == b"0123456789" * 100


def test_folder_is_fsynced_after_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_fdatasync, real_rename = os.fsync, os.fdatasync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        events.append(("fdatasync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fdatasync(fd)

    def rename(a: Any, b: Any) -> None:
        events.append(("rename", Path(b).name))
        real_rename(a, b)

    # compact_every=1: from the second status save on, each rewrites the body first.
    store = clapboard.open_store(tmp_path / "s", compact_every=1)
    store.init_scenes_from_plan("show", 1, PLAN)
    store.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "rename", rename)
    for _ in range(2):
        store.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.undo()
    # body: fsync(temp) -> rename -> fsync(folder); then the journal append is synced
    # (fdatasync: its data and the file's new length).
    assert events == [("fsync", "file"), ("rename", "ep_001_SEQ_A.json"), ("fsync", "dir"),
                      ("fdatasync", "file")] * 2
    # With no rewrite due, a status save is one journal append and its sync.
    events.clear()
    lazy = clapboard.open_store(tmp_path / "s")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "rename", rename)
    lazy.save_active_scene_status("show", 1, "SEQ_A", expected_version=1, mutate=bump)
    monkeypatch.undo()
    assert events == [("fdatasync", "file")]


def test_mkdir_fsyncs_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = atomic.fsync_dir
    monkeypatch.setattr(atomic, "fsync_dir", lambda d: (synced.append(str(d)), real(d))[1])
    atomic_write_bytes(tmp_path / "a" / "b" / "f", b"x")
    assert synced == [str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a" / "b")]


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o007, 0o660)])
def test_new_file_mode_follows_umask(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == expected


def test_replace_keeps_target_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"x")
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"y")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
