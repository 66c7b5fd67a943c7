"""Faults #1, #4, #5 on the real syscalls: strace ``error=`` injection and libfiu.

* strace: every recorded store ``openat`` / ``write`` / ``fsync`` / ``rename`` /
  ``mkdir`` of an operation fails once (EIO, ENOSPC, EDQUOT in rotation) in a child.
  The child must report the error (never acknowledge), every published file must keep
  its old bytes (single-batch operations: exactly the old state), no temp file may
  remain, and the store must then pass the crash invariant (fsck, retry works).
* libfiu (``fiu_posix_preload.so``): one-shot ``posix/io/sync/fsync`` and
  ``posix/io/rw/write`` faults at each occurrence, and ``posix/io/rw/write/reduce``
  (random short writes) for a whole operation, which must still write exact bytes.
"""

from __future__ import annotations

import errno
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability import harness as h
from tests.reliability import scenarios as sc
from tests.reliability.conftest import FIU_PRELOAD

SCENARIOS = ["status_save", "status_cold_start", "candidate_activate", "conform",
             "init_fresh", "recover_stale", "journal_append"]
MULTI_BATCH = {"init_fresh", "recover_stale"}
FAMILIES = {"openat", "write", "pwrite64", "fsync", "fdatasync", "rename", "mkdir"}
CODES = ("EIO", "ENOSPC", "EDQUOT")


def _verdict(name: str, root: Path, snaps: list[dict[str, bytes]], out: str, rc: int,
             where: str) -> bool:
    """Check one faulted run; True when the fault made the operation fail."""
    failed = "ERR 1" in out
    assert failed or "ACK 1" in out, f"{where}: worker crashed (rc {rc})"
    h.check_files(root, snaps[0], snaps[1], where)
    if name not in MULTI_BATCH:
        want = snaps[0] if failed else snaps[1]
        why = "last good bytes not kept" if failed else "acknowledged write missing"
        assert sc.snapshot(root) == want, f"{where}: {why}"
    assert not sc.temps(root), f"{where}: temp files left {sc.temps(root)}"
    h.check_state(root, snaps, 1 if not failed else 0, where)
    return failed


@pytest.mark.parametrize("name", SCENARIOS)
def test_strace_error_at_every_syscall(name: str, tmp_path: Path, base_states: dict[str, Path],
                                       figures: Counter[str], need_strace: None) -> None:
    base = base_states[name]
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    run = tmp_path / "rec"
    sc.copy_tree(base, run)
    rec, _ = h.record(name, run, tmp_path / "rec.trace")
    targets = [c for c in rec.calls if c.family in FAMILIES]

    def trial(i: int) -> tuple[int, h.Trial, Path, int]:
        root = tmp_path / f"e{i}"
        code = CODES[i % len(CODES)]
        t, missed = h.run_injected_at(name, base, root, tmp_path / f"e{i}.trace", rec,
                                      targets[i], f"error={code}")
        return i, t, root, missed

    with ThreadPoolExecutor(max_workers=2) as pool:
        for i, t, root, missed in pool.map(trial, range(len(targets))):
            figures["fault runs re-run (the error landed on another call)"] += missed
            c = targets[i]
            where = f"{name}: {CODES[i % 3]} at {c.family} #{c.ordinal} ({c.text[:90]})"
            assert t.last_call == c.text, f"{where}: injected at {t.last_call!r}"
            failed = _verdict(name, root, snaps, t.stdout, t.returncode, where)
            # every write-side call must surface its error; only reads may not matter,
            # and the lock file's holder record (a hint for a timeout's message)
            if (c.family in {"write", "fsync", "fdatasync", "rename", "mkdir"}
                    or (c.family == "pwrite64" and ".lock>" not in c.text)
                    or "O_CREAT" in c.text):
                assert failed, f"{where}: the error was swallowed and the write acknowledged"
            figures[f"syscall faults injected by strace ({c.family})"] += 1


def _fiu_run(name: str, root: Path, spec: str) -> subprocess.CompletedProcess[str]:
    env = h.worker_env()
    env["LD_PRELOAD"] = str(FIU_PRELOAD)
    return subprocess.run(h.worker_cmd(name, root, "--fiu", spec), env=env, cwd=h.REPO,
                          capture_output=True, text=True, timeout=120)


_FSYNC = ("posix/io/sync/fsync", errno.EIO)  # a body write's, a façade append's
_FDATASYNC = ("posix/io/sync/fdatasync", errno.EIO)  # a store journal append's
_WRITE = ("posix/io/rw/write", errno.ENOSPC)  # a whole file's, a façade append's
# A store journal append's; the first pwrite of these operations is the lock file's
# holder record, written best effort (a hint for a timeout's message) before any store
# write, so a failure there is the one that may leave the operation done.
_PWRITE = ("posix/io/rw/pwrite", errno.ENOSPC)


@pytest.mark.parametrize("name,point,code", [
    ("status_save", *_FDATASYNC), ("status_save", *_PWRITE),
    ("candidate_activate", *_FSYNC), ("candidate_activate", *_FDATASYNC),
    ("candidate_activate", *_WRITE), ("candidate_activate", *_PWRITE),
    ("journal_append", *_FSYNC), ("journal_append", *_WRITE)])
def test_libfiu_one_shot(name: str, point: str, code: int, tmp_path: Path,
                         base_states: dict[str, Path], figures: Counter[str],
                         need_fiu: None) -> None:
    base = base_states[name]
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    probe = tmp_path / "probe"
    sc.copy_tree(base, probe)
    p = _fiu_run(name, probe, f"{point}:-1:{code}")  # never fails: counts the calls
    assert "ACK 1" in p.stdout, p.stderr[-2000:]
    calls = int(p.stdout.split("FIU ")[1].split()[0])
    assert calls > 0
    for n in range(1, calls + 1):
        root = tmp_path / f"f{n}"
        sc.copy_tree(base, root)
        p = _fiu_run(name, root, f"{point}:{n}:{code}")
        where = f"{name}: libfiu {point} #{n}"
        failed = _verdict(name, root, snaps, p.stdout, p.returncode, where)
        assert failed or (point == _PWRITE[0] and n == 1), f"{where}: fault swallowed"
        figures["libfiu one-shot faults injected"] += 1


@pytest.mark.parametrize("name", ["status_save", "candidate_activate", "init_fresh",
                                  "journal_append"])
def test_libfiu_short_writes(name: str, tmp_path: Path, base_states: dict[str, Path],
                             figures: Counter[str], need_fiu: None) -> None:
    """#5: every write of the operation may be cut short; the bytes must still be exact."""
    snaps = sc.reference_snapshots(name, base_states[name], tmp_path / "ref")
    for k in range(5):
        root = tmp_path / f"r{k}"
        sc.copy_tree(base_states[name], root)
        p = _fiu_run(name, root, "posix/io/rw/write/reduce,posix/io/rw/pwrite/reduce:0:0")
        assert "ACK 1" in p.stdout, p.stdout + p.stderr[-2000:]
        assert sc.snapshot(root) == snaps[1]
        figures["libfiu short-write runs (exact bytes)"] += 1
