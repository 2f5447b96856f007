"""Browser sessions: a member's token in an HttpOnly cookie, and CSRF tokens bound to it.

Logging in through a page issues an ordinary member token (named "web session", every
scope, the community's token lifetime) and keeps it in the `scambio_session` cookie:
HttpOnly (no script reads it), SameSite=Lax (other sites' forms do not send it), Secure
when the page was reached over HTTPS (directly, or through a trusted proxy that says so
in X-Forwarded-Proto). So a session is exactly as strong as an API token: it appears in
the member's token list, it ends when revoked, when it expires, at a password change or
reset, or the moment the member is suspended, and the same authorisation applies to it.
Logging out revokes it.

CSRF: every form carries a hidden `csrf` field and every HTMX request an `X-CSRF-Token`
header, whose value is a hash of a random per-browser cookie (`scambio_csrf`) and the
session cookie. Another site can make the browser send the cookies but cannot read them,
so it cannot compute the token; a token stops working when the session changes. Unsafe
requests whose Origin (or Sec-Fetch-Site) names another site are refused as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie

from scambio.settings import Settings

SESSION_COOKIE: Final = "scambio_session"
CSRF_COOKIE: Final = "scambio_csrf"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
SESSION_TOKEN_NAME: Final = "web session"  # noqa: S105 - a label, not a secret
_CSRF_COOKIE_RE_LEN: Final = 43
#: A year: the CSRF cookie is no secret on its own and outlives sessions.
CSRF_MAX_AGE: Final = 365 * 24 * 3600


def new_csrf_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_secret(value: str | None) -> bool:
    return (
        value is not None
        and len(value) == _CSRF_COOKIE_RE_LEN
        and all(c.isalnum() or c in "-_" for c in value)
    )


def csrf_token(secret: str, session: str | None) -> str:
    """The token forms must carry: bound to the browser's secret and to its session."""
    digest = hashlib.sha256(
        b"scambio-csrf\x00" + secret.encode() + b"\x00" + (session or "").encode()
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(secret: str | None, session: str | None, presented: str | None) -> bool:
    if not valid_secret(secret) or not presented:
        return False
    assert secret is not None
    return hmac.compare_digest(csrf_token(secret, session), presented)


def _header(connection: ASGIConnection[Any, Any, Any, Any], name: str) -> str | None:
    value = connection.headers.get(name)
    return value if value else None


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """False when the browser says the request comes from another site."""
    site = _header(connection, "sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = _header(connection, "origin")
    if origin is None or origin == "null":
        # No Origin, or "null" (what a browser sends under `Referrer-Policy: no-referrer`,
        # which every response here carries): no word either way; the token decides.
        return True
    host = _header(connection, "host")
    if host is None:
        return False
    scheme, _, rest = origin.partition("://")
    return scheme in ("http", "https") and rest.rstrip("/") == host


def _trusted(peer: str | None, settings: Settings) -> bool:
    if peer is None or not settings.trusted_proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(net, strict=False) for net in settings.trusted_proxies
    )


def is_https(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> bool:
    """Whether the browser reached us over HTTPS (the cookie then gets `Secure`)."""
    if connection.scope.get("scheme") == "https":
        return True
    client = connection.scope.get("client")
    peer = client[0] if client else None
    forwarded = (_header(connection, "x-forwarded-proto") or "").split(",")[0].strip().lower()
    return forwarded == "https" and _trusted(peer, settings)


def session_cookie(value: str, *, secure: bool, max_age: int | None) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=max_age,
    )


def expired_session_cookie(*, secure: bool) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=0,
    )


def csrf_cookie(value: str, *, secure: bool) -> Cookie:
    return Cookie(
        key=CSRF_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=CSRF_MAX_AGE,
    )


def language_cookie(lang: str, *, secure: bool) -> Cookie:
    from scambio.web.i18n import COOKIE

    return Cookie(
        key=COOKIE,
        value=lang,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=CSRF_MAX_AGE,
    )
