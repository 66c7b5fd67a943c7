"""A real full disk and a real file-size limit (FAILURE_MODES #4), not injected errors.

ENOSPC comes from a 256 KiB tmpfs mounted in a private mount namespace (``unshare``),
EFBIG from ``RLIMIT_FSIZE`` in a child. In both, a status save that grows the batch past
the limit (its journal record, the commit point) must raise, keep the last good state,
leave no temp file, and the store — reopened, as after any journal fault — must keep
working for a save that fits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = textwrap.dedent("""
    import errno, json, os, resource, signal, sys
    import clapboard
    root, mode = sys.argv[1], sys.argv[2]
    store = clapboard.open_store(root)
    store.init_scenes_from_plan("show", 1, {"sequences": {"B": {"shots": [{"id": "b"}]}}})
    def grow(n):
        def mutate(scene):
            scene.scene_metadata["blob"] = "x" * n
        return mutate
    store.save_active_scene_status("show", 1, "B", expected_version=1, mutate=grow(40_000))
    before = store.load_raw("show", 1, "B")
    if mode == "efbig":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        store.save_active_scene_status("show", 1, "B", expected_version=1,
                                       mutate=grow(300_000))
        outcome = "no error"
    except OSError as e:
        outcome = errno.errorcode.get(e.errno, str(e.errno))
    folder = os.path.join(root, "projects/show/orchestration/scenes")
    temps = [n for n in os.listdir(folder) if "cbtmp" in n]
    kept = store.load_raw("show", 1, "B") == before
    store = clapboard.open_store(root)  # a journal fault makes a store read-only
    store.save_active_scene_status("show", 1, "B", expected_version=1, mutate=grow(10))
    after = store.load_active("show", 1, "B").scene_metadata["blob"] == "x" * 10
    print(json.dumps({"outcome": outcome, "temps": temps, "kept": kept, "after": after,
                      "fsck": [p.kind for p in store.fsck().problems]}))
""")


def run(cmd: list[str]) -> dict[str, object]:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_disk_full_on_a_real_tmpfs(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("unshare (util-linux) is missing under CI")
        pytest.skip("needs unshare for a private mount namespace")
    mount = tmp_path / "small"
    mount.mkdir()
    script = (f'mount -t tmpfs -o size=256k tmpfs "{mount}" && '
              f'exec "{sys.executable}" -c "$0" "{mount}/store" enospc')
    result = run(["unshare", "-Urm", "sh", "-c", script, SCENARIO])
    assert result == {"outcome": "ENOSPC", "temps": [], "kept": True, "after": True,
                      "fsck": []}


def test_file_size_limit(tmp_path: Path) -> None:
    result = run([sys.executable, "-c", SCENARIO, str(tmp_path / "store"), "efbig"])
    assert result == {"outcome": "EFBIG", "temps": [], "kept": True, "after": True,
                      "fsck": []}
