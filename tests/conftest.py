"""Shared fixtures. ``store`` runs a test once per backend (the contract suite)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDREF = ROOT.parent / "shared" / "seedref"
IN_CI = os.environ.get("CI") == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", type=float, default=0.0,
                     help="run the long stress modes for about this many seconds each")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the long mode a stress test runs for about ``--soak`` seconds (some for a few
    multiples of it): give every test that much more room than the quick-mode timeout."""
    seconds = float(config.getoption("--soak"))
    if seconds > 0:
        for item in items:
            item.add_marker(pytest.mark.timeout(300 + 4 * seconds))


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> float:
    """Seconds for long stress modes; 0 in the quick mode."""
    return float(request.config.getoption("--soak"))


def pg_url_or_skip() -> str:
    """The test server's URL. Under CI a missing server is a failure, never a skip."""
    url = os.environ.get("CLAPBOARD_TEST_PG_URL")
    if not url:
        if IN_CI:
            pytest.fail("CLAPBOARD_TEST_PG_URL is not set under CI: PostgreSQL did not start")
        pytest.skip("no PostgreSQL server (set CLAPBOARD_TEST_PG_URL)")
    return url


BACKENDS = ["fs", "pg"]


@pytest.fixture(params=BACKENDS)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store location for each backend."""
    if request.param == "fs":
        yield str(tmp_path / "store")
        return
    from tests.pg_support import fresh_database

    with fresh_database(pg_url_or_skip()) as url:
        yield url


@pytest.fixture
def store(store_location: str):  # type: ignore[no-untyped-def]
    import clapboard

    s = clapboard.open_store(store_location, lock_timeout=10)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def fs_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    import clapboard

    s = clapboard.open_store(tmp_path / "store", lock_timeout=10)
    yield s
    s.close()


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The seed module (behavioural reference), rooted in a temp dir."""
    monkeypatch.setenv("SEEDREF_ROOT", str(tmp_path / "seedroot"))
    if str(SEEDREF) not in sys.path:
        sys.path.insert(0, str(SEEDREF))
    from recoil.pipeline.core import persistence

    return persistence
