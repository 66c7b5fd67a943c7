"""Fixtures of the reliability campaign: tool gates, scenario base states, figures.

Tests that need ``strace`` or libfiu skip only outside CI; with ``CI=true`` a missing
tool is a failure (``.ci/run`` installs both). Every test adds what it actually did to
the session's ``figures`` (crash points walked, faults injected, inputs fuzzed, ...);
the totals are printed at the end and written to ``$CLAPBOARD_RELIABILITY_FIGURES``
when that is set — docs/RELIABILITY.md quotes them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import scenarios as sc

IN_CI = os.environ.get("CI") == "true"
FIU_PRELOAD = Path("/usr/lib/fiu/fiu_posix_preload.so")
FIGURES: Counter[str] = Counter()


def _need(ok: bool, what: str) -> None:
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI (CI=true)")
    pytest.skip(f"{what} not installed")


@pytest.fixture
def need_strace() -> None:
    _need(shutil.which("strace") is not None, "strace")


@pytest.fixture
def need_fiu() -> None:
    _need(FIU_PRELOAD.exists(), "libfiu (fiu-utils)")


@pytest.fixture(scope="session")
def figures() -> Counter[str]:
    return FIGURES


@pytest.fixture(scope="session")
def base_states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Lazily built base state of each scenario (built once per session)."""
    root = tmp_path_factory.mktemp("bases")
    cache: dict[str, Path] = {}

    class Lazy(dict[str, Path]):
        def __missing__(self, name: str) -> Path:
            path = root / name
            sc.build_base(name, path)
            self[name] = path
            return path

    yield Lazy(cache)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for key in sorted(FIGURES):
        terminalreporter.write_line(f"{key:48s} {FIGURES[key]}")
    out = os.environ.get("CLAPBOARD_RELIABILITY_FIGURES")
    if out:
        Path(out).write_text(json.dumps(dict(sorted(FIGURES.items())), indent=2) + "\n")
