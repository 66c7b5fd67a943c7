"""Operator actions from HTML forms (POST), each through one guarded Store writer.

Every form carries the CSRF field and the version its page was rendered from. On
success the browser is redirected (POST → redirect → GET) to the scene page with a
one-line confirmation; on a refusal the scene page is rendered again from the fresh
state with a banner that says what happened and that nothing was written, under
the refusal's status code (412 stale, 423 locked, 409 conflict, 422 bad input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from clapboard.errors import (
    ClapboardError,
    SceneLockedError,
    SceneNotFoundError,
    SceneVersionConflictError,
)
from clapboard.web.api import _episode
from clapboard.web.app import WebContext, web
from clapboard.web.errors import HttpProblem, status_for
from clapboard.web.pages import FLASH_COOKIE, scene_page, scene_url

router = APIRouter(include_in_schema=False)
BASE = "/p/{project}/{episode}/{batch}"


def _int_field(form: FormData, name: str) -> int:
    value = form.get(name)
    # isdecimal, not isdigit: "²" is a digit that int() refuses (it was a 500).
    if not isinstance(value, str) or not value.strip().isdecimal():
        raise HttpProblem(422, "invalid", f"form field {name!r} must be a version number")
    return int(value)


def _text(form: FormData, name: str, *, limit: int = 2000) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    if len(value) > limit:
        raise HttpProblem(422, "invalid", f"form field {name!r} is longer than {limit} characters")
    return value.strip()


def _required(form: FormData, name: str) -> str:
    value = _text(form, name)
    if value is None:
        raise HttpProblem(422, "invalid", f"form field {name!r} is required")
    return value


def explain(exc: ClapboardError) -> str:
    """The banner text for a refused action: what happened, and what to do now."""
    if isinstance(exc, SceneVersionConflictError):
        return (f"This scene changed since you loaded the page: you were looking at "
                f"v{exc.expected_version}, the active version is now v{exc.actual_version}. "
                "Nothing was written. The page below shows the current state; check it and "
                "apply your change again.")
    if isinstance(exc, SceneLockedError):
        by = f" by {exc.locked_by}" if exc.locked_by else ""
        return (f"Scene {exc.scene_id} is picture-locked{by} (reason: {exc.lock_reason}). "
                "Nothing was written. Unlock it first if the change is really needed.")
    return f"{exc}. Nothing was written."


async def _act(request: Request, project: str, episode: str, batch: str,
               action: Callable[[WebContext, str, FormData], str], anchor: str = "") -> Response:
    """Check CSRF, run ``action`` (a blocking Store write) and answer as described above."""
    ctx = web(request)
    form = await request.form()
    if not ctx.guard.csrf_ok(request, form.get("csrf")):
        raise HttpProblem(403, "csrf", "This form expired or was sent from another site; "
                          "reload the page and try again. Nothing was written.")
    ep = await run_in_threadpool(_episode, ctx.store, project, episode)
    try:
        message = await run_in_threadpool(action, ctx, ep, form)
    except SceneNotFoundError:
        raise  # the scene itself is gone: nothing to re-render, the error page says so
    except HttpProblem as e:
        if e.status != 422:
            raise
        return await _refused(request, project, ep, batch, 422, e.message)
    except ClapboardError as e:
        return await _refused(request, project, ep, batch, status_for(e)[0], explain(e))
    response = RedirectResponse(scene_url(project, ep, batch) + anchor, status_code=303)
    response.set_cookie(FLASH_COOKIE, quote(f"ok|{message}"), max_age=60, httponly=True,
                        samesite="strict", path="/")
    return response


async def _refused(request: Request, project: str, ep: str, batch: str, status: int,
                   text: str) -> Response:
    return await run_in_threadpool(
        lambda: scene_page(request, project, ep, batch, status=status,
                           problem={"status": status, "text": text}))


def _beat_anchor(form_beat: Any) -> str:
    return f"#beat-{quote(form_beat)}" if isinstance(form_beat, str) else ""


@router.post(BASE + "/board")
async def board(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        beat = _required(form, "beat_id")
        decision = _required(form, "decision")
        if decision not in ("approved", "rejected", "pending"):
            raise HttpProblem(422, "invalid", f"unknown board decision {decision!r}")
        ctx.store.decide_board(project, ep, batch, beat, decision, note=_text(form, "note"),
                               expected_version=_int_field(form, "expected_version"),
                               refuse_locked=True, actor=ctx.actor)
        verb = {"approved": "approved", "rejected": "rejected", "pending": "reset"}[decision]
        return f"Board of {beat} {verb}."

    form = await request.form()
    return await _act(request, project, episode, batch, action, _beat_anchor(form.get("beat_id")))


@router.post(BASE + "/primary")
async def primary(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        beat = _required(form, "beat_id")
        take = _required(form, "take_id")
        ctx.store.set_primary_take(project, ep, batch, beat, take,
                                   expected_version=_int_field(form, "expected_version"),
                                   refuse_locked=True, actor=ctx.actor)
        return f"Take {take} is now the primary take of {beat}."

    form = await request.form()
    return await _act(request, project, episode, batch, action, _beat_anchor(form.get("beat_id")))


@router.post(BASE + "/lock")
async def lock(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        reason = _required(form, "reason")
        ctx.store.lock_scene(project, ep, batch, reason,
                             expected_version=_int_field(form, "expected_version"),
                             actor=ctx.actor)
        return f"Scene {batch} is picture-locked ({reason})."

    return await _act(request, project, episode, batch, action)


@router.post(BASE + "/unlock")
async def unlock(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        ctx.store.unlock_scene(project, ep, batch,
                               expected_version=_int_field(form, "expected_version"),
                               actor=ctx.actor)
        return f"Scene {batch} is unlocked."

    return await _act(request, project, episode, batch, action)


@router.post(BASE + "/conform")
async def conform(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        expected = _int_field(form, "expected_active")
        target = ctx.store.conform(project, ep, batch, _int_field(form, "version"),
                                   expected_active=expected, reason=_text(form, "reason"),
                                   actor=ctx.actor)
        return f"Conformed {batch} to v{target} (was v{expected})."

    return await _act(request, project, episode, batch, action)


@router.post(BASE + "/revert")
async def revert(request: Request, project: str, episode: str, batch: str) -> Response:
    def action(ctx: WebContext, ep: str, form: FormData) -> str:
        expected = _int_field(form, "expected_active")
        target = ctx.store.revert(project, ep, batch, expected_active=expected,
                                  reason=_text(form, "reason"), actor=ctx.actor)
        return f"Reverted {batch} to v{target} (was v{expected})."

    return await _act(request, project, episode, batch, action)
