"""The JSON API and the HTML pages through the in-process ASGI client.

Every status the issue names is produced here by a real refusal of the Store
(412 stale, 423 locked, 409 conflict, 404 unknown, 422 bad input), plus 428 for a
write without If-Match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from clapboard.errors import LockTimeoutError, SceneStructureImmutableError
from clapboard.web import create_app
from tests.web_support import EPISODE, PROJECT, SCENE, build_sample, make_client

Client = Any

BASE = "http://127.0.0.1"
API = f"/api/projects/{PROJECT}/episodes/{EPISODE}/scenes/{SCENE}"
PAGE = f"/p/{PROJECT}/{EPISODE}/{SCENE}"


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = build_sample(tmp_path / "store", small=True)
    yield s
    s.close()


@pytest.fixture
def client(store: Any) -> Client:
    return make_client(create_app(store, actor="tester"), BASE)


def board_of(store: Any, beat: str) -> Any:
    return store.load_active(PROJECT, EPISODE, SCENE).beat(beat).board


# -- reads -----------------------------------------------------------------------------


def test_listing_endpoints(client: Client) -> None:
    assert client.get("/api/projects").json() == {"projects": [PROJECT]}
    assert client.get(f"/api/projects/{PROJECT}/episodes").json()["episodes"] == [EPISODE]
    scenes = client.get(f"/api/projects/{PROJECT}/episodes/1/scenes").json()["scenes"]
    row = next(r for r in scenes if r["batch_id"] == SCENE)
    assert row["version"] == 1 and row["versions"] == 2 and row["beats"] == 6
    assert row["counts"]["succeeded"] == 6 and row["locked"] is False


def test_scene_has_etag_and_media_urls(client: Client) -> None:
    r = client.get(API)
    assert r.status_code == 200 and r.headers["etag"] == '"v1"'
    body = r.json()
    assert [b["beat_id"] for b in body["scene"]["beats"]][:2] == ["SH010", "SH020"]
    assert body["media"]["media/boards/SH010_0.png"] == f"/media/{PROJECT}/media/boards/SH010_0.png"
    assert body["media"]["media/boards/SH040_3.png"] is None  # never drawn


def test_versions_diff_history(client: Client) -> None:
    versions = client.get(API + "/versions").json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["active_version"] == 1
    diff = client.get(API + "/diff", params={"a": 1, "b": 2}).json()
    assert [d["beat_id"] for d in diff["added"]] == ["SH045"]
    assert [d["beat_id"] for d in diff["removed"]] == ["SH030"]
    ops = [e["op"] for e in client.get(API + "/history").json()["history"]]
    assert ops[0] == "init" and "candidate" in ops


def test_openapi_describes_the_api(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/projects" in paths
    assert "/api/projects/{project}/episodes/{episode}/scenes/{batch}/conform" in paths
    assert not any(p.startswith("/p/") for p in paths)  # pages stay out of the API description


@pytest.mark.parametrize("url", [
    "/api/projects/nope/episodes",
    "/api/projects/NOT..VALID/episodes",
    f"/api/projects/{PROJECT}/episodes/ep_009/scenes",
    f"/api/projects/{PROJECT}/episodes/banana/scenes",
    f"/api/projects/{PROJECT}/episodes/{EPISODE}/scenes/SC_999",
    f"/api/projects/{PROJECT}/episodes/{EPISODE}/scenes/SC_999/history",
    API + "/diff?a=1&b=99",
])
def test_unknown_names_are_404(client: Client, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


def test_bad_query_is_422(client: Client) -> None:
    assert client.get(API + "/diff", params={"a": 0, "b": 2}).status_code == 422
    assert client.get(API + "/diff", params={"a": "x", "b": 2}).status_code == 422


# -- writes ----------------------------------------------------------------------------


def test_board_decision_with_if_match(client: Client, store: Any) -> None:
    r = client.post(API + "/beats/SH020/board", json={"status": "approved", "note": "lovely"},
                    headers={"If-Match": '"v1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"v1"'
    board = board_of(store, "SH020")
    assert (board.status, board.note, board.decided_by) == ("approved", "lovely", "tester")
    assert store.history(PROJECT, EPISODE, SCENE)[-1]["op"] == "board"


def test_actor_header_is_recorded(client: Client, store: Any) -> None:
    client.put(API + "/beats/SH030/primary", json={"take_id": "t1"},
               headers={"If-Match": "1", "X-Clapboard-Actor": "mara@studio"})
    assert store.history(PROJECT, EPISODE, SCENE)[-1]["actor"] == "mara@studio"


def test_write_without_if_match_is_428(client: Client, store: Any) -> None:
    r = client.post(API + "/beats/SH020/board", json={"status": "approved"})
    assert r.status_code == 428
    assert board_of(store, "SH020").status == "pending"


@pytest.mark.parametrize("headers,body", [
    ({"If-Match": "yesterday"}, {"status": "approved"}),
    ({"If-Match": '"v1"'}, {"status": "maybe"}),
    ({"If-Match": '"v1"'}, {"note": "no status"}),
])
def test_bad_input_is_422(client: Client, store: Any, headers: dict[str, str],
                          body: dict[str, Any]) -> None:
    assert client.post(API + "/beats/SH020/board", json=body, headers=headers).status_code == 422
    assert board_of(store, "SH020").status == "pending"


def test_unknown_take_is_422_unknown_beat_is_404(client: Client) -> None:
    r = client.put(API + "/beats/SH020/primary", json={"take_id": "t9"}, headers={"If-Match": "1"})
    assert r.status_code == 422 and r.json()["field"] == "take_id"
    r = client.put(API + "/beats/SH999/primary", json={"take_id": "t1"}, headers={"If-Match": "1"})
    assert r.status_code == 404


def test_conform_then_stale_writes_are_412(client: Client, store: Any) -> None:
    r = client.post(API + "/conform", json={"version": 2, "reason": "plan rev 7"},
                    headers={"If-Match": '"v1"'})
    assert r.status_code == 200 and r.headers["etag"] == '"v2"'
    assert store.load_active_with_version(PROJECT, EPISODE, SCENE)[1] == 2
    before = store.history(PROJECT, EPISODE, SCENE)
    stale = [
        client.post(API + "/conform", json={"version": 1}, headers={"If-Match": '"v1"'}),
        client.post(API + "/revert", headers={"If-Match": '"v1"'}),
        client.post(API + "/beats/SH020/board", json={"status": "approved"},
                    headers={"If-Match": '"v1"'}),
        client.post(API + "/lock", json={"reason": "final"}, headers={"If-Match": "1"}),
    ]
    for r in stale:
        assert r.status_code == 412, r.text
        assert r.json()["active_version"] == 2
    assert store.history(PROJECT, EPISODE, SCENE) == before  # nothing written
    r = client.post(API + "/revert", json={"reason": "too soon"}, headers={"If-Match": '"v2"'})
    assert r.status_code == 200 and r.json()["version"] == 1


def test_conform_to_unknown_version_is_404(client: Client) -> None:
    r = client.post(API + "/conform", json={"version": 99}, headers={"If-Match": '"v1"'})
    assert r.status_code == 404


def test_locked_scene_is_423(client: Client, store: Any) -> None:
    r = client.post(API + "/lock", json={"reason": "picture lock for the mix"},
                    headers={"If-Match": '"v1"'})
    assert r.status_code == 200 and r.json()["scene"]["locked"] is True
    refused = [
        client.post(API + "/conform", json={"version": 2}, headers={"If-Match": '"v1"'}),
        client.post(API + "/beats/SH020/board", json={"status": "rejected"},
                    headers={"If-Match": '"v1"'}),
        client.put(API + "/beats/SH030/primary", json={"take_id": "t1"},
                   headers={"If-Match": '"v1"'}),
    ]
    for r in refused:
        assert r.status_code == 423, r.text
        assert r.json()["lock_reason"] == "picture lock for the mix"
    assert board_of(store, "SH020").status == "pending"
    assert store.load_active_with_version(PROJECT, EPISODE, SCENE)[1] == 1
    assert client.post(API + "/unlock", headers={"If-Match": '"v1"'}).status_code == 200
    assert client.post(API + "/lock", json={"reason": ""},
                       headers={"If-Match": '"v1"'}).status_code == 422


def test_revert_without_history_is_409(client: Client) -> None:
    r = client.post(API + "/revert", headers={"If-Match": '"v1"'})
    assert r.status_code == 409 and r.json()["type"] == "NothingToRevertError"


@pytest.mark.parametrize("error,status", [
    (SceneStructureImmutableError(SCENE, 1, ["beats[0].beat_metadata.plan_shot"]), 409),
    (LockTimeoutError("SC_010.versions.lock", 10.0), 503),
])
def test_store_refusals_map_to_statuses(client: Client, store: Any,
                                        monkeypatch: pytest.MonkeyPatch, error: Exception,
                                        status: int) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(store, "decide_board", refuse)
    r = client.post(API + "/beats/SH020/board", json={"status": "approved"},
                    headers={"If-Match": '"v1"'})
    assert r.status_code == status
    assert r.json()["message"]


# -- pages -----------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_pages_render(client: Client) -> None:
    assert PROJECT in client.get("/").text
    assert EPISODE in client.get(f"/p/{PROJECT}").text
    table = client.get(f"/p/{PROJECT}/{EPISODE}").text
    assert SCENE in table and "6 succeeded" in table
    page = client.get(PAGE).text
    order = [m for m in re.findall(r'id="beat-(SH\d+)"', page)]
    assert order == ["SH010", "SH020", "SH030", "SH040", "SH050", "SH060"]
    assert f'src="/media/{PROJECT}/media/boards/SH010_0.png"' in page
    assert "SH040_3.png" in page and "file not found" in page  # placeholder with a reason
    assert "&#9733; Primary" in page or "★ Primary" in page
    assert "v1 active" in page
    versions = client.get(PAGE + "/versions").text
    assert "Diff &amp; conform" in versions
    diff = client.get(PAGE + "/diff?b=2").text
    assert "SH045" in diff and "Conform to v2" in diff
    assert "init" in client.get(PAGE + "/history").text


def test_page_errors(client: Client) -> None:
    r = client.get(f"/p/{PROJECT}/{EPISODE}/SC_404")
    assert r.status_code == 404 and "Not found" in r.text
    assert client.get(PAGE + "/revert").status_code == 409  # nothing to revert yet


def test_video_output_plays(client: Client, store: Any, tmp_path: Path) -> None:
    clip = tmp_path / "store" / "projects" / PROJECT / "media" / "takes" / "SH060_t1.webm"
    clip.write_bytes(b"\x1a\x45\xdf\xa3")

    def add(scene: Any) -> None:
        take = scene.beat("SH060").takes[0]
        take.status, take.outputs = "succeeded", ["media/takes/SH060_t1.webm"]
        scene.beat("SH060").primary_take_id = "t1"

    store.save_active_scene_status(PROJECT, EPISODE, SCENE, expected_version=1, mutate=add)
    page = client.get(PAGE).text
    assert f'<video src="/media/{PROJECT}/media/takes/SH060_t1.webm" controls' in page
    r = client.get(f"/media/{PROJECT}/media/takes/SH060_t1.webm")
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm"


def test_form_approve_redirects_with_message(client: Client, store: Any) -> None:
    token = csrf_of(client.get(PAGE).text)
    r = client.post(PAGE + "/board", data={"csrf": token, "expected_version": "1",
                                           "beat_id": "SH020", "decision": "rejected",
                                           "note": "too dark"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == PAGE + "#beat-SH020"
    assert board_of(store, "SH020").status == "rejected"
    page = client.get(PAGE).text
    assert "Board of SH020 rejected." in page
    assert "Board of SH020 rejected." not in client.get(PAGE).text  # one-shot message


def test_form_primary_lock_conform_revert(client: Client, store: Any) -> None:
    token = csrf_of(client.get(PAGE).text)
    post = lambda path, **data: client.post(PAGE + path, data={"csrf": token, **data},  # noqa: E731
                                            follow_redirects=False)
    assert post("/primary", expected_version="1", beat_id="SH030", take_id="t1").status_code == 303
    assert store.load_active(PROJECT, EPISODE, SCENE).beat("SH030").primary_take_id == "t1"
    assert post("/lock", expected_version="1", reason="mix").status_code == 303
    assert store.load_active(PROJECT, EPISODE, SCENE).locked
    assert post("/unlock", expected_version="1").status_code == 303
    assert post("/conform", expected_active="1", version="2").status_code == 303
    assert post("/revert", expected_active="2", reason="oops").status_code == 303
    ops = [e["op"] for e in store.history(PROJECT, EPISODE, SCENE)]
    assert ops[-5:] == ["primary", "lock", "unlock", "conform", "revert"]


def test_stale_form_shows_conflict_and_writes_nothing(client: Client, store: Any) -> None:
    token = csrf_of(client.get(PAGE).text)
    store.conform(PROJECT, EPISODE, SCENE, 2, actor="someone-else")
    before = store.history(PROJECT, EPISODE, SCENE)
    r = client.post(PAGE + "/board", data={"csrf": token, "expected_version": "1",
                                           "beat_id": "SH020", "decision": "approved"})
    assert r.status_code == 412
    assert "Stale page" in r.text and "is now v2" in r.text and "Nothing was written" in r.text
    assert store.history(PROJECT, EPISODE, SCENE) == before


def test_locked_form_shows_lock_message(client: Client, store: Any) -> None:
    token = csrf_of(client.get(PAGE).text)
    store.lock_scene(PROJECT, EPISODE, SCENE, "final mix", actor="lead")
    r = client.post(PAGE + "/conform", data={"csrf": token, "expected_active": "1",
                                             "version": "2"})
    assert r.status_code == 423 and "picture-locked by lead" in r.text
    assert store.load_active_with_version(PROJECT, EPISODE, SCENE)[1] == 1


def test_form_bad_input_is_422(client: Client) -> None:
    token = csrf_of(client.get(PAGE).text)
    r = client.post(PAGE + "/lock", data={"csrf": token, "expected_version": "1"})
    assert r.status_code == 422 and "reason" in r.text
    r = client.post(PAGE + "/board", data={"csrf": token, "expected_version": "x",
                                           "beat_id": "SH020", "decision": "approved"})
    assert r.status_code == 422
