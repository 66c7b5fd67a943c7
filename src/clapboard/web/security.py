"""Who may talk to the server, and which writes a browser really meant.

Four independent checks, cheapest first:

1. **Host** (DNS-rebinding guard). Without a token the server trusts "anyone who can
   reach loopback", so a page on another site must not reach it by re-pointing its own
   domain at 127.0.0.1: requests whose ``Host`` is not a loopback name are refused.
2. **Token** (when one is set; required off loopback). ``Authorization: Bearer`` for
   scripts; for browsers a one-time ``?token=`` that is swapped for an HttpOnly,
   SameSite=Lax cookie and stripped from the address bar.
3. **Origin / Referer** on every unsafe method: a cross-site browser request always
   carries one of them, and it must name this server.
4. **CSRF token** on HTML forms (double submit, signed): a SameSite=Strict random
   cookie plus a hidden field holding its HMAC under a per-process secret. The JSON
   API needs no such field: its writes require ``If-Match``, a header a cross-site
   form cannot send.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

AUTH_COOKIE = "clapboard_auth"
CSRF_COOKIE = "clapboard_csrf"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _host_only(netloc: str) -> str:
    """``host`` of ``host:port`` (IPv6 literals keep their brackets)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


def is_loopback_name(host: str) -> bool:
    """``localhost`` or a loopback address (all of 127.0.0.0/8, ``::1``; brackets allowed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Guard:
    """The security settings of one app instance."""

    token: str | None = None
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    # -- 1. host ----------------------------------------------------------------------

    def host_ok(self, request: Request) -> bool:
        if self.allowed_hosts is None:
            return True
        host = _host_only(request.headers.get("host", ""))
        if host in self.allowed_hosts:
            return True
        # `serve --host 127.0.0.2` is loopback too (cmd_serve lets it bind without a
        # token), so its own Host header must not be refused as a rebinding attempt.
        return self.allowed_hosts is LOOPBACK_HOSTS and is_loopback_name(host)

    # -- 2. token ---------------------------------------------------------------------

    def cookie_value(self) -> str:
        """What the auth cookie holds: derived from the token, never the token itself."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"clapboard-auth-cookie", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str | None) -> bool:
        if self.token is None or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def authenticated(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(value.strip()):
            return True
        cookie = request.cookies.get(AUTH_COOKIE)
        if not cookie:
            return False
        return hmac.compare_digest(cookie.encode(), self.cookie_value().encode())

    # -- 3. origin --------------------------------------------------------------------

    @staticmethod
    def same_origin(request: Request) -> bool:
        """False when Origin (else Referer) names another host than the one addressed."""
        host = request.headers.get("host", "").lower()
        origin = request.headers.get("origin")
        if origin is not None:
            return origin != "null" and urlsplit(origin).netloc.lower() == host
        referer = request.headers.get("referer")
        if referer is not None:
            return urlsplit(referer).netloc.lower() == host
        return True  # not a browser: the token / If-Match checks still apply

    # -- 4. CSRF ----------------------------------------------------------------------

    def csrf_for(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: object) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not isinstance(submitted, str) or not submitted:
            return False
        return hmac.compare_digest(self.csrf_for(cookie).encode(), submitted.encode())


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)
