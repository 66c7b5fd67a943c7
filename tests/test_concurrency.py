"""Real child processes: no lost update, no torn file under SIGKILL, no torn read.

These use the store exactly as runners do — separate Python processes on one folder.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import clapboard
from clapboard import Scene, persistence
from clapboard.backends.filesystem import FilesystemBackend

ROOT = Path(__file__).resolve().parent.parent

# One worker for every backend: argv[1] is a folder or a postgresql:// URL.
INCREMENT = textwrap.dedent("""
    import sys, clapboard
    location, n = sys.argv[1], int(sys.argv[2])
    store = clapboard.open_store(location, lock_timeout=60)
    def bump(scene):
        md = scene.scene_metadata
        md["counter"] = md.get("counter", 0) + 1
    for _ in range(n):
        _, v = store.load_active_with_version("show", 1, "BATCH")
        store.save_active_scene_status("show", 1, "BATCH", expected_version=v, mutate=bump)
    store.close()
""")


def run_children(script: str, args: list[list[str]]) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], cwd=ROOT) for a in args]
    for p in procs:
        assert p.wait(timeout=240) == 0


def test_processes_increment_without_lost_update(tmp_path: Path, soak: float) -> None:
    root = str(tmp_path / "store")
    store = clapboard.open_store(root)
    store.init_scenes_from_plan("show", 1, {"sequences": {"BATCH": {"shots": [{"id": "b"}]}}})
    procs, n = (6, 40) if not soak else (8, 400)
    run_children(INCREMENT, [[root, str(n)] for _ in range(procs)])
    scene = store.load_active("show", 1, "BATCH")
    assert scene.scene_metadata["counter"] == procs * n
    history = store.history("show", 1, "BATCH")
    assert [r["seq"] for r in history] == list(range(1, procs * n + 2))


WRITER = textwrap.dedent("""
    import sys, clapboard
    store = clapboard.open_store(sys.argv[1], lock_timeout=60)
    def bump(scene):
        md = scene.scene_metadata
        md["counter"] = md.get("counter", 0) + 1
        md["padding"] = "x" * (20000 + md["counter"] % 977)  # vary the size
    print("ready", flush=True)
    while True:
        store.save_active_scene_status("show", 1, "BATCH", expected_version=1, mutate=bump)
        print(store.load_active("show", 1, "BATCH").scene_metadata["counter"], flush=True)
""")


def test_sigkill_at_random_moments_never_tears_the_body(tmp_path: Path, soak: float) -> None:
    root = str(tmp_path / "store")
    store = clapboard.open_store(root)
    store.init_scenes_from_plan("show", 1, {"sequences": {"BATCH": {"shots": [{"id": "b"}]}}})
    trials = 50 if not soak else 300
    rng = random.Random(1234)
    acknowledged = 0
    for _ in range(trials):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, root], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = [int(x) for x in out.split()]
        acknowledged = max([acknowledged, *lines])
        # The body always loads, and holds every acknowledged increment.
        counter = store.load_active("show", 1, "BATCH").scene_metadata.get("counter", 0)
        assert counter >= acknowledged
        acknowledged = counter
    # A kill can leave a temp file or a torn last journal line (a write interrupted
    # between pages); both are expected leftovers that repair removes. Nothing else.
    problems = [p for p in store.fsck().problems
                if p.kind not in ("orphan-temp", "torn-journal-tail")]
    assert problems == []
    store.fsck(repair=True)
    assert store.fsck().clean
    records = store.history("show", 1, "BATCH")
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_unlocked_save_scene_from_two_threads_never_tears(tmp_path: Path) -> None:
    """The seed used one fixed ``.tmp`` name, so two writers could interleave into it."""
    path = tmp_path / "ep_001_S.json"
    scenes = [Scene(scene_id="S", scene_metadata={"who": w, "pad": w * 50000}) for w in "ab"]
    persistence.save_scene(scenes[0], path)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(scene: Scene) -> None:
        try:
            while not stop.is_set():
                persistence.save_scene(scene, path)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in scenes]
    for t in threads:
        t.start()
    reads = 0
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            scene = persistence.load_scene(path)  # FileNotFoundError / parse error = failure
            assert scene.scene_metadata["pad"] == scene.scene_metadata["who"] * 50000
            reads += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and reads > 50
    assert [p.name for p in tmp_path.iterdir()] == ["ep_001_S.json"]


def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    store = clapboard.open_store(tmp_path / "store", lock_timeout=0.3)
    store.init_scenes_from_plan("show", 1, {"sequences": {"BATCH": {"shots": []}}})
    backend = store.backend
    assert isinstance(backend, FilesystemBackend)
    lock = backend.scenes_dir("show") / "ep_001_BATCH.versions.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from clapboard.io.lock import FileLock
        with FileLock({str(lock)!r}, op="render-farm"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(clapboard.LockTimeoutError) as ei:
            store.lock_scene("show", 1, "BATCH", "review")
        assert time.monotonic() - start < 10
        assert isinstance(ei.value, TimeoutError)
        assert f"pid={holder.pid}" in str(ei.value) and "render-farm" in str(ei.value)
        assert str(lock) in str(ei.value)
    finally:
        holder.kill()
        holder.communicate()
    store.lock_scene("show", 1, "BATCH", "review")  # free again once the holder is gone


def test_conform_between_load_and_save_conflicts(tmp_path: Path) -> None:
    """A loads v1; B (another process) conforms to v2; A's save is refused, v2 untouched."""
    root = str(tmp_path / "store")
    store = clapboard.open_store(root)
    store.init_scenes_from_plan("show", 1, {"sequences": {"BATCH": {"shots": [{"id": "b"}]}}})
    _scene, v = store.load_active_with_version("show", 1, "BATCH")
    assert v == 1
    other = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, clapboard
        from clapboard import Scene, Beat
        s = clapboard.open_store(sys.argv[1])
        v = s.write_scene_candidate("show", 1, "BATCH",
            Scene(scene_id="BATCH", beats=[Beat(beat_id="b"), Beat(beat_id="c")]))
        s.conform("show", 1, "BATCH", v, expected_active=1)
    """), root], cwd=ROOT)
    assert other.returncode == 0
    v2_before = store.load_raw("show", 1, "BATCH", 2)

    def bump(s: Scene) -> None:
        s.scene_metadata["x"] = 1

    with pytest.raises(clapboard.SceneVersionConflictError):
        store.save_active_scene_status("show", 1, "BATCH", expected_version=v, mutate=bump)
    assert store.load_raw("show", 1, "BATCH", 2) == v2_before
    assert "x" not in store.load_version("show", 1, "BATCH", 1).scene_metadata


def test_fork_child_does_not_release_parents_lock(tmp_path: Path) -> None:
    from clapboard.io.lock import FileLock

    path = tmp_path / "x.lock"
    with FileLock(path):
        pid = os.fork()
        if pid == 0:  # child: exits, which closes its copy of the descriptor
            os._exit(0)
        os.waitpid(pid, 0)
        contender = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from clapboard.io.lock import FileLock
            from clapboard import LockTimeoutError
            try:
                with FileLock({str(path)!r}, timeout=0.3):
                    sys.exit(1)
            except LockTimeoutError:
                sys.exit(0)
        """)])
        assert contender.returncode == 0
