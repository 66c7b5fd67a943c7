"""The HTML pages (GET only): projects → episodes → scenes → scene → versions / diff / history.

Each page that offers an action embeds the version it was rendered from; the forms
send it back, and :mod:`clapboard.web.actions` hands it to the Store's guard.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from clapboard.errors import NothingToRevertError
from clapboard.manifest import active_of
from clapboard.web.api import _episode, _project
from clapboard.web.app import WebContext, web
from clapboard.web.errors import HttpProblem
from clapboard.web.media import MediaRefused
from clapboard.web.views import beat_view, diff_summary, scene_rows

router = APIRouter(include_in_schema=False)
Ctx = Annotated[WebContext, Depends(web)]
FLASH_COOKIE = "clapboard_flash"


def scene_url(project: str, ep: str, batch: str, tail: str = "") -> str:
    return f"/p/{quote(project)}/{quote(ep)}/{quote(batch)}{tail}"


def render(request: Request, name: str, data: dict[str, Any], status: int = 200) -> Response:
    """A page with the CSRF field value and the one-shot flash message filled in."""
    ctx = web(request)
    flash = None
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        kind, _, text = unquote(raw).partition("|")
        flash = {"kind": kind if kind in ("ok", "error") else "ok", "text": text}
    cookie = getattr(request.state, "csrf_cookie", None)
    page = {"csrf_token": ctx.guard.csrf_for(cookie) if cookie else "", "flash": flash,
            "scene_url": scene_url, **data}
    response = ctx.templates.TemplateResponse(request, name, page, status_code=status)
    if raw:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def crumbs(project: str | None = None, ep: str | None = None,
           batch: str | None = None) -> list[tuple[str, str]]:
    out = [("Projects", "/")]
    if project:
        out.append((project, f"/p/{quote(project)}"))
    if project and ep:
        out.append((ep, f"/p/{quote(project)}/{quote(ep)}"))
    if project and ep and batch:
        out.append((batch, scene_url(project, ep, batch)))
    return out


@router.get("/")
def projects_page(request: Request, ctx: Ctx) -> Response:
    projects = [(p, len(ctx.store.list_episodes(p))) for p in ctx.store.list_projects()]
    return render(request, "projects.html", {"projects": projects, "crumbs": crumbs()})


@router.get("/p/{project}")
def episodes_page(request: Request, ctx: Ctx, project: str) -> Response:
    _project(ctx.store, project)
    episodes = [(e, len(ctx.store.list_batches(project, e)))
                for e in ctx.store.list_episodes(project)]
    return render(request, "episodes.html",
                  {"project": project, "episodes": episodes, "crumbs": crumbs(project)})


@router.get("/p/{project}/{episode}")
def scenes_page(request: Request, ctx: Ctx, project: str, episode: str) -> Response:
    ep = _episode(ctx.store, project, episode)
    return render(request, "scenes.html", {
        "project": project, "ep": ep, "rows": scene_rows(ctx.store, project, ep),
        "crumbs": crumbs(project, ep)})


def scene_page(request: Request, project: str, episode: str, batch: str, *,
               problem: dict[str, Any] | None = None, status: int = 200) -> Response:
    """The scene page; ``problem`` is the banner of a refused action, shown on fresh state."""
    ctx = web(request)
    ep = _episode(ctx.store, project, episode)
    scene, version = ctx.store.load_active_with_version(project, ep, batch)
    manifest = ctx.store.manifest(project, ep, batch)
    beats = [beat_view(project, ctx.media, i, b) for i, b in enumerate(scene.beats, 1)]
    return render(request, "scene.html", {
        "project": project, "ep": ep, "batch": batch, "scene": scene, "version": version,
        "versions": len(manifest.get("versions") or []) if manifest else 1,
        "beats": beats, "counts": scene.take_counts(), "problem": problem,
        "approved": sum(1 for b in beats if b.board_status == "approved"),
        "crumbs": crumbs(project, ep, batch)}, status)


@router.get("/p/{project}/{episode}/{batch}")
def scene_route(request: Request, project: str, episode: str, batch: str) -> Response:
    return scene_page(request, project, episode, batch)


@router.get("/p/{project}/{episode}/{batch}/versions")
def versions_page(request: Request, ctx: Ctx, project: str, episode: str,
                  batch: str) -> Response:
    ep = _episode(ctx.store, project, episode)
    versions = ctx.store.versions(project, ep, batch)
    manifest = ctx.store.manifest(project, ep, batch)
    active = active_of(manifest)
    history = list(reversed((manifest or {}).get("history") or []))
    return render(request, "versions.html", {
        "project": project, "ep": ep, "batch": batch, "versions": versions, "active": active,
        "moves": history, "crumbs": [*crumbs(project, ep, batch), ("Versions", "")]})


def _diff_page(request: Request, ctx: WebContext, project: str, ep: str, batch: str, a: int,
               b: int, *, mode: str) -> Response:
    diff = ctx.store.diff(project, ep, batch, a, b)
    scene, active = ctx.store.load_active_with_version(project, ep, batch)
    side_a = {x.beat_id: x for x in ctx.store.load_version(project, ep, batch, a).beats}
    beats_b = ctx.store.load_version(project, ep, batch, b).beats
    for change in diff["changed"]:
        change["fields"] = _fields(change["old"], change["new"])
    marks = {d["beat_id"]: "added" for d in diff["added"]}
    marks.update({d["beat_id"]: "moved" for d in diff["moved"]})
    marks.update({d["beat_id"]: "changed" for d in diff["changed"] if d["beat_id"] not in marks})
    return render(request, "diff.html", {
        "project": project, "ep": ep, "batch": batch, "a": a, "b": b, "diff": diff,
        "summary": diff_summary(diff), "active": active, "locked": scene.locked,
        "lock_reason": scene.lock_reason, "mode": mode, "marks": marks,
        "beats_a": list(side_a), "beats_b": [x.beat_id for x in beats_b],
        "crumbs": [*crumbs(project, ep, batch), ("Versions", scene_url(project, ep, batch,
                                                                       "/versions")),
                   (f"v{a} → v{b}", "")]})


def _fields(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """The keys that differ when a structural value is a dict (a plan shot), else one row."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]
    return [("value", old, new)]


@router.get("/p/{project}/{episode}/{batch}/diff")
def diff_page(request: Request, ctx: Ctx, project: str, episode: str, batch: str,
              b: Annotated[int, Query(ge=1)],
              a: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """Diff ``a`` (default: active) → ``b``; offers a conform to ``b`` when ``a`` is active."""
    ep = _episode(ctx.store, project, episode)
    if a is None:
        a = ctx.store.load_active_with_version(project, ep, batch)[1]
    return _diff_page(request, ctx, project, ep, batch, a, b, mode="conform")


@router.get("/p/{project}/{episode}/{batch}/revert")
def revert_page(request: Request, ctx: Ctx, project: str, episode: str, batch: str) -> Response:
    """What a revert would do, before doing it."""
    ep = _episode(ctx.store, project, episode)
    manifest = ctx.store.manifest(project, ep, batch)
    history = (manifest or {}).get("history") or []
    if not history:
        raise NothingToRevertError(f"batch {batch} has no version move to revert")
    return _diff_page(request, ctx, project, ep, batch, active_of(manifest),
                      int(history[-1]["from"]), mode="revert")


@router.get("/p/{project}/{episode}/{batch}/history")
def history_page(request: Request, ctx: Ctx, project: str, episode: str, batch: str) -> Response:
    ep = _episode(ctx.store, project, episode)
    ctx.store.load_active_with_version(project, ep, batch)  # 404 for an unknown scene
    events = list(reversed(ctx.store.history(project, ep, batch)))
    return render(request, "history.html", {
        "project": project, "ep": ep, "batch": batch, "events": events,
        "crumbs": [*crumbs(project, ep, batch), ("History", "")]})


@router.get("/media/{project}/{path:path}")
def media_file(ctx: Ctx, project: str, path: str) -> Response:
    try:
        _project(ctx.store, project)
        file, content_type = ctx.media.resolve_request(project, path)
    except MediaRefused as e:
        raise HttpProblem(e.status, "media_refused", f"media not served: {e.reason}") from None
    except ValueError:
        raise HttpProblem(404, "not_found", "no such project") from None
    return FileResponse(file, media_type=content_type,
                        headers={"Cache-Control": "private, max-age=60"})
