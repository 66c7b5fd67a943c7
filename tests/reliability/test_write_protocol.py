"""Fault #2 (and #13 under power loss): the durable-write order, from a real trace.

Each operation runs once under ``strace -f -y -xx`` (full data). Then:

* **order check** — every published file is replaced by: a temp created with
  ``O_CREAT|O_EXCL`` in the same folder → written → fsynced (after its last write) →
  renamed over the target → the folder fsynced, before the next file is published and
  before the operation is acknowledged; a journal line is fsynced before the ack; a new
  folder is fsynced into its parent.
* **power-loss model** (:mod:`tests.reliability.powerloss`) — for every prefix of the
  operation's events and both crash models, the surviving state must hold only old or
  new bytes per file, load, and pass fsck but for orphans; at an acknowledgement, the
  pessimistic (durable-only) state must be exactly the acknowledged one.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability import harness as h
from tests.reliability import powerloss as pl
from tests.reliability import scenarios as sc

SCENARIOS = ["status_save", "status_cold_start", "runner_save", "init_fresh",
             "candidate_flat", "candidate_activate", "conform", "revert", "lock",
             "recover_stale", "journal_append", "seq_status_candidate_revert"]
TRACE = "openat,write,pwrite64,fsync,fdatasync,rename,unlink,ftruncate,mkdir,close," \
        "access,faccessat,faccessat2"


def _trace(name: str, root: Path, out: Path, mutant: str = "") -> list[pl.Event]:
    cmd = ["strace", "-f", "-qq", "-y", "-xx", "-s", "10000000", "-o", str(out),
           "-e", f"trace={TRACE}", *h.worker_cmd(name, root)]
    env = h.worker_env()
    if mutant:
        env["CLAPBOARD_TEST_MUTANT"] = mutant
    p = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return pl.parse(out)


def check_order(events: list[pl.Event], root: Path) -> int:
    """Assert the protocol for every rename in ``events``; returns how many were checked."""
    top = str(root)
    fd_path: dict[int, tuple[str, str]] = {}  # fd -> (path, flags)
    writes: dict[str, int] = {}  # path -> index of its last write
    synced: dict[str, int] = {}  # path -> index of its last fsync
    pending_dirs: dict[str, int] = {}  # folder -> index of an un-fsynced entry change
    checked = 0
    for i, ev in enumerate(events):
        if ev.name == "openat" and ev.strings and ev.strings[0].decode().startswith(top):
            path = ev.strings[0].decode()
            fd_path[ev.ret] = (path, ev.args)
            if ".cbtmp-" in path:
                assert "O_CREAT|O_EXCL" in ev.args, f"temp not created exclusively: {ev.args}"
        elif ev.name in ("write", "pwrite64") and ev.fd() in fd_path:
            path = fd_path[ev.fd()][0]
            writes[path] = i
            if path.endswith(".jsonl"):
                pending_dirs.pop("journal-data:" + path, None)
                pending_dirs["journal-data:" + path] = i
        elif ev.name == "write" and ev.fd() == 1 and ev.strings[0].startswith(b"ACK"):
            assert not pending_dirs, f"acknowledged with un-synced changes: {pending_dirs}"
        elif ev.name in ("fsync", "fdatasync") and ev.fd() in fd_path:
            path = fd_path[ev.fd()][0]
            synced[path] = i
            pending_dirs.pop(path, None)
            pending_dirs.pop("journal-data:" + path, None)
        elif ev.name == "rename":
            src, dst = (s.decode() for s in ev.strings[:2])
            if not dst.startswith(top):
                continue
            assert ".cbtmp-" in src and Path(src).parent == Path(dst).parent, ev.args
            assert src in writes, f"renamed a temp that was never written: {src}"
            assert synced.get(src, -1) > writes[src], f"renamed before fsync: {src}"
            assert not [d for d in pending_dirs if not d.startswith("journal-data:")], \
                f"published {dst} before the previous folder change was durable"
            pending_dirs[str(Path(dst).parent)] = i
            checked += 1
        elif ev.name in ("mkdir", "unlink") and ev.strings[0].decode().startswith(top):
            path = ev.strings[0].decode()
            if ".cbtmp-" not in path:
                pending_dirs[str(Path(path).parent)] = i
        elif ev.name == "close":
            fd_path.pop(ev.fd(), None)
    assert not pending_dirs, f"operation ended with un-synced changes: {pending_dirs}"
    return checked


def power_loss_states(name: str, tmp_path: Path, base: Path, figures: Counter[str],
                      mutant: str = "") -> None:
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    root = tmp_path / "run"
    sc.copy_tree(base, root)
    fs = pl.Fs.scan(root)
    events = _trace(name, root, tmp_path / "trace", mutant)
    assert sc.snapshot(root) == snaps[-1]
    figures["renames checked for write order"] += check_order(events, root)
    n = 0
    for i in range(len(events) + 1):
        if i:
            fs.apply(events[i - 1])
        just_acked = i > 0 and events[i - 1].name == "write" and \
            events[i - 1].strings[0].startswith(b"ACK ")
        for model in ("pessimistic", "metadata-first"):
            dest = tmp_path / f"p{i}-{model}"
            pl.materialise(fs.crash_state(model), dest)
            where = f"{name}: power loss after event {i}/{len(events)} ({model})"
            if just_acked and model == "pessimistic":
                h.check_files(dest, snaps[fs.acks], None, where + " [acknowledged]")
            h.check_state(dest, snaps, fs.acks, where, retry=False)
            n += 1
    figures["power-loss states checked (prefix x model)"] += n


@pytest.mark.parametrize("name", SCENARIOS)
def test_order_and_power_loss(name: str, tmp_path: Path, base_states: dict[str, Path],
                              figures: Counter[str], need_strace: None) -> None:
    power_loss_states(name, tmp_path, base_states[name], figures)


@pytest.mark.parametrize(("mutant", "name"), [
    ("no-dir-fsync", "candidate_flat"), ("no-file-fsync", "candidate_flat"),
    ("no-journal-fsync", "status_save"), ("journal-after-body", "init_fresh"),
    ("journal-after-body", "status_cold_start")])
def test_checks_catch_a_missing_fsync(mutant: str, name: str, tmp_path: Path,
                                      base_states: dict[str, Path], need_strace: None) -> None:
    """Mutation test: a writer without the folder (or file) fsync of a body write,
    without the fsync of a status save's journal record (its commit point), or that
    creates a new batch's journal after the folder sync of its first body (so nothing
    syncs the journal's name), is caught."""
    with pytest.raises(AssertionError):
        power_loss_states(name, tmp_path, base_states[name], Counter(), mutant)
    # and the power-loss model alone (without the order check) catches it too
    with pytest.raises(AssertionError, match=r"torn or lost|acknowledged"):
        _model_only(name, tmp_path / "m", base_states[name], mutant)


def _model_only(name: str, tmp_path: Path, base: Path, mutant: str) -> None:
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    root = tmp_path / "run"
    sc.copy_tree(base, root)
    fs = pl.Fs.scan(root)
    for i, ev in enumerate(_trace(name, root, tmp_path / "trace", mutant)):
        fs.apply(ev)
        acked = ev.name == "write" and ev.strings[0].startswith(b"ACK ")
        for model in ("pessimistic", "metadata-first"):
            dest = tmp_path / f"p{i}-{model}"
            pl.materialise(fs.crash_state(model), dest)
            where = f"{model} after event {i}"
            if acked and model == "pessimistic":
                h.check_files(dest, snaps[fs.acks], None, where + " [acknowledged]")
            h.check_files(dest, snaps[fs.acks],
                          snaps[fs.acks + 1] if fs.acks + 1 < len(snaps) else None, where)
