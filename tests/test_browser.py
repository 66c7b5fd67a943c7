"""The review UI in a real headless Chromium, against the real server on a loopback port.

Skipped only off CI when Chromium or Playwright is missing; under CI (``CI=true``) a
missing browser is a failure, because CI installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EPISODE,
    PROJECT,
    SCENE,
    build_sample,
    running_server,
)

IN_CI = os.environ.get("CI") == "true"
if not IN_CI:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from clapboard.web import create_app  # noqa: E402

pytestmark = pytest.mark.browser
SCENE_PATH = f"/p/{PROJECT}/{EPISODE}/{SCENE}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    store = build_sample(tmp_path / "store", small=True)
    try:
        with running_server(create_app(store, actor="browser-test")) as base:
            yield store, base
    finally:
        store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()


def beat(page: Page, beat_id: str) -> Any:
    return page.locator(f'article[data-beat="{beat_id}"]')


def test_review_flow(served: tuple[Any, str], page: Page) -> None:
    store, base = served
    page.goto(base + "/")
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_role("link", name=EPISODE).click()
    page.get_by_role("link", name=SCENE, exact=True).click()
    expect(page).to_have_url(base + SCENE_PATH)
    expect(page.locator("#active-version")).to_have_text("v1 active")
    # images really load from /media (decoded pixels, not just a tag)
    hero = beat(page, "SH010").locator(".hero img")
    expect(hero).to_be_visible()
    # (waits for the load: "visible" only means laid out, and a busy CI machine may
    # still be fetching the file)
    assert hero.evaluate("img => img.decode().then(() => img.naturalWidth > 0, () => false)")

    # approve a board with a note
    card = beat(page, "SH020")
    card.get_by_placeholder("Note for the board (optional)").fill("Lantern reads well")
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("#flash")).to_have_text("Board of SH020 approved.")
    expect(beat(page, "SH020").locator(".decision")).to_contain_text("Lantern reads well")
    assert store.load_active(PROJECT, EPISODE, SCENE).beat("SH020").board.status == "approved"

    # set a primary take
    beat(page, "SH030").locator('li[data-take="t1"]').get_by_role(
        "button", name="Make primary").click()
    expect(page.locator("#flash")).to_have_text("Take t1 is now the primary take of SH030.")
    expect(beat(page, "SH030").locator('li[data-take="t1"]')).to_contain_text("Primary")

    # conform to the candidate, with the diff shown first
    page.get_by_role("link", name="Versions").click()
    page.locator('tr[data-version="2"]').get_by_role("link", name="Diff & conform").click()
    expect(page.locator(".changes")).to_contain_text("SH045")
    page.get_by_placeholder("Reason (optional)").fill("plan rev 7")
    page.get_by_role("button", name="Conform to v2").click()
    expect(page.locator("#flash")).to_have_text("Conformed SC_010 to v2 (was v1).")
    expect(page.locator("#active-version")).to_have_text("v2 active")
    assert store.load_active_with_version(PROJECT, EPISODE, SCENE)[1] == 2

    # the history shows what just happened
    page.get_by_role("link", name="History").click()
    latest = page.locator("tbody tr").first
    expect(latest).to_have_attribute("data-op", "conform")
    expect(latest).to_contain_text("v1 → v2")
    expect(latest).to_contain_text("plan rev 7")
    expect(page.locator('tr[data-op="board"]')).to_contain_text("browser-test")


def test_stale_page_shows_conflict(served: tuple[Any, str], page: Page) -> None:
    store, base = served
    page.goto(base + SCENE_PATH)
    store.conform(PROJECT, EPISODE, SCENE, 2, actor="someone-else")  # behind the page's back
    before = store.history(PROJECT, EPISODE, SCENE)
    beat(page, "SH020").get_by_role("button", name="Approve").click()
    expect(page.locator("#problem")).to_contain_text("Stale page")
    expect(page.locator("#problem")).to_contain_text("Nothing was written")
    expect(page.locator("#active-version")).to_have_text("v2 active")  # fresh state shown
    assert store.history(PROJECT, EPISODE, SCENE) == before


def test_locked_scene_shows_lock(served: tuple[Any, str], page: Page) -> None:
    store, base = served
    page.goto(base + SCENE_PATH)
    store.lock_scene(PROJECT, EPISODE, SCENE, "final mix", actor="lead")
    beat(page, "SH030").locator('li[data-take="t1"]').get_by_role(
        "button", name="Make primary").click()
    expect(page.locator("#problem")).to_contain_text("picture-locked by lead")
    assert store.load_active(PROJECT, EPISODE, SCENE).beat("SH030").primary_take_id is None
    # the fresh page offers the unlock, and the lock can be lifted from the browser
    page.get_by_role("button", name="Unlock").click()
    expect(page.locator("#flash")).to_have_text("Scene SC_010 is unlocked.")
