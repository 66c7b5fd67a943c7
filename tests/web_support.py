"""Helpers for the web tests and the README screenshots: a realistic sample production
(beats with storyboard frames and take outputs as real PNG files inside the project
folder, a candidate version), and the real server on a free loopback port.

    python -m tests.web_support screenshots    # rewrites docs/screenshots/*.png
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clapboard
from clapboard.models import Beat, Board, Scene, Take
from clapboard.png import encode_png

PROJECT = "lighthouse"
EPISODE = "ep_001"
SCENE = "SC_010"
ACTOR = "ops@studio"


# -- pictures, pure Python ------------------------------------------------------------


def png_bytes(width: int, height: int, pixel: Any) -> bytes:
    """A truecolour PNG; ``pixel(x, y) -> (r, g, b)``."""
    return encode_png(width, height, pixel)


def frame_png(hue: tuple[int, int, int], shape: str, cx: float, cy: float,
              width: int = 256, height: int = 144) -> bytes:
    """A moody gradient "shot" with a horizon and one subject: enough to tell frames apart."""
    r0, g0, b0 = hue
    radius = height * 0.18

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        t = y / height
        sky = (int(r0 * (1 - t) + 18 * t), int(g0 * (1 - t) + 20 * t), int(b0 * (1 - t) + 26 * t))
        if y > height * 0.68:  # ground
            k = 0.35 + 0.25 * ((x // 16 + y // 16) % 2) * 0.2
            sky = (int(sky[0] * k), int(sky[1] * k), int(sky[2] * k))
        dx, dy = x - cx * width, y - cy * height
        inside = {
            "circle": dx * dx + dy * dy < radius * radius,
            "square": abs(dx) < radius * 0.9 and abs(dy) < radius * 0.9,
            "tower": abs(dx) < radius * 0.35 * (1.4 - (dy + radius * 2) / (radius * 4))
            and -radius * 2.2 < dy < radius * 1.6,
        }[shape]
        if inside:
            return (min(255, r0 + 110), min(255, g0 + 100), min(255, b0 + 80))
        return sky

    return png_bytes(width, height, pixel)


# -- the sample production ------------------------------------------------------------

SHOTS = [
    ("SH010", "Establishing: the lighthouse at dusk, waves breaking on the rocks",
     4.0, "wide", (70, 96, 140), "tower"),
    ("SH020", "Mara climbs the spiral stairs, lantern in hand", 3.5, "medium",
     (120, 80, 60), "circle"),
    ("SH030", "Close on the lamp mechanism grinding to a halt", 2.0, "close-up",
     (140, 110, 50), "square"),
    ("SH040", "Through the glass: a ship's lights, far too close", 3.0, "POV",
     (40, 90, 110), "circle"),
    ("SH050", "Mara strikes the flint; the beam sweeps the sea", 2.5, "medium",
     (150, 120, 70), "tower"),
    ("SH060", "The ship turns away. Silence, then the gulls", 5.0, "wide",
     (80, 70, 120), "square"),
]


def plan(shots: list[tuple[Any, ...]] = SHOTS) -> dict[str, Any]:
    return {"sequences": {SCENE: {"shots": [
        {"shot_id": s[0], "description": s[1], "duration_s": s[2], "shot_type": s[3]}
        for s in shots]},
        "SC_020": {"shots": [{"shot_id": "SH010", "description": "Morning. The keeper's log.",
                              "duration_s": 3}]}}}


def build_sample(root: Path, *, small: bool = False) -> clapboard.Store:
    """A store with the lighthouse project: boards, takes, media files, a candidate v2.

    ``small`` draws tiny images (fast tests); the screenshots use the full size.
    """
    store = clapboard.open_store(root, lock_timeout=10)
    store.init_scenes_from_plan(PROJECT, EPISODE, plan(), actor=ACTOR)
    media = root / "projects" / PROJECT / "media"
    (media / "boards").mkdir(parents=True, exist_ok=True)
    (media / "takes").mkdir(parents=True, exist_ok=True)
    size = (48, 27) if small else (320, 180)

    def draw(rel: str, hue: tuple[int, int, int], shape: str, cx: float, cy: float) -> str:
        path = media / rel
        path.write_bytes(frame_png(hue, shape, cx, cy, *size))
        return f"media/{rel}"

    statuses = [("succeeded", "succeeded"), ("succeeded", "failed"), ("succeeded", "running"),
                ("failed", "pending"), ("succeeded", "succeeded"), ("running", None)]
    boards = ["approved", "pending", "rejected", "pending", "approved", "pending"]

    def decorate(scene: Scene) -> None:
        for i, (beat, shot) in enumerate(zip(scene.beats, SHOTS, strict=True)):
            sid, _, _, _, hue, shape = shot
            frames = [draw(f"boards/{sid}_{n}.png", hue, shape, 0.3 + 0.2 * n, 0.45)
                      for n in range(3 if i % 2 == 0 else 2)]
            if i == 3:
                frames.append("media/boards/SH040_3.png")  # never drawn: a placeholder
            beat.board = Board(status=boards[i], frames=frames,
                               decided_by=ACTOR if boards[i] != "pending" else None,
                               decided_at="2025-03-02T10:15:00+00:00"
                               if boards[i] != "pending" else None,
                               note="Horizon too high" if boards[i] == "rejected" else None)
            beat.takes = []
            for n, status in enumerate(statuses[i], 1):
                if status is None:
                    continue
                tid = f"t{n}"
                outputs = []
                if status == "succeeded":
                    shade = tuple(min(255, c + 25 * n) for c in hue)
                    outputs = [draw(f"takes/{sid}_{tid}.png", shade, shape,  # type: ignore[arg-type]
                                    0.62 - 0.12 * n, 0.5)]
                beat.takes.append(Take(
                    take_id=tid, status=status, attempt=n, provider="gen-v4",
                    outputs=outputs, error="provider timeout" if status == "failed" else None,
                    created_at="2025-03-02T09:00:00+00:00",
                    finished_at="2025-03-02T09:04:00+00:00"
                    if status in ("succeeded", "failed") else None))
            if i in (0, 4):
                beat.primary_take_id = "t1"

    store.save_active_scene_status(PROJECT, EPISODE, SCENE, expected_version=None,
                                   mutate=decorate, actor=ACTOR)
    # A re-derived structure: SH030 cut, SH045 inserted, SH050 before SH040, a new duration.
    shots = [s for s in SHOTS if s[0] != "SH030"]
    shots.insert(3, ("SH045", "Insert: Mara's hand on the cold brass rail", 1.5, "insert",
                     (90, 90, 90), "square"))
    shots[4], shots[2] = shots[2], shots[4]
    shots = [(*s[:2], 6.0, *s[3:]) if s[0] == "SH060" else s for s in shots]
    candidate = Scene(scene_id=SCENE, beats=[
        Beat(beat_id=s[0], beat_metadata={"scene_id": SCENE, "plan_shot": {
            "shot_id": s[0], "description": s[1], "duration_s": s[2], "shot_type": s[3]}})
        for s in shots], scene_metadata={"episode": EPISODE, "project": PROJECT})
    store.write_scene_candidate(PROJECT, EPISODE, SCENE, candidate,
                                note="re-derived from plan rev 7", actor="planner@studio")
    return store


# -- clients ------------------------------------------------------------------------


def make_client(app: Any, base_url: str = "http://127.0.0.1") -> Any:
    """Starlette's in-process client. Starlette 1.x warns (at import) that it would rather
    drive ``httpx2``; the plain ``httpx`` path still works, so that one warning is
    silenced here instead of adding a second HTTP client to the dev dependencies."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from starlette.testclient import TestClient

    return TestClient(app, base_url=base_url)


# -- the real server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def screenshots(out: Path) -> None:
    """Render the scene page and the diff page of the sample to PNGs under ``out``."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from clapboard.web import create_app

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = build_sample(Path(tmp) / "store")
        with running_server(create_app(store)) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000},
                                    device_scale_factor=1)
            page.goto(f"{base}/p/{PROJECT}/{EPISODE}/{SCENE}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "scene.png"), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 640})
            page.goto(f"{base}/p/{PROJECT}/{EPISODE}/{SCENE}/diff?b=2")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "diff.png"), full_page=True)
            browser.close()
        store.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["screenshots"]:
        target = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
        screenshots(target)
        print(f"wrote {target}/scene.png and diff.png")
    else:
        sys.exit("usage: python -m tests.web_support screenshots")
