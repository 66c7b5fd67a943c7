"""``clapboard demo``: one production going through the whole loop, for real.

Nothing here is simulated inside the store: several runner *processes* write takes
into the same scenes at the same time through the status writer (the only writer
that merges concurrent runners: it applies each change to a fresh load under the
batch lock), one runner is killed with SIGKILL in the middle of a take, and the
recovery, re-derivation, conform, board decisions, picture lock and fsck are the
same Store calls the CLI and the web UI make. Only the *generation* is pretend: a
take's output is a tiny PNG drawn here with zlib and struct.

Media paths are relative to the project folder (``<root>/projects/<project>/``),
which is where ``clapboard serve`` looks for them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from clapboard.errors import SceneLockedError, ValidationError
from clapboard.models import Beat, Board, Scene, Take
from clapboard.opener import open_store
from clapboard.png import encode_png
from clapboard.store import Store, utc_now

PROJECT = "demo-film"
EPISODE = "ep_001"
CRASH_JOB = ("SEQ_030", "SH020")  # the runner working on this beat gets killed
REDERIVED = "SEQ_020"  # the scene the editor re-derives into v2
LOCKED = "SEQ_010"  # the scene that ends picture-locked
HEARTBEAT_S = 0.03
STALE_AFTER_S = 1.0

Say = Callable[[str], object]
Job = tuple[str, str]


def load_plan() -> dict[str, Any]:
    """The bundled plan (``clapboard/data/demo_plan.json``)."""
    data = resources.files("clapboard").joinpath("data", "demo_plan.json").read_bytes()
    plan: dict[str, Any] = orjson.loads(data)
    return plan


# -- placeholder media --------------------------------------------------------------------


def png_bytes(width: int, height: int, seed: str) -> bytes:
    """A small RGB PNG (sky, sea, a light) whose colours depend on ``seed``."""
    rng = random.Random(seed)
    sky = [rng.randrange(20, 90), rng.randrange(30, 110), rng.randrange(70, 170)]
    sea = [rng.randrange(5, 40), rng.randrange(30, 80), rng.randrange(50, 110)]
    horizon = int(height * rng.uniform(0.45, 0.65))
    lx, ly, radius = rng.randrange(width), rng.randrange(horizon), max(2, height // 10)

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        if (x - lx) ** 2 + (y - ly) ** 2 <= radius * radius:
            return (250, 230, 160)
        base, shade = (sky, y / horizon) if y < horizon else (sea, 0.6)
        r, g, b = (min(255, int(c * (0.6 + 0.6 * shade))) for c in base)
        return (r, g, b)

    return encode_png(width, height, pixel)


def write_media(project_dir: Path, relative: str, seed: str) -> str:
    path = project_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(96, 54, seed))
    return relative


# -- runner processes ---------------------------------------------------------------------


def _start_take(store: Store, batch: str, beat_id: str, version: int, runner: str) -> str:
    """Append a ``running`` take; its id is chosen on the fresh load, under the lock."""
    chosen: list[str] = []

    def start(scene: Scene) -> None:
        beat = scene.beat(beat_id)
        attempt = len(beat.takes) + 1
        now = utc_now()
        take = Take(take_id=f"T{attempt:02d}", status="running", attempt=attempt,
                    created_at=now, started_at=now, heartbeat_at=now, provider="sim-video-v2",
                    metadata={"runner": runner, "pid": os.getpid()})
        beat.takes.append(take)
        chosen[:] = [take.take_id]

    store.save_active_scene_status(PROJECT, EPISODE, batch, expected_version=version,
                                   mutate=start, actor=runner, op="take-start")
    return chosen[0]


def _update_take(store: Store, batch: str, beat_id: str, take_id: str, version: int,
                 runner: str, op: str, change: Callable[[Take], None]) -> None:
    store.save_active_scene_status(
        PROJECT, EPISODE, batch, expected_version=version, actor=runner, op=op,
        mutate=lambda scene: change(scene.beat(beat_id).take(take_id)))


def _heartbeat(take: Take) -> None:
    take.heartbeat_at = utc_now()


def _run_job(store: Store, project_dir: Path, job: Job, runner: str, seed: int) -> list[Any]:
    """One beat: takes until one succeeds (the first attempt may fail). Returns what it
    recorded, so the parent can check that no concurrent write was lost."""
    batch, beat_id = job
    rng = random.Random(f"{seed}:{batch}:{beat_id}")
    recorded = []
    for attempt in (1, 2):
        _, version = store.load_active_with_version(PROJECT, EPISODE, batch)
        take_id = _start_take(store, batch, beat_id, version, runner)
        for _ in range(2):
            time.sleep(HEARTBEAT_S)
            _update_take(store, batch, beat_id, take_id, version, runner, "heartbeat", _heartbeat)
        fails = attempt == 1 and rng.random() < 0.3
        receipt = {"job_id": f"job-{rng.getrandbits(40):010x}", "seed": rng.randrange(1 << 31),
                   "gpu_seconds": round(rng.uniform(20, 90), 1),
                   "cost_usd": round(rng.uniform(0.08, 0.6), 3), "model": "sim-video-v2"}
        name = f"media/takes/{batch}/{beat_id}_{take_id}.png"
        output = None if fails else write_media(project_dir, name, name)

        def finish(take: Take, fails: bool = fails, output: str | None = output,
                   receipt: dict[str, Any] = receipt) -> None:
            take.status = "failed" if fails else "succeeded"
            take.finished_at = take.heartbeat_at = utc_now()
            take.receipt = receipt
            take.outputs = [] if output is None else [output]
            take.error = "provider returned HTTP 503 (simulated outage)" if fails else None

        _update_take(store, batch, beat_id, take_id, version, runner, "take-finish", finish)
        recorded.append((batch, beat_id, take_id, "failed" if fails else "succeeded"))
        if not fails:
            break
    return recorded


def runner_main(root: str, runner: str, jobs: list[Job], seed: int, results: Any) -> None:
    """A runner process: work through ``jobs``, report what was recorded."""
    store = open_store(root)
    project_dir = Path(root) / "projects" / PROJECT
    done: list[Any] = []
    for job in jobs:
        done.extend(_run_job(store, project_dir, job, runner, seed))
    results.put((runner, done))
    store.close()


def doomed_runner_main(root: str, runner: str, job: Job, ready: Any) -> None:
    """A runner that starts a take and keeps heartbeating until it is SIGKILLed."""
    store = open_store(root)
    batch, beat_id = job
    _, version = store.load_active_with_version(PROJECT, EPISODE, batch)
    take_id = _start_take(store, batch, beat_id, version, runner)
    ready.set()
    while True:  # never finishes: the parent kills this process mid-take
        time.sleep(HEARTBEAT_S)
        _update_take(store, batch, beat_id, take_id, version, runner, "heartbeat", _heartbeat)


# -- the story ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What the demo did, for ``--json`` and for tests."""

    root: str
    project: str = PROJECT
    episode: str = EPISODE
    scenes: list[str] = field(default_factory=list)
    runners: int = 0
    takes_recorded: int = 0
    takes_lost: int = 0
    killed: dict[str, Any] = field(default_factory=dict)
    recovered: list[list[str]] = field(default_factory=list)
    rerolled: str | None = None
    candidate_version: int = 0
    diff: dict[str, Any] = field(default_factory=dict)
    lock_refused: bool = False
    takes_by_status: dict[str, int] = field(default_factory=dict)
    fsck: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prepare_root(root: str | os.PathLike[str] | None) -> Path:
    """The demo's store folder: a fresh temp dir, or ``root`` if it holds no demo yet."""
    if root is None:
        return Path(tempfile.mkdtemp(prefix="clapboard-demo-"))
    path = Path(root)
    if (path / "projects" / PROJECT).exists():
        raise ValidationError("--root", f"{path} already holds a {PROJECT} project; give an "
                                        "empty folder or leave out --root for a temp one")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _storyboard(store: Store, project_dir: Path, say: Say) -> None:
    frames = 0

    def draw(scene: Scene) -> None:  # (only changes the scene: a closure may run twice)
        for beat in scene.beats:
            names = [f"media/boards/{scene.scene_id}/{beat.beat_id}_f{n}.png" for n in (1, 2)]
            paths = [write_media(project_dir, name, name) for name in names]
            beat.board = Board(frames=paths, metadata={"artist": "storyboard@demo"})

    for batch in store.list_batches(PROJECT, EPISODE):
        scene = store.save_active_scene_status(PROJECT, EPISODE, batch, expected_version=None,
                                               mutate=draw, actor="storyboard@demo",
                                               op="boards")
        frames += sum(len(b.board.frames) for b in scene.beats if b.board is not None)
    say(f"  storyboard: {frames} board frames drawn into media/boards/ (status pending)")


def _run_runners(store: Store, root: Path, n_runners: int, seed: int, say: Say,
                 result: DemoResult) -> None:
    every = [(b, beat.beat_id) for b in result.scenes
             for beat in store.load_active(PROJECT, EPISODE, b).beats]
    jobs = [job for job in every if job != CRASH_JOB]
    ctx = mp.get_context("spawn")  # no fork: safe with threads, same on every platform
    results, ready = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=runner_main, name=f"runner-{i + 1}",
                         args=(str(root), f"runner-{i + 1}@demo", jobs[i::n_runners], seed,
                               results)) for i in range(n_runners)]
    doomed_name = f"runner-{n_runners + 1}@demo"
    doomed = ctx.Process(target=doomed_runner_main, name="doomed",
                         args=(str(root), doomed_name, CRASH_JOB, ready))
    for p in [*procs, doomed]:
        p.start()
    say(f"  {n_runners + 1} runner processes started on {len(jobs) + 1} beats, all writing "
        "the same scene files at once")
    if not ready.wait(60):
        doomed.kill()
        raise RuntimeError("the doomed runner never started its take")
    time.sleep(0.15)  # let it heartbeat a few times: it is mid-take, mid-write even
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    killed_at = time.monotonic()
    result.killed = {"runner": doomed_name, "pid": doomed.pid, "batch_id": CRASH_JOB[0],
                     "beat_id": CRASH_JOB[1]}
    say(f"  SIGKILL -> {doomed_name} (pid {doomed.pid}) in the middle of a take on "
        f"{CRASH_JOB[0]}/{CRASH_JOB[1]}")
    recorded = []
    for _ in procs:
        recorded.extend(results.get(timeout=120)[1])
    for p in procs:
        p.join()
    result.runners = n_runners + 1
    result.takes_recorded = len(recorded)
    result.takes_lost = sum(1 for batch, beat, take, status in recorded
                            if store.load_active(PROJECT, EPISODE, batch).beat(beat)
                            .take(take).status != status)
    failed = sum(1 for r in recorded if r[3] == "failed")
    say(f"  runners finished: {len(recorded)} takes recorded ({failed} failed and retried), "
        f"{result.takes_lost} lost to concurrent writes")
    time.sleep(max(0.0, STALE_AFTER_S - (time.monotonic() - killed_at)))


def _recover_and_reroll(store: Store, project_dir: Path, say: Say, result: DemoResult) -> None:
    found = store.recover_stale_takes(PROJECT, EPISODE, older_than_s=STALE_AFTER_S,
                                      actor="watchdog@demo")
    result.recovered = [list(t) for t in found]
    for stale_batch, stale_beat, stale_take in found:
        say(f"  recover-stale: {stale_batch}/{stale_beat} take {stale_take} had no heartbeat for "
            f">{STALE_AFTER_S:g}s -> stale")
    # The re-roll goes through Writer 1 (the runner overlay): one runner owns it now.
    batch, beat_id = CRASH_JOB
    scene, version = store.load_active_with_version(PROJECT, EPISODE, batch)
    beat = scene.beat(beat_id)
    take_id = f"T{len(beat.takes) + 1:02d}"
    now = utc_now()
    beat.takes.append(Take(
        take_id=take_id, status="succeeded", attempt=len(beat.takes) + 1, created_at=now,
        started_at=now, heartbeat_at=now, finished_at=now, provider="sim-video-v2",
        outputs=[write_media(project_dir, f"media/takes/{batch}/{beat_id}_{take_id}.png",
                             f"reroll{batch}{beat_id}{take_id}")],
        receipt={"job_id": "job-reroll", "model": "sim-video-v2"}, metadata={"reroll": True}))
    store.save_active_scene(PROJECT, EPISODE, batch, scene, expected_version=version,
                            actor="runner-reroll@demo")
    result.rerolled = f"{batch}/{beat_id}/{take_id}"
    say(f"  re-roll: {batch}/{beat_id} take {take_id} succeeded")


def _rederive(store: Store, say: Say, result: DemoResult) -> None:
    """The editor adds a radar insert to SEQ_020 and lengthens its opening shot."""
    old = store.load_active(PROJECT, EPISODE, REDERIVED)
    beats: list[Beat] = []
    for beat in old.beats:
        keep = Beat.from_dict(beat.to_dict())
        if beat.beat_id == "SH010":
            shot = dict(keep.beat_metadata["plan_shot"], duration_s=6.5)
            keep = Beat(beat_id="SH010", max_takes=beat.max_takes,
                        beat_metadata={**keep.beat_metadata, "plan_shot": shot})
        beats.append(keep)
        if beat.beat_id == "SH020":
            beats.append(Beat(beat_id="SH025", max_takes=beat.max_takes, beat_metadata={
                "scene_id": REDERIVED, "plan_shot": {
                    "shot_id": "SH025", "title": "Radar sweeps empty",
                    "description": "Insert: the radar arm sweeps; no echo where the rock is.",
                    "shot_type": "insert", "camera": {"move": "locked off"}, "lens": "65mm",
                    "location": "INT. BRIDGE - NIGHT", "duration_s": 2.0}}))
    candidate = Scene(scene_id=REDERIVED, beats=beats, scene_metadata=dict(old.scene_metadata))
    version = store.write_scene_candidate(PROJECT, EPISODE, REDERIVED, candidate,
                                          note="editor: radar insert, longer opening",
                                          actor="editor@demo")
    result.candidate_version = version
    result.diff = store.diff(PROJECT, EPISODE, REDERIVED, 1, version)
    from clapboard.cli.render import diff_lines

    say(f"  re-derive: {REDERIVED} candidate v{version} written (v1 stays active)")
    for line in diff_lines(result.diff):
        say(f"    {line}")
    store.conform(PROJECT, EPISODE, REDERIVED, version, expected_active=1,
                  reason="editor approved the new cut", actor="editor@demo")
    say(f"  conform: {REDERIVED} v1 -> v{version} (history keeps v1; `clapboard revert` "
        "undoes it)")


def _operator(store: Store, say: Say, result: DemoResult) -> None:
    op = "director@demo"
    scene = store.load_active(PROJECT, EPISODE, LOCKED)
    for beat in scene.beats:
        store.decide_board(PROJECT, EPISODE, LOCKED, beat.beat_id, "approved", actor=op)
        ok = [t for t in beat.takes if t.status == "succeeded"]
        if ok:
            store.set_primary_take(PROJECT, EPISODE, LOCKED, beat.beat_id, ok[-1].take_id,
                                   actor=op)
    store.decide_board(PROJECT, EPISODE, "SEQ_030", "SH010", "rejected",
                       note="keep the lantern in frame", actor=op)
    say(f"  director: approved {len(scene.beats)} boards and picked primary takes in "
        f"{LOCKED}; rejected the SEQ_030/SH010 board")
    store.lock_scene(PROJECT, EPISODE, LOCKED, "picture lock: sent to sound", actor=op)
    try:
        store.write_scene_candidate(PROJECT, EPISODE, LOCKED,
                                    Scene(scene_id=LOCKED, beats=scene.beats[:-1]),
                                    activate=True, actor="editor@demo")
    except SceneLockedError:
        result.lock_refused = True
    say(f"  lock: {LOCKED} picture-locked; an activated re-cut was "
        f"{'refused, nothing written' if result.lock_refused else 'NOT refused'}")


def run_demo(root: str | os.PathLike[str] | None = None, *, runners: int = 3, seed: int = 7,
             say: Say = print) -> DemoResult:
    """Build the sample production in ``root`` (a temp dir if None) and tell its story."""
    started = time.monotonic()
    path = prepare_root(root)
    result = DemoResult(root=str(path))
    plan = load_plan()
    with open_store(path) as store:
        project_dir = path / "projects" / PROJECT
        scenes = store.init_scenes_from_plan(PROJECT, EPISODE, plan, max_takes=3,
                                             actor="producer@demo")
        result.scenes = [s.scene_id for s in scenes]
        say(f"clapboard demo: \"{plan.get('title', PROJECT)}\" in {path}")
        say(f"  init: {len(scenes)} scenes, {sum(len(s.beats) for s in scenes)} beats from "
            "the bundled plan")
        _storyboard(store, project_dir, say)
        _run_runners(store, path, runners, seed, say, result)
        _recover_and_reroll(store, project_dir, say, result)
        _rederive(store, say, result)
        _operator(store, say, result)
        report = store.fsck(PROJECT)
        if not report.clean:  # e.g. a temp file the killed runner left mid-write
            report = store.fsck(PROJECT, repair=True)
        result.fsck = report.to_dict()
        repaired = sum(1 for p in report.problems if p.repaired)
        say(f"  fsck: {report.checked} files checked, "
            f"{'clean' if report.clean else f'{len(report.problems)} problem(s)'}"
            f"{f' ({repaired} leftover(s) of the killed runner repaired)' if repaired else ''}")
        result.takes_by_status = dict(sorted(Counter(
            t.status for b in result.scenes for beat in store.load_active(PROJECT, EPISODE, b).beats
            for t in beat.takes).items()))
    result.elapsed_s = round(time.monotonic() - started, 2)
    say(f"done in {result.elapsed_s:g}s. Look around:")
    say(f"  clapboard --root {path} ls {PROJECT} 1")
    say(f"  clapboard --root {path} log {PROJECT} 1 {REDERIVED}")
    say(f"  clapboard serve --root {path}")
    return result


__all__ = ["DemoResult", "load_plan", "png_bytes", "run_demo"]
