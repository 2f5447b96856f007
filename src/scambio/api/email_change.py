"""Changing a member's email over HTTP (see `timebank.email_change`).

A member asks with their password and gets a one-time code at the new address; anyone
holding the code confirms it (the code is the proof, as for a password reset, so it
works from a phone that is not logged in). A manager sets the email of a member who
cannot do it themselves, with a reason; an admin may do it for anyone. The code travels
in request bodies only, never in a URL (URLs end up in access logs).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from scambio.api.auth import BEARER, PUBLIC, SESSION, WRITE, require_principal
from scambio.api.decode import strict_body
from scambio.api.people import checked_member_id, view_one
from scambio.api.problems import problem_spec
from scambio.api.schemas import AcceptedOut, Input, MemberOut, ShortText, Text
from scambio.timebank import authz, email_change, people
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.text import normalise_email

REQUESTED_DETAIL = (
    "A confirmation code is on its way to the new address; the email changes once you "
    "confirm it. Until then the old address stays."
)


class EmailChangeIn(Input, frozen=True, kw_only=True):
    #: The new address.
    email: ShortText
    #: The member's current password.
    password: ShortText


class EmailConfirmIn(Input, frozen=True, kw_only=True):
    #: The code from the confirmation email.
    token: ShortText


class MemberEmailIn(Input, frozen=True, kw_only=True):
    #: The new address; null removes it (the member then gets no email at all).
    email: ShortText | None
    #: Why (required): kept in the audit log.
    reason: Text


@post(
    "/auth/email-change",
    operation_id="requestEmailChange",
    summary="Ask to change one's email: a confirmation code goes to the new address",
    description=(
        "Needs the current password (`invalid-credentials` otherwise). 202 whether or not "
        "the new address is free (if another member uses it, that address is told instead), "
        "so the request reveals nothing. Three requests per member per 15 minutes."
    ),
    opt={"access": SESSION},
    security=BEARER,
    status_code=202,
    responses=problem_spec(400, 401, 403, 413, 422, 429, 503),
    tags=["session"],
)
async def request_email_change(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[EmailChangeIn],
) -> AcceptedOut:
    member_id = authz.require_member(require_principal(request))
    body = await strict_body(request, EmailChangeIn)
    email = normalise_email(body.email)
    await email_change.request_change(timebank, member_id, email=email, password=body.password)
    return AcceptedOut(status="accepted", detail=REQUESTED_DETAIL)


@post(
    "/auth/email-change/confirm",
    operation_id="confirmEmailChange",
    summary="Confirm a new email with the code sent to it (works once, within a day)",
    description=(
        "The old address is told of the change. `invalid-confirmation-token` for an unknown, "
        "used or expired code; `email-taken` if another member took the address meanwhile."
    ),
    opt={"access": PUBLIC},
    status_code=204,
    responses=problem_spec(400, 409, 413, 422, 503),
    tags=["session"],
)
async def confirm_email_change(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[EmailConfirmIn],
) -> Response[None]:
    body = await strict_body(request, EmailConfirmIn)
    await email_change.confirm_change(timebank, body.token)
    return Response(None, status_code=204)


@post(
    "/members/{member_id:str}/email",
    operation_id="setMemberEmail",
    summary="Set a member's email directly (managers: members without a password)",
    description=(
        "For someone who cannot confirm an address themselves (registered offline). A "
        "member who can log in changes it themselves; only an admin may override. Reason "
        "required; audited; the old address is told."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=200,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["people"],
)
async def set_member_email(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[MemberEmailIn],
) -> MemberOut:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(timebank.engine) as conn:
        member = await people.require(conn, member_id)
    authz.may_set_email(principal, member)
    body = await strict_body(request, MemberEmailIn)
    email = None if body.email is None else normalise_email(body.email)
    reason = people.clean_reason(body.reason, required=True)
    assert reason is not None
    await email_change.set_directly(
        timebank, authz.actor(principal), member_id, email=email, reason=reason
    )
    return await view_one(timebank, member_id, principal)


ROUTES = [request_email_change, confirm_email_change, set_member_email]
