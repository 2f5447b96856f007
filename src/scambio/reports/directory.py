"""The directory a report is computed with, read from the people tables.

Every ledger account that belongs to a member or an organisation, with its zone (the
member's profile zone, the organisation's zone) and its organisations (an organisation's
account: itself; a member's: the organisations with an *active* employee link to them).
It is the state when the report is computed: the report states its digest, the monthly
job stores it beside the report, and the API serves it to staff, so that a report can be
recomputed from an export and this file alone.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.reports.coproduction import Directory, DirectoryAccount, DirectoryOrganisation
from scambio.store.people_tables import employee_links, members, organisations


async def load_directory(conn: AsyncConnection) -> Directory:
    employers: dict[str, list[str]] = {}
    for link in await conn.execute(
        select(employee_links.c.member_id, employee_links.c.org_id).where(
            employee_links.c.status == "active"
        )
    ):
        employers.setdefault(link.member_id, []).append(link.org_id)
    accounts: list[DirectoryAccount] = []
    for member in await conn.execute(
        select(members.c.id, members.c.account_id, members.c.zone).where(
            members.c.account_id.is_not(None)
        )
    ):
        accounts.append(
            DirectoryAccount(
                account=member.account_id,
                zone=member.zone,
                organisations=sorted(set(employers.get(member.id, []))),
            )
        )
    orgs: list[DirectoryOrganisation] = []
    for org in await conn.execute(
        select(
            organisations.c.id,
            organisations.c.name,
            organisations.c.zone,
            organisations.c.account_id,
        )
    ):
        orgs.append(DirectoryOrganisation(id=org.id, name=org.name))
        if org.account_id is not None:
            accounts.append(
                DirectoryAccount(account=org.account_id, zone=org.zone, organisations=[org.id])
            )
    return Directory.build(accounts, orgs)
