"""Property tests: the Store against an in-memory model, and fuzzed inputs.

* :class:`StoreMachine` — a Hypothesis state machine driving init, status writes,
  candidates (with and without activation), conform, revert and picture lock against a
  plain dict model; after every step each batch's active version, beat count, counter
  and lock state must match, and every refusal must be the model's typed error.
* Fuzzed bodies, manifests, plans and names: any outcome is a success or a
  :class:`~clapboard.ClapboardError` (never a bare exception), and nothing is ever
  written outside the store root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import clapboard
from clapboard import (
    ClapboardError,
    NothingToRevertError,
    SceneLockedError,
    ValidationError,
    VersionNotFoundError,
)
from tests.reliability import scenarios as sc

P, EP = "prop", 1
_FIG: Counter[str] = Counter()
BATCH = st.sampled_from(["A", "B"])


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="cb-sm-")
        self.s = clapboard.open_store(self.tmp, lock_timeout=10)
        # batch -> {"versions": {v: {"fp": key, "beats": n, "n": int, "locked": bool}},
        #           "active": v, "history": [(from, to)]}
        self.m: dict[str, dict[str, Any]] = {}

    def teardown(self) -> None:
        self.s.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _body(self, b: str) -> dict[str, Any]:
        return self.m[b]["versions"][self.m[b]["active"]]

    @rule(b=BATCH)
    def init(self, b: str) -> None:
        plan = {"sequences": {b: {"shots": [{"shot_id": "x0"}, {"shot_id": "x1"}]}}}
        self.s.init_scenes_from_plan(P, EP, plan)
        if b not in self.m:
            self.m[b] = {"versions": {1: {"fp": "plan", "beats": 2, "n": 0, "locked": False}},
                         "active": 1, "history": []}

    @precondition(lambda self: self.m)
    @rule(data=st.data())
    def inc(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from(sorted(self.m)))
        self.s.save_active_scene_status(P, EP, b, expected_version=None,
                                        mutate=lambda x: x.scene_metadata.update(
                                            n=int(x.scene_metadata.get("n", 0)) + 1))
        self._body(b)["n"] += 1

    @precondition(lambda self: self.m)
    @rule(data=st.data(), beats=st.integers(1, 3), activate=st.booleans())
    def candidate(self, data: st.DataObject, beats: int, activate: bool) -> None:
        b = data.draw(st.sampled_from(sorted(self.m)))
        mb = self.m[b]
        same = [v for v, e in mb["versions"].items() if e["fp"] == beats]
        locked = self._body(b)["locked"]
        try:
            got = self.s.write_scene_candidate(P, EP, b, sc.structure(b, beats),
                                               activate=activate)
        except SceneLockedError:
            assert activate and locked and not (same and same[0] == mb["active"])
            return
        if same:
            assert got == same[0]
        else:
            assert got == max(mb["versions"]) + 1
            mb["versions"][got] = {"fp": beats, "beats": beats, "n": 0, "locked": False}
        if activate and got != mb["active"]:
            assert not locked
            mb["history"].append((mb["active"], got))
            mb["active"] = got

    @precondition(lambda self: self.m)
    @rule(data=st.data(), v=st.integers(1, 4))
    def conform(self, data: st.DataObject, v: int) -> None:
        b = data.draw(st.sampled_from(sorted(self.m)))
        mb = self.m[b]
        try:
            got = self.s.conform(P, EP, b, v)
        except VersionNotFoundError:
            assert v not in mb["versions"]
            return
        except SceneLockedError:
            assert self._body(b)["locked"]
            return
        assert v in mb["versions"] and got == v
        if v != mb["active"]:
            mb["history"].append((mb["active"], v))
            mb["active"] = v

    @precondition(lambda self: self.m)
    @rule(data=st.data())
    def revert(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from(sorted(self.m)))
        mb = self.m[b]
        try:
            got = self.s.revert(P, EP, b)
        except NothingToRevertError:
            assert not mb["history"]
            return
        except SceneLockedError:
            assert self._body(b)["locked"]
            return
        target = mb["history"][-1][0]
        assert got == target
        if target != mb["active"]:
            mb["history"].append((mb["active"], target))
            mb["active"] = target

    @precondition(lambda self: self.m)
    @rule(data=st.data(), on=st.booleans())
    def lock(self, data: st.DataObject, on: bool) -> None:
        b = data.draw(st.sampled_from(sorted(self.m)))
        if on:
            self.s.lock_scene(P, EP, b, "final")
        else:
            self.s.unlock_scene(P, EP, b)
        self._body(b)["locked"] = on

    @invariant()
    def matches_model(self) -> None:
        _FIG["state-machine steps checked"] += 1
        assert self.s.list_batches(P, EP) == sorted(self.m)
        for b, mb in self.m.items():
            scene, v = self.s.load_active_with_version(P, EP, b)
            body = self._body(b)
            assert v == mb["active"]
            assert len(scene.beats) == body["beats"]
            assert scene.scene_metadata.get("n", 0) == body["n"]
            assert scene.locked == body["locked"]
            assert len(self.s.versions(P, EP, b)) == len(mb["versions"])
            seqs = [r["seq"] for r in self.s.history(P, EP, b)]
            assert seqs == list(range(1, len(seqs) + 1))


StoreMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25,
                                          deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestStoreMachine = StoreMachine.TestCase


# -- fuzzed inputs ----------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                    | st.text(max_size=8)
                    | st.floats(allow_nan=False),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
SCENE_KEYS = st.sampled_from(["scene_id", "beats", "schema_version", "locked", "takes",
                              "beat_id", "max_takes", "status", "primary_take_id"])
BODY = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(SCENE_KEYS, JSON, max_size=6).map(lambda d: orjson.dumps(d)),
    st.builds(lambda beats, extra: orjson.dumps({"schema_version": 1, "scene_id": "B",
                                                  "beats": beats, **extra}),
              JSON, st.dictionaries(SCENE_KEYS, JSON, max_size=3)),
)
ARTIFACT = st.one_of(st.text(max_size=20), st.sampled_from(
    ["../outside.json", "/etc/passwd", "..", "ep_001_B.json", "a/b.json", "x\x00y",
     "ep_001_B.v002.json", "..\\evil.json"]))
MANIFEST = st.builds(
    lambda art, av, extra: orjson.dumps({"schema_version": 1, "batch_id": "B",
                                         "active_version": av,
                                         "versions": [{"version": 1, "artifact": art}],
                                         "history": [], **extra}),
    ARTIFACT, st.one_of(st.integers(-1, 3), JSON), st.dictionaries(st.text(max_size=6), JSON,
                                                                   max_size=2))


def _sandbox() -> tuple[Path, Path]:
    outer = Path(tempfile.mkdtemp(prefix="cb-fuzz-"))
    root = outer / "root"
    scenes = root / "projects" / "p" / "orchestration" / "scenes"
    scenes.mkdir(parents=True)
    # a valid-looking body outside the root: reading it would be a path escape
    (outer / "outside.json").write_bytes(orjson.dumps(
        {"schema_version": 1, "scene_id": "B", "beats": [], "scene_metadata": {"x": 1}}))
    return outer, scenes


def _outside_untouched(outer: Path) -> None:
    assert sorted(p.name for p in outer.iterdir()) == ["outside.json", "root"]


def _exercise(s: clapboard.Store) -> None:
    for call in (lambda: s.load_active_with_version("p", 1, "B"),
                 lambda: s.versions("p", 1, "B"),
                 lambda: s.save_active_scene_status("p", 1, "B", expected_version=None,
                                                    mutate=lambda x: x.scene_metadata.update(
                                                        k=1)),
                 lambda: s.write_scene_candidate("p", 1, "B", sc.structure("B", 2)),
                 lambda: s.conform("p", 1, "B", 1),
                 lambda: s.fsck()):
        try:
            out = call()
        except ClapboardError:
            continue
        if isinstance(out, tuple):
            assert out[0].scene_metadata.get("x") != 1, "read a body outside the root"


@settings(max_examples=150, deadline=None)
@given(body=BODY, manifest=st.one_of(st.none(), MANIFEST, st.binary(max_size=80)))
def test_fuzzed_bodies_and_manifests_give_typed_errors(body: bytes,
                                                       manifest: bytes | None) -> None:
    outer, scenes = _sandbox()
    try:
        (scenes / "ep_001_B.json").write_bytes(body)
        if manifest is not None:
            (scenes / "ep_001_B.versions.json").write_bytes(manifest)
        s = clapboard.open_store(outer / "root", lock_timeout=5)
        _exercise(s)
        s.close()
        _outside_untouched(outer)
        _FIG["fuzzed bodies/manifests"] += 1
    finally:
        shutil.rmtree(outer)


NAME = st.one_of(st.text(max_size=12), st.sampled_from(
    ["..", "../x", "/abs", "a/b", "ok", "ep_001", "B.v002", "B.versions", "-x", "", "x" * 200,
     "a\x00b"]), st.integers(-3, 5), st.booleans(), st.none())


@settings(max_examples=200, deadline=None)
@given(project=NAME, episode=NAME, batch=NAME, plan=st.one_of(JSON, st.builds(
    lambda seqs: {"sequences": seqs},
    st.dictionaries(NAME.filter(lambda x: isinstance(x, str)),
                    st.one_of(JSON, st.builds(lambda shots: {"shots": shots},
                                              st.lists(JSON, max_size=3))), max_size=3))))
def test_fuzzed_names_and_plans_stay_inside_the_root(project: Any, episode: Any, batch: Any,
                                                     plan: Any) -> None:
    outer, _ = _sandbox()
    try:
        s = clapboard.open_store(outer / "root", lock_timeout=5)
        calls = [lambda: s.init_scenes_from_plan(project, episode, plan),
                 lambda: s.init_scenes_from_plan("p", 1, plan),
                 lambda: s.save_active_scene_status(project, episode, batch,
                                                    expected_version=None,
                                                    mutate=lambda x: None),
                 lambda: s.load_active(project, episode, batch),
                 lambda: s.history(project, episode, batch)]
        for call in calls:
            try:
                call()
            except ClapboardError:
                pass
        s.close()
        _outside_untouched(outer)
        for d, _dirs, files in os.walk(outer / "root"):
            assert Path(d).resolve().is_relative_to((outer / "root").resolve())
            assert not [f for f in files if sc.is_temp(f)]
        _FIG["fuzzed names/plans"] += 1
    finally:
        shutil.rmtree(outer)


def test_report_figures(figures: Counter[str]) -> None:
    figures.update(_FIG)
    _FIG.clear()


def test_regression_malformed_bodies_are_typed_errors(tmp_path: Path) -> None:
    """Found by the fuzzer: ``versions()`` / a candidate on a flat body with ``beats:
    [null]`` crashed with AttributeError, and fsck crashed on a manifest whose
    ``active_version`` or ``version`` was a list (TypeError: unhashable)."""
    scenes = tmp_path / "projects" / "p" / "orchestration" / "scenes"
    scenes.mkdir(parents=True)
    (scenes / "ep_001_B.json").write_bytes(
        b'{"schema_version":1,"scene_id":"B","beats":[null]}')
    s = clapboard.open_store(tmp_path)
    with pytest.raises(ValidationError):
        s.versions("p", 1, "B")
    with pytest.raises(ValidationError):
        s.write_scene_candidate("p", 1, "B", sc.structure("B", 2))
    assert not (scenes / "ep_001_B.versions.json").exists()
    (scenes / "ep_001_B.versions.json").write_bytes(orjson.dumps(
        {"schema_version": 1, "batch_id": "B", "active_version": [1],
         "versions": [{"version": [1], "artifact": "ep_001_B.json", "fingerprint": "x"}],
         "history": []}))
    kinds = {p.kind for p in s.fsck().problems}
    assert "active-version" in kinds
    s.close()
