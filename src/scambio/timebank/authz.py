"""Object-level authorisation: who may act on which member, organisation, link or account.

The bearer guard (`api.auth`) decides by role and scope whether a route may be called at
all; these predicates decide, for the object a request names, whether *this* principal
may act on it. The rules:

- a member acts on their own profile, links and account, and spends only from accounts
  they hold (their own; an organisation's, if they are its admin);
- an org admin acts only for their organisation: its profile, admins, employee links and
  account;
- a manager acts community-wide (but only an admin changes or suspends staff);
- an auditor reads everything and writes nothing (the guard refuses their writes);
- the ledger refuses to move minutes to or from an account whose owner is suspended.

A request for something the principal may not even see is answered as if it did not
exist (404); one they may see but not change is a 403 (`forbidden`).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import KIND_HOLD, decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.store.people_tables import members, organisations
from scambio.store.tables import entries
from scambio.store.tokens import ROLE_ADMIN, ROLE_MEMBER, Principal
from scambio.timebank.audit import Actor
from scambio.timebank.orgs import Link
from scambio.timebank.people import Member

FORBIDDEN: Final = "forbidden"


def forbidden(detail: str) -> RuleViolation:
    return RuleViolation(FORBIDDEN, detail)


def require_scope(principal: Principal, scope: str) -> None:
    if not principal.has_scope(scope):
        raise forbidden(f"this token lacks the {scope!r} scope")


def require_member(principal: Principal) -> str:
    """The member a token belongs to; operator tokens belong to none."""
    if principal.member_id is None:
        raise forbidden("this is an operator token, which belongs to no member; log in as a member")
    return principal.member_id


# -- members ---------------------------------------------------------------------------------


def sees_private(principal: Principal, member_id: str) -> bool:
    """Email, status, role, account and contact details: the member and staff."""
    return principal.is_staff or principal.member_id == member_id


def may_edit_profile(principal: Principal, member: Member) -> None:
    if principal.member_id == member.id:
        require_scope(principal, "write")
        return
    may_administer(principal, member)


def may_administer(principal: Principal, member: Member) -> None:
    """Approve, reject, suspend, reactivate or edit someone else: managers for members,
    admins for anyone; nobody for themselves."""
    require_scope(principal, "manage")
    if principal.member_id == member.id:
        raise forbidden("staff cannot approve, suspend or change their own membership")
    if principal.role == ROLE_ADMIN:
        return
    if not principal.can_write:
        raise forbidden("only a community manager or an admin may do this")
    if member.role != ROLE_MEMBER:
        raise forbidden(f"only an admin may act on a member whose role is {member.role}")


def may_set_email(principal: Principal, member: Member) -> None:
    """Set someone's email without their confirmation: a manager for a member who cannot
    confirm one (registered offline, no password); an admin for anyone. Otherwise a
    manager could move any account's mail, and with it its password resets, elsewhere."""
    may_administer(principal, member)
    if member.has_password and principal.role != ROLE_ADMIN:
        raise forbidden(
            "this member can log in and changes their email themselves (with a "
            "confirmation); only an admin may set it for them"
        )


def may_set_roles(principal: Principal) -> None:
    require_scope(principal, "manage")
    if principal.role != ROLE_ADMIN:
        raise forbidden("only an admin may change roles")


# -- organisations ---------------------------------------------------------------------------


def sees_org_private(principal: Principal, org_id: str) -> bool:
    return principal.is_staff or principal.admins(org_id)


def may_manage_org(principal: Principal, org_id: str) -> None:
    require_scope(principal, "manage")
    if not (principal.can_write or principal.admins(org_id)):
        raise forbidden("only this organisation's admins or a community manager may manage it")


def sees_link(principal: Principal, link: Link) -> bool:
    return (
        principal.is_staff or principal.member_id == link.member_id or principal.admins(link.org_id)
    )


def may_move_link(principal: Principal, link: Link, action: str) -> None:
    """accept/decline: the worker; withdraw: the organisation; end: either side."""
    worker = principal.member_id == link.member_id
    org_side = principal.admins(link.org_id) or principal.can_write
    if action in ("accept", "decline"):
        if not worker:
            raise forbidden("only the worker may accept or decline an employee link")
        require_scope(principal, "write")
    elif action == "withdraw" or (action == "end" and not worker):
        if not org_side:
            raise forbidden("only the organisation's admins or a manager may do this")
        require_scope(principal, "manage")
    else:
        require_scope(principal, "write")


# -- ledger accounts -------------------------------------------------------------------------


def may_read_account(principal: Principal, account_id: str) -> None:
    if not (principal.is_staff or principal.holds_account(account_id)):
        raise forbidden(f"this token may not read account {account_id!r}")


def may_spend_from(principal: Principal, account_id: str) -> None:
    """Members and org admins spend only from accounts they hold; managers from any."""
    require_scope(principal, "transfer")
    if principal.can_write:
        return
    if not principal.holds_account(account_id):
        raise forbidden(f"this token may not spend from account {account_id!r}")


async def suspended_accounts(conn: AsyncConnection, account_ids: list[str]) -> set[str]:
    """Which of these accounts belong to a suspended member or organisation (one
    statement: every movement of minutes asks)."""
    frozen = await conn.execute(
        union_all(
            select(members.c.account_id).where(
                members.c.account_id.in_(account_ids), members.c.status == "suspended"
            ),
            select(organisations.c.account_id).where(
                organisations.c.account_id.in_(account_ids), organisations.c.status == "suspended"
            ),
        )
    )
    return {row.account_id for row in frozen}


def account_suspended(account_id: str) -> RuleViolation:
    return RuleViolation(
        "account-suspended",
        f"account {account_id!r} belongs to a suspended member or organisation: "
        "it can neither pay nor be paid until reactivated",
        account=account_id,
    )


async def check_not_suspended(conn: AsyncConnection, account_ids: list[str]) -> None:
    refuse_suspended(await suspended_accounts(conn, account_ids), account_ids)


def refuse_suspended(frozen: set[str], account_ids: list[str]) -> None:
    """Raise for the first of `account_ids` found in `frozen` (see `suspended_accounts`)."""
    for account_id in account_ids:
        if account_id in frozen:
            raise account_suspended(account_id)


async def hold_parties(conn: AsyncConnection, hold_id: str) -> tuple[str, str] | None:
    """(payer, payee) of the hold with this id, or None when there is no such hold."""
    row = (
        await conn.execute(
            select(entries.c.canonical).where(entries.c.id == hold_id, entries.c.kind == KIND_HOLD)
        )
    ).one_or_none()
    if row is None:
        return None
    entry = decode_entry(bytes(row.canonical))
    payer = next(p.account for p in entry.postings if p.minutes < 0)
    payee = next(p.account for p in entry.postings if p.minutes > 0)
    return payer, payee


def actor(principal: Principal) -> Actor:
    """How a principal appears in the audit log."""
    if principal.member_id is not None:
        return Actor(
            f"member {principal.member_id} ({principal.role})",
            member_id=principal.member_id,
            token_id=principal.token_id,
        )
    return Actor(
        f"token {principal.token_id} ({principal.role}: {principal.name})",
        token_id=principal.token_id,
    )
