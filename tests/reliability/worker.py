"""Child process of the crash-point and syscall-fault tests.

    python -m tests.reliability.worker SCENARIO ROOT [--fiu POINT:N:ERRNO]

Imports everything first, marks the start of the operation with
``access("/__clapboard_marker__")`` (the tracer counts syscalls after it), then runs
the scenario's operations on ROOT, printing ``ACK n`` after each one returns. An
operation that raises prints ``ERR n ExceptionType message`` and the worker exits 3
.

``--fiu POINT:N:ERRNO`` (run with ``LD_PRELOAD=fiu_posix_preload.so``): libfiu fails
the N-th call through POINT during the operation with ERRNO; ``N = 0`` keeps the point
enabled for the whole operation (for ``posix/io/rw/write/reduce``: short writes).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import clapboard
import clapboard.backends.fs_fsck
import clapboard.persistence
import clapboard.recovery
import clapboard.versions  # noqa: F401  (imported before the marker on purpose)
from tests.reliability import scenarios as sc

_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                       ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint))


class Fiu:
    """libfiu control through ctypes: fail the N-th call of one point (or of several,
    comma-separated, counted together)."""

    def __init__(self, spec: str) -> None:
        points, n, err = spec.split(":")
        self.points, self.n, self.err = [p.encode() for p in points.split(",")], int(n), int(err)
        self.lib = ctypes.CDLL("libfiu.so.0")
        self.lib.fiu_init(0)
        self.lib.fiu_enable_external.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                                 ctypes.c_void_p, ctypes.c_uint, _CB]
        self.lib.fiu_disable.argtypes = [ctypes.c_char_p]
        self.calls = 0
        self.fired = 0
        self._cb = _CB(self._decide)

    def _decide(self, name: bytes, failnum: object, failinfo: object, flags: object) -> int:
        self.calls += 1
        hit = self.n == 0 or self.calls == self.n
        self.fired += hit
        return 1 if hit else 0

    def enable(self) -> None:
        for point in self.points:
            self.lib.fiu_enable_external(point, 1, ctypes.c_void_p(self.err), 0, self._cb)

    def disable(self) -> None:
        for point in self.points:
            self.lib.fiu_disable(point)


class _NoFileFsync:
    """``os`` for the atomic writer, except that fsync of a regular file does nothing."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def fsync(fd: int) -> None:
        import stat

        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.fsync(fd)


def _mutate(kind: str) -> None:
    """Deliberately broken writers, to prove the checks catch them (mutation tests)."""
    import clapboard.io.atomic as atomic

    if kind == "no-dir-fsync":
        atomic.fsync_dir = lambda directory: None  # type: ignore[assignment]
    elif kind == "no-file-fsync":
        atomic.os = _NoFileFsync()  # type: ignore[assignment]
    elif kind == "no-journal-fsync":  # the commit point of a status save
        import clapboard.io.journal as journal

        journal.sync_data = lambda fd: None  # type: ignore[assignment]
    elif kind == "journal-after-body":  # a new batch's journal name left unsynced
        from clapboard.backends.filesystem import FsBatchTx

        def create_body(self: FsBatchTx, version: int, doc: dict[str, object],
                        artifact: str) -> None:
            self.write_body(version, doc, artifact)
            self._journal.create()  # after the folder sync that was to cover its name

        FsBatchTx.create_body = create_body  # type: ignore[method-assign]


def main() -> int:
    name, root = sys.argv[1], Path(sys.argv[2])
    fiu = Fiu(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--fiu" else None
    scenario = sc.SCENARIOS[name]
    sc.freeze_forever()
    if os.environ.get("CLAPBOARD_TEST_MUTANT"):
        _mutate(os.environ["CLAPBOARD_TEST_MUTANT"])
    store = sc.open_at(root)
    os.access("/__clapboard_marker__", os.F_OK)
    for i, op in enumerate(scenario.ops, 1):
        if fiu is not None:
            fiu.enable()
        try:
            op(store, root)
        except Exception as e:
            if fiu is not None:
                fiu.disable()
            print(f"ERR {i} {type(e).__name__} {e}".replace("\n", " "), flush=True)
            return 3
        if fiu is not None:
            fiu.disable()
            print(f"FIU {fiu.calls} {fiu.fired}", flush=True)
        print(f"ACK {i}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
