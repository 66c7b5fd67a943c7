"""Real ``python -m clapboard`` processes for the main paths: exit codes, stdout vs
stderr, environment variables, and Ctrl-C on ``watch``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_support import PROJECT, write_plan

PY = sys.executable


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAPBOARD_")}
    env.update(CLAPBOARD_HOME=str(root), CLAPBOARD_ACTOR="proc@test", **extra)
    return env


def clap(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "clapboard", *args], capture_output=True, text=True,
                          env=_env(root, **env), timeout=60, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = clap(tmp_path / "store", "init", PROJECT, "1", "--plan", str(write_plan(tmp_path)))
    assert r.returncode == 0, r.stderr
    return tmp_path / "store"


def test_version_and_help() -> None:
    r = subprocess.run([PY, "-m", "clapboard", "--version"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and r.stdout.startswith("clapboard ")
    r = subprocess.run([PY, "-m", "clapboard", "-h"], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and "Example:" in r.stdout


def test_main_path_through_processes(root: Path) -> None:
    ls = clap(root, "ls", PROJECT, "1", "--json")
    assert ls.returncode == 0 and ls.stderr == ""
    assert [s["batch_id"] for s in json.loads(ls.stdout)["scenes"]] == ["SEQ_010", "SEQ_020"]
    assert clap(root, "lock", PROJECT, "1", "SEQ_010", "--reason", "sound").returncode == 0
    refused = clap(root, "revert", PROJECT, "1", "SEQ_010", "--yes")
    assert refused.returncode == 3 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    log = clap(root, "--json", "log", PROJECT, "1", "SEQ_010")
    assert [r["op"] for r in json.loads(log.stdout)["records"]] == ["init", "lock"]
    assert clap(root, "fsck").returncode == 0


def test_root_option_overrides_home(root: Path, tmp_path: Path) -> None:
    r = clap(tmp_path / "empty", "--root", str(root), "ls", PROJECT, "1")
    assert r.returncode == 0 and "SEQ_010" in r.stdout
    r = clap(tmp_path / "empty", "ls", PROJECT, "1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_lock_timeout_env_and_bad_value(root: Path) -> None:
    r = clap(root, "ls", PROJECT, "1", CLAPBOARD_LOCK_TIMEOUT="never")
    assert r.returncode == 2 and "CLAPBOARD_LOCK_TIMEOUT" in r.stderr


def test_fsck_problems_exit_1(root: Path) -> None:
    scenes = root / "projects" / PROJECT / "orchestration" / "scenes"
    (scenes / "ep_001_SEQ_010.json").write_text("{")
    r = clap(root, "fsck")
    assert r.returncode == 1 and "ep_001_SEQ_010.json" in r.stdout


def test_watch_follows_and_stops_on_ctrl_c(root: Path) -> None:
    proc = subprocess.Popen([PY, "-m", "clapboard", "watch", PROJECT, "--interval", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(root))
    try:
        time.sleep(1.0)  # let it start and take its position
        assert clap(root, "lock", PROJECT, "1", "SEQ_020", "--reason", "live").returncode == 0
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "film/ep_001/SEQ_020 #2 lock v1 by proc@test" in line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err


def test_demo_subprocess_json(tmp_path: Path) -> None:
    started = time.monotonic()
    r = subprocess.run([PY, "-m", "clapboard", "demo", "--root", str(tmp_path / "d"), "--json"],
                       capture_output=True, text=True, env=_env(tmp_path / "unused"),
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 60
    result = json.loads(r.stdout)
    assert result["takes_lost"] == 0 and result["fsck"]["clean"]
    assert "clapboard serve --root" in r.stderr  # the story goes to stderr with --json
    again = subprocess.run([PY, "-m", "clapboard", "demo", "--root", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
