"""Who may reach the server and what it will serve: token, host, origin, CSRF, media paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from clapboard.web import create_app
from clapboard.web.media import MediaLibrary, MediaRefused
from tests.web_support import EPISODE, PROJECT, SCENE, build_sample, make_client

TOKEN = "s3cret-token-for-tests-0123"
PAGE = f"/p/{PROJECT}/{EPISODE}/{SCENE}"
FRAME = f"/media/{PROJECT}/media/boards/SH010_0.png"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path):  # type: ignore[no-untyped-def]
    s = build_sample(root, small=True)
    yield s
    s.close()


@pytest.fixture
def client(store: Any) -> Any:
    return make_client(create_app(store))


# -- media -----------------------------------------------------------------------------


def test_media_inside_the_project_is_served(client: Any) -> None:
    r = client.get(FRAME)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG") and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", [
    f"/media/{PROJECT}/media/%2e%2e/%2e%2e/%2e%2e/secret.png",
    f"/media/{PROJECT}/%2e%2e/other/media/x.png",
    f"/media/{PROJECT}/media/boards/..%2f..%2f..%2fsecret.png",
    f"/media/{PROJECT}/%2Fetc%2Fpasswd",
    f"/media/{PROJECT}//etc/passwd",
    f"/media/{PROJECT}/media\\..\\..\\secret.png",
    f"/media/{PROJECT}/orchestration/scenes/{EPISODE}_{SCENE}.versions.json",
    f"/media/{PROJECT}/media/boards/missing.png",
    "/media/other-project/media/boards/SH010_0.png",
    "/media/..%2f..%2fetc/passwd.png",
])
def test_media_outside_or_not_media_is_refused(client: Any, root: Path, path: str) -> None:
    (root / "projects" / "secret.png").write_bytes(b"\x89PNG secret")
    r = client.get(path)
    assert r.status_code in (403, 404), (path, r.status_code)
    assert b"secret" not in r.content


def test_symlink_escapes_are_refused(client: Any, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loot.png").write_bytes(b"\x89PNG loot")
    media = root / "projects" / PROJECT / "media"
    os.symlink(outside / "loot.png", media / "link.png")
    os.symlink(outside, media / "linkdir")
    for path in ("media/link.png", "media/linkdir/loot.png"):
        r = client.get(f"/media/{PROJECT}/{path}")
        assert r.status_code == 403, path
        assert b"loot" not in r.content
    # an inside symlink is fine: it is judged by where it leads
    os.symlink(media / "boards" / "SH010_0.png", media / "alias.png")
    assert client.get(f"/media/{PROJECT}/media/alias.png").status_code == 200


def test_references_outside_render_as_placeholders(store: Any, root: Path, tmp_path: Path) -> None:
    library = MediaLibrary(root / "projects")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    inside = root / "projects" / PROJECT / "media" / "boards" / "SH010_0.png"
    assert library.describe(PROJECT, str(inside)).url == \
        f"/media/{PROJECT}/media/boards/SH010_0.png"  # absolute but inside: fine
    for ref in (str(tmp_path / "x.png"), "../../x.png", "media/none.png", "notes.txt", "a\x00.png"):
        shown = library.describe(PROJECT, ref)
        assert shown.url is None and shown.kind == "missing" and shown.reason, ref
    with pytest.raises(MediaRefused) as refused:
        library.resolve_request(PROJECT, "media/../../x.png")
    assert refused.value.status == 403
    assert MediaLibrary(None).describe(PROJECT, "media/boards/SH010_0.png").url is None


# -- token -----------------------------------------------------------------------------


@pytest.fixture
def guarded(store: Any) -> Any:
    return make_client(create_app(store, token=TOKEN), "http://192.0.2.10:8000")


@pytest.mark.parametrize("path", ["/", PAGE, "/api/projects", FRAME, "/static/app.css",
                                  "/openapi.json"])
def test_token_required_on_every_request(guarded: Any, path: str) -> None:
    assert guarded.get(path).status_code == 401
    assert guarded.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_token_query_sets_cookie_and_strips_itself(guarded: Any) -> None:
    r = guarded.get(f"{PAGE}?token=wrong", follow_redirects=False)
    assert r.status_code == 401
    r = guarded.get(f"{PAGE}?token={TOKEN}&x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?x=1"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and TOKEN not in cookie
    assert guarded.get(PAGE).status_code == 200  # the cookie now carries the session
    assert guarded.get("/api/projects").json() == {"projects": [PROJECT]}


def test_api_401_is_json_page_401_is_html(guarded: Any) -> None:
    assert guarded.get("/api/projects").json()["error"] == "unauthorized"
    assert "Token needed" in guarded.get("/").text


def test_without_token_only_loopback_hosts(store: Any) -> None:
    app = create_app(store)
    assert make_client(app, "http://localhost:8000").get("/").status_code == 200
    assert make_client(app, "http://[::1]:8000").get("/").status_code == 200
    rebound = make_client(app, "http://evil.example:8000")
    assert rebound.get("/api/projects").status_code == 400
    # all of 127.0.0.0/8 is loopback: `serve --host 127.0.0.2` binds without a token,
    # so its own address must be answered (it was refused with 400)
    assert make_client(app, "http://127.0.0.2:8000").get("/").status_code == 200
    assert make_client(app, "http://[0:0:0:0:0:0:0:1]:8000").get("/").status_code == 200
    for host in ("http://127.0.0.1.evil.example", "http://localhost.evil.example:8000"):
        assert make_client(app, host).get("/api/projects").status_code == 400, host


# -- cross-site requests ---------------------------------------------------------------


def _token(client: Any) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(PAGE).text)
    assert match
    return match.group(1)


def _board(client: Any, **extra: Any) -> Any:
    data = {"expected_version": "1", "beat_id": "SH020", "decision": "approved"}
    return client.post(PAGE + "/board", data={**data, **extra.pop("data", {})},
                       follow_redirects=False, **extra)


def test_form_without_or_with_forged_csrf_is_403(client: Any, store: Any) -> None:
    token = _token(client)
    assert _board(client).status_code == 403
    assert _board(client, data={"csrf": "0" * 64}).status_code == 403
    fresh = make_client(create_app(store))  # another browser: its cookie differs
    assert _board(fresh, data={"csrf": token}).status_code == 403
    board = store.load_active(PROJECT, EPISODE, SCENE).beat("SH020").board
    assert board.status == "pending"
    assert _board(client, data={"csrf": token}).status_code == 303


@pytest.mark.parametrize("version", ["²", "-1", "v1", ""])
def test_form_with_a_bad_version_number_is_422_not_500(client: Any, store: Any,
                                                       version: str) -> None:
    r = _board(client, data={"csrf": _token(client), "expected_version": version})
    assert r.status_code == 422 and "version number" in r.text
    assert store.load_active(PROJECT, EPISODE, SCENE).beat("SH020").board.status == "pending"


def test_cross_origin_posts_are_403(client: Any, store: Any) -> None:
    token = _token(client)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}):
        r = _board(client, data={"csrf": token}, headers=headers)
        assert r.status_code == 403, headers
    api = f"/api/projects/{PROJECT}/episodes/{EPISODE}/scenes/{SCENE}/lock"
    r = client.post(api, json={"reason": "x"}, headers={"If-Match": "1",
                                                        "Origin": "http://evil.example"})
    assert r.status_code == 403
    assert not store.load_active(PROJECT, EPISODE, SCENE).locked
    same = _board(client, data={"csrf": token}, headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 303


def test_csrf_cookie_is_strict_and_pages_are_hardened(store: Any) -> None:
    r = make_client(create_app(store)).get(PAGE)
    assert "SameSite=strict" in r.headers["set-cookie"]
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in re.sub(r"https?://127\.0\.0\.1", "", r.text.split("<main>")[0])


# -- the serve command -----------------------------------------------------------------


def _serve(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    from click.testing import CliRunner

    from clapboard.cli import cli
    from clapboard.cli.registry import load_commands

    load_commands()
    return CliRunner().invoke(cli, ["--root", str(root), "serve", *args], env=env)


def test_serve_refuses_non_loopback_without_token(root: Path, store: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAPBOARD_TOKEN", raising=False)
    result = _serve(root, "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "refusing to bind 0.0.0.0" in result.output and "--token" in result.output
    short = _serve(root, "--host", "0.0.0.0", "--token", "abc")
    assert short.exit_code == 2 and "too short" in short.output


def test_serve_starts_with_token(root: Path, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(self: Any, sockets: Any = None) -> None:
        seen["host"], seen["port"] = self.config.host, self.config.port
        seen["app"] = self.config.app

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    result = _serve(root, "--host", "0.0.0.0", "--port", "8765",
                    env={"CLAPBOARD_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 8765)
    assert f"?token={TOKEN}" in result.output
    app_guard = seen["app"].state.web.guard
    assert app_guard.token == TOKEN and app_guard.allowed_hosts is None
    local = _serve(root, "--port", "0")
    assert local.exit_code == 0 and seen["host"] == "127.0.0.1" and seen["port"] > 0
