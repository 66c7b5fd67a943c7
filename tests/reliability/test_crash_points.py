"""Faults #3, #13, #17: SIGKILL at every store syscall of every writing operation.

For each scenario (status save, runner save, cold start, init, candidate with
flat→manifest materialisation, versioned candidate with activation, conform, revert,
picture lock, stale recovery, journal append, and two 3-operation sequences) the
operation is recorded once under ``strace -f -y``; then it is re-run once per recorded
syscall with ``-e inject=FAMILY:signal=SIGKILL:when=K``. After every kill
:func:`~tests.reliability.harness.check_state` asserts: each published file is old or
new (never torn), acknowledged operations are present, every batch and version loads,
journal seq is gap-free, fsck reports only orphan temps / orphan bodies, repair sweeps
the temps and keeps orphan bodies, and the interrupted operation then succeeds.

A second test kills the same operations at random *times* (no tracer) in a loop.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability import harness as h
from tests.reliability import scenarios as sc

SCENARIOS = list(sc.SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_sigkill_at_every_syscall(name: str, tmp_path: Path, base_states: dict[str, Path],
                                  figures: Counter[str], need_strace: None) -> None:
    base = base_states[name]
    snaps = sc.reference_snapshots(name, base, tmp_path / "ref")
    run = tmp_path / "rec"
    sc.copy_tree(base, run)
    rec, out = h.record(name, run, tmp_path / "rec.trace")
    assert h.acked_count(out) == len(snaps) - 1
    assert sc.snapshot(run) == snaps[-1], "a traced run must produce the reference bytes"
    assert rec.calls, "no store syscalls recorded"

    def trial(i: int) -> tuple[int, h.Trial, Path, int]:
        root = tmp_path / f"k{i}"
        t, missed = h.run_injected_at(name, base, root, tmp_path / f"k{i}.trace", rec,
                                      rec.calls[i], "signal=SIGKILL")
        return i, t, root, missed

    with ThreadPoolExecutor(max_workers=2) as pool:
        for i, t, root, missed in pool.map(trial, range(len(rec.calls))):
            figures["kill runs re-run (the kill landed on another call)"] += missed
            call = rec.calls[i]
            where = f"{name}: kill at #{i + 1} {call.family} #{call.ordinal}"
            assert t.returncode == -signal.SIGKILL, f"{where}: not killed ({t.stderr[-500:]})"
            assert t.last_call == call.text, f"{where}: killed at {t.last_call!r}"
            got = h.check_state(root, snaps, h.acked_count(t.stdout), where)
            figures["crash points walked (SIGKILL at syscall K)"] += 1
            figures["orphan temps swept after crash"] += got.temps_swept
            figures["orphan bodies kept after crash"] += got.orphan_bodies
            figures["torn or lost files after crash"] += 0  # check_state raised otherwise
            _rm(root)


def _rm(root: Path) -> None:
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def test_random_time_sigkill(tmp_path: Path, base_states: dict[str, Path],
                             figures: Counter[str], soak: float) -> None:
    """Kill untraced workers at random moments; the same invariant holds every time."""
    rng = random.Random(5)
    names = ["seq_status_candidate_revert", "seq_runner_lock_unlock", "init_fresh",
             "recover_stale", "candidate_flat"]
    snaps = {n: sc.reference_snapshots(n, base_states[n], tmp_path / f"ref-{n}") for n in names}
    deadline = time.monotonic() + max(6.0, soak / 4)
    trials = 0
    while time.monotonic() < deadline or trials < 10:
        name = names[trials % len(names)]
        root = tmp_path / f"r{trials}"
        sc.copy_tree(base_states[name], root)
        proc = subprocess.Popen(h.worker_cmd(name, root), env=h.worker_env(), cwd=h.REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(rng.uniform(0.05, 0.35))
        proc.kill()
        out, _ = proc.communicate(timeout=60)
        h.check_state(root, snaps[name], h.acked_count(out), f"{name}: random kill {trials}")
        figures["random-time SIGKILL trials"] += 1
        _rm(root)
        trials += 1


def test_a_kill_that_lands_elsewhere_is_run_again(tmp_path: Path,
                                                  base_states: dict[str, Path],
                                                  need_strace: None) -> None:
    """The harness's re-run (``run_injected_at``): a recording whose count of calls
    before the marker is off by one makes every run land on the next call — run again
    up to the limit, then handed back for the caller's assertion to fail; a true
    recording lands at once."""
    name = "status_save"
    base = base_states[name]
    run = tmp_path / "rec"
    sc.copy_tree(base, run)
    rec, _ = h.record(name, run, tmp_path / "rec.trace")
    call = rec.calls[0]
    skewed = h.Recording({**rec.offsets, call.family: rec.offsets.get(call.family, 0) + 1},
                         rec.calls, rec.lines)
    t, missed = h.run_injected_at(name, base, tmp_path / "k", tmp_path / "k.trace", skewed,
                                  call, "signal=SIGKILL", tries=2)
    assert missed == 1 and t.returncode == -signal.SIGKILL and t.last_call != call.text
    t, missed = h.run_injected_at(name, base, tmp_path / "k2", tmp_path / "k2.trace", rec,
                                  call, "signal=SIGKILL")
    assert missed == 0 and t.last_call == call.text
