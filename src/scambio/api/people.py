"""Members over HTTP: registration, the directory, profiles, approval and suspension, the
audit log, and the vocabularies a profile uses (zones and areas).

A member sees other active members' public profiles (never their email, account or
contact details); staff (managers, auditors, admins) see everything; managers approve,
reject, suspend and reactivate members; admins also change roles and act on staff.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.api.auth import (
    ACT,
    BEARER,
    PUBLIC,
    READ,
    STAFF_READ,
    WRITE,
    client_address,
    require_principal,
)
from scambio.api.decode import InvalidRequest, strict_body
from scambio.api.problems import problem_spec
from scambio.api.schemas import (
    AcceptedOut,
    ApproveIn,
    AreaOut,
    AuditOut,
    AuditPage,
    LinkPage,
    MemberCreateIn,
    MemberOut,
    MemberPage,
    ProfileIn,
    ReasonIn,
    RegisterIn,
    RoleIn,
    ZoneOut,
)
from scambio.ledger.errors import RuleViolation
from scambio.store.people_tables import MEMBER_STATUSES, employee_links, org_admins
from scambio.store.tokens import Principal
from scambio.timebank import audit, authz, orgs, people
from scambio.timebank.areas import AREA_IDS, AREAS
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, writing
from scambio.timebank.people import Member
from scambio.timebank.text import check_password, clean_name, normalise_email
from scambio.timebank.throttle import key

PAGE_DEFAULT: Final = 50
PAGE_MAX: Final = 200
MEMBER_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
_ID_CURSOR_RE: Final = re.compile(r"[0-9a-f]{1,32}")
#: Largest audit index a cursor may name.
_MAX_INDEX: Final = 2**63 - 1

Limit = Annotated[int, QueryParameter(ge=1, le=PAGE_MAX)]
Cursor = Annotated[str | None, QueryParameter(description="Opaque cursor from a previous page.")]

_PROFILE_FIELDS: Final = tuple(ProfileIn.__struct_fields__)


def profile_values(body: ProfileIn, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The profile fields present in a request body."""
    return {
        name: getattr(body, name)
        for name in _PROFILE_FIELDS
        if name not in without and not isinstance(getattr(body, name), msgspec.UnsetType)
    }


def limits_of(body: Any) -> dict[str, int | None]:
    limits: dict[str, int | None] = {}
    for name in ("min_balance", "max_balance"):
        value = getattr(body, name)
        if not isinstance(value, msgspec.UnsetType):
            limits[name] = value
    return limits


def id_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    if not _ID_CURSOR_RE.fullmatch(cursor):
        raise InvalidRequest(f"cursor {cursor!r} is not one returned as next_cursor")
    return cursor


def index_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) > _MAX_INDEX:
        raise InvalidRequest(f"cursor {cursor!r} is not one returned as next_cursor")
    return int(cursor)


def member_not_found(member_id: str) -> RuleViolation:
    return RuleViolation(
        "member-not-found", f"member {member_id!r} does not exist", member=member_id
    )


def checked_member_id(member_id: str) -> str:
    """Ids that cannot exist are unknown without asking the database."""
    if not MEMBER_ID_RE.fullmatch(member_id):
        raise member_not_found(member_id)
    return member_id


async def member_views(
    conn: AsyncConnection, found: list[Member], principal: Principal | None
) -> list[MemberOut]:
    """Members as `principal` may see them (with employers and admin roles, batched)."""
    ids = [m.id for m in found]
    employers: dict[str, list[str]] = {i: [] for i in ids}
    admin_of: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for row in await conn.execute(
            select(employee_links.c.member_id, employee_links.c.org_id)
            .where(employee_links.c.member_id.in_(ids), employee_links.c.status == "active")
            .order_by(employee_links.c.org_id)
        ):
            employers[row.member_id].append(row.org_id)
        for row in await conn.execute(
            select(org_admins.c.member_id, org_admins.c.org_id)
            .where(org_admins.c.member_id.in_(ids))
            .order_by(org_admins.c.org_id)
        ):
            admin_of[row.member_id].append(row.org_id)
    return [
        member_out(
            m,
            employers[m.id],
            admin_of[m.id],
            principal is not None and authz.sees_private(principal, m.id),
        )
        for m in found
    ]


def member_out(
    member: Member, employers: list[str], admin_of: list[str], private: bool
) -> MemberOut:
    public: dict[str, Any] = {
        "id": member.id,
        "name": member.name,
        "zone": member.zone,
        "areas": member.areas,
        "tags": member.tags,
        "languages": member.languages,
        "about": member.about,
        "availability": member.availability,
        "availability_slots": member.availability_slots,
        "preferred_contact": member.contact.preferred,
        "employers": employers,
    }
    if not private:
        return MemberOut(**public)
    return MemberOut(
        **public,
        email=member.email,
        role=member.role,
        status=member.status,
        account_id=member.account_id,
        contact=member.contact,
        created_at=member.created_at,
        updated_at=member.updated_at,
        approved_at=member.approved_at,
        approved_by=member.approved_by,
        admin_of=admin_of,
    )


async def view_one(tb: Timebank, member_id: str, principal: Principal | None) -> MemberOut:
    async with reading(tb.engine) as conn:
        member = await people.require(conn, member_id)
        return (await member_views(conn, [member], principal))[0]


# -- public vocabularies ---------------------------------------------------------------------


@get(
    "/zones",
    operation_id="listZones",
    summary="The community's zones",
    description="Ids to use in profiles (and listings); pilot areas are flagged.",
    opt={"access": PUBLIC},
    tags=["people"],
)
async def list_zones(timebank: NamedDependency[Timebank]) -> list[ZoneOut]:
    return [ZoneOut(id=z.id, name=z.name, pilot=z.pilot) for z in timebank.zones.items]


@get(
    "/areas",
    operation_id="listAreas",
    summary="The six areas of competence and intervention",
    opt={"access": PUBLIC},
    tags=["people"],
)
async def list_areas() -> list[AreaOut]:
    return [AreaOut(id=a.id, name=a.name, name_it=a.name_it) for a in AREAS]


# -- registration ----------------------------------------------------------------------------

REGISTERED_DETAIL: Final = (
    "Thank you. If this address can be registered, a community manager will review the "
    "registration and you will receive an email; you can log in once it is approved."
)


@post(
    "/members/register",
    operation_id="registerMember",
    summary="Register as a member (pending until a manager approves)",
    description=(
        "Always 202 once the request is valid, whether or not the email is already "
        "registered (its owner is told by email instead), so registration reveals nothing "
        "about who has an account. Passwords are 10 to 200 characters."
    ),
    opt={"access": PUBLIC},
    status_code=202,
    responses=problem_spec(400, 413, 422, 429, 503),
    tags=["people"],
)
async def register_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[RegisterIn],
) -> AcceptedOut:
    body = await strict_body(request, RegisterIn)
    email = normalise_email(body.email)
    check_password(body.password)
    name = clean_name(body.name)
    profile = people.clean_profile(timebank.zones, profile_values(body, without=("name",)))
    client_key = key("register", client_address(request))
    async with writing(timebank.engine) as conn:
        limit = timebank.settings.login_max_failures_per_ip
        wait = await timebank.throttle.wait(conn, [(client_key, limit)])
        if wait is None:
            await timebank.throttle.fail(conn, [client_key])
    if wait is not None:
        raise RuleViolation(
            "too-many-attempts",
            f"too many registrations from this address; try again in {wait} seconds",
            retry_after=wait,
        )
    await people.register(timebank, email=email, password=body.password, name=name, profile=profile)
    return AcceptedOut(status="accepted", detail=REGISTERED_DETAIL)


@post(
    "/members",
    operation_id="createMember",
    summary="Register an active member directly (managers)",
    description=(
        "For people who cannot register themselves: the member is active at once and their "
        "account is opened (limits as at approval). Email and password are optional; a "
        "member without a password can set one through a password reset. Only an admin "
        "may create staff (role manager, auditor or admin)."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 409, 413, 422, 503),
    tags=["people"],
)
async def create_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[MemberCreateIn],
) -> Response[MemberOut]:
    principal = require_principal(request)
    body = await strict_body(request, MemberCreateIn)
    if body.role != "member":
        authz.may_set_roles(principal)
    email = normalise_email(body.email) if body.email is not None else None
    if body.password is not None:
        check_password(body.password)
    name = clean_name(body.name)
    profile = people.clean_profile(timebank.zones, profile_values(body, without=("name",)))
    member = await people.create(
        timebank,
        authz.actor(principal),
        name=name,
        email=email,
        password=body.password,
        role=body.role,
        profile=profile,
        limits=limits_of(body),
        reason=people.clean_reason(body.reason, required=False),
    )
    return Response(
        await view_one(timebank, member.id, principal),
        status_code=201,
        headers={"Location": f"/api/v1/members/{member.id}"},
    )


# -- reading ---------------------------------------------------------------------------------


@get(
    "/members",
    operation_id="listMembers",
    summary="The member directory, in pages",
    description=(
        "Members see active members' public profiles. Staff see every member with private "
        "fields and may filter by `status` and `role`. Filter by `zone` and `area`."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["people"],
)
async def list_members(  # noqa: PLR0917 - Litestar injects parameters by name
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
    status: Annotated[str | None, QueryParameter(max_length=20)] = None,
    zone: Annotated[str | None, QueryParameter(max_length=64)] = None,
    area: Annotated[str | None, QueryParameter(max_length=64)] = None,
    role: Annotated[str | None, QueryParameter(max_length=20)] = None,
) -> MemberPage:
    principal = require_principal(request)
    if status is not None and status not in MEMBER_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(MEMBER_STATUSES)}")
    if area is not None and area not in AREA_IDS:
        raise InvalidRequest(f"area must be one of {', '.join(sorted(AREA_IDS))}")
    if not principal.is_staff:
        if status not in (None, "active") or role is not None:
            raise authz.forbidden("only staff may list members by status or role")
        status = "active"
    async with reading(timebank.engine) as conn:
        found = await people.listing(
            conn,
            after=id_cursor(cursor),
            limit=limit,
            status=status,
            zone=zone,
            area=area,
            role=role,
        )
        items = await member_views(conn, found, principal)
    return MemberPage(items=items, next_cursor=found[-1].id if len(found) == limit else None)


@get(
    "/members/me",
    operation_id="getMe",
    summary="The member this token belongs to",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["people"],
)
async def get_me(request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]) -> MemberOut:
    principal = require_principal(request)
    return await view_one(timebank, authz.require_member(principal), principal)


@get(
    "/members/{member_id:str}",
    operation_id="getMember",
    summary="A member's profile",
    description="Private fields to the member and staff; others see active members only.",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 404, 503),
    tags=["people"],
)
async def get_member(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], member_id: FromPath[str]
) -> MemberOut:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(timebank.engine) as conn:
        member = await people.get(conn, member_id)
        if member is None or not _visible(principal, member):
            raise member_not_found(member_id)
        return (await member_views(conn, [member], principal))[0]


def _visible(principal: Principal, member: Member) -> bool:
    """Other members see only active members; the member and staff see the rest too."""
    return member.status == "active" or authz.sees_private(principal, member.id)


@get(
    "/members/{member_id:str}/links",
    operation_id="listMemberLinks",
    summary="A member's employee links (all statuses)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["organisations"],
)
async def list_member_links(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> LinkPage:
    from scambio.api.orgs import link_page

    principal = require_principal(request)
    checked_member_id(member_id)
    if not authz.sees_private(principal, member_id):
        raise authz.forbidden("only the member and staff may list a member's links")
    async with reading(timebank.engine) as conn:
        await people.require(conn, member_id)
        found = await orgs.links(conn, member_id=member_id, after=id_cursor(cursor), limit=limit)
    return link_page(found, limit)


# -- changing --------------------------------------------------------------------------------


@patch(
    "/members/{member_id:str}",
    operation_id="updateMember",
    summary="Change profile fields",
    description=(
        "The member (scope write), or a manager (scope manage; audited). Only the fields "
        "present change; `zone: null` clears the zone."
    ),
    opt={"access": ACT, "scope": "write"},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 413, 422, 503),
    tags=["people"],
)
async def update_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[ProfileIn],
) -> MemberOut:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(timebank.engine) as conn:
        member = await people.get(conn, member_id)
    if member is None or not _visible(principal, member):
        raise member_not_found(member_id)
    authz.may_edit_profile(principal, member)
    body = await strict_body(request, ProfileIn)
    profile = people.clean_profile(timebank.zones, profile_values(body))
    await people.update_profile(timebank, authz.actor(principal), member_id, profile)
    return await view_one(timebank, member_id, principal)


async def _target(tb: Timebank, principal: Principal, member_id: str) -> Member:
    checked_member_id(member_id)
    async with reading(tb.engine) as conn:
        member = await people.require(conn, member_id)
    authz.may_administer(principal, member)
    return member


def _manage() -> dict[str, Any]:
    """Route options shared by the managers' acts on a member (fresh dicts each time)."""
    return {
        "opt": {"access": WRITE},
        "security": BEARER,
        "responses": problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
        "tags": ["people"],
    }


@post(
    "/members/{member_id:str}/approve",
    operation_id="approveMember",
    summary="Approve a pending member and open their time account",
    description=(
        "Opens the member's account in the ledger with the community's default limits, or "
        "with `min_balance`/`max_balance` given here (null = unbounded). Audited."
    ),
    status_code=200,
    **_manage(),
)
async def approve_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[ApproveIn | None] = None,
) -> MemberOut:
    principal = require_principal(request)
    await _target(timebank, principal, member_id)
    body = await strict_body(request, ApproveIn, optional=True)
    await people.approve(
        timebank,
        authz.actor(principal),
        member_id,
        reason=people.clean_reason(body.reason, required=False),
        limits=limits_of(body),
    )
    return await view_one(timebank, member_id, principal)


@post(
    "/members/{member_id:str}/reject",
    operation_id="rejectMember",
    summary="Reject a pending registration (reason required)",
    status_code=200,
    **_manage(),
)
async def reject_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[ReasonIn],
) -> MemberOut:
    principal = require_principal(request)
    await _target(timebank, principal, member_id)
    body = await strict_body(request, ReasonIn)
    reason = people.clean_reason(body.reason, required=True)
    assert reason is not None
    await people.reject(timebank, authz.actor(principal), member_id, reason=reason)
    return await view_one(timebank, member_id, principal)


@post(
    "/members/{member_id:str}/suspend",
    operation_id="suspendMember",
    summary="Suspend an active member (reason required)",
    description=(
        "The member's tokens are revoked; they cannot log in, and their account can neither "
        "pay nor be paid, until reactivated. The reason goes into the audit log and to the "
        "member by email."
    ),
    status_code=200,
    **_manage(),
)
async def suspend_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[ReasonIn],
) -> MemberOut:
    principal = require_principal(request)
    await _target(timebank, principal, member_id)
    body = await strict_body(request, ReasonIn)
    reason = people.clean_reason(body.reason, required=True)
    assert reason is not None
    await people.suspend(timebank, authz.actor(principal), member_id, reason=reason)
    return await view_one(timebank, member_id, principal)


@post(
    "/members/{member_id:str}/reactivate",
    operation_id="reactivateMember",
    summary="Reactivate a suspended member",
    status_code=200,
    **_manage(),
)
async def reactivate_member(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> MemberOut:
    principal = require_principal(request)
    await _target(timebank, principal, member_id)
    body = await strict_body(request, ReasonIn, optional=True)
    await people.reactivate(
        timebank,
        authz.actor(principal),
        member_id,
        reason=people.clean_reason(body.reason, required=False),
    )
    return await view_one(timebank, member_id, principal)


@post(
    "/members/{member_id:str}/role",
    operation_id="setMemberRole",
    summary="Change a member's role (admins; reason required)",
    status_code=200,
    **_manage(),
)
async def set_member_role(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    data: JSONBody[RoleIn],
) -> MemberOut:
    principal = require_principal(request)
    authz.may_set_roles(principal)
    await _target(timebank, principal, member_id)
    body = await strict_body(request, RoleIn)
    reason = people.clean_reason(body.reason, required=True)
    assert reason is not None
    await people.set_role(
        timebank, authz.actor(principal), member_id, role=body.role, reason=reason
    )
    return await view_one(timebank, member_id, principal)


# -- the audit log ---------------------------------------------------------------------------


@get(
    "/audit",
    operation_id="listAudit",
    summary="The audit log: who approved, suspended or changed whom, when and why",
    description="Managers, auditors and admins. Oldest first; page with `next_cursor`.",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["people"],
)
async def list_audit(  # noqa: PLR0917 - Litestar injects parameters by name
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
    subject_type: Annotated[str | None, QueryParameter(max_length=32)] = None,
    subject_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    action: Annotated[str | None, QueryParameter(max_length=64)] = None,
    actor_member_id: Annotated[str | None, QueryParameter(max_length=32)] = None,
) -> AuditPage:
    for value in (subject_type, subject_id, action, actor_member_id):
        if value is not None and not value.isprintable():
            raise InvalidRequest("filters must be printable text")
    async with reading(timebank.engine) as conn:
        rows = await audit.entries(
            conn,
            after=index_cursor(cursor),
            limit=limit,
            subject_type=subject_type,
            subject_id=subject_id,
            action=action,
            actor_member_id=actor_member_id,
        )
    return AuditPage(
        items=[
            AuditOut(
                index=r.index,
                at=r.at,
                actor=r.actor,
                actor_member_id=r.actor_member_id,
                actor_token_id=r.actor_token_id,
                action=r.action,
                subject_type=r.subject_type,
                subject_id=r.subject_id,
                reason=r.reason,
                details=r.details,
            )
            for r in rows
        ],
        next_cursor=str(rows[-1].index) if len(rows) == limit else None,
    )


ROUTES = [
    list_zones,
    list_areas,
    register_member,
    create_member,
    list_members,
    get_me,
    get_member,
    list_member_links,
    update_member,
    approve_member,
    reject_member,
    suspend_member,
    reactivate_member,
    set_member_role,
    list_audit,
]
