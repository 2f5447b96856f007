"""Error pages: every refusal on a page is a page (or, for HTMX, a message in place), with
the status the API would give, a message in the reader's language, and nothing written.

The handlers run synchronously, outside the request's dependencies, so they build a light
page context from the request alone (language, the member the guard found, the CSRF
cookie), without touching the database: an error page must render even when the
database is what failed.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from scambio.ledger.errors import RuleViolation
from scambio.store.appender import StorageUnavailable
from scambio.web import i18n
from scambio.web.context import CsrfRefused, LoginRequired, Page, PageForbidden, _seen
from scambio.web.forms import FormInvalid
from scambio.web.i18n import N_
from scambio.web.render import PAGE_HEADERS, render

log = logging.getLogger(__name__)

#: Domain refusals that are a conflict with the current state (409), as in the API.
CONFLICTS: Final = frozenset(
    {
        "invalid-status",
        "invalid-transition",
        "email-taken",
        "link-exists",
        "account-suspended",
        "already-thanked",
        "already-introduced",
        "already-reversed",
        "idempotency-conflict",
        "hold-resolved",
        "hold-expired",
        "exchange-lapsed",
        "account-exists",
    }
)

#: What a refusal means, in words a member reads (translated); the domain's own detail
#: follows it.
MESSAGES: Final[dict[str, str]] = {
    "limit-exceeded": N_("There are not enough hours on the account for this."),
    "forbidden": N_("You may not do this."),
    "invalid-credentials": N_("The email or the password is wrong."),
    "member-pending": N_("Your registration is waiting for a community manager's approval."),
    "member-suspended": N_("Your account is suspended: please contact your community manager."),
    "member-rejected": N_("Your registration was not approved."),
    "too-many-attempts": N_("Too many attempts: please wait a little and try again."),
    "invalid-password": N_("The password must be 10 to 200 characters long."),
    "invalid-email": N_("This is not a valid email address."),
    "invalid-reset-token": N_("The reset code is unknown, already used or expired."),
    "invalid-transition": N_("This is no longer possible: the exchange has moved on."),
    "invalid-status": N_("This is not possible in the current status."),
    "exceeds-agreed": N_("The minutes cannot be more than those agreed."),
    "already-thanked": N_("You have already said thank you for this exchange."),
    "already-introduced": N_("These two have already been introduced."),
    "already-reversed": N_("This entry has already been reversed."),
    "not-reversible": N_("This entry cannot be reversed."),
    "account-suspended": N_("One of the accounts is suspended."),
    "invalid-field": N_("A field is not valid."),
    "invalid-party": N_("The exchange needs two different people."),
    "invalid-amount": N_("The minutes must be a positive whole number."),
    "unknown-zone": N_("Unknown zone."),
    "unknown-area": N_("Unknown area."),
    "link-exists": N_("This person is already linked, or a link is waiting for an answer."),
    "email-taken": N_("Another member already uses this email."),
}

_TITLES: Final[dict[int, str]] = {
    400: N_("The form is not valid"),
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    409: N_("Not possible now"),
    413: N_("Too much data"),
    422: N_("The request was refused"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("The service is unavailable"),
}


def violation_status(violation: RuleViolation) -> int:
    code = violation.code
    if code.endswith("-not-found"):
        return 404
    if code in ("forbidden", "member-pending", "member-suspended", "member-rejected"):
        return 403
    if code == "invalid-credentials":
        return 401
    if code == "too-many-attempts":
        return 429
    if code in CONFLICTS:
        return 409
    if code in ("beyond-tree", "invalid-proof-request"):
        return 400
    return 422


def violation_message(page: Page, violation: RuleViolation) -> str:
    """The refusal in the reader's language, with the domain's detail when it adds to it."""
    known = MESSAGES.get(violation.code)
    if known is None:
        return violation.detail
    return page._(known)


def light_page(request: Request[Any, Any, Any]) -> Page:
    """A page context from the request alone (no database)."""
    from scambio.web.session import CSRF_COOKIE, is_https, valid_secret

    timebank = request.app.state.timebank
    seen = _seen(request)
    lang = i18n.choose(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE))
    secret = request.cookies.get(CSRF_COOKIE)
    return Page(
        request=request,
        timebank=timebank,
        lang=lang,
        translations=i18n.translations(lang),
        principal=seen.principal,
        me=None,
        session_token=seen.token,
        csrf_secret=secret if secret is not None and valid_secret(secret) else "",
        secure=is_https(request, timebank.settings),
    )


def error_page(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    *,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    page = light_page(request)
    title = page._(_TITLES.get(status, _TITLES[500]))
    template = "_error.html" if page.is_htmx else "error.html"
    response = render(page, template, status=status, title=title, message=message, detail=detail)
    if page.is_htmx:
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_violation(request: Request[Any, Any, Any], exc: RuleViolation) -> Response[Any]:
    page = light_page(request)
    message = violation_message(page, exc)
    headers = None
    if exc.code == "too-many-attempts":
        headers = {"Retry-After": str(exc.fields.get("retry_after", 60))}
    return error_page(
        request,
        violation_status(exc),
        message,
        detail=exc.detail if message != exc.detail else None,
        headers=headers,
    )


def handle_form(request: Request[Any, Any, Any], exc: FormInvalid) -> Response[Any]:
    page = light_page(request)
    message = page._("The field “{field}” is not valid.").format(field=exc.field)
    return error_page(request, 400, message, detail=exc.detail)


def handle_login(request: Request[Any, Any, Any], exc: LoginRequired) -> Response[Any]:
    if request.method in ("GET", "HEAD"):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        response: Response[Any] = Redirect(
            "/login?next=" + quote(target, safe="/"), status_code=303
        )
        response.headers.update(PAGE_HEADERS)
        return response
    page = light_page(request)
    return error_page(request, 401, page._("Your session has ended: please log in again."))


def handle_forbidden(request: Request[Any, Any, Any], exc: PageForbidden) -> Response[Any]:
    page = light_page(request)
    return error_page(request, 403, page._("You may not see or do this."), detail=exc.detail)


def handle_csrf(request: Request[Any, Any, Any], exc: CsrfRefused) -> Response[Any]:
    page = light_page(request)
    return error_page(
        request,
        403,
        page._(
            "This form has expired or was sent from another site, so nothing was done. "
            "Go back, reload the page and try again."
        ),
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    page = light_page(request)
    status = exc.status_code
    if status >= 500:
        log.error("page error %d: %s", status, exc.detail)
        return error_page(request, status, page._("The server could not handle this request."))
    if isinstance(exc, NotFoundException) or status == 404:
        return error_page(request, 404, page._("There is no such page."))
    if status == 413:
        return error_page(request, 413, page._("The form sent too much data."))
    return error_page(
        request, status, page._("The request could not be handled."), detail=exc.detail
    )


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("storage unavailable: %s: %s", type(exc).__name__, exc)
    page = light_page(request)
    return error_page(
        request,
        503,
        page._("The database is unavailable: please try again in a moment."),
        headers={"Retry-After": "5"},
    )


def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled page error", exc_info=exc)
    page = light_page(request)
    return error_page(request, 500, page._("The server could not handle this request."))


EXCEPTION_HANDLERS: Final[dict[int | type[Exception], Any]] = {
    RuleViolation: handle_violation,
    FormInvalid: handle_form,
    LoginRequired: handle_login,
    PageForbidden: handle_forbidden,
    CsrfRefused: handle_csrf,
    HTTPException: handle_http,
    StorageUnavailable: handle_unavailable,
    OperationalError: handle_unavailable,
    InterfaceError: handle_unavailable,
    PoolTimeout: handle_unavailable,
    ConnectionError: handle_unavailable,
    Exception: handle_internal,
}
