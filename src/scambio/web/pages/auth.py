"""Signing up, logging in and out, and resetting a password, as pages.

The same services as the API's (`timebank.people.register`, `timebank.sessions`), with
the same throttles: registrations per client address, login failures per email and per
address. A refused form is shown again with the message and what was typed (never the
password), with the status the API would give.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency

from scambio.ledger.errors import RuleViolation
from scambio.store import tokens
from scambio.timebank import people, sessions
from scambio.timebank.areas import AREAS
from scambio.timebank.db import stamp, writing
from scambio.timebank.text import check_password, clean_name, normalise_email
from scambio.timebank.throttle import key
from scambio.web import session
from scambio.web.context import PUBLIC, READ, Page
from scambio.web.errors import violation_message, violation_status
from scambio.web.forms import Form, read_form
from scambio.web.render import redirect, render

SHORT: Final = msgspec.Meta(max_length=1000)
Short = Annotated[str, SHORT]


def client_of(page: Page) -> str:
    client_address = page.request.route_handler.opt["client_address"]
    return str(client_address(page.request.scope))


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//elsewhere` or a full URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/home"
    return target


# -- sign up ---------------------------------------------------------------------------------


class SignupForm(Form, frozen=True, kw_only=True):
    name: Short
    email: Short
    password: Short
    zone: Short | None = None
    areas: list[Short] = msgspec.field(default_factory=list)


def _signup(
    page: Page, *, status: int = 200, error: str | None = None, **values: Any
) -> Response[Any]:
    return render(
        page,
        "signup.html",
        status=status,
        error=error,
        zones=page.timebank.zones.items,
        areas=AREAS,
        values={"name": "", "email": "", "zone": None, "areas": [], **values},
    )


@get("/signup", opt={"access": PUBLIC}, include_in_schema=False)
async def signup_page(page: NamedDependency[Page]) -> Response[Any]:
    if page.principal is not None:
        return redirect(page, "/home")
    return _signup(page)


@post("/signup", opt={"access": PUBLIC}, include_in_schema=False, status_code=200)
async def signup(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, SignupForm)
    tb = page.timebank
    typed = {"name": form.name, "email": form.email, "zone": form.zone, "areas": form.areas}
    try:
        email = normalise_email(form.email)
        check_password(form.password)
        name = clean_name(form.name)
        raw: dict[str, Any] = {"areas": form.areas}
        if form.zone is not None:
            raw["zone"] = form.zone
        profile = people.clean_profile(tb.zones, raw)
    except RuleViolation as exc:
        return _signup(
            page, status=violation_status(exc), error=violation_message(page, exc), **typed
        )
    client_key = key("register", client_of(page))
    async with writing(tb.engine) as conn:
        wait = await tb.throttle.wait(conn, [(client_key, tb.settings.login_max_failures_per_ip)])
        if wait is None:
            await tb.throttle.fail(conn, [client_key])
    if wait is not None:
        refusal = RuleViolation("too-many-attempts", "too many registrations", retry_after=wait)
        return _signup(page, status=429, error=violation_message(page, refusal), **typed)
    await people.register(tb, email=email, password=form.password, name=name, profile=profile)
    return redirect(page, "/login?done=registered")


# -- log in and out --------------------------------------------------------------------------


class LoginForm(Form, frozen=True, kw_only=True):
    email: Short
    password: Short
    next: Short = ""


@get("/login", opt={"access": PUBLIC}, include_in_schema=False)
async def login_page(page: NamedDependency[Page]) -> Response[Any]:
    target = safe_next(page.request.query_params.get("next"))
    if page.principal is not None:
        return redirect(page, target)
    return render(page, "login.html", error=None, email="", next=target)


@post("/login", opt={"access": PUBLIC}, include_in_schema=False, status_code=200)
async def login(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, LoginForm)
    target = safe_next(form.next)
    try:
        result = await sessions.login(
            page.timebank,
            email=form.email,
            password=form.password,
            client=client_of(page),
            token_name=session.SESSION_TOKEN_NAME,
        )
    except RuleViolation as exc:
        response = render(
            page,
            "login.html",
            status=violation_status(exc),
            error=violation_message(page, exc),
            email=form.email,
            next=target,
        )
        if exc.code == "too-many-attempts":
            response.headers["Retry-After"] = str(exc.fields.get("retry_after", 60))
        return response
    if page.session_token is not None and page.principal is not None:
        # Logging in again replaces the browser's session: the old one ends.
        await _revoke(page)
    page.cookies.append(
        session.session_cookie(
            result.token, secure=page.secure, max_age=page.settings.member_token_ttl
        )
    )
    return redirect(page, target)


@post("/logout", opt={"access": READ}, include_in_schema=False, status_code=200)
async def logout(page: NamedDependency[Page]) -> Response[Any]:
    await _revoke(page)
    page.cookies.append(session.expired_session_cookie(secure=page.secure))
    page.session_token = None
    return redirect(page, "/login?done=logged-out")


async def _revoke(page: Page) -> None:
    async with writing(page.timebank.engine) as conn:
        await tokens.revoke_member_token(
            conn, page.user.token_id, page.member_id, stamp(page.timebank.clock)
        )


# -- password reset --------------------------------------------------------------------------


class ResetRequestForm(Form, frozen=True, kw_only=True):
    email: Short


class ResetConfirmForm(Form, frozen=True, kw_only=True):
    code: Short
    password: Short


@get("/password-reset", opt={"access": PUBLIC}, include_in_schema=False)
async def reset_page(page: NamedDependency[Page]) -> Response[Any]:
    return render(page, "reset.html", error=None)


@post("/password-reset", opt={"access": PUBLIC}, include_in_schema=False, status_code=200)
async def reset_request(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, ResetRequestForm)
    # Always the same answer, as over the API: it reveals nothing about who is a member.
    await sessions.request_reset(page.timebank, form.email)
    return redirect(page, "/password-reset/confirm?done=reset-sent")


@get("/password-reset/confirm", opt={"access": PUBLIC}, include_in_schema=False)
async def reset_confirm_page(page: NamedDependency[Page]) -> Response[Any]:
    return render(page, "reset_confirm.html", error=None)


@post("/password-reset/confirm", opt={"access": PUBLIC}, include_in_schema=False, status_code=200)
async def reset_confirm(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, ResetConfirmForm)
    try:
        await sessions.confirm_reset(page.timebank, form.code.strip(), form.password)
    except RuleViolation as exc:
        return render(
            page,
            "reset_confirm.html",
            status=violation_status(exc),
            error=violation_message(page, exc),
        )
    return redirect(page, "/login?done=password-set")


ROUTES: Final = [
    signup_page,
    signup,
    login_page,
    login,
    logout,
    reset_page,
    reset_request,
    reset_confirm_page,
    reset_confirm,
]
