"""What people read about policies: the policies and their versions, an organisation's
sponsorship figures, a member's sponsored credit, and enrolments.

Figures come from the decisions the runner recorded (granted, returned, matched,
donated, pool grants, not issued for lack of budget) and, for spending, from the ledger
itself: the payments made from the sponsor's restricted accounts, with the area and
period their annotations name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import KIND_POST, decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import annotations_of
from scambio.policy import context as contexts
from scambio.policy.funding import grant_policies, grant_rule
from scambio.policy.kinds import EXPIRY, GRANT, MATCH, POOL_GRANT, STAFF_TIME, load_kinds
from scambio.policy.runner import Loaded, load_policy
from scambio.store.people_tables import employee_links, members, organisations
from scambio.store.policy_tables import (
    policies,
    policy_enrolments,
    policy_files,
    policy_issues,
    policy_restricted_accounts,
    policy_versions,
)
from scambio.store.tables import accounts, entries, postings
from scambio.timebank import audit
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import stamp, writing

POLICY_ENROLLED: Final = "policy.enrolled"
POLICY_UNENROLLED: Final = "policy.unenrolled"


def policy_not_found(policy_id: str) -> RuleViolation:
    return RuleViolation(
        "policy-not-found", f"policy {policy_id!r} does not exist", policy=policy_id
    )


# -- policies and versions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRow:
    id: str
    kind: str
    title: str
    sponsor: str | None
    status: str
    version: str
    file: str
    first_applied_at: str
    applied_at: str
    file_error: str | None = None
    content: dict[str, Any] = field(default_factory=dict)


def _row(row: Any, error: str | None = None, canonical: str | None = None) -> PolicyRow:
    return PolicyRow(
        id=row.id,
        kind=row.kind,
        title=row.title,
        sponsor=row.sponsor_org,
        status=row.status,
        version=row.version,
        file=row.file,
        first_applied_at=row.first_applied_at,
        applied_at=row.applied_at,
        file_error=error,
        content={} if canonical is None else msgspec.json.decode(canonical),
    )


async def listing(conn: AsyncConnection, *, sponsor: str | None = None) -> list[PolicyRow]:
    query = select(policies).order_by(policies.c.id)
    if sponsor is not None:
        query = query.where(policies.c.sponsor_org == sponsor)
    return [_row(row) for row in await conn.execute(query)]


async def get(conn: AsyncConnection, policy_id: str) -> PolicyRow:
    row = (
        await conn.execute(
            select(policies, policy_versions.c.canonical)
            .join(policy_versions, policy_versions.c.version == policies.c.version)
            .where(policies.c.id == policy_id)
        )
    ).one_or_none()
    if row is None:
        raise policy_not_found(policy_id)
    error = (
        await conn.execute(
            select(policy_files.c.error).where(
                policy_files.c.file == row.file, policy_files.c.status == "error"
            )
        )
    ).scalar_one_or_none()
    return _row(row, error, row.canonical)


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    policy_id: str
    kind: str
    file: str
    applied_at: str
    source: str = ""
    canonical: str = ""
    in_force: bool = False


async def versions(conn: AsyncConnection, policy_id: str) -> list[Version]:
    current = await get(conn, policy_id)
    rows = await conn.execute(
        select(
            policy_versions.c.version,
            policy_versions.c.policy_id,
            policy_versions.c.kind,
            policy_versions.c.file,
            policy_versions.c.applied_at,
        )
        .where(policy_versions.c.policy_id == policy_id)
        .order_by(policy_versions.c.applied_at, policy_versions.c.version)
    )
    return [
        Version(
            r.version,
            r.policy_id,
            r.kind,
            r.file,
            r.applied_at,
            in_force=r.version == current.version,
        )
        for r in rows
    ]


async def version(conn: AsyncConnection, version_hash: str) -> Version:
    row = (
        await conn.execute(select(policy_versions).where(policy_versions.c.version == version_hash))
    ).one_or_none()
    if row is None:
        raise RuleViolation(
            "policy-version-not-found",
            f"no policy version {version_hash!r} was ever applied",
            version=version_hash,
        )
    current = (
        await conn.execute(select(policies.c.version).where(policies.c.id == row.policy_id))
    ).scalar_one_or_none()
    return Version(
        row.version,
        row.policy_id,
        row.kind,
        row.file,
        row.applied_at,
        row.source,
        row.canonical,
        current == row.version,
    )


# -- enrolments --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolled:
    member_id: str
    name: str
    account: str
    #: When an org admin enrolled them (None: enrolled as an employee, automatically).
    enrolled_at: str | None = None
    enrolled_by: str | None = None


async def _loaded(conn: AsyncConnection, policy_id: str) -> Loaded:
    loaded = await load_policy(conn, policy_id, load_kinds())
    if loaded is None:
        raise policy_not_found(policy_id)
    return loaded


async def enrolled(conn: AsyncConnection, policy_id: str) -> list[Enrolled]:
    """Who the policy is for now (as the next run would see them)."""
    loaded = await _loaded(conn, policy_id)
    found = await contexts.enrolled(conn, loaded.policy)
    if not found:
        return []
    ids = [m.member_id for m in found]
    names = {
        r.id: r.name
        for r in await conn.execute(
            select(members.c.id, members.c.name).where(members.c.id.in_(ids))
        )
    }
    chosen = {
        r.member_id: r
        for r in await conn.execute(
            select(policy_enrolments).where(
                policy_enrolments.c.policy_id == policy_id, policy_enrolments.c.member_id.in_(ids)
            )
        )
    }
    return [
        Enrolled(
            m.member_id,
            names.get(m.member_id, ""),
            m.account,
            chosen[m.member_id].enrolled_at if m.member_id in chosen else None,
            chosen[m.member_id].enrolled_by if m.member_id in chosen else None,
        )
        for m in found
    ]


def _by_admin(loaded: Loaded) -> None:
    if getattr(loaded.policy.params, "enrolment", None) != "by-admin" or getattr(
        loaded.policy.params, "members", ()
    ):
        raise RuleViolation(
            "enrolment-not-needed",
            f"policy {loaded.policy.id!r} does not take enrolments: it is for "
            + (
                "the members it names"
                if getattr(loaded.policy.params, "members", ())
                else "every active employee of its sponsor"
                if hasattr(loaded.policy.params, "enrolment")
                else "no members"
            ),
            policy=loaded.policy.id,
        )


async def enrol(tb: Timebank, actor: Actor, policy_id: str, member_id: str) -> bool:
    """Enrol an active employee of the sponsor; False when they already were enrolled."""
    now = stamp(tb.clock)
    try:
        async with writing(tb.engine) as conn:
            loaded = await _loaded(conn, policy_id)
            _by_admin(loaded)
            employed = (
                await conn.execute(
                    select(employee_links.c.id)
                    .join(members, members.c.id == employee_links.c.member_id)
                    .where(
                        employee_links.c.org_id == loaded.policy.sponsor,
                        employee_links.c.member_id == member_id,
                        employee_links.c.status == "active",
                        members.c.status == "active",
                    )
                )
            ).first()
            if employed is None:
                raise RuleViolation(
                    "not-an-employee",
                    f"member {member_id!r} is not an active employee of organisation "
                    f"{loaded.policy.sponsor}",
                    member=member_id,
                )
            known = (
                await conn.execute(
                    select(policy_enrolments.c.member_id).where(
                        policy_enrolments.c.policy_id == policy_id,
                        policy_enrolments.c.member_id == member_id,
                    )
                )
            ).one_or_none()
            if known is not None:
                return False
            await conn.execute(
                insert(policy_enrolments).values(
                    policy_id=policy_id,
                    member_id=member_id,
                    enrolled_at=now,
                    enrolled_by=actor.label[:300],
                )
            )
            await audit.record(
                conn,
                actor,
                POLICY_ENROLLED,
                "policy",
                policy_id,
                at=now,
                details={"member": member_id},
            )
    except IntegrityError:
        return False  # enrolled by a concurrent request
    return True


async def unenrol(
    tb: Timebank, actor: Actor, policy_id: str, member_id: str, reason: str | None = None
) -> None:
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        loaded = await _loaded(conn, policy_id)
        _by_admin(loaded)
        result = await conn.execute(
            delete(policy_enrolments).where(
                policy_enrolments.c.policy_id == policy_id,
                policy_enrolments.c.member_id == member_id,
            )
        )
        if result.rowcount != 1:
            raise RuleViolation(
                "enrolment-not-found",
                f"member {member_id!r} is not enrolled in policy {policy_id!r}",
                member=member_id,
            )
        await audit.record(
            conn,
            actor,
            POLICY_UNENROLLED,
            "policy",
            policy_id,
            at=now,
            reason=reason,
            details={"member": member_id},
        )


# -- an organisation's sponsorship -------------------------------------------------------------


@dataclass(slots=True)
class PeriodFigures:
    period: str
    budget_minutes: int | None = None
    used: int = 0
    not_issued: int = 0
    granted: int = 0
    expired: int = 0
    matched: int = 0
    staff_time: int = 0
    pool_granted: int = 0
    spent: int = 0
    spent_by_area: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    @property
    def left(self) -> int | None:
        return None if self.budget_minutes is None else max(0, self.budget_minutes - self.used)


@dataclass(slots=True)
class PolicyFigures:
    policy: PolicyRow
    budget_minutes: int | None
    enrolled: list[Enrolled]
    periods: list[PeriodFigures]


_RULE_FIELD: Final = {
    GRANT: "granted",
    EXPIRY: "expired",
    MATCH: "matched",
    STAFF_TIME: "staff_time",
    POOL_GRANT: "pool_granted",
}


async def spending(conn: AsyncConnection, org_id: str) -> list[tuple[dict[str, str], int]]:
    """Every payment made from the organisation's restricted accounts: (annotations of
    the spend, minutes). A post's annotations are its hold's."""
    restricted = select(policy_restricted_accounts.c.account_id).where(
        policy_restricted_accounts.c.org_id == org_id
    )
    rows = list(
        await conn.execute(
            select(postings.c.minutes, entries.c.kind, entries.c.canonical, entries.c.hold_idx)
            .join(entries, entries.c.idx == postings.c.entry_idx)
            .where(
                postings.c.account_id.in_(restricted),
                postings.c.pending.is_(False),
                postings.c.minutes < 0,
            )
            .order_by(postings.c.entry_idx)
        )
    )
    holds = sorted(
        {int(r.hold_idx) for r in rows if r.kind == KIND_POST and r.hold_idx is not None}
    )
    hold_refs: dict[int, dict[str, str]] = {}
    if holds:
        for h in await conn.execute(
            select(entries.c.idx, entries.c.canonical).where(entries.c.idx.in_(holds))
        ):
            hold_refs[int(h.idx)] = annotations_of(decode_entry(bytes(h.canonical)))
    found: list[tuple[dict[str, str], int]] = []
    for r in rows:
        if r.kind == KIND_POST and r.hold_idx is not None:
            refs = hold_refs.get(int(r.hold_idx), {})
        else:
            refs = annotations_of(decode_entry(bytes(r.canonical)))
        if refs.get("rule") == "spend":
            found.append((refs, -int(r.minutes)))
    return found


def _figures(periods: dict[str, PeriodFigures], label: str, budget: int | None) -> PeriodFigures:
    if label not in periods:
        periods[label] = PeriodFigures(label, budget)
    return periods[label]


async def sponsorship(conn: AsyncConnection, org_id: str) -> list[PolicyFigures]:
    """For each of the organisation's policies: who is enrolled, and per period the
    budget, what it used and left, granted, spent by area, expired, matched, donated."""
    rows = await listing(conn, sponsor=org_id)
    spends = await spending(conn, org_id) if rows else []
    figures: list[PolicyFigures] = []
    for row in rows:
        detail = await get(conn, row.id)
        budget = detail.content.get("budget_minutes")
        periods: dict[str, PeriodFigures] = {}
        for issue in await conn.execute(
            select(policy_issues).where(policy_issues.c.policy_id == row.id)
        ):
            figure = _figures(periods, issue.period, budget)
            if issue.state == "failed":
                figure.failed += 1
            if issue.counts:
                figure.not_issued += int(issue.wanted) - int(issue.minutes)
                if issue.state in contexts.LIVE:
                    figure.used += int(issue.minutes)
            name = _RULE_FIELD.get(issue.rule)
            if name is not None and issue.state == "done":
                setattr(figure, name, getattr(figure, name) + int(issue.minutes))
        for refs, minutes in spends:
            if refs.get("policy") != row.id:
                continue
            figure = _figures(periods, refs.get("period", "?"), budget)
            figure.spent += minutes
            area = refs.get("area", "none")
            figure.spent_by_area[area] = figure.spent_by_area.get(area, 0) + minutes
        try:
            people = await enrolled(conn, row.id)
        except RuleViolation:
            people = []
        figures.append(PolicyFigures(detail, budget, people, [periods[k] for k in sorted(periods)]))
    return figures


async def require_org(conn: AsyncConnection, org_id: str) -> str:
    row = (
        await conn.execute(select(organisations.c.name).where(organisations.c.id == org_id))
    ).one_or_none()
    if row is None:
        raise RuleViolation(
            "organisation-not-found", f"organisation {org_id!r} does not exist", organisation=org_id
        )
    return str(row.name)


# -- a member's sponsored credit ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotView:
    policy: str
    period: str
    granted: int
    unspent: int
    expires_at: str
    expired: bool


@dataclass(frozen=True, slots=True)
class CreditView:
    account: str
    organisation: str
    organisation_name: str
    posted: int
    held: int
    available: int
    policy: str | None
    areas: tuple[str, ...]
    zones: tuple[str, ...]
    lots: list[LotView]


async def sponsored_credit(conn: AsyncConnection, member_account: str) -> list[CreditView]:
    """The member's restricted accounts: balance, where each may be spent, and its lots
    (granted, unspent, when they expire)."""
    rows = list(
        await conn.execute(
            select(
                policy_restricted_accounts.c.account_id,
                policy_restricted_accounts.c.org_id,
                accounts.c.posted,
                accounts.c.debits_pending,
                organisations.c.name,
            )
            .join(accounts, accounts.c.id == policy_restricted_accounts.c.account_id)
            .join(organisations, organisations.c.id == policy_restricted_accounts.c.org_id)
            .where(policy_restricted_accounts.c.member_account == member_account)
            .order_by(policy_restricted_accounts.c.org_id)
        )
    )
    rules = await grant_policies(conn, (r.org_id for r in rows))
    found: list[CreditView] = []
    for row in rows:
        rule = rules.get(row.org_id)
        areas: tuple[str, ...] = ()
        zones: tuple[str, ...] = ()
        if rule is not None:
            areas, zones, _every = grant_rule(rule[2])
        replay = (await contexts.account_lots(conn, row.account_id)).replay
        lots = [
            LotView(key[0], key[1], lot.granted, max(0, lot.remaining), lot.expires_at, lot.expired)
            for key, lot in sorted(replay.lots.items(), key=lambda kv: kv[1].expires_at)
        ]
        found.append(
            CreditView(
                account=row.account_id,
                organisation=row.org_id,
                organisation_name=row.name,
                posted=int(row.posted),
                held=int(row.debits_pending),
                available=int(row.posted) - int(row.debits_pending),
                policy=None if rule is None else rule[0],
                areas=areas,
                zones=zones,
                lots=lots,
            )
        )
    return found
