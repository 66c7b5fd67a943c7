"""Names: episode tokens, project and id rules, artifacts, actor."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clapboard import InvalidNameError, UnsafePathError
from clapboard.paths import (
    ProjectPaths,
    episode_token,
    parse_scene_file,
    resolve_actor,
    safe_basename,
    validate_id,
    validate_project,
)


@pytest.mark.parametrize(("given", "token"), [
    (0, "ep_000"), (7, "ep_007"), (1234, "ep_1234"), ("7", "ep_007"), ("ep_007", "ep_007"),
    (" ep_012 ", "ep_012"), ("0012", "ep_012"),
])
def test_episode_token(given: object, token: str) -> None:
    assert episode_token(given) == token


@pytest.mark.parametrize("bad", [True, False, -1, "-1", "ep_7", "ep_01", "seven", "", None, 1.0,
                                 "ep_001/..", "٣"])
def test_episode_token_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        episode_token(bad)


@pytest.mark.parametrize("bad", ["", "..", "a/b", "A", "-x", ".x", "a" * 65, "a..b", "a b", None])
def test_project_rejects(bad: object) -> None:
    with pytest.raises(InvalidNameError):
        validate_project(bad)


def test_project_accepts() -> None:
    assert validate_project("my-show_2.v1") == "my-show_2.v1"


@pytest.mark.parametrize("bad", ["", "a.b", "a/b", "..", "_x", "x" * 129, "a\\b", "é"])
def test_id_rejects(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_id(bad)


@pytest.mark.parametrize("bad", ["", "../x.json", "/etc/passwd", "a/b.json", "..", "a\\b", 3])
def test_artifact_must_be_basename(bad: object) -> None:
    with pytest.raises(UnsafePathError):
        safe_basename(bad)


def test_scene_file_parsing() -> None:
    assert parse_scene_file("ep_001_B.json").kind == "flat"  # type: ignore[union-attr]
    assert parse_scene_file("ep_001_B.versions.json").kind == "manifest"  # type: ignore[union-attr]
    v = parse_scene_file("ep_001_B.v1000.json")
    assert v is not None and v.kind == "version" and v.version == 1000
    assert parse_scene_file("ep_001_B.versions.lock").kind == "lock"  # type: ignore[union-attr]
    assert parse_scene_file("ep_001_B.journal.jsonl").kind == "journal"  # type: ignore[union-attr]
    assert parse_scene_file("ep_001_B.json.tmp").kind == "temp"  # type: ignore[union-attr]
    assert parse_scene_file("notes.txt") is None


def test_project_paths_reads_home_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLAPBOARD_HOME", str(tmp_path / "a"))
    first = ProjectPaths.for_project("p").orchestration_scenes_dir
    monkeypatch.setenv("CLAPBOARD_HOME", str(tmp_path / "b"))
    second = ProjectPaths.for_project("p").orchestration_scenes_dir
    assert first == tmp_path / "a/projects/p/orchestration/scenes"
    assert second == tmp_path / "b/projects/p/orchestration/scenes"


def test_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_actor("alice") == "alice"
    monkeypatch.setenv("CLAPBOARD_ACTOR", "runner-7")
    assert resolve_actor() == "runner-7"
    monkeypatch.delenv("CLAPBOARD_ACTOR")
    assert "@" in resolve_actor()


def test_actor_follows_every_change_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The actor is read from os.environ's own dict on POSIX: every set, change and
    delete is seen at once, non-ASCII names decode as os.environ decodes them, an empty
    value means unset, and a replaced os.environ is still honoured."""
    monkeypatch.setenv("CLAPBOARD_ACTOR", "zoë@stage-2")
    assert resolve_actor() == "zoë@stage-2" == os.environ["CLAPBOARD_ACTOR"]
    os.environ["CLAPBOARD_ACTOR"] = "runner-8"
    assert resolve_actor() == "runner-8"
    os.environ["CLAPBOARD_ACTOR"] = ""
    assert resolve_actor() != "" and "@" in resolve_actor()
    del os.environ["CLAPBOARD_ACTOR"]
    assert "@" in resolve_actor()
    monkeypatch.setattr(os, "environ", {"CLAPBOARD_ACTOR": "from-a-plain-dict"})
    assert resolve_actor() == "from-a-plain-dict"


_EPISODES = st.sampled_from(["ep_001", "ep_0042", "ep_001", "ep_01", "ep_x01", "EP_001", ""])
_IDS = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,10}", fullmatch=True),
                 st.text(alphabet="AZaz09_-. \n\u00e9", min_size=0, max_size=12))
_SUFFIXES = st.sampled_from([".json", ".versions.json", ".versions.lock", ".journal.jsonl",
                             ".v002.json", ".v7.json", ".json.tmp", ".cbtmp-1a.json", "",
                             ".json\n", "\n", ".JSON", ".versions.json.bak", ".jsonx"])


@settings(max_examples=600, deadline=None)
@example("ep_001_A.versions.json")
@example("ep_001_A.json")
@given(st.one_of(st.tuples(_EPISODES, st.sampled_from(["_", "", "__"]), _IDS, _SUFFIXES)
                 .map("".join), st.text(max_size=30)))
def test_listed_batch_is_what_parse_scene_file_lists(name: str) -> None:
    """The listing's one-match reading of a name agrees with the full classification:
    (episode, batch) exactly for a flat body or a manifest, None for anything else."""
    from clapboard.paths import listed_batch, parse_scene_file

    f = parse_scene_file(name)
    want = (f.episode, f.batch_id) if f is not None and f.kind in ("flat", "manifest") \
        else None
    assert listed_batch(name) == want


def test_a_name_with_a_trailing_newline_is_not_a_clapboard_name() -> None:
    from clapboard.paths import listed_batch, parse_scene_file

    for name in ("ep_001_A.json\n", "ep_001_A.versions.json\n", "ep_001_A.journal.jsonl\n"):
        assert parse_scene_file(name) is None and listed_batch(name) is None
    assert listed_batch("ep_001_A.json") == ("ep_001", "A")
    assert listed_batch("ep_001_A.versions.json") == ("ep_001", "A")
