"""Organisations over HTTP: registering them, their admins, and employee links.

Managers register organisations (and their first admin). An organisation's admins manage
its profile, its other admins and its employee links, and nothing of any other
organisation's: another organisation's employee list is a 403, its links are not found.
Workers accept or decline the links proposed to them; either side ends an active link.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from scambio.api.auth import ACT, BEARER, READ, WRITE, require_principal
from scambio.api.decode import strict_body
from scambio.api.people import (
    PAGE_DEFAULT,
    Cursor,
    Limit,
    checked_member_id,
    id_cursor,
    limits_of,
)
from scambio.api.problems import problem_spec
from scambio.api.schemas import (
    LinkIn,
    LinkOut,
    LinkPage,
    OrgIn,
    OrgOut,
    OrgPage,
    OrgPatchIn,
    ReasonIn,
)
from scambio.ledger.errors import RuleViolation
from scambio.store.tokens import Principal
from scambio.timebank import authz, orgs, people
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.orgs import DESCRIPTION_MAX, TITLE_MAX, Link, Organisation
from scambio.timebank.text import clean_name, clean_text

_ID_RE: Final = re.compile(r"[0-9a-f]{16}")


def org_not_found(org_id: str) -> RuleViolation:
    return RuleViolation(
        "organisation-not-found", f"organisation {org_id!r} does not exist", organisation=org_id
    )


def checked_org_id(org_id: str) -> str:
    if not _ID_RE.fullmatch(org_id):
        raise org_not_found(org_id)
    return org_id


def link_out(link: Link) -> LinkOut:
    return LinkOut(
        id=link.id,
        organisation=link.org_id,
        member=link.member_id,
        status=link.status,
        title=link.title,
        proposed_at=link.proposed_at,
        updated_at=link.updated_at,
    )


def link_page(found: list[Link], limit: int) -> LinkPage:
    return LinkPage(
        items=[link_out(link) for link in found],
        next_cursor=found[-1].id if len(found) == limit else None,
    )


def org_out(org: Organisation, admins: list[str] | None) -> OrgOut:
    return OrgOut(
        id=org.id,
        name=org.name,
        kind=org.kind,
        status=org.status,
        zone=org.zone,
        description=org.description,
        account_id=org.account_id,
        created_at=org.created_at,
        updated_at=org.updated_at,
        admins=msgspec.UNSET if admins is None else admins,
    )


async def view_org(tb: Timebank, org_id: str, principal: Principal) -> OrgOut:
    async with reading(tb.engine) as conn:
        org = await orgs.get(conn, org_id)
        if org is None:
            raise org_not_found(org_id)
        admins = (
            await orgs.admins(conn, org_id) if authz.sees_org_private(principal, org_id) else None
        )
    return org_out(org, admins)


def _clean_org_fields(tb: Timebank, raw: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in raw:
        values["name"] = clean_name(raw["name"])
    if "zone" in raw:
        values["zone"] = people.clean_zone(tb.zones, raw["zone"])
    if "description" in raw:
        values["description"] = clean_text(
            raw["description"], "description", DESCRIPTION_MAX, multiline=True
        )
    return values


# -- organisations ---------------------------------------------------------------------------


@post(
    "/organisations",
    operation_id="createOrganisation",
    summary="Register an organisation and open its time account (managers)",
    description=(
        "A company, nonprofit or public body. Its account is opened in the ledger (kind "
        "organisation; default limits unless given). `admin_member_id` appoints its first "
        "admin, who can then appoint others and propose employee links."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["organisations"],
)
async def create_organisation(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], data: JSONBody[OrgIn]
) -> Response[OrgOut]:
    principal = require_principal(request)
    body = await strict_body(request, OrgIn)
    values = _clean_org_fields(
        timebank, {"name": body.name, "zone": body.zone, "description": body.description}
    )
    admin = checked_member_id(body.admin_member_id) if body.admin_member_id else None
    org = await orgs.create(
        timebank,
        authz.actor(principal),
        name=values["name"],
        kind=orgs.check_kind(body.kind),
        zone=values["zone"],
        description=values["description"],
        admin_member_id=admin,
        limits=limits_of(body),
    )
    return Response(
        await view_org(timebank, org.id, principal),
        status_code=201,
        headers={"Location": f"/api/v1/organisations/{org.id}"},
    )


@get(
    "/organisations",
    operation_id="listOrganisations",
    summary="Organisations, in pages",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 503),
    tags=["organisations"],
)
async def list_organisations(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> OrgPage:
    principal = require_principal(request)
    async with reading(timebank.engine) as conn:
        found = await orgs.listing(conn, after=id_cursor(cursor), limit=limit)
        items = [
            org_out(
                org,
                await orgs.admins(conn, org.id)
                if authz.sees_org_private(principal, org.id)
                else None,
            )
            for org in found
        ]
    return OrgPage(items=items, next_cursor=found[-1].id if len(found) == limit else None)


@get(
    "/organisations/{org_id:str}",
    operation_id="getOrganisation",
    summary="An organisation (with its admins, to them and to staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 404, 503),
    tags=["organisations"],
)
async def get_organisation(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], org_id: FromPath[str]
) -> OrgOut:
    return await view_org(timebank, checked_org_id(org_id), require_principal(request))


@patch(
    "/organisations/{org_id:str}",
    operation_id="updateOrganisation",
    summary="Change an organisation's name, zone or description",
    description="Its admins or a manager (scope manage). Audited.",
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 413, 422, 503),
    tags=["organisations"],
)
async def update_organisation(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    data: JSONBody[OrgPatchIn],
) -> OrgOut:
    principal = require_principal(request)
    await _org_for_manager(timebank, principal, org_id)
    body = await strict_body(request, OrgPatchIn)
    raw = {
        name: getattr(body, name)
        for name in ("name", "zone", "description")
        if not isinstance(getattr(body, name), msgspec.UnsetType)
    }
    await orgs.update_org(
        timebank, authz.actor(principal), org_id, _clean_org_fields(timebank, raw)
    )
    return await view_org(timebank, org_id, principal)


async def _org_for_manager(tb: Timebank, principal: Principal, org_id: str) -> Organisation:
    checked_org_id(org_id)
    async with reading(tb.engine) as conn:
        org = await orgs.get(conn, org_id)
    if org is None:
        raise org_not_found(org_id)
    authz.may_manage_org(principal, org_id)
    return org


def _status_act(summary: str, description: str) -> dict[str, Any]:
    """Route options shared by suspension and reactivation (fresh dicts each time)."""
    return {
        "summary": summary,
        "description": description,
        "opt": {"access": WRITE},
        "security": BEARER,
        "status_code": 200,
        "responses": problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
        "tags": ["organisations"],
    }


async def _set_status(
    request: Request[Any, Any, Any], tb: Timebank, org_id: str, action: str
) -> OrgOut:
    principal = require_principal(request)
    checked_org_id(org_id)
    async with reading(tb.engine) as conn:
        if await orgs.get(conn, org_id) is None:
            raise org_not_found(org_id)
    body = await strict_body(request, ReasonIn)
    reason = people.clean_reason(body.reason, required=True)
    assert reason is not None
    await orgs.set_status(tb, authz.actor(principal), org_id, action, reason=reason)
    return await view_org(tb, org_id, principal)


@post(
    "/organisations/{org_id:str}/suspend",
    operation_id="suspendOrganisation",
    **_status_act(
        "Suspend an organisation (managers; reason required)",
        "Its account can neither pay nor be paid, its listings are hidden and it posts no "
        "new ones, no exchange can be proposed to or accepted by it, and its admins no "
        "longer act for it, until reactivated. Audited; its admins are told.",
    ),
)
async def suspend_organisation(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    data: JSONBody[ReasonIn],
) -> OrgOut:
    return await _set_status(request, timebank, org_id, "suspend")


@post(
    "/organisations/{org_id:str}/reactivate",
    operation_id="reactivateOrganisation",
    **_status_act(
        "Reactivate a suspended organisation (managers; reason required)",
        "Restores everything suspension stopped. Audited; its admins are told.",
    ),
)
async def reactivate_organisation(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    data: JSONBody[ReasonIn],
) -> OrgOut:
    return await _set_status(request, timebank, org_id, "reactivate")


# -- admins ----------------------------------------------------------------------------------


@put(
    "/organisations/{org_id:str}/admins/{member_id:str}",
    operation_id="addOrganisationAdmin",
    summary="Appoint an active member as an admin of the organisation",
    description="201 when appointed, 200 when they already were one. Audited.",
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(401, 403, 404, 409, 503),
    tags=["organisations"],
)
async def add_admin(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    member_id: FromPath[str],
) -> Response[OrgOut]:
    principal = require_principal(request)
    await _org_for_manager(timebank, principal, org_id)
    added = await orgs.add_admin(
        timebank, authz.actor(principal), org_id, checked_member_id(member_id)
    )
    return Response(await view_org(timebank, org_id, principal), status_code=201 if added else 200)


@delete(
    "/organisations/{org_id:str}/admins/{member_id:str}",
    operation_id="removeOrganisationAdmin",
    summary="Remove an admin from the organisation",
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    status_code=200,
    responses=problem_spec(401, 403, 404, 503),
    tags=["organisations"],
)
async def remove_admin(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    member_id: FromPath[str],
) -> OrgOut:
    principal = require_principal(request)
    await _org_for_manager(timebank, principal, org_id)
    await orgs.remove_admin(
        timebank, authz.actor(principal), org_id, checked_member_id(member_id), reason=None
    )
    return await view_org(timebank, org_id, principal)


# -- employee links --------------------------------------------------------------------------


@post(
    "/organisations/{org_id:str}/employees",
    operation_id="proposeEmployee",
    summary="Propose an employee link to a worker (the worker accepts or declines)",
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["organisations"],
)
async def propose_employee(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    data: JSONBody[LinkIn],
) -> Response[LinkOut]:
    principal = require_principal(request)
    await _org_for_manager(timebank, principal, org_id)
    body = await strict_body(request, LinkIn)
    title = clean_text(body.title, "title", TITLE_MAX)
    link = await orgs.propose_link(
        timebank, authz.actor(principal), org_id, checked_member_id(body.member_id), title=title
    )
    return Response(
        link_out(link), status_code=201, headers={"Location": f"/api/v1/employee-links/{link.id}"}
    )


@get(
    "/organisations/{org_id:str}/employees",
    operation_id="listEmployees",
    summary="The organisation's employee links (its admins and staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["organisations"],
)
async def list_employees(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    org_id: FromPath[str],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> LinkPage:
    principal = require_principal(request)
    checked_org_id(org_id)
    async with reading(timebank.engine) as conn:
        if await orgs.get(conn, org_id) is None:
            raise org_not_found(org_id)
        if not authz.sees_org_private(principal, org_id):
            raise authz.forbidden("only this organisation's admins and staff may list its links")
        found = await orgs.links(conn, org_id=org_id, after=id_cursor(cursor), limit=limit)
    return link_page(found, limit)


async def _visible_link(tb: Timebank, principal: Principal, link_id: str) -> Link:
    if not _ID_RE.fullmatch(link_id):
        raise orgs.link_not_found(link_id)
    async with reading(tb.engine) as conn:
        link = await orgs.get_link(conn, link_id)
    if link is None or not authz.sees_link(principal, link):
        raise orgs.link_not_found(link_id)
    return link


@get(
    "/employee-links/{link_id:str}",
    operation_id="getEmployeeLink",
    summary="An employee link (the worker, the organisation's admins, staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 404, 503),
    tags=["organisations"],
)
async def get_employee_link(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], link_id: FromPath[str]
) -> LinkOut:
    return link_out(await _visible_link(timebank, require_principal(request), link_id))


async def _move(
    request: Request[Any, Any, Any], tb: Timebank, link_id: str, action: str
) -> LinkOut:
    principal = require_principal(request)
    link = await _visible_link(tb, principal, link_id)
    if action == "end" and link.status == "proposed":
        # Ending a proposal: the worker declines it, the organisation withdraws it.
        action = "decline" if principal.member_id == link.member_id else "withdraw"
    authz.may_move_link(principal, link, action)
    body = await strict_body(request, ReasonIn, optional=True)
    reason = people.clean_reason(body.reason, required=False)
    return link_out(
        await orgs.move_link(tb, authz.actor(principal), link_id, action, reason=reason)
    )


def _link_act() -> dict[str, Any]:
    """Route options shared by the link transitions (fresh dicts each time)."""
    return {
        "opt": {"access": ACT, "scope": "write"},
        "security": BEARER,
        "status_code": 200,
        "responses": problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
        "tags": ["organisations"],
    }


@post(
    "/employee-links/{link_id:str}/accept",
    operation_id="acceptEmployeeLink",
    summary="The worker accepts a proposed link",
    **_link_act(),
)
async def accept_link(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    link_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> LinkOut:
    return await _move(request, timebank, link_id, "accept")


@post(
    "/employee-links/{link_id:str}/decline",
    operation_id="declineEmployeeLink",
    summary="The worker declines a proposed link",
    **_link_act(),
)
async def decline_link(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    link_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> LinkOut:
    return await _move(request, timebank, link_id, "decline")


@post(
    "/employee-links/{link_id:str}/end",
    operation_id="endEmployeeLink",
    summary="End a link: either side, at any time (a proposal is declined or withdrawn)",
    **_link_act(),
)
async def end_link(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    link_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> LinkOut:
    return await _move(request, timebank, link_id, "end")


ROUTES = [
    create_organisation,
    list_organisations,
    get_organisation,
    update_organisation,
    suspend_organisation,
    reactivate_organisation,
    add_admin,
    remove_admin,
    propose_employee,
    list_employees,
    get_employee_link,
    accept_link,
    decline_link,
    end_link,
]
