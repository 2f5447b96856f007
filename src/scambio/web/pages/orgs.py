"""The company (organisation) admin's page: the organisation's hours, its employees and
their links, and proposing, withdrawing or ending a link.

An org admin sees and acts for their own organisations only; staff see every one
(`authz.sees_org_private`, `authz.may_manage_org`, `authz.may_move_link`). The
sponsorship figures (policies in force, budget used per period, hours granted, spent by
area, expired, matched, with charts) are added here when the policies work lands.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.tokens import SCOPE_MANAGE
from scambio.timebank import authz, orgs, people
from scambio.timebank.db import reading
from scambio.timebank.text import clean_text
from scambio.web.context import ACT, READ, Page, PageForbidden
from scambio.web.forms import Form, FormInvalid, read_form
from scambio.web.pages.home import zone_names
from scambio.web.render import redirect, render

ID_RE: Final = re.compile(r"[0-9a-f]{16}")
Short = Annotated[str, msgspec.Meta(max_length=1000)]


def _org_id(value: str) -> str:
    if not ID_RE.fullmatch(value):
        raise RuleViolation("organisation-not-found", f"organisation {value!r} does not exist")
    return value


@get("/organisations", opt={"access": READ}, include_in_schema=False)
async def organisation_list(page: NamedDependency[Page]) -> Response[Any]:
    principal = page.user
    async with reading(page.timebank.engine) as conn:
        if principal.is_staff:
            found = await orgs.listing(conn, limit=500)
        else:
            found = [
                o for o in [await orgs.get(conn, i) for i in sorted(principal.org_admin_of)] if o
            ]
    if len(found) == 1 and not principal.is_staff:
        return redirect(page, f"/organisations/{found[0].id}")
    return render(page, "organisations.html", items=found)


@get("/organisations/{org_id:str}", opt={"access": READ}, include_in_schema=False)
async def organisation_page(page: NamedDependency[Page], org_id: FromPath[str]) -> Response[Any]:
    principal = page.user
    async with reading(page.timebank.engine) as conn:
        org = await orgs.get(conn, _org_id(org_id))
        if org is None:
            raise RuleViolation("organisation-not-found", f"organisation {org_id!r} does not exist")
        if not authz.sees_org_private(principal, org.id):
            raise PageForbidden("only this organisation's admins and staff may see this page")
        links = await orgs.links(conn, org_id=org.id, limit=500)
        admin_ids = await orgs.admins(conn, org.id)
        names: dict[str, str] = {}
        for member_id in {*(link.member_id for link in links), *admin_ids}:
            member = await people.get(conn, member_id)
            names[member_id] = member.name if member else member_id
    account = None
    if org.account_id is not None:
        async with page.timebank.ledger.read() as conn:
            account = await queries.account(conn, org.account_id)
    return render(
        page,
        "organisation.html",
        org=org,
        links=links,
        admins=admin_ids,
        names=names,
        account=account,
        may_manage=principal.role != "auditor"
        and (principal.can_write or principal.admins(org.id)),
        zone_names=zone_names(page),
    )


class LinkForm(Form, frozen=True, kw_only=True):
    member_id: Short
    title: Short = ""


@post(
    "/organisations/{org_id:str}/employees",
    opt={"access": ACT, "scope": SCOPE_MANAGE},
    include_in_schema=False,
    status_code=200,
)
async def propose_employee(page: NamedDependency[Page], org_id: FromPath[str]) -> Response[Any]:
    form = await read_form(page, LinkForm)
    async with reading(page.timebank.engine) as conn:
        org = await orgs.get(conn, _org_id(org_id))
    if org is None:
        raise RuleViolation("organisation-not-found", f"organisation {org_id!r} does not exist")
    authz.may_manage_org(page.user, org.id)
    member_id = form.member_id.strip()
    if not ID_RE.fullmatch(member_id):
        raise FormInvalid("member_id", "is not a member number (16 letters and digits)")
    title = clean_text(form.title, "title", orgs.TITLE_MAX)
    await orgs.propose_link(page.timebank, authz.actor(page.user), org.id, member_id, title=title)
    return redirect(page, f"/organisations/{org.id}?done=link-proposed")


@post(
    "/organisations/{org_id:str}/links/{link_id:str}/{action:str}",
    opt={"access": ACT, "scope": SCOPE_MANAGE},
    include_in_schema=False,
    status_code=200,
)
async def move_link(
    page: NamedDependency[Page],
    org_id: FromPath[str],
    link_id: FromPath[str],
    action: FromPath[str],
) -> Response[Any]:
    await read_form(page, Form)
    if action not in ("withdraw", "end"):
        raise orgs.link_not_found(link_id)
    async with reading(page.timebank.engine) as conn:
        link = await orgs.get_link(conn, link_id) if ID_RE.fullmatch(link_id) else None
    if link is None or link.org_id != org_id or not authz.sees_link(page.user, link):
        raise orgs.link_not_found(link_id)
    authz.may_move_link(page.user, link, action)
    await orgs.move_link(page.timebank, authz.actor(page.user), link_id, action)
    return redirect(page, f"/organisations/{org_id}?done=link-updated")


ROUTES: Final = [organisation_list, organisation_page, propose_employee, move_link]
