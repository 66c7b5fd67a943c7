"""Where a status save's time goes: in its syncs or outside them, per contender.

    python -m bench.syncsplit [--size 10x3 ...] [--reps N] [--tiny] [--json OUT]

Runs the bench's status-save rotation — clapboard, the seed, SQLite and the floor, set
up and interleaved exactly as ``python -m bench`` does, back to back and with the idle
moment before every call — in a process with ``bench/synctime.c`` preloaded, which
times every ``fsync`` and ``fdatasync`` where it happens. Each sync is charged to the
call it ran inside, so per contender this prints the median save, how many syncs a
save made, the median time they took, and the median of the rest (the save minus its
syncs: Python, the library's C code and every other system call).

Session 13 used it to settle whether SQLite's WAL commit syncs faster than clapboard's
journal append inside the bench (it does not; docs/PERFORMANCE.md).

Needs Linux and a C compiler (``$CC``, else ``cc``): the shim is built into a temporary
folder and the command runs itself again with it in ``LD_PRELOAD``.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.run import IDLE_S, ROOT, SIZES, StatusRig, interleaved

SHIM_SOURCE = Path(__file__).with_name("synctime.c")
_LOADED = "CLAPBOARD_SYNCTIME_LOADED"
_ORDER = ["clapboard", "seed", "sqlite", "floor"]


def build_shim(out_dir: Path) -> Path:
    """Compile bench/synctime.c into a shared object in ``out_dir``."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bench.syncsplit needs a C compiler (set CC, or install gcc)")
    so = out_dir / "synctime.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(so), str(SHIM_SOURCE), "-ldl"],
                   check=True)
    return so


def _dump_function() -> Any:
    """synctime_dump from the preloaded shim, or None when it is not loaded."""
    try:
        dump = ctypes.CDLL(None).synctime_dump
    except AttributeError:
        return None
    dump.argtypes = [ctypes.c_char_p]
    dump.restype = ctypes.c_int
    return dump


def _read_syncs(dump: Any, path: Path) -> list[tuple[int, int, str, str]]:
    """(start ns, duration ns, kind, file name) of every sync since the last dump."""
    if dump(str(path).encode()):
        raise SystemExit("bench.syncsplit: more syncs than the shim records; use fewer --reps")
    out = []
    for line in path.read_text().splitlines():
        kind, start, duration, name = line.split(" ", 3)
        out.append((int(start), int(duration), kind, name))
    out.sort()
    return out


def split(spans: list[tuple[str, float, float]],
          syncs: list[tuple[int, int, str, str]]) -> dict[str, dict[str, float]]:
    """Per contender: median save, median syncs per save, median sync time and median
    rest (ms), each sync charged to the timed call whose span contains its start."""
    starts = [s[0] for s in syncs]
    per: dict[str, list[tuple[float, int, float]]] = {}
    for name, t0, t1 in spans:
        lo, hi = round(t0 * 1e9), round(t1 * 1e9)
        inside = syncs[bisect.bisect_left(starts, lo):bisect.bisect_right(starts, hi)]
        synced = sum(d for _, d, _, _ in inside) / 1e6
        per.setdefault(name, []).append(((t1 - t0) * 1e3, len(inside), synced))
    out: dict[str, dict[str, float]] = {}
    for name, calls in per.items():
        out[name] = {
            "calls": len(calls),
            "save_ms": statistics.median(c[0] for c in calls),
            "syncs_per_call": statistics.median(c[1] for c in calls),
            "sync_ms": statistics.median(c[2] for c in calls),
            "rest_ms": statistics.median(c[0] - c[2] for c in calls),
        }
    return out


def run(sizes: list[tuple[str, int, int]], reps: int, work: Path) -> list[dict[str, Any]]:
    dump = _dump_function()
    assert dump is not None, "the shim is not preloaded"
    results = []
    for label, beats, takes in sizes:
        rig = StatusRig(work / f"size-{label}", beats, takes)
        try:
            rig.warm()
            kib = len(rig.body_bytes) / 1024
            for regime, idle, rounds in (("back to back", 0.0, reps),
                                         ("idle first", IDLE_S, max(3, reps // 2))):
                _read_syncs(dump, work / "syncs.txt")  # forget the set-up's syncs
                spans: list[tuple[str, float, float]] = []
                interleaved(rig.status, rounds, idle=idle, spans=spans)
                got = split(spans, _read_syncs(dump, work / "syncs.txt"))
                results.append({"size": label, "kib": kib, "regime": regime,
                                 "rounds": rounds, "contenders": got})
        finally:
            rig.close()
    return results


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\nstatus save, {r['size']} ({r['kib']:.0f} KiB), {r['regime']}, "
              f"{r['rounds']} rounds (ms, medians):")
        print(f"  {'contender':<10}{'save':>9}{'syncs':>7}{'in syncs':>10}{'the rest':>10}")
        for name in sorted(r["contenders"], key=_ORDER.index):
            c = r["contenders"][name]
            print(f"  {name:<10}{c['save_ms']:>9.3f}{c['syncs_per_call']:>7.0f}"
                  f"{c['sync_ms']:>10.3f}{c['rest_ms']:>10.3f}")
        cb, sq = r["contenders"].get("clapboard"), r["contenders"].get("sqlite")
        if cb and sq:
            print(f"  SQLite / clapboard: save {sq['save_ms'] / cb['save_ms']:.3f}x, "
                  f"in syncs {sq['sync_ms'] / cb['sync_ms']:.3f}x, "
                  f"the rest {sq['rest_ms'] / cb['rest_ms']:.3f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.syncsplit",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", action="append", choices=[s[0] for s in SIZES],
                    help="scene size (repeatable; default 10x3)")
    ap.add_argument("--reps", type=int, default=400, help="rounds back to back (default 400)")
    ap.add_argument("--tiny", action="store_true", help="a few rounds: proves the tool works")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--dir", type=Path, help="scratch folder (default: a temp dir)")
    args = ap.parse_args(argv)
    if _dump_function() is None:
        if os.environ.get(_LOADED):
            raise SystemExit("bench.syncsplit: the shim did not load (LD_PRELOAD ignored?)")
        shim_dir = Path(tempfile.mkdtemp(prefix="clapboard-synctime-"))
        try:
            shim = build_shim(shim_dir)
            env = dict(os.environ,
                       LD_PRELOAD=f"{shim} {os.environ.get('LD_PRELOAD', '')}".strip(),
                       PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])))
            env[_LOADED] = "1"
            again = [sys.executable, "-m", "bench.syncsplit",
                     *(sys.argv[1:] if argv is None else argv)]
            return subprocess.run(again, env=env).returncode  # same folder: same paths
        finally:
            shutil.rmtree(shim_dir, ignore_errors=True)
    sizes = [s for s in SIZES if s[0] in (args.size or ["10x3"])]
    reps = 12 if args.tiny else args.reps
    work = Path(tempfile.mkdtemp(prefix="clapboard-syncsplit-", dir=args.dir))
    try:
        results = run(sizes, reps, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
