"""Sessions over HTTP: log in for a bearer token, manage one's tokens, change or reset a
password.

Login is throttled (per email and per client address; 429 with `Retry-After`), answers
`invalid-credentials` alike for unknown emails and wrong passwords, and issues a token
scoped as asked (every scope by default). Password reset requests are always 202. Tokens
and passwords are never logged: problem details name fields, never their values.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from scambio.api.auth import BEARER, PUBLIC, SESSION, client_address, require_principal
from scambio.api.decode import strict_body
from scambio.api.people import member_views
from scambio.api.problems import problem_spec
from scambio.api.schemas import (
    AcceptedOut,
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    ResetConfirmIn,
    ResetRequestIn,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
)
from scambio.ledger.errors import RuleViolation
from scambio.store import tokens
from scambio.store.tokens import ROLE_ADMIN
from scambio.timebank import authz, sessions
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.text import clean_name

RESET_DETAIL = (
    "If this address belongs to a member, a reset code is on its way; it works once, "
    "within the hour."
)


@post(
    "/auth/login",
    operation_id="login",
    summary="Log in with email and password; get a bearer token",
    description=(
        "Returns a new token (shown once) with the scopes asked for (default: all of read, "
        "write, transfer, manage), and the member. Wrong email or password: 401 "
        "`invalid-credentials`. After 5 failures in 15 minutes for one email (or 20 from "
        "one address): 429 `too-many-attempts` with `Retry-After`. A correct password for "
        "a member not yet approved, suspended or rejected: 403 `member-pending`, "
        "`member-suspended`, `member-rejected`."
    ),
    opt={"access": PUBLIC},
    status_code=200,
    responses=problem_spec(400, 401, 403, 413, 422, 429, 503),
    tags=["session"],
)
async def login(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], data: JSONBody[LoginIn]
) -> LoginOut:
    body = await strict_body(request, LoginIn)
    token_name = clean_name(body.token_name, "token_name", sessions.TOKEN_NAME_MAX)
    result = await sessions.login(
        timebank,
        email=body.email,
        password=body.password,
        client=client_address(request),
        token_name=token_name,
        scopes=body.scopes,
    )
    # The member reads their own record: with its private fields.
    themselves = tokens.Principal(
        result.token_id, token_name, result.member.role, member_id=result.member.id
    )
    async with reading(timebank.engine) as conn:
        member = (await member_views(conn, [result.member], themselves))[0]
    return LoginOut(
        token=result.token,
        token_id=result.token_id,
        scopes=list(result.scopes),
        expires_at=result.expires_at,
        member=member,
    )


@post(
    "/auth/logout",
    operation_id="logout",
    summary="Revoke the token this request carries",
    opt={"access": SESSION},
    security=BEARER,
    status_code=204,
    responses=problem_spec(401, 503),
    tags=["session"],
)
async def logout(request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]) -> None:
    principal = require_principal(request)
    async with writing(timebank.engine) as conn:
        await tokens.revoke_member_token(conn, principal.token_id, None, stamp(timebank.clock))


def _token_out(info: tokens.TokenInfo) -> TokenOut:
    return TokenOut(
        id=info.id,
        name=info.name,
        scopes=list(info.scopes),
        created_at=info.created_at,
        expires_at=info.expires_at,
    )


@get(
    "/auth/tokens",
    operation_id="listTokens",
    summary="The member's working tokens (never their secrets)",
    opt={"access": SESSION},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["session"],
)
async def list_tokens(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]
) -> list[TokenOut]:
    member_id = authz.require_member(require_principal(request))
    async with reading(timebank.engine) as conn:
        found = await tokens.member_tokens(conn, member_id, stamp(timebank.clock))
    return [_token_out(info) for info in found]


@post(
    "/auth/tokens",
    operation_id="createToken",
    summary="Create another token for oneself, e.g. read-only for an app",
    description="Its scopes must be among the current token's; it expires no later than "
    "the community's token lifetime.",
    opt={"access": SESSION},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 413, 422, 503),
    tags=["session"],
)
async def create_token(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], data: JSONBody[TokenIn]
) -> TokenCreatedOut:
    principal = require_principal(request)
    member_id = authz.require_member(principal)
    body = await strict_body(request, TokenIn)
    name = clean_name(body.name, "name", sessions.TOKEN_NAME_MAX)
    token, token_id, expires = await sessions.create_token(
        timebank,
        member_id,
        name=name,
        scopes=body.scopes,
        allowed=principal.scopes,
        expires_in=body.expires_in,
    )
    return TokenCreatedOut(
        token=token,
        id=token_id,
        name=name,
        scopes=sorted(set(body.scopes)),
        expires_at=expires,
    )


@delete(
    "/auth/tokens/{token_id:str}",
    operation_id="revokeToken",
    summary="Revoke one of the member's tokens (admins: any token)",
    opt={"access": SESSION},
    security=BEARER,
    status_code=204,
    responses=problem_spec(401, 403, 404, 503),
    tags=["session"],
)
async def revoke_token(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], token_id: FromPath[str]
) -> None:
    principal = require_principal(request)
    owner = None if principal.role == ROLE_ADMIN else authz.require_member(principal)
    done = False
    if len(token_id) == 16 and all(c in "0123456789abcdef" for c in token_id):
        async with writing(timebank.engine) as conn:
            done = await tokens.revoke_member_token(conn, token_id, owner, stamp(timebank.clock))
    if not done:
        raise RuleViolation("token-not-found", f"no working token {token_id!r} of yours")


@post(
    "/auth/password",
    operation_id="changePassword",
    summary="Change one's password (other tokens are revoked)",
    opt={"access": SESSION},
    security=BEARER,
    status_code=204,
    responses=problem_spec(400, 401, 403, 413, 422, 503),
    tags=["session"],
)
async def change_password(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[PasswordChangeIn],
) -> None:
    principal = require_principal(request)
    member_id = authz.require_member(principal)
    body = await strict_body(request, PasswordChangeIn)
    await sessions.change_password(
        timebank,
        authz.actor(principal),
        member_id,
        body.current_password,
        body.new_password,
        token_id=principal.token_id,
    )


@post(
    "/auth/password-reset",
    operation_id="requestPasswordReset",
    summary="Ask for a one-time password reset code by email",
    description="Always 202, whether or not the address belongs to a member.",
    opt={"access": PUBLIC},
    status_code=202,
    responses=problem_spec(400, 413, 503),
    tags=["session"],
)
async def request_password_reset(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[ResetRequestIn],
) -> AcceptedOut:
    body = await strict_body(request, ResetRequestIn)
    await sessions.request_reset(timebank, body.email)
    return AcceptedOut(status="accepted", detail=RESET_DETAIL)


@post(
    "/auth/password-reset/confirm",
    operation_id="confirmPasswordReset",
    summary="Set a new password with the reset code (works once, within an hour)",
    description="Every token of the member is revoked; log in again with the new password.",
    opt={"access": PUBLIC},
    status_code=204,
    responses=problem_spec(400, 413, 422, 503),
    tags=["session"],
)
async def confirm_password_reset(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[ResetConfirmIn],
) -> Response[None]:
    body = await strict_body(request, ResetConfirmIn)
    await sessions.confirm_reset(timebank, body.token, body.password)
    return Response(None, status_code=204)


ROUTES = [
    login,
    logout,
    list_tokens,
    create_token,
    revoke_token,
    change_password,
    request_password_reset,
    confirm_password_reset,
]
