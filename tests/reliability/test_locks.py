"""Faults #8-#12: the batch lock under deletion, fork, re-entry, hangs, odd filesystems."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest

import clapboard
from clapboard import LockReentryError, LockTimeoutError, UnsupportedFilesystemError
from clapboard.io import lock as lockmod
from clapboard.io.lock import FileLock
from tests.reliability import scenarios as sc

CTX = mp.get_context("spawn")


def _hold(path: str, ready: mp.synchronize.Event, seconds: float) -> None:  # type: ignore[name-defined]
    with FileLock(path, timeout=5, op="hang"):
        ready.set()
        time.sleep(seconds)


def _try(path: str, timeout: float) -> bool:
    try:
        with FileLock(path, timeout=timeout):
            return True
    except LockTimeoutError:
        return False


def test_replaced_between_open_and_flock_is_retried(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """#8: the file is swapped right after our open: we must end on the live inode."""
    path = tmp_path / "b.versions.lock"
    path.write_bytes(b"")
    real_flock = fcntl.flock
    swapped = []

    def flock(fd: int, op: int) -> None:
        if not swapped and op & fcntl.LOCK_EX:
            swapped.append(1)
            os.unlink(path)  # someone replaces the lock file under us
            path.write_bytes(b"")
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    lk = FileLock(path, timeout=2)
    lk.acquire()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert os.fstat(lk._fd).st_ino == os.stat(path).st_ino  # type: ignore[arg-type]
    with CTX.Pool(1) as pool:
        assert pool.apply(_try, (str(path), 0.3)) is False, "a second holder got the live file"
    lk.release()


def test_lock_files_are_never_unlinked(tmp_path: Path, base_states: dict[str, Path]) -> None:
    """#8: no operation (nor fsck --repair) removes a lock file."""
    root = tmp_path / "s"
    sc.copy_tree(base_states["status_save"], root)
    locks = sorted(p.name for p in root.rglob("*.versions.lock"))
    s = sc.open_at(root)
    with sc.frozen_time():
        for op in sc.SCENARIOS["seq_status_candidate_revert"].ops:
            op(s, root)
    s.fsck(repair=True)
    s.close()
    assert set(locks) <= {p.name for p in root.rglob("*.versions.lock")}


def test_lock_file_deleted_while_held_no_second_holder(tmp_path: Path) -> None:
    """#8: deleting a held lock file does not let a newcomer in (the folder guard);
    once the holder is done, the newcomer recreates the file and gets the lock."""
    path = tmp_path / "b.versions.lock"
    ready = CTX.Event()
    holder = CTX.Process(target=_hold, args=(str(path), ready, 3.0))
    holder.start()
    try:
        assert ready.wait(30)
        os.unlink(path)
        assert not _try(str(path), 0.5), "second holder while the first still holds"
    finally:
        holder.join(30)
    assert _try(str(path), 5.0), "the lock is free again once the holder is done"
    assert path.exists()


def test_fork_child_never_releases_parents_lock(tmp_path: Path) -> None:
    """#9: a forked child that releases (and exits) leaves the parent's lock held."""
    path = tmp_path / "b.versions.lock"
    lk = FileLock(path, timeout=2)
    lk.acquire()
    pid = os.fork()
    if pid == 0:  # child: release its inherited copy, then exit without cleanup
        lk.release()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    with CTX.Pool(1) as pool:
        assert pool.apply(_try, (str(path), 0.5)) is False, "the child freed the parent's lock"
    lk.release()
    with CTX.Pool(1) as pool:
        assert pool.apply(_try, (str(path), 5.0)) is True


def test_reentry_raises_at_once(fs_store: clapboard.Store) -> None:
    """#10: a post_write hook saving the same batch gets LockReentryError, never a hang."""
    s = clapboard.open_store(fs_store.backend.location, lock_timeout=30)

    def hook(scene: clapboard.Scene) -> None:
        s.save_active_scene_status("p", 1, "B", expected_version=None,
                                   mutate=lambda x: x.scene_metadata.update(y=2))

    t0 = time.monotonic()
    with pytest.raises(LockReentryError):
        s.save_active_scene_status("p", 1, "B", expected_version=None,
                                   mutate=lambda x: x.scene_metadata.update(x=1),
                                   post_write=hook)
    assert time.monotonic() - t0 < 10  # the timeout is 30 s: it did not wait for it
    assert s.list_batches("p", 1) == []  # the cold-start body was rolled back
    s.close()


def _hold_batch(root: str, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    s = clapboard.open_store(root)
    with s.transaction("p", 1, "B", op="render"):
        ready.set()
        time.sleep(4)


def test_hung_holder_times_out_naming_pid_and_host(tmp_path: Path) -> None:
    """#11: LockTimeoutError names the lock file and the holder's pid, host and op."""
    root = str(tmp_path / "s")
    ready = CTX.Event()
    p = CTX.Process(target=_hold_batch, args=(root, ready))
    p.start()
    try:
        assert ready.wait(30)
        s = clapboard.open_store(root, lock_timeout=0.3)
        with pytest.raises(LockTimeoutError) as ei:
            s.save_active_scene_status("p", 1, "B", expected_version=None,
                                       mutate=lambda x: None)
        s.close()
        assert ei.value.holder.get("pid") == p.pid
        assert ei.value.holder.get("host") == socket.gethostname()
        assert ei.value.holder.get("op") == "render"
        assert "ep_001_B.versions.lock" in str(ei.value) and str(p.pid) in str(ei.value)
    finally:
        p.join(30)


@pytest.mark.parametrize("fstype", ["nfs4", "cifs", "fuse.sshfs", "9p"])
def test_network_filesystems_are_refused(fstype: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """#12: a root on NFS/CIFS/FUSE is refused at open (pointing to PostgreSQL)."""
    import clapboard.backends.filesystem as fsb

    monkeypatch.setattr(fsb, "filesystem_type", lambda path: fstype)
    with pytest.raises(UnsupportedFilesystemError, match="PostgreSQL"):
        clapboard.open_store(tmp_path / "s")
    clapboard.open_store(tmp_path / "s", allow_network_fs=True).close()


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK])
def test_flock_unsupported_is_a_hard_error(code: int, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """#12: flock failing with ENOSYS & co is UnsupportedFilesystemError, never no locking."""
    s = clapboard.open_store(tmp_path / "s")

    def broken(fd: int, op: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(lockmod.fcntl, "flock", broken)
    with pytest.raises(UnsupportedFilesystemError):
        s.save_active_scene_status("p", 1, "B", expected_version=None, mutate=lambda x: None)
    monkeypatch.undo()
    assert s.list_batches("p", 1) == []  # nothing was written without the lock
    s.close()


def test_kept_descriptor_is_never_shared_between_threads(tmp_path: Path) -> None:
    """#8: a released lock keeps its descriptor for reuse; a second thread acquiring
    while the first holds must still wait (flock locks belong to the descriptor)."""
    import threading

    path = tmp_path / "b.versions.lock"
    with FileLock(path, timeout=2):
        pass  # now a descriptor of this file is kept
    assert lockmod._KEPT.get(str(path)), "the released descriptor was not kept"
    got: list[bool] = []
    with FileLock(path, timeout=2):
        t = threading.Thread(target=lambda: got.append(_try(str(path), 0.3)))
        t.start()
        t.join(10)
    assert got == [False], "a second thread shared the holder's lock"
    assert _try(str(path), 2.0)


def test_forked_child_does_not_reuse_kept_descriptors(tmp_path: Path) -> None:
    """#9: a child forked while the parent keeps a free lock descriptor must not lock
    through its copy (it would share the parent's lock) once the parent holds it."""
    path = tmp_path / "b.versions.lock"
    with FileLock(path, timeout=2):
        pass
    assert lockmod._KEPT.get(str(path))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: wait until the parent holds the lock, then try it
        os.close(w)
        os.read(r, 1)
        os._exit(0 if not _try(str(path), 0.5) else 1)
    os.close(r)
    lk = FileLock(path, timeout=2)
    lk.acquire()  # through the kept descriptor
    os.write(w, b"x")
    _, status = os.waitpid(pid, 0)
    lk.release()
    os.close(w)
    assert os.waitstatus_to_exitcode(status) == 0, "the child got the parent's held lock"


def test_kept_descriptors_are_bounded_least_recent_closed_first(tmp_path: Path) -> None:
    """A long-lived process locking many batches keeps at most _KEPT_MAX pairs of descriptors:
    the least recently used are closed, the newest is always kept."""
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    for i in range(lockmod._KEPT_MAX + 40):
        with FileLock(tmp_path / f"b{i}.versions.lock", timeout=2):
            pass
    before = open_fds()
    for i in range(lockmod._KEPT_MAX + 40, 2 * lockmod._KEPT_MAX + 80):
        with FileLock(tmp_path / f"b{i}.versions.lock", timeout=2):
            pass
    kept = sum(len(v) for v in lockmod._KEPT.values())
    assert kept == lockmod._KEPT_COUNT[0] <= lockmod._KEPT_MAX
    assert lockmod._KEPT.get(str(tmp_path / f"b{2 * lockmod._KEPT_MAX + 79}.versions.lock"))
    assert open_fds() <= before, "kept descriptors leaked past the bound"


def test_holder_record_is_rewritten_only_when_it_names_someone_else(tmp_path: Path) -> None:
    """The lock file names its holder (pid, host, op) for a LockTimeoutError message.
    Re-acquiring with the same name leaves the file alone (rewriting the same bytes on
    every save dirtied its inode and measurably slowed each save's journal sync);
    another op or another holder's record is replaced, whole."""
    path = tmp_path / "b.versions.lock"

    def hold(op: str) -> os.stat_result:
        with FileLock(path, timeout=5, op=op):
            pass
        return os.stat(path)

    first = hold("status")
    assert lockmod.read_holder(path) == {"pid": os.getpid(), "host": socket.gethostname(),
                                         "op": "status"}
    time.sleep(0.02)
    again = hold("status")
    assert (again.st_mtime_ns, again.st_ctime_ns) == (first.st_mtime_ns, first.st_ctime_ns)
    path.write_bytes(b'{"pid": 1, "host": "elsewhere", "op": "a-much-longer-operation-name"}')
    hold("status")
    assert lockmod.read_holder(path)["host"] == socket.gethostname()
    hold("runner")
    assert lockmod.read_holder(path)["op"] == "runner"


def test_a_kept_lock_descriptor_without_its_folders_is_still_used(tmp_path: Path) -> None:
    """A released lock keeps its file's and its folder's descriptors together; an
    acquisition takes both in one guarded trip. When only the lock file's is kept (its
    folder's closed), the lock is still taken through it, with a new folder descriptor,
    excludes another thread, and both are kept after release."""
    import threading

    path = tmp_path / "b.versions.lock"
    with FileLock(path, timeout=2):
        pass
    kept = lockmod._take(str(path))
    assert kept is not None and kept[2] >= 0, "the folder's descriptor was not kept"
    fd, ino, dir_fd = kept
    os.close(dir_fd)
    lockmod._keep(str(path), fd, ino, -1)
    with FileLock(path, timeout=2) as lk:
        assert lk._fd == fd, "the kept lock descriptor was not used"
        assert lk._dir_fd is not None and lk._dir_fd >= 0
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(_try(str(path), 0.2)))
        t.start()
        t.join(10)
        assert got == [False], "another thread took the held lock"
    again = lockmod._KEPT[str(path)][-1]
    assert again[0] == fd and again[2] >= 0
    assert _try(str(path), 2.0)


def test_a_forked_child_names_itself_in_the_holder_record(tmp_path: Path) -> None:
    """The pid in the holder record is remembered per process: a forked child that
    takes the lock names itself, not its parent."""
    path = tmp_path / "b.versions.lock"
    with FileLock(path, timeout=2, op="parent"):
        pass
    pid = os.fork()
    if pid == 0:
        with FileLock(path, timeout=2, op="child"):
            holder = lockmod.read_holder(path)
        os._exit(0 if holder.get("pid") == os.getpid() and holder.get("op") == "child" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's holder record named another pid"
    with FileLock(path, timeout=2, op="parent"):
        assert lockmod.read_holder(path)["pid"] == os.getpid()
