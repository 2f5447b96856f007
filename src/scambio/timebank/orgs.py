"""Organisations (companies, nonprofits, public bodies), their admins and employee links.

A community manager registers an organisation (its time account is opened in the ledger)
and appoints its first admin; an org admin may appoint others. Employee links say that a
worker belongs to an organisation: the organisation's admin proposes, the worker accepts
(proposed -> active) or declines; the organisation may withdraw a proposal; either side
ends an active link. At most one open link exists per organisation and worker. A manager
suspends an organisation and reactivates it (`set_status`), with a reason. Each step is
audited, and the people it concerns are notified (`timebank.notifications`). Like
`people`, this module does not decide who may act: the API does.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.errors import RuleViolation
from scambio.store.people_tables import (
    ORG_KINDS,
    employee_links,
    members,
    org_admins,
    organisations,
)
from scambio.timebank import audit, notifications, people
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.text import invalid

#: What `secrets.token_hex(8)` makes: an organisation's id.
ORG_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
DESCRIPTION_MAX: Final = 4000
TITLE_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    kind: str
    status: str
    zone: str | None
    description: str
    account_id: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Link:
    id: str
    org_id: str
    member_id: str
    status: str
    title: str
    proposed_at: str
    updated_at: str


def org_account_id(org_id: str) -> str:
    return f"o-{org_id}"


def check_kind(kind: str) -> str:
    if kind not in ORG_KINDS:
        raise invalid("kind", f"kind must be one of {', '.join(ORG_KINDS)}")
    return kind


def _org(row: Any) -> Organisation:
    return Organisation(
        row.id,
        row.name,
        row.kind,
        row.status,
        row.zone,
        row.description,
        row.account_id,
        row.created_at,
        row.updated_at,
    )


def _link(row: Any) -> Link:
    return Link(
        row.id, row.org_id, row.member_id, row.status, row.title, row.proposed_at, row.updated_at
    )


# -- reads -----------------------------------------------------------------------------------


async def get(conn: AsyncConnection, org_id: str) -> Organisation | None:
    row = (
        await conn.execute(select(organisations).where(organisations.c.id == org_id))
    ).one_or_none()
    return None if row is None else _org(row)


async def require(conn: AsyncConnection, org_id: str) -> Organisation:
    org = await get(conn, org_id)
    if org is None:
        raise RuleViolation(
            "organisation-not-found", f"organisation {org_id!r} does not exist", organisation=org_id
        )
    return org


async def listing(
    conn: AsyncConnection, *, after: str | None = None, limit: int = 100, kind: str | None = None
) -> list[Organisation]:
    query = select(organisations).order_by(organisations.c.id).limit(limit)
    if after is not None:
        query = query.where(organisations.c.id > after)
    if kind is not None:
        query = query.where(organisations.c.kind == kind)
    return [_org(row) for row in await conn.execute(query)]


async def admins(conn: AsyncConnection, org_id: str) -> list[str]:
    rows = await conn.execute(
        select(org_admins.c.member_id)
        .where(org_admins.c.org_id == org_id)
        .order_by(org_admins.c.member_id)
    )
    return [row.member_id for row in rows]


async def get_link(conn: AsyncConnection, link_id: str) -> Link | None:
    row = (
        await conn.execute(select(employee_links).where(employee_links.c.id == link_id))
    ).one_or_none()
    return None if row is None else _link(row)


def link_not_found(link_id: str) -> RuleViolation:
    return RuleViolation(
        "link-not-found", f"employee link {link_id!r} does not exist", link=link_id
    )


async def links(
    conn: AsyncConnection,
    *,
    org_id: str | None = None,
    member_id: str | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[Link]:
    query = select(employee_links).order_by(employee_links.c.id).limit(limit)
    if org_id is not None:
        query = query.where(employee_links.c.org_id == org_id)
    if member_id is not None:
        query = query.where(employee_links.c.member_id == member_id)
    if status is not None:
        query = query.where(employee_links.c.status == status)
    if after is not None:
        query = query.where(employee_links.c.id > after)
    return [_link(row) for row in await conn.execute(query)]


async def active_employers(conn: AsyncConnection, member_id: str) -> list[str]:
    rows = await conn.execute(
        select(employee_links.c.org_id).where(
            employee_links.c.member_id == member_id, employee_links.c.status == "active"
        )
    )
    return sorted(row.org_id for row in rows)


# -- writes ----------------------------------------------------------------------------------


async def _require_active_member(conn: AsyncConnection, member_id: str) -> people.Member:
    member = await people.require(conn, member_id)
    if member.status != "active":
        raise RuleViolation(
            "invalid-status",
            f"member {member_id} is {member.status}, not active",
            member=member_id,
            current_status=member.status,
        )
    return member


def _require_active_org(org: Organisation) -> None:
    if org.status != "active":
        raise RuleViolation(
            "invalid-status",
            f"organisation {org.id} is {org.status}: it cannot do this until reactivated",
            organisation=org.id,
            current_status=org.status,
        )


async def create(
    tb: Timebank,
    actor: Actor,
    *,
    name: str,
    kind: str,
    zone: str | None,
    description: str,
    admin_member_id: str | None = None,
    limits: dict[str, int | None] | None = None,
    org_id: str | None = None,
) -> Organisation:
    """Register an organisation, open its time account, and appoint its first admin.

    `org_id` (16 hex digits) is for installations that name organisations in files ahead
    of creating them, such as the demo's sponsorship policies; otherwise it is random.
    """
    if org_id is None:
        org_id = secrets.token_hex(8)
    elif not ORG_ID_RE.fullmatch(org_id):
        raise ValueError(f"organisation id {org_id!r} is not 16 lower-case hex digits")
    if admin_member_id is not None:
        async with reading(tb.engine) as conn:
            await _require_active_member(conn, admin_member_id)
    account_id = org_account_id(org_id)
    outcome = await tb.ledger.open_account(account_id, "organisation", **(limits or {}))
    if isinstance(outcome, RuleViolation):
        raise outcome
    spec = outcome.entry.account
    assert spec is not None
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await conn.execute(
            insert(organisations).values(
                id=org_id,
                name=name,
                kind=kind,
                status="active",
                zone=zone,
                description=description,
                account_id=account_id,
                created_at=now,
                updated_at=now,
            )
        )
        await audit.record(
            conn,
            actor,
            audit.ORG_CREATED,
            "organisation",
            org_id,
            at=now,
            details={
                "name": name,
                "kind": kind,
                "account": account_id,
                "min_balance": spec.min_balance,
                "max_balance": spec.max_balance,
                "ledger_index": outcome.index,
            },
        )
        if admin_member_id is not None:
            await _add_admin(conn, actor, org_id, admin_member_id, now)
        return await require(conn, org_id)


async def update_org(
    tb: Timebank, actor: Actor, org_id: str, values: dict[str, Any]
) -> Organisation:
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await require(conn, org_id)
        if values:
            await conn.execute(
                update(organisations)
                .where(organisations.c.id == org_id)
                .values(updated_at=now, **values)
            )
            await audit.record(
                conn,
                actor,
                audit.ORG_CHANGED,
                "organisation",
                org_id,
                at=now,
                details={"fields": sorted(values)},
            )
        return await require(conn, org_id)


async def _add_admin(
    conn: AsyncConnection, actor: Actor, org_id: str, member_id: str, now: str
) -> bool:
    exists = (
        await conn.execute(
            select(org_admins.c.member_id).where(
                org_admins.c.org_id == org_id, org_admins.c.member_id == member_id
            )
        )
    ).one_or_none()
    if exists is not None:
        return False
    await conn.execute(
        insert(org_admins).values(org_id=org_id, member_id=member_id, created_at=now)
    )
    await audit.record(
        conn,
        actor,
        audit.ORG_ADMIN_ADDED,
        "organisation",
        org_id,
        at=now,
        details={"member": member_id},
    )
    return True


async def add_admin(tb: Timebank, actor: Actor, org_id: str, member_id: str) -> bool:
    """Appoint an admin; False when they already were one (nothing changes)."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await require(conn, org_id)
        await _require_active_member(conn, member_id)
        return await _add_admin(conn, actor, org_id, member_id, now)


async def remove_admin(
    tb: Timebank, actor: Actor, org_id: str, member_id: str, *, reason: str | None
) -> None:
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await require(conn, org_id)
        result = await conn.execute(
            delete(org_admins).where(
                org_admins.c.org_id == org_id, org_admins.c.member_id == member_id
            )
        )
        if result.rowcount != 1:
            raise RuleViolation(
                "admin-not-found",
                f"member {member_id!r} is not an admin of organisation {org_id}",
                member=member_id,
            )
        await audit.record(
            conn,
            actor,
            audit.ORG_ADMIN_REMOVED,
            "organisation",
            org_id,
            at=now,
            reason=reason,
            details={"member": member_id},
        )


async def propose_link(
    tb: Timebank, actor: Actor, org_id: str, member_id: str, *, title: str
) -> Link:
    """The organisation proposes that `member_id` works for it; the worker is told."""
    now = stamp(tb.clock)
    link_id = secrets.token_hex(8)
    try:
        async with writing(tb.engine) as conn:
            org = await require(conn, org_id)
            _require_active_org(org)
            member = await _require_active_member(conn, member_id)
            open_link = (
                await conn.execute(
                    select(employee_links.c.id, employee_links.c.status).where(
                        employee_links.c.org_id == org_id,
                        employee_links.c.member_id == member_id,
                        employee_links.c.status.in_(("proposed", "active")),
                    )
                )
            ).one_or_none()
            if open_link is not None:
                raise _link_exists(open_link.id, open_link.status)
            await conn.execute(
                insert(employee_links).values(
                    id=link_id,
                    org_id=org_id,
                    member_id=member_id,
                    status="proposed",
                    title=title,
                    proposed_at=now,
                    updated_at=now,
                )
            )
            await audit.record(
                conn,
                actor,
                audit.LINK_PROPOSED,
                "employee-link",
                link_id,
                at=now,
                details={"organisation": org_id, "member": member_id, "title": title},
            )
            await notifications.notify(
                conn,
                tb.clock,
                [notifications.Recipient(member.id, member.name, member.email)],
                kind="employee-link.proposed",
                text=(
                    f"{notifications.short(org.name, 80)} proposes to link your account to "
                    "theirs as an employee: accept or decline it."
                ),
                refs=notifications.Refs(link=link_id, organisation=org_id),
                mail=notifications.Mail(
                    "employee-link-proposed",
                    lambda r: (
                        f"Scambio: {org.name} lists you as an employee",
                        f"Hello {r.name},\n\n{org.name} proposes to link your Scambio "
                        "account to theirs as an employee. Accept or decline it in Scambio "
                        f"(employee link {link_id}).",
                    ),
                ),
                skip=actor.member_id,
            )
            link = await get_link(conn, link_id)
    except IntegrityError:
        # Two proposals at once: the partial unique index let one through.
        raise _link_exists(None, "proposed") from None
    assert link is not None
    tb.mailer.kick()
    return link


def _link_exists(link_id: str | None, status: str) -> RuleViolation:
    fields: dict[str, Any] = {"current_status": status}
    if link_id is not None:
        fields["link"] = link_id
    return RuleViolation(
        "link-exists", f"an employee link for this worker is already {status}", **fields
    )


#: (from status, action) -> (to status, audit action).
TRANSITIONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("proposed", "accept"): ("active", audit.LINK_ACCEPTED),
    ("proposed", "decline"): ("declined", audit.LINK_DECLINED),
    ("proposed", "withdraw"): ("withdrawn", audit.LINK_WITHDRAWN),
    ("active", "end"): ("ended", audit.LINK_ENDED),
}


async def move_link(
    tb: Timebank, actor: Actor, link_id: str, action: str, *, reason: str | None = None
) -> Link:
    """Apply `action` (accept, decline, withdraw, end) if the link's status allows it.

    Conditional on the status read, so that two acts at once (accept and withdraw) resolve
    once: the second gets a 409 naming the status it found.
    """
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        link = await get_link(conn, link_id)
        if link is None:
            raise link_not_found(link_id)
        move = TRANSITIONS.get((link.status, action))
        if move is None:
            raise RuleViolation(
                "invalid-status",
                f"employee link {link_id} is {link.status}: {action} is not possible now",
                link=link_id,
                current_status=link.status,
            )
        to_status, audit_action = move
        result = await conn.execute(
            update(employee_links)
            .where(employee_links.c.id == link_id, employee_links.c.status == link.status)
            .values(status=to_status, updated_at=now)
        )
        if result.rowcount != 1:  # pragma: no cover - needs a concurrent writer
            raise RuleViolation("invalid-status", f"employee link {link_id} changed meanwhile")
        await audit.record(
            conn,
            actor,
            audit_action,
            "employee-link",
            link_id,
            at=now,
            reason=reason,
            details={"organisation": link.org_id, "member": link.member_id},
        )
        moved = await get_link(conn, link_id)
    assert moved is not None
    return moved


async def member_exists(conn: AsyncConnection, member_id: str) -> bool:
    return (
        await conn.execute(select(members.c.id).where(members.c.id == member_id))
    ).one_or_none() is not None


# -- suspension ------------------------------------------------------------------------------

#: (from status, to status, audit action, notification kind) for each act.
_STATUS_MOVES: Final = {
    "suspend": ("active", "suspended", audit.ORG_SUSPENDED, "organisation.suspended"),
    "reactivate": ("suspended", "active", audit.ORG_REACTIVATED, "organisation.reactivated"),
}


async def set_status(
    tb: Timebank, actor: Actor, org_id: str, action: str, *, reason: str
) -> Organisation:
    """Suspend an active organisation, or reactivate a suspended one (a reason always).

    While suspended the organisation's account neither pays nor is paid, its listings are
    hidden and it cannot post new ones, exchanges cannot be proposed to or accepted by it,
    and its admins no longer act for it (their tokens stop carrying it at their next
    request); they remain members in their own right. Reactivation restores all of it.
    Conditional on the status read, so two managers acting at once change it once; the
    admins are told, in the app and by email.
    """
    from_status, to_status, audit_action, kind = _STATUS_MOVES[action]
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        org = await require(conn, org_id)
        result = await conn.execute(
            update(organisations)
            .where(organisations.c.id == org_id, organisations.c.status == from_status)
            .values(status=to_status, updated_at=now)
        )
        if result.rowcount != 1:
            raise RuleViolation(
                "invalid-status",
                f"organisation {org_id} is {org.status}, not {from_status}",
                organisation=org_id,
                current_status=org.status,
            )
        await audit.record(conn, actor, audit_action, "organisation", org_id, at=now, reason=reason)
        if action == "suspend":
            text = (
                f"{notifications.short(org.name, 80)} is suspended by a community manager: "
                f"you cannot act for it until it is reactivated. The reason: {reason}"
            )
        else:
            text = f"{notifications.short(org.name, 80)} is active again. The reason: {reason}"
        await notifications.notify(
            conn,
            tb.clock,
            await notifications.org_admins_of(conn, org_id),
            kind=kind,
            text=text,
            refs=notifications.Refs(organisation=org_id),
            mail=notifications.Mail(
                f"organisation-{'suspended' if action == 'suspend' else 'reactivated'}",
                lambda r: (
                    f"Scambio: {org.name} is {to_status}",
                    f"Hello {r.name},\n\n{text}",
                ),
            ),
            skip=actor.member_id,
        )
        changed = await require(conn, org_id)
    tb.mailer.kick()
    return changed
