"""Child process of the crash-point and syscall-fault tests.

    python -m tests.reliability.worker SCENARIO ROOT

Imports everything first, marks the start of the operation with
``access("/__clapboard_marker__")`` (the tracer counts syscalls after it), then runs
the scenario's operations on ROOT, printing ``ACK n`` after each one returns. An
operation that raises prints ``ERR n ExceptionType message`` and the worker exits 3
after checking the store refuses nothing it should not (see below).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import clapboard
import clapboard.backends.fs_fsck
import clapboard.persistence
import clapboard.recovery
import clapboard.versions  # noqa: F401  (imported before the marker on purpose)
from tests.reliability import scenarios as sc


def main() -> int:
    name, root = sys.argv[1], Path(sys.argv[2])
    scenario = sc.SCENARIOS[name]
    sc.freeze_forever()
    store = sc.open_at(root)
    os.access("/__clapboard_marker__", os.F_OK)
    for i, op in enumerate(scenario.ops, 1):
        try:
            op(store, root)
        except Exception as e:
            print(f"ERR {i} {type(e).__name__} {e}".replace("\n", " "), flush=True)
            return 3
        print(f"ACK {i}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
