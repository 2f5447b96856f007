"""Who is asking, in which language, and may they: the guard and the per-page context.

Every page declares its access in `opt["access"]`, with the API's levels and meanings
(see `api.auth`): `public`; `read` (a logged-in member); `staff-read` (managers, auditors,
admins); `act` (a logged-in member other than an auditor, with `opt["scope"]`, default
`write`); `write` (managers and admins, with the `manage` scope). A page without one is
`write`, so a page added without thought fails closed. The object-level rules are then
`timebank.authz`, exactly as for the API.

The guard also refuses every unsafe request (POST) without the CSRF token of this browser
and session, before any handler reads its form.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler

from scambio.ledger.entry import format_time
from scambio.settings import Settings
from scambio.store.tokens import ROLE_AUDITOR, SCOPE_MANAGE, SCOPE_READ, SCOPE_WRITE, Principal
from scambio.store.tokens import authenticate as authenticate_token
from scambio.timebank import notifications, people
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.people import Member
from scambio.web import i18n, session

PUBLIC: Final = "public"
READ: Final = "read"
STAFF_READ: Final = "staff-read"
ACT: Final = "act"
WRITE: Final = "write"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_STATE_KEY: Final = "scambio_web"


class LoginRequired(Exception):
    """The page needs a logged-in member."""


class PageForbidden(Exception):
    """The member is logged in but may not see or do this."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class CsrfRefused(Exception):
    """An unsafe request without this browser's CSRF token, or from another site."""


@dataclass
class _Seen:
    principal: Principal | None
    token: str | None


def _seen(connection: ASGIConnection[Any, Any, Any, Any]) -> _Seen:
    found = connection.scope.get(_STATE_KEY)
    return found if isinstance(found, _Seen) else _Seen(None, None)


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> _Seen:
    token = connection.cookies.get(session.SESSION_COOKIE) or None
    principal = None
    if token is not None:
        timebank: Timebank = connection.app.state.timebank
        principal = await authenticate_token(
            timebank.engine, token, now=format_time(timebank.clock())
        )
        # Pages are for members; an operator token in a cookie is no session.
        if principal is not None and principal.member_id is None:
            principal = None
    seen = _Seen(principal, token if principal is not None else None)
    connection.scope[_STATE_KEY] = seen  # type: ignore[typeddict-unknown-key]
    return seen


async def _presented_csrf(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get(session.CSRF_HEADER)
    if header:
        return header
    if isinstance(connection, Request):
        content_type = connection.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await connection.form()
            value = form.get(session.CSRF_FIELD)
            return value if isinstance(value, str) else None
    return None


async def page_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    seen = await _authenticate(connection)
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        secret = connection.cookies.get(session.CSRF_COOKIE)
        if not session.same_origin(connection) or not session.csrf_matches(
            secret, seen.token, await _presented_csrf(connection)
        ):
            raise CsrfRefused()
    access = str(handler.opt.get("access", WRITE))
    if access == PUBLIC:
        return
    principal = seen.principal
    if principal is None:
        raise LoginRequired()
    if not principal.has_scope(SCOPE_READ):
        raise PageForbidden("this session lacks the 'read' scope")
    if access == READ:
        return
    if access == STAFF_READ:
        if not principal.is_staff:
            raise PageForbidden("only managers, auditors and admins may see this page")
        return
    if principal.role == ROLE_AUDITOR:
        raise PageForbidden("auditors may read but not change anything")
    if access == ACT:
        scope = str(handler.opt.get("scope", SCOPE_WRITE))
        if not principal.has_scope(scope):
            raise PageForbidden(f"this session lacks the {scope!r} scope")
        return
    if not principal.can_write:
        raise PageForbidden("only a community manager or an admin may do this")
    if not principal.has_scope(SCOPE_MANAGE):
        raise PageForbidden("this session lacks the 'manage' scope")


@dataclass
class Page:
    """What every page knows about its request: who, in which language, the CSRF token,
    the cookies to set, and how many notifications wait."""

    request: Request[Any, Any, Any]
    timebank: Timebank
    lang: str
    translations: gettext.NullTranslations
    principal: Principal | None
    me: Member | None
    session_token: str | None
    csrf_secret: str
    secure: bool
    unread: int = 0
    cookies: list[Cookie] = field(default_factory=list)

    # -- language ---------------------------------------------------------------------

    def _(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    # -- who --------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.timebank.settings

    @property
    def user(self) -> Principal:
        """The logged-in member's principal (pages with access other than public)."""
        if self.principal is None:  # pragma: no cover - the guard runs first
            raise LoginRequired()
        return self.principal

    @property
    def member_id(self) -> str:
        member_id = self.user.member_id
        assert member_id is not None  # the guard admits member sessions only
        return member_id

    @property
    def is_staff(self) -> bool:
        return self.principal is not None and self.principal.is_staff

    @property
    def can_manage(self) -> bool:
        """A manager or an admin: the `write` pages."""
        return self.principal is not None and self.principal.can_write

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.csrf_secret, self.session_token)

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    @property
    def path(self) -> str:
        return self.request.url.path

    def login_url(self) -> str:
        return "/login?next=" + quote(self.request.url.path, safe="/")

    def lang_url(self, lang: str) -> str:
        """This page in another language (its query kept, `lang` replaced)."""
        params = [(k, v) for k, v in self.request.query_params.multi_items() if k != "lang"]
        params.append(("lang", lang))
        return self.path + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params)


async def provide_page(request: Request[Any, Any, Any]) -> Page:
    timebank: Timebank = request.app.state.timebank
    settings = timebank.settings
    seen = _seen(request)
    query_lang = request.query_params.get("lang")
    lang = i18n.choose(query_lang, request.cookies.get(i18n.COOKIE))
    secure = session.is_https(request, settings)
    cookies: list[Cookie] = []
    if query_lang in i18n.LANGUAGES and request.cookies.get(i18n.COOKIE) != query_lang:
        cookies.append(session.language_cookie(lang, secure=secure))
    secret = request.cookies.get(session.CSRF_COOKIE)
    if not session.valid_secret(secret):
        secret = session.new_csrf_secret()
        cookies.append(session.csrf_cookie(secret, secure=secure))
    assert secret is not None
    if request.cookies.get(session.SESSION_COOKIE) and seen.principal is None:
        # A session that ended (expired, revoked, suspended): forget the cookie.
        cookies.append(session.expired_session_cookie(secure=secure))
    me = None
    unread = 0
    if seen.principal is not None and seen.principal.member_id is not None:
        async with reading(timebank.engine) as conn:
            me = await people.get(conn, seen.principal.member_id)
            unread = await notifications.unread_count(conn, seen.principal.member_id)
    return Page(
        request=request,
        timebank=timebank,
        lang=lang,
        translations=i18n.translations(lang),
        principal=seen.principal,
        me=me,
        session_token=seen.token,
        csrf_secret=secret,
        secure=secure,
        unread=unread,
        cookies=cookies,
    )


async def page_for(request: Request[Any, Any, Any]) -> Page:
    """The page context for a handler outside the pages' router (the public home page)."""
    await _authenticate(request)
    return await provide_page(request)
