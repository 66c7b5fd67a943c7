"""CliRunner tests of every command and flag of SPEC §7 built in cli/ (happy paths)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import click
import pytest

import clapboard
from clapboard import __version__
from clapboard.cli import common
from clapboard.cli.common import get_store
from clapboard.cli.group import cli
from clapboard.cli.settings import Settings
from tests.cli_support import PROJECT, Cli, add_candidate, clean_env, write_plan


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    return write_plan(tmp_path)


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "store")


@pytest.fixture
def film(run: Cli, plan_file: Path) -> Cli:
    r = run("init", PROJECT, "1", "--plan", str(plan_file))
    assert r.code == 0, r.err
    return run


def test_help_version_and_short_help(run: Cli) -> None:
    assert run("--version").out.strip() == f"clapboard {__version__}"
    for flag in ("-h", "--help"):
        r = run(flag)
        assert r.code == 0 and "Commands:" in r.out and "Example:" in r.out
    assert "Example:" in run("conform", "-h").out


def test_init_creates_restamps_and_dry_run(run: Cli, plan_file: Path) -> None:
    r = run("init", PROJECT, "1", "--plan", str(plan_file), "--dry-run", "--json")
    assert r.code == 0
    assert [s["action"] for s in r.json()["scenes"]] == ["would create", "would create"]
    assert not (run.root / "projects").exists()
    r = run("init", PROJECT, "ep_001", "--plan", str(plan_file), "--max-takes", "5")
    assert r.code == 0 and "created" in r.out and "SEQ_010" in r.out
    r = run("--json", "init", PROJECT, "1", "--plan", str(plan_file), "--max-takes", "2")
    assert {s["action"] for s in r.json()["scenes"]} == {"restamped"}
    with run.store() as store:
        assert store.load_active(PROJECT, 1, "SEQ_010").beats[0].max_takes == 2


def test_global_options_before_or_after_command(film: Cli) -> None:
    before = film("--json", "ls", PROJECT, "1")
    after = film("ls", PROJECT, "1", "--json", "--root", str(film.root), root=False)
    assert before.code == after.code == 0
    assert before.json() == after.json()
    assert [s["batch_id"] for s in before.json()["scenes"]] == ["SEQ_010", "SEQ_020"]
    via_store = film("ls", PROJECT, "1", "--store", str(film.root), "--json", root=False)
    assert via_store.json() == before.json()


def test_root_from_environment(film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAPBOARD_HOME", str(film.root))
    assert film("ls", PROJECT, "1", root=False).code == 0
    monkeypatch.setenv("CLAPBOARD_HOME", "/nonexistent-home")
    monkeypatch.setenv("CLAPBOARD_STORE", str(film.root))  # STORE wins over HOME
    assert film("ls", PROJECT, "1", root=False).code == 0


def test_ls_levels_plain_and_rich(film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert film("--json", "ls").json() == {"projects": [{"project": PROJECT, "episodes": 1}]}
    assert film("--json", "ls", PROJECT).json()["episodes"] == [
        {"episode": "ep_001", "scenes": 2}]
    plain = film("ls", PROJECT, "1")
    assert plain.out.splitlines()[1].split()[:3] == ["batch", "active", "versions"]
    monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
    table = film("ls", PROJECT, "1")
    assert "┃" in table.out or "│" in table.out


def test_show_active_and_version(film: Cli) -> None:
    add_candidate(film)
    r = film("show", PROJECT, "1", "SEQ_010")
    assert r.code == 0 and "wide of the harbour" in r.out and "v1 (active)" in r.out
    data = film("show", PROJECT, "1", "SEQ_010", "--version", "2", "--json").json()
    assert data["version"] == 2 and data["active_version"] == 1
    assert [b["beat_id"] for b in data["scene"]["beats"]] == ["A", "B", "D"]


def test_versions_diff(film: Cli) -> None:
    assert add_candidate(film) == 2
    vs = film("--json", "versions", PROJECT, "1", "SEQ_010").json()["versions"]
    assert [(v["version"], v["active"]) for v in vs] == [(1, True), (2, False)]
    assert "*" in film("versions", PROJECT, "1", "SEQ_010").out
    d = film("diff", PROJECT, "1", "SEQ_010", "1", "2")
    assert "+ beat D added at position 2" in d.out
    dj = film("diff", PROJECT, "1", "SEQ_010", "1", "2", "--json").json()
    assert dj["added"] == [{"beat_id": "D", "position": 2}] and not dj["identical"]


def test_conform_expect_and_revert(film: Cli) -> None:
    add_candidate(film)
    r = film("conform", PROJECT, "1", "SEQ_010", "2", "--reason", "new cut", "--expect", "1",
             "--json")
    assert r.code == 0, r.err
    assert r.json()["from"] == 1 and r.json()["to"] == 2 and r.json()["changed"]
    again = film("conform", PROJECT, "1", "SEQ_010", "2")
    assert again.code == 0 and "nothing changed" in again.out
    r = film("revert", PROJECT, "1", "SEQ_010", "--reason", "back", "--expect", "2", "--yes")
    assert r.code == 0 and "v2 -> v1" in r.out
    with film.store() as store:
        history = store.manifest(PROJECT, 1, "SEQ_010")["history"]  # type: ignore[index]
    moves = [(h["from"], h["to"], h["reason"]) for h in history]
    assert moves == [(1, 2, "new cut"), (2, 1, "back")]


def _terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from clapboard.cli import cmd_versions

    monkeypatch.setattr(cmd_versions, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr(common, "interactive", lambda: True)


def test_conform_on_terminal_shows_diff_and_asks(film: Cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_candidate(film)
    _terminal(monkeypatch)
    no = film("conform", PROJECT, "1", "SEQ_010", "2", input="n\n")
    assert no.code == 1 and "+ beat D added" in no.out and "cancelled" in no.err
    assert film("--json", "versions", PROJECT, "1", "SEQ_010").json()["versions"][0]["active"]
    yes = film("conform", PROJECT, "1", "SEQ_010", "2", input="y\n")
    assert yes.code == 0 and "v1 -> v2" in yes.out
    skip = film("revert", PROJECT, "1", "SEQ_010", "--yes")
    assert skip.code == 0 and "v2 -> v1" in skip.out and "?" not in skip.err


def test_confirmed_move_refuses_if_pointer_moved_meanwhile(
        film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The diff a person approved must be the move made: if someone else moved the
    pointer while the question was open, the conform is refused (exit 3)."""
    add_candidate(film)
    _terminal(monkeypatch)
    from clapboard.cli import cmd_versions

    def someone_else_moves(question: str, *, yes: bool) -> bool:
        with film.store() as store:
            store.conform(PROJECT, 1, "SEQ_010", 2, actor="other@desk")
        return True

    monkeypatch.setattr(cmd_versions, "confirm", someone_else_moves)
    r = film("conform", PROJECT, "1", "SEQ_010", "2")
    assert r.code == 3 and "moved from expected v1 to v2" in r.err
    records = film("--json", "log", PROJECT, "1", "SEQ_010").json()["records"]
    assert [(r["op"], r["actor"]) for r in records][-1] == ("conform", "other@desk")


def test_lock_unlock(film: Cli) -> None:
    r = film("lock", PROJECT, "1", "SEQ_010", "--reason", "sent to sound", "--json")
    assert r.code == 0 and r.json()["locked"] and r.json()["locked_by"] == "tester@cli"
    assert film("--json", "ls", PROJECT, "1").json()["scenes"][0]["locked"] is True
    r = film("unlock", PROJECT, "1", "SEQ_010")
    assert r.code == 0 and "unlocked" in r.out
    assert film("lock", PROJECT, "1", "SEQ_010").code == 2  # --reason is required


def test_log_and_last(film: Cli) -> None:
    film("lock", PROJECT, "1", "SEQ_010", "--reason", "x")
    film("unlock", PROJECT, "1", "SEQ_010")
    records = film("--json", "log", PROJECT, "1", "SEQ_010").json()["records"]
    assert [r["op"] for r in records] == ["init", "lock", "unlock"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    last = film("log", PROJECT, "1", "SEQ_010", "--last", "1")
    assert "unlock" in last.out and " init " not in last.out


def test_watch_replay_once_and_json_lines(film: Cli) -> None:
    r = film("watch", "--all", "--once")
    assert r.code == 0 and len(r.out.splitlines()) == 2 and "film/ep_001/SEQ_010 #1 init" in r.out
    lines = film("watch", PROJECT, "--all", "--once", "--json").out.splitlines()
    assert [json.loads(x)["batch_id"] for x in lines] == ["SEQ_010", "SEQ_020"]
    assert film("watch", "--once").out == ""  # default starts from now
    assert film("watch", "--all", "--max-events", "1").out.count("\n") == 1


def test_watch_follows_live_writes(film: Cli) -> None:
    def write_later() -> None:
        time.sleep(0.3)
        with film.store() as store:
            store.lock_scene(PROJECT, 1, "SEQ_020", "live", actor="other@desk")

    t = threading.Thread(target=write_later)
    t.start()
    r = film("watch", PROJECT, "--max-events", "1", "--interval", "0.05", "--timeout", "20")
    t.join()
    assert r.code == 0 and "SEQ_020 #2 lock v1 by other@desk" in r.out


def test_watch_timeout_stops(film: Cli) -> None:
    started = time.monotonic()
    assert film("watch", "--timeout", "0.2", "--interval", "0.05").code == 0
    assert time.monotonic() - started < 5


def test_recover_stale(film: Cli) -> None:
    with film.store() as store:
        def running(scene: clapboard.Scene) -> None:
            scene.beat("A").takes.append(clapboard.Take(
                take_id="T01", status="running", heartbeat_at="2000-01-01T00:00:00+00:00"))
        store.save_active_scene_status(PROJECT, 1, "SEQ_010", expected_version=1,
                                       mutate=running)
    r = film("--json", "recover-stale", PROJECT, "1", "--older-than", "60")
    assert r.json()["recovered"] == [{"batch_id": "SEQ_010", "beat_id": "A", "take_id": "T01"}]
    again = film("recover-stale", PROJECT, "1")
    assert again.code == 0 and "0 stale take(s)" in again.out


def test_fsck_clean_problems_and_repair(film: Cli) -> None:
    r = film("fsck")
    assert r.code == 0 and "clean" in r.out
    scenes = film.root / "projects" / PROJECT / "orchestration" / "scenes"
    (scenes / "ep_001_SEQ_010.json.tmp").write_text("{")  # a seed-style leftover
    r = film("fsck", PROJECT, "--json")
    assert r.code == 1 and not r.json()["clean"] and r.json()["problems"]
    r = film("fsck", "--repair")
    assert r.code == 0, r.out
    assert film("fsck").code == 0


def test_fsck_reports_corrupt_body_and_exits_1(film: Cli) -> None:
    body = film.root / "projects" / PROJECT / "orchestration" / "scenes" / "ep_001_SEQ_020.json"
    body.write_text('{"truncated": ')
    r = film("fsck", "--repair")
    assert r.code == 1 and "ep_001_SEQ_020.json" in r.out
    assert body.read_text() == '{"truncated": '  # never rewritten


def test_migrate(film: Cli) -> None:
    r = film("--json", "migrate")
    assert r.code == 0 and r.json() == {"projects": [PROJECT], "migrated": []}
    assert "0 file(s) migrated" in film("migrate", PROJECT).out


def test_progress_bar_only_on_terminal(film: Cli, plan_file: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = film("init", PROJECT, "1", "--plan", str(plan_file))
    assert quiet.err == ""
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    r = film("--json", "fsck")
    assert r.code == 0 and json.loads(r.out)["clean"]  # stdout stays pure JSON


def test_lock_timeout_option_gives_exit_3(film: Cli) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with film.store() as store, store.transaction(PROJECT, 1, "SEQ_010", "test"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        r = film("--lock-timeout", "0.2", "lock", PROJECT, "1", "SEQ_010", "--reason", "x")
        assert r.code == 3 and "timed out" in r.err
        assert time.monotonic() - started < 5
    finally:
        release.set()
        t.join()


def test_lock_timeout_from_environment(film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAPBOARD_LOCK_TIMEOUT", "7.5")
    ctx = click.Context(cli, obj=Settings(root=str(film.root)))
    assert get_store(ctx).lock_timeout == 7.5
    ctx = click.Context(cli, obj=Settings(root=str(film.root), lock_timeout=1.0))
    assert get_store(ctx).lock_timeout == 1.0
