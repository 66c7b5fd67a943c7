"""The app factory: one FastAPI app over one Store, pages and JSON API side by side.

The app never writes except through the Store's guarded writers, so the CLI, the web
UI and runners share one set of rules (version guard, structure guard, batch lock).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from clapboard._version import __version__
from clapboard.errors import ClapboardError
from clapboard.paths import resolve_actor
from clapboard.store import Store
from clapboard.web.errors import HttpProblem, problem, status_for
from clapboard.web.media import MediaLibrary
from clapboard.web.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    LOOPBACK_HOSTS,
    UNSAFE_METHODS,
    Guard,
    new_csrf_cookie,
)

HERE = Path(__file__).resolve().parent
#: No inline script or style, nothing from another origin (there is no CDN here).
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
       "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@dataclass
class WebContext:
    """Everything a route needs, hung on ``app.state.web``."""

    store: Store
    guard: Guard
    media: MediaLibrary
    templates: Jinja2Templates
    actor: str


def short(value: object, limit: int = 90) -> str:
    """A journal or diff value on one line: JSON for structures, cut at ``limit``."""
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_media_root(store: Store) -> Path | None:
    """``<store root>/projects`` for a filesystem store; None where there is no folder."""
    root = getattr(store.backend, "root", None)
    return Path(root) / "projects" if isinstance(root, str | os.PathLike) else None


def create_app(store: Store, *, token: str | None = None,
               media_root: str | os.PathLike[str] | None = None,
               allowed_hosts: frozenset[str] | None = None, actor: str | None = None) -> FastAPI:
    """Build the review app.

    ``token``: when set, every request must present it (header or cookie). Without a
    token only loopback ``Host`` names are accepted (``allowed_hosts`` overrides;
    with a token any host is accepted unless ``allowed_hosts`` says otherwise).
    ``media_root``: the folder holding ``<project>/`` media folders (default: the
    filesystem store's ``projects`` folder). ``actor``: recorded on every write
    (default: ``CLAPBOARD_ACTOR`` or user@host, tagged ``(web)``).
    """
    if allowed_hosts is None and token is None:
        allowed_hosts = LOOPBACK_HOSTS
    app = FastAPI(title="clapboard", version=__version__, docs_url=None, redoc_url=None,
                  description="Review boards and takes, and move scenes between versions. "
                  "Writes take If-Match with the version they were based on.")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["app_version"] = __version__
    templates.env.filters["short"] = short
    app.state.web = WebContext(
        store=store, guard=Guard(token=token, allowed_hosts=allowed_hosts),
        media=MediaLibrary(media_root if media_root is not None else default_media_root(store)),
        templates=templates, actor=actor or f"{resolve_actor(None)} (web)",
    )
    app.add_middleware(BaseHTTPMiddleware, dispatch=_gate)
    app.add_exception_handler(ClapboardError, _clapboard_error)  # type: ignore[arg-type]
    app.add_exception_handler(HttpProblem, _http_problem)  # type: ignore[arg-type]
    from clapboard.web import actions, api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app


def web(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _refuse(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": code, "status": status, "message": message},
                            status_code=status)
    ctx = web(request)
    return ctx.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "csrf_token": ""},
        status_code=status)


async def _gate(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """Host, token and origin checks for every request; security headers on every answer."""
    ctx = web(request)
    guard = ctx.guard
    if not guard.host_ok(request):
        return _refuse(request, 400, "bad_host",
                       "unexpected Host header: without a token this server only answers "
                       "loopback names (start it with --token to serve other hosts)")
    query_token = request.query_params.get("token")
    if guard.token is not None and query_token is not None:
        if not guard.token_matches(query_token):
            return _refuse(request, 401, "unauthorized", "wrong token")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response: Response = RedirectResponse(target, status_code=303)
        response.set_cookie(AUTH_COOKIE, guard.cookie_value(), httponly=True, samesite="lax",
                            path="/")
        return _harden(response)
    if not guard.authenticated(request):
        return _refuse(request, 401, "unauthorized",
                       "this server needs its token: send 'Authorization: Bearer <token>', or "
                       "open the address printed by `clapboard serve` (it ends in ?token=…)")
    if request.method in UNSAFE_METHODS and not guard.same_origin(request):
        return _refuse(request, 403, "cross_origin",
                       "cross-site request refused (Origin / Referer names another site)")
    new_cookie = None
    if CSRF_COOKIE not in request.cookies:
        new_cookie = new_csrf_cookie()
    request.state.csrf_cookie = request.cookies.get(CSRF_COOKIE) or new_cookie
    response = await call_next(request)
    if new_cookie is not None and not _wants_json(request):
        response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="strict", path="/")
    return _harden(response)


def _harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


async def _clapboard_error(request: Request, exc: ClapboardError) -> Response:
    status, _ = status_for(exc)
    if _wants_json(request):
        return JSONResponse(problem(exc), status_code=status)
    return web(request).templates.TemplateResponse(
        request, "error.html", {"status": status, "message": str(exc), "csrf_token": ""},
        status_code=status)


async def _http_problem(request: Request, exc: HttpProblem) -> Response:
    if _wants_json(request):
        return JSONResponse(exc.body(), status_code=exc.status)
    return web(request).templates.TemplateResponse(
        request, "error.html", {"status": exc.status, "message": exc.message, "csrf_token": ""},
        status_code=exc.status)


__all__ = ["WebContext", "create_app", "web"]
