"""Bad input never crashes: the documented exit code, exactly one stderr line, no
traceback, and nothing written (SPEC §7, issue 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clapboard.cli.failures import exit_code_for, one_line
from clapboard.errors import (
    LockTimeoutError,
    SceneLockedError,
    SceneVersionConflictError,
    VersionNotFoundError,
)
from tests.cli_support import PROJECT, Cli, add_candidate, clean_env, one_error_line, write_plan


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


@pytest.fixture
def film(tmp_path: Path) -> Cli:
    run = Cli(tmp_path / "store")
    assert run("init", PROJECT, "1", "--plan", str(write_plan(tmp_path))).code == 0
    return run


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def test_malformed_plan_json(film: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"sequences": {"S1": {"shots": [}}}')
    before = _snapshot(film.root)
    r = film("init", "other", "1", "--plan", str(bad))
    assert r.code == 2
    line = one_error_line(r)
    assert str(bad) in line and "not valid JSON" in line and "nothing was written" in line
    assert _snapshot(film.root) == before


@pytest.mark.parametrize("plan, needle", [
    ({"sequences": {"../x": {"shots": []}}}, "sequence id"),
    ({"sequences": {"S1": {"shots": [{"id": "A"}, {"id": "A"}]}}}, "duplicate shot id"),
    ([1, 2], "plan"),
])
def test_invalid_plan_content(film: Cli, tmp_path: Path, plan: object, needle: str) -> None:
    path = write_plan(tmp_path, plan)
    r = film("init", PROJECT, "2", "--plan", str(path))
    assert r.code == 2 and needle in one_error_line(r)
    assert film("--json", "ls", PROJECT).json()["episodes"] == [{"episode": "ep_001",
                                                                   "scenes": 2}]


def test_missing_plan_file(film: Cli) -> None:
    r = film("init", PROJECT, "1", "--plan", "/nonexistent/plan.json")
    assert r.code == 2 and "does not exist" in one_error_line(r)


@pytest.mark.parametrize("args", [
    ("ls", "nope", "1"),
    ("ls", "nope"),
    ("fsck", "nope"),
    ("watch", "nope", "--once"),
    ("show", "nope", "1", "SEQ_010"),
    ("recover-stale", "nope", "1"),  # was "0 stale take(s) recovered", exit 0
])
def test_unknown_project(film: Cli, args: tuple[str, ...]) -> None:
    r = film(*args)
    assert r.code == 2
    one_error_line(r)


@pytest.mark.parametrize("args", [
    ("ls", "../etc", "1"),
    ("show", PROJECT, "1", "../SEQ_010"),
    ("show", PROJECT, "../1", "SEQ_010"),
    ("lock", PROJECT, "1", "a/b", "--reason", "x"),
    ("init", "../escape", "1", "--plan", "{plan}"),
    ("conform", PROJECT, "1", "..", "1"),
    ("fsck", "../.."),
])
def test_dotdot_in_names(film: Cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    plan = str(write_plan(tmp_path))
    before = _snapshot(film.root)
    r = film(*(a.replace("{plan}", plan) for a in args))
    assert r.code == 2
    line = one_error_line(r)
    assert "'..'" in line or "'../" in line or "'a/b'" in line
    assert _snapshot(film.root) == before
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("cmd", ["ls", "recover-stale"])
def test_unknown_episode(film: Cli, cmd: str) -> None:
    r = film(cmd, PROJECT, "7")
    assert r.code == 2 and "no scenes in episode ep_007" in one_error_line(r)


@pytest.mark.parametrize("cmd", [
    ("show",), ("versions",), ("log",), ("lock", "--reason", "x"), ("unlock",),
    ("conform", "1"), ("revert",),
])
def test_missing_batch(film: Cli, cmd: tuple[str, ...]) -> None:
    name, *rest = cmd
    r = film(name, PROJECT, "1", "SEQ_999", *rest)
    assert r.code == 2, r.err
    assert "SEQ_999" in one_error_line(r)
    assert not list((film.root / "projects" / PROJECT / "orchestration" / "scenes")
                    .glob("*SEQ_999.json"))


@pytest.mark.parametrize("args", [
    ("show", PROJECT, "1", "SEQ_010", "--version", "9"),
    ("diff", PROJECT, "1", "SEQ_010", "1", "9"),
    ("conform", PROJECT, "1", "SEQ_010", "9", "--yes"),
    ("conform", PROJECT, "1", "SEQ_020", "2", "--yes"),  # un-versioned: only v1 exists
])
def test_version_that_does_not_exist(film: Cli, args: tuple[str, ...]) -> None:
    add_candidate(film)
    r = film(*args)
    assert r.code == 2
    assert "version" in one_error_line(r)


def test_locked_scene_refuses_conform_and_revert(film: Cli) -> None:
    add_candidate(film, activate=True)
    assert film("lock", PROJECT, "1", "SEQ_010", "--reason", "sent to sound").code == 0
    for args in (("conform", PROJECT, "1", "SEQ_010", "1", "--yes"),
                 ("revert", PROJECT, "1", "SEQ_010", "--yes")):
        r = film(*args)
        assert r.code == 3
        line = one_error_line(r)
        assert "locked" in line and "sent to sound" in line and "unlock" in line
    assert film("--json", "ls", PROJECT, "1").json()["scenes"][0]["active_version"] == 2


def test_stale_expect(film: Cli) -> None:
    add_candidate(film)
    r = film("conform", PROJECT, "1", "SEQ_010", "2", "--expect", "2")
    assert r.code == 3 and "expected v2" in one_error_line(r)
    r = film("revert", PROJECT, "1", "SEQ_010", "--expect", "5")
    assert r.code == 3
    assert film("--json", "versions", PROJECT, "1", "SEQ_010").json()["versions"][0]["active"]


def test_nothing_to_revert_is_refused(film: Cli) -> None:
    r = film("revert", PROJECT, "1", "SEQ_010", "--yes")
    assert r.code == 3 and "no pointer move" in one_error_line(r)


@pytest.mark.parametrize("args", [
    ("conform", PROJECT, "1", "SEQ_010", "two"),
    ("ls", "--no-such-option"),
    ("no-such-command",),
    ("init", PROJECT, "1"),
    ("--lock-timeout", "-1", "ls"),
    ("recover-stale", PROJECT, "1", "--older-than", "soon"),
])
def test_usage_errors_are_one_line(film: Cli, args: tuple[str, ...]) -> None:
    r = film(*args)
    assert r.code == 2
    one_error_line(r)


def test_root_and_store_disagree(film: Cli, tmp_path: Path) -> None:
    r = film("ls", "--store", str(tmp_path / "elsewhere"))
    assert r.code == 2 and "different stores" in one_error_line(r)


def test_corrupt_body_is_one_line_naming_the_file(film: Cli) -> None:
    body = film.root / "projects" / PROJECT / "orchestration" / "scenes" / "ep_001_SEQ_010.json"
    body.write_text('{"scene_id": "SEQ_010", "beats": [')
    r = film("show", PROJECT, "1", "SEQ_010")
    assert r.code == 2 and "ep_001_SEQ_010.json" in one_error_line(r)
    r = film("lock", PROJECT, "1", "SEQ_010", "--reason", "x")
    assert r.code == 2
    assert body.read_text() == '{"scene_id": "SEQ_010", "beats": ['


def test_bad_lock_timeout_env_is_one_line(film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAPBOARD_LOCK_TIMEOUT", "soon")
    r = film("ls", PROJECT, "1")
    assert r.code == 2 and "CLAPBOARD_LOCK_TIMEOUT" in one_error_line(r)


def test_debug_shows_traceback(film: Cli) -> None:
    r = film("--debug", "show", PROJECT, "1", "SEQ_999")
    assert r.code == 2 and "Traceback" in r.err
    assert r.err.strip().splitlines()[-1].startswith("clapboard: error: ")
    r = film("show", PROJECT, "1", "SEQ_999", "--debug")
    assert "Traceback" in r.err


def test_internal_error_is_one_line(film: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapboard.store import Store

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Store, "list_batches", boom)
    r = film("ls", PROJECT, "1")
    assert r.code == 2 and "internal error RuntimeError: bug" in one_error_line(r)


def test_exit_code_mapping() -> None:
    assert exit_code_for(SceneLockedError("S", "why")) == 3
    assert exit_code_for(SceneVersionConflictError("S", 1, 2)) == 3
    assert exit_code_for(LockTimeoutError("x.lock", 1.0)) == 3
    assert exit_code_for(VersionNotFoundError("nope")) == 2
    assert exit_code_for(ValueError("x")) == 2
    assert "\n" not in one_line(ValueError("two\nlines"))
    assert one_line(FileNotFoundError(2, "No such file or directory", "/x")) == \
        "No such file or directory: /x"
