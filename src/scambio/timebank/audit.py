"""The append-only audit log: who approved, suspended or changed whom, when, and why.

Every administrative act writes one row in the same transaction as the change it
describes, so the log cannot miss a change or record one that was rolled back. Rows are
never updated or deleted (database triggers refuse it, as for the ledger). `details` is a
JSON object of what changed, encoded with sorted keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.store.people_tables import audit_log

_encoder: Final = msgspec.json.Encoder(order="sorted")

#: Actions, as stable strings clients may filter on.
MEMBER_REGISTERED: Final = "member.registered"
MEMBER_CREATED: Final = "member.created"
MEMBER_APPROVED: Final = "member.approved"
MEMBER_REJECTED: Final = "member.rejected"
MEMBER_SUSPENDED: Final = "member.suspended"
MEMBER_REACTIVATED: Final = "member.reactivated"
MEMBER_ROLE_CHANGED: Final = "member.role-changed"
MEMBER_PROFILE_CHANGED: Final = "member.profile-changed"
MEMBER_PASSWORD_RESET: Final = "member.password-reset"  # noqa: S105 - an action name
MEMBER_PASSWORD_CHANGED: Final = "member.password-changed"  # noqa: S105 - an action name
ACCOUNT_LIMITS_CHANGED: Final = "account.limits-changed"
MEMBER_EMAIL_CHANGED: Final = "member.email-changed"
ORG_CREATED: Final = "organisation.created"
ORG_CHANGED: Final = "organisation.changed"
ORG_ADMIN_ADDED: Final = "organisation.admin-added"
ORG_ADMIN_REMOVED: Final = "organisation.admin-removed"
ORG_SUSPENDED: Final = "organisation.suspended"
ORG_REACTIVATED: Final = "organisation.reactivated"
LINK_PROPOSED: Final = "employee-link.proposed"
LINK_ACCEPTED: Final = "employee-link.accepted"
LINK_DECLINED: Final = "employee-link.declined"
LINK_WITHDRAWN: Final = "employee-link.withdrawn"
LINK_ENDED: Final = "employee-link.ended"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a member (through one of their tokens), an operator token, or the CLI."""

    label: str
    member_id: str | None = None
    token_id: str | None = None


CLI: Final = Actor("cli")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    index: int
    at: str
    actor: str
    actor_member_id: str | None
    actor_token_id: str | None
    action: str
    subject_type: str
    subject_id: str
    reason: str | None
    details: dict[str, Any]


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    *,
    at: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row, inside the caller's transaction."""
    await conn.execute(
        insert(audit_log).values(
            at=at,
            actor=actor.label[:300],
            actor_member_id=actor.member_id,
            actor_token_id=actor.token_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            reason=reason,
            details=_encoder.encode(details or {}).decode(),
        )
    )


async def entries(
    conn: AsyncConnection,
    *,
    after: int | None = None,
    limit: int = 100,
    subject_type: str | None = None,
    subject_id: str | None = None,
    action: str | None = None,
    actor_member_id: str | None = None,
) -> list[AuditRecord]:
    """Rows in log order after index `after`, optionally filtered."""
    query = select(audit_log).order_by(audit_log.c.idx).limit(limit)
    if after is not None:
        query = query.where(audit_log.c.idx > after)
    if subject_type is not None:
        query = query.where(audit_log.c.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(audit_log.c.subject_id == subject_id)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if actor_member_id is not None:
        query = query.where(audit_log.c.actor_member_id == actor_member_id)
    return [
        AuditRecord(
            index=int(row.idx),
            at=row.at,
            actor=row.actor,
            actor_member_id=row.actor_member_id,
            actor_token_id=row.actor_token_id,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            reason=row.reason,
            details=msgspec.json.decode(row.details),
        )
        for row in await conn.execute(query)
    ]
