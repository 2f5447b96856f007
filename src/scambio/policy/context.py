"""Building a kind's `Context` from the database (read-only).

Who is enrolled, what help they (or the sponsor's own account) gave in the period, which
sponsored credit has reached its expiry and how much of it is unspent, and what the
policy issued already. The kinds never see the database; this module is the only place
that decides what they are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import format_time
from scambio.policy import lots
from scambio.policy.funding import restricted_account, sponsor_account
from scambio.policy.kinds import (
    EXPIRY,
    GRANT,
    NEEDS_GIVEN,
    NEEDS_LOTS,
    NEEDS_MEMBERS,
    Context,
    Given,
    Issued,
    Lot,
    Member,
    PolicyInfo,
    PolicyKind,
    PoolRequest,
)
from scambio.policy.model import Policy
from scambio.policy.periods import Period
from scambio.store.exchanges_tables import exchanges, group_exchanges, group_members
from scambio.store.listings_tables import listings
from scambio.store.people_tables import employee_links, members
from scambio.store.policy_tables import policy_enrolments, policy_issues
from scambio.store.tables import accounts, postings

#: Exchange states in which help was given and paid for.
SETTLED = ("confirmed", "resolved")
#: Issue rows that hold their minutes (against the budget, and as already issued).
LIVE = ("due", "done")


def org_account(org_id: str) -> str:
    return f"o-{org_id}"


def info(policy: Policy) -> PolicyInfo:
    sponsor = policy.sponsor
    return PolicyInfo(
        id=policy.id,
        kind=policy.kind,
        version=policy.version,
        sponsor=sponsor,
        sponsor_account=None if sponsor is None else sponsor_account(sponsor),
        org_account=None if sponsor is None else org_account(sponsor),
        budget_minutes=policy.budget_minutes,
    )


async def enrolled(conn: AsyncConnection, policy: Policy) -> list[Member]:
    """The members a policy is for: those it names, or the sponsor's active employees
    (all of them, or those an org admin enrolled), active members only, by id."""
    params = policy.params
    named: Sequence[str] = getattr(params, "members", ())
    enrolment = getattr(params, "enrolment", None)
    query = select(members.c.id, members.c.account_id, members.c.zone).where(
        members.c.status == "active", members.c.account_id.is_not(None)
    )
    if named:
        query = query.where(members.c.id.in_(list(named)))
    elif enrolment is not None and policy.sponsor is not None:
        employed = select(employee_links.c.member_id).where(
            employee_links.c.org_id == policy.sponsor, employee_links.c.status == "active"
        )
        query = query.where(members.c.id.in_(employed))
        if enrolment == "by-admin":
            chosen = select(policy_enrolments.c.member_id).where(
                policy_enrolments.c.policy_id == policy.id
            )
            query = query.where(members.c.id.in_(chosen))
    else:
        return []
    rows = await conn.execute(query.order_by(members.c.id))
    return [
        Member(
            member_id=row.id,
            account=row.account_id,
            restricted=(
                None if policy.sponsor is None else restricted_account(policy.sponsor, row.id)
            ),
            zone=row.zone,
        )
        for row in rows
    ]


async def given(conn: AsyncConnection, account_ids: Sequence[str], period: Period) -> list[Given]:
    """Help these accounts gave in the period: settled exchanges they provided (by the
    time they were closed) and settled group exchanges they facilitated."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return []
    start, end = format_time(period.start), format_time(period.end)
    rows = list(
        await conn.execute(
            select(
                exchanges.c.id,
                exchanges.c.provider_account,
                exchanges.c.receiver_account,
                exchanges.c.final_minutes,
                exchanges.c.area,
                exchanges.c.listing_id,
                exchanges.c.closed_at,
            )
            .where(
                exchanges.c.provider_account.in_(wanted),
                exchanges.c.state.in_(SETTLED),
                exchanges.c.final_minutes > 0,
                exchanges.c.closed_at >= start,
                exchanges.c.closed_at < end,
            )
            .order_by(exchanges.c.seq)
        )
    )
    listing_zone: dict[str, str | None] = {}
    listing_ids = sorted({r.listing_id for r in rows if r.listing_id})
    if listing_ids:
        for row in await conn.execute(
            select(listings.c.id, listings.c.zone).where(listings.c.id.in_(listing_ids))
        ):
            listing_zone[row.id] = row.zone
    member_zone: dict[str, str | None] = {}
    receivers = sorted({r.receiver_account for r in rows})
    if receivers:
        for row in await conn.execute(
            select(members.c.account_id, members.c.zone).where(members.c.account_id.in_(receivers))
        ):
            member_zone[row.account_id] = row.zone
    found = [
        Given(
            account=r.provider_account,
            source="exchange",
            id=r.id,
            minutes=int(r.final_minutes),
            area=r.area,
            zone=listing_zone.get(r.listing_id or "") or member_zone.get(r.receiver_account),
            at=r.closed_at,
        )
        for r in rows
    ]
    groups = await conn.execute(
        select(
            group_exchanges.c.id,
            group_exchanges.c.minutes,
            group_exchanges.c.area,
            group_exchanges.c.zone,
            group_exchanges.c.settled_at,
            group_members.c.account_id,
        )
        .join(group_members, group_members.c.group_id == group_exchanges.c.id)
        .where(
            group_members.c.account_id.in_(wanted),
            group_members.c.role == "facilitator",
            group_exchanges.c.state == "settled",
            group_exchanges.c.settled_at >= start,
            group_exchanges.c.settled_at < end,
        )
        .order_by(group_exchanges.c.seq)
    )
    found += [
        Given(
            account=g.account_id,
            source="group",
            id=g.id,
            minutes=int(g.minutes),
            area=g.area,
            zone=g.zone,
            at=g.settled_at,
        )
        for g in groups
    ]
    return found


@dataclass(frozen=True, slots=True)
class AccountLots:
    """A restricted account's lots, replayed, and what it can give back now."""

    replay: lots.Replay
    available: int


async def account_lots(conn: AsyncConnection, account: str) -> AccountLots:
    """Replay one restricted account from the ledger and the grant/expiry records."""
    moves = list(
        await conn.execute(
            select(postings.c.entry_idx, postings.c.minutes)
            .where(postings.c.account_id == account, postings.c.pending.is_(False))
            .order_by(postings.c.entry_idx)
        )
    )
    issued = await conn.execute(
        select(
            policy_issues.c.entry_index,
            policy_issues.c.rule,
            policy_issues.c.policy_id,
            policy_issues.c.period,
            policy_issues.c.expires_at,
        ).where(
            or_(policy_issues.c.payee == account, policy_issues.c.payer == account),
            policy_issues.c.state == "done",
            policy_issues.c.entry_index.is_not(None),
        )
    )
    by_index: dict[int, Any] = {int(r.entry_index): r for r in issued}
    movements: list[lots.Movement] = []
    for move in moves:
        index, minutes = int(move.entry_idx), int(move.minutes)
        record = by_index.get(index)
        if record is not None and record.rule == GRANT and minutes > 0:
            movements.append(
                lots.Movement(
                    index,
                    lots.GRANTED,
                    minutes,
                    (record.policy_id, record.period),
                    record.expires_at,
                )
            )
        elif record is not None and record.rule == EXPIRY and minutes < 0:
            movements.append(
                lots.Movement(index, lots.EXPIRED, -minutes, (record.policy_id, record.period))
            )
        elif minutes < 0:
            movements.append(lots.Movement(index, lots.SPENT, -minutes))
        else:
            movements.append(lots.Movement(index, lots.REFUNDED, minutes))
    row = (
        await conn.execute(
            select(accounts.c.posted, accounts.c.debits_pending).where(accounts.c.id == account)
        )
    ).one_or_none()
    available = 0 if row is None else int(row.posted) - int(row.debits_pending)
    return AccountLots(lots.replay(movements), available)


async def due_lots(conn: AsyncConnection, policy_id: str, until: str) -> list[Lot]:
    """Grants of this policy whose credit expired by `until` and was not yet returned."""
    grants = list(
        await conn.execute(
            select(policy_issues)
            .where(
                policy_issues.c.policy_id == policy_id,
                policy_issues.c.rule == GRANT,
                policy_issues.c.state == "done",
                policy_issues.c.minutes > 0,
                policy_issues.c.expires_at <= until,
            )
            .order_by(policy_issues.c.seq)
        )
    )
    if not grants:
        return []
    returned = {
        (r.period, r.subject)
        for r in await conn.execute(
            select(policy_issues.c.period, policy_issues.c.subject).where(
                policy_issues.c.policy_id == policy_id,
                policy_issues.c.rule == EXPIRY,
                policy_issues.c.state == "done",
            )
        )
    }
    found: list[Lot] = []
    replays: dict[str, AccountLots] = {}
    for grant in grants:
        if (grant.period, grant.subject) in returned:
            continue
        account = grant.payee
        if account not in replays:
            replays[account] = await account_lots(conn, account)
        state = replays[account]
        lot = state.replay.lots.get((policy_id, grant.period))
        unspent = 0 if lot is None else max(0, lot.remaining)
        found.append(
            Lot(
                member_id=account.rsplit(":", 1)[-1],
                account=grant.subject,
                restricted=account,
                period=grant.period,
                granted=int(grant.minutes),
                unspent=unspent,
                available=state.available,
                expires_at=grant.expires_at,
            )
        )
    return found


async def issued_in(conn: AsyncConnection, policy_id: str, period: str) -> list[Issued]:
    rows = await conn.execute(
        select(policy_issues.c.rule, policy_issues.c.subject, policy_issues.c.minutes).where(
            policy_issues.c.policy_id == policy_id,
            policy_issues.c.period == period,
            policy_issues.c.state.in_(LIVE),
        )
    )
    return [Issued(rule=r.rule, subject=r.subject, minutes=int(r.minutes)) for r in rows]


async def build(
    conn: AsyncConnection,
    policy: Policy,
    kind: PolicyKind,
    period: Period,
    now: datetime,
    *,
    issue: bool = True,
    lots_until: datetime | None = None,
    requests: Sequence[PoolRequest] = (),
) -> Context:
    """The context of one run of `policy` for `period`.

    With `issue` false only what falls due regardless of the period is loaded (the
    expiry of credit already granted): a retired policy, or a period outside its
    schedule. Expired lots are those due by `lots_until` (default: `now`).
    """
    members_: list[Member] = []
    if issue and NEEDS_MEMBERS in kind.needs:
        members_ = await enrolled(conn, policy)
    gifts: list[Given] = []
    if issue and NEEDS_GIVEN in kind.needs:
        who = [m.account for m in members_]
        if policy.sponsor is not None:
            who.append(org_account(policy.sponsor))
        gifts = await given(conn, who, period)
    due: list[Lot] = []
    if NEEDS_LOTS in kind.needs:
        due = await due_lots(conn, policy.id, format_time(lots_until or now))
    return Context(
        policy=info(policy),
        period=period.label,
        period_start=format_time(period.start),
        period_end=format_time(period.end),
        now=format_time(now),
        members=tuple(members_),
        given=tuple(gifts),
        lots=tuple(due),
        issued=tuple(await issued_in(conn, policy.id, period.label)),
        requests=tuple(requests),
    )


def issue_key(policy_id: str, period: str, rule: str, subject: str) -> Any:
    return and_(
        policy_issues.c.policy_id == policy_id,
        policy_issues.c.period == period,
        policy_issues.c.rule == rule,
        policy_issues.c.subject == subject,
    )
