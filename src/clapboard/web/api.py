"""The JSON API (``/api/...``), described by FastAPI's ``/openapi.json``.

Reads answer with an ``ETag`` naming the scene's active version (``"v3"``). Writes
must send it back in ``If-Match``: the API passes it to the Store as
``expected_version`` / ``expected_active``, so the check and the write happen under
the same batch lock. Status writes (board, primary take, lock) *merge* under that
lock — two operators deciding different beats both land — while a move of the active
version in between is refused with 412. Missing ``If-Match`` is 428.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from clapboard.models import Scene
from clapboard.paths import episode_token
from clapboard.store import Store
from clapboard.web.app import WebContext, web
from clapboard.web.errors import HttpProblem
from clapboard.web.views import scene_rows

router = APIRouter(prefix="/api", tags=["api"])
Ctx = Annotated[WebContext, Depends(web)]
IfMatch = Annotated[str | None, Header(alias="If-Match", description='e.g. "v3"')]

_ETAG = re.compile(r'^(?:W/)?"?v?(\d+)"?$')


def etag(version: int) -> str:
    return f'"v{version}"'


def expected_from(if_match: str | None) -> int:
    """The version an ``If-Match`` header names (``"v3"``, ``"3"``, ``3``, ``W/"v3"``)."""
    if if_match is None:
        raise HttpProblem(428, "precondition_required",
                          'writes need If-Match with the ETag of the scene they are based on '
                          '(e.g. If-Match: "v3"); GET the scene to learn it')
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise HttpProblem(422, "invalid", f"If-Match: not a version ETag: {if_match!r}")
    return int(match.group(1))


def _project(store: Store, project: str) -> str:
    if project not in store.list_projects():
        raise HttpProblem(404, "not_found", f"no project {project!r}")
    return project


def _episode(store: Store, project: str, episode: str) -> str:
    _project(store, project)
    try:
        ep = episode_token(episode)
    except ValueError:
        raise HttpProblem(404, "not_found", f"no episode {episode!r}") from None
    if ep not in store.list_episodes(project):
        raise HttpProblem(404, "not_found", f"no episode {ep} in project {project!r}")
    return ep


def scene_payload(ctx: WebContext, project: str, ep: str, batch: str, scene: Scene,
                  version: int) -> dict[str, Any]:
    """A scene as the API returns it; ``media`` maps each reference to its URL (or null)."""
    refs = [f for b in scene.beats if b.board for f in b.board.frames]
    refs += [o for b in scene.beats for t in b.takes for o in t.outputs]
    return {
        "project": project, "episode": ep, "batch_id": batch, "version": version,
        "etag": etag(version), "take_counts": scene.take_counts(), "scene": scene.to_dict(),
        "media": {str(r): ctx.media.describe(project, r).url for r in refs},
    }


def _scene_response(ctx: WebContext, response: Response, project: str, ep: str, batch: str,
                    scene: Scene | None = None) -> dict[str, Any]:
    loaded, version = ctx.store.load_active_with_version(project, ep, batch)
    response.headers["ETag"] = etag(version)
    return scene_payload(ctx, project, ep, batch, scene or loaded, version)


# -- reads ---------------------------------------------------------------------------


@router.get("/projects", summary="List projects")
def list_projects(ctx: Ctx) -> dict[str, Any]:
    return {"projects": ctx.store.list_projects()}


@router.get("/projects/{project}/episodes", summary="List a project's episodes")
def list_episodes(ctx: Ctx, project: str) -> dict[str, Any]:
    return {"project": project,
            "episodes": ctx.store.list_episodes(_project(ctx.store, project))}


@router.get("/projects/{project}/episodes/{episode}/scenes",
            summary="Scenes with active version, beats, take status counts and lock")
def list_scenes(ctx: Ctx, project: str, episode: str) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    return {"project": project, "episode": ep,
            "scenes": [vars(r) for r in scene_rows(ctx.store, project, ep)]}


SCENE = "/projects/{project}/episodes/{episode}/scenes/{batch}"


@router.get(SCENE, summary="The active version of a scene (ETag: its version)")
def get_scene(ctx: Ctx, response: Response, project: str, episode: str,
              batch: str) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    return _scene_response(ctx, response, project, ep, batch)


@router.get(SCENE + "/versions", summary="Registered versions; the active one is marked")
def get_versions(ctx: Ctx, response: Response, project: str, episode: str,
                 batch: str) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    versions = ctx.store.versions(project, ep, batch)
    active = next((v["version"] for v in versions if v.get("active")), 1)
    response.headers["ETag"] = etag(active)
    return {"batch_id": batch, "active_version": active, "versions": versions}


@router.get(SCENE + "/diff", summary="Structural diff between two versions")
def get_diff(ctx: Ctx, project: str, episode: str, batch: str,
             a: Annotated[int, Query(ge=1)], b: Annotated[int, Query(ge=1)]) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    return ctx.store.diff(project, ep, batch, a, b)


@router.get(SCENE + "/history", summary="The scene's journal, oldest first")
def get_history(ctx: Ctx, project: str, episode: str, batch: str) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    ctx.store.load_active_with_version(project, ep, batch)  # 404 for an unknown scene
    return {"batch_id": batch, "history": ctx.store.history(project, ep, batch)}


# -- writes --------------------------------------------------------------------------


class BoardDecision(BaseModel):
    status: Literal["approved", "rejected", "pending"]
    note: str | None = Field(default=None, max_length=2000)


class PrimaryTake(BaseModel):
    take_id: str | None = Field(description="a take of the beat; null clears the choice")


class LockRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class MoveRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class ConformRequest(MoveRequest):
    version: int = Field(ge=1)


def _actor(ctx: WebContext, request: Request) -> str:
    claimed = request.headers.get("x-clapboard-actor", "").strip()
    if claimed and len(claimed) <= 100 and claimed.isprintable():
        return claimed
    return ctx.actor


@router.post(SCENE + "/beats/{beat_id}/board", summary="Approve / reject a beat's board")
def post_board(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
               batch: str, beat_id: str, body: BoardDecision,
               if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    scene = ctx.store.decide_board(project, ep, batch, beat_id, body.status, note=body.note,
                                   expected_version=expected_from(if_match),
                                   refuse_locked=True, actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch, scene)


@router.put(SCENE + "/beats/{beat_id}/primary", summary="Set (or clear) a beat's primary take")
def put_primary(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
                batch: str, beat_id: str, body: PrimaryTake,
                if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    scene = ctx.store.set_primary_take(project, ep, batch, beat_id, body.take_id,
                                       expected_version=expected_from(if_match),
                                       refuse_locked=True, actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch, scene)


@router.post(SCENE + "/lock", summary="Picture-lock the scene (refuses version moves)")
def post_lock(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
              batch: str, body: LockRequest, if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    scene = ctx.store.lock_scene(project, ep, batch, body.reason,
                                 expected_version=expected_from(if_match),
                                 actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch, scene)


@router.post(SCENE + "/unlock", summary="Lift the picture lock")
def post_unlock(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
                batch: str, if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    scene = ctx.store.unlock_scene(project, ep, batch, expected_version=expected_from(if_match),
                                   actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch, scene)


@router.post(SCENE + "/conform", summary="Make a registered version the active one")
def post_conform(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
                 batch: str, body: ConformRequest, if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    ctx.store.conform(project, ep, batch, body.version, expected_active=expected_from(if_match),
                      reason=body.reason, actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch)


@router.post(SCENE + "/revert", summary="Move the active version back to where it came from")
def post_revert(ctx: Ctx, request: Request, response: Response, project: str, episode: str,
                batch: str, body: MoveRequest | None = None,
                if_match: IfMatch = None) -> dict[str, Any]:
    ep = _episode(ctx.store, project, episode)
    ctx.store.revert(project, ep, batch, expected_active=expected_from(if_match),
                     reason=body.reason if body else None, actor=_actor(ctx, request))
    return _scene_response(ctx, response, project, ep, batch)
