"""Who pays for an exchange: sponsored credit first, then the member's own hours.

Sponsored credit sits in restricted accounts, one per member and sponsor:
``restricted:<organisation id>:<member id>`` (kind `sponsor`, never below zero), filled
by the sponsor's grant policy from ``sponsor:<organisation id>``. A member never spends
from it directly (they do not hold it); it pays only for exchanges in the areas and
zones the sponsor's grant policy names, and it pays first.

When a member pays for an exchange, `plan` splits the minutes into legs: one per
restricted account that may pay for it (up to `MAX_SPONSORED_LEGS`, in sponsor order),
then the member's own account for the rest. Each leg is one ledger entry with one payer,
as holds require; their ids derive from the exchange's entry id (`leg_id`): the first
leg keeps the id the exchange always had (`xch-<id>`), the others add `.1`, `.2`, `.3`.
Legs are written together (linked), so an exchange's legs exist all or none, and the
first one tells whether any do. A sponsored leg carries the annotations of a policy
spend: `policy`, `policy_version`, `period`, `rule = "spend"`, with the exchange's
`exchange` (or `group`), `area` and `zone`.

The zone of an exchange is its listing's zone, or else the zone of the member who
receives the help (where it is given, for most help at home).

This module reads the store only; the exchange workflow calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import decode_entry
from scambio.ledger.rules import annotations_of
from scambio.policy.periods import period_at
from scambio.store.listings_tables import listings
from scambio.store.people_tables import members
from scambio.store.policy_tables import policies, policy_restricted_accounts, policy_versions
from scambio.store.tables import accounts, entries

RESTRICTED_PREFIX: Final = "restricted:"
SPONSOR_PREFIX: Final = "sponsor:"
#: Most restricted accounts one payment draws on (so at most four legs).
MAX_SPONSORED_LEGS: Final = 3
SPEND: Final = "spend"


def sponsor_account(org_id: str) -> str:
    return f"{SPONSOR_PREFIX}{org_id}"


def restricted_account(org_id: str, member_id: str) -> str:
    return f"{RESTRICTED_PREFIX}{org_id}:{member_id}"


def is_restricted(account: str) -> bool:
    return account.startswith(RESTRICTED_PREFIX)


def leg_id(base: str, position: int) -> str:
    return base if position == 0 else f"{base}.{position}"


def leg_ids(base: str) -> list[str]:
    return [leg_id(base, k) for k in range(MAX_SPONSORED_LEGS + 1)]


@dataclass(frozen=True, slots=True)
class Credit:
    """A member's sponsored credit from one sponsor, and where it may be spent."""

    account: str
    org_id: str
    available: int
    policy_id: str
    version: str
    period: str
    areas: tuple[str, ...]
    zones: tuple[str, ...]

    def covers(self, area: str | None, zone: str | None) -> bool:
        if area is None or area not in self.areas:
            return False
        return not self.zones or zone in self.zones

    def refs(self, zone: str | None) -> dict[str, str]:
        found = {
            "policy": self.policy_id,
            "policy_version": self.version,
            "period": self.period,
            "rule": SPEND,
        }
        if zone:
            found["zone"] = zone
        return found


@dataclass(frozen=True, slots=True)
class Leg:
    """One payer's share of a payment; `refs` are the annotations it adds."""

    payer: str
    minutes: int
    refs: dict[str, str]

    @property
    def sponsored(self) -> bool:
        return is_restricted(self.payer)


@dataclass(frozen=True, slots=True)
class Written:
    """A leg already in the ledger (a hold or a transfer)."""

    id: str
    index: int
    kind: str
    payer: str
    payee: str
    minutes: int
    refs: dict[str, str]


def grant_rule(canonical: str) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(areas, zones, every) of a grant policy version's canonical content."""
    content: dict[str, Any] = msgspec.json.decode(canonical)
    params = content.get("params", {})
    return (
        tuple(params.get("areas", ())),
        tuple(params.get("zones", ())),
        str(content.get("schedule", {}).get("every", "month")),
    )


async def grant_policies(
    conn: AsyncConnection, org_ids: Iterable[str]
) -> dict[str, tuple[str, str, str]]:
    """For each sponsor, its grant policy in force: (policy id, version, canonical).

    An active policy wins; a sponsor whose grant policy was retired keeps the rule of its
    last version for the credit already granted."""
    wanted = sorted(set(org_ids))
    found: dict[str, tuple[str, str, str, bool, str]] = {}
    if not wanted:
        return {}
    rows = await conn.execute(
        select(
            policies.c.id,
            policies.c.sponsor_org,
            policies.c.version,
            policies.c.status,
            policies.c.applied_at,
            policy_versions.c.canonical,
        )
        .join(policy_versions, policy_versions.c.version == policies.c.version)
        .where(policies.c.kind == "grant", policies.c.sponsor_org.in_(wanted))
    )
    for row in rows:
        rank = (row.status == "active", row.applied_at)
        current = found.get(row.sponsor_org)
        if current is None or rank > (current[3], current[4]):
            found[row.sponsor_org] = (
                row.id,
                row.version,
                row.canonical,
                row.status == "active",
                row.applied_at,
            )
    return {org: (v[0], v[1], v[2]) for org, v in found.items()}


async def credits(conn: AsyncConnection, member_account: str, now: datetime) -> list[Credit]:
    """The member's sponsored credit with minutes available, in sponsor order."""
    rows = list(
        await conn.execute(
            select(
                policy_restricted_accounts.c.account_id,
                policy_restricted_accounts.c.org_id,
                accounts.c.posted,
                accounts.c.debits_pending,
            )
            .join(accounts, accounts.c.id == policy_restricted_accounts.c.account_id)
            .where(policy_restricted_accounts.c.member_account == member_account)
            .order_by(policy_restricted_accounts.c.org_id)
        )
    )
    rows = [r for r in rows if int(r.posted) - int(r.debits_pending) > 0]
    if not rows:
        return []
    rules = await grant_policies(conn, (r.org_id for r in rows))
    found: list[Credit] = []
    for row in rows:
        rule = rules.get(row.org_id)
        if rule is None:
            continue
        policy_id, version, canonical = rule
        areas, zones, every = grant_rule(canonical)
        found.append(
            Credit(
                account=row.account_id,
                org_id=row.org_id,
                available=int(row.posted) - int(row.debits_pending),
                policy_id=policy_id,
                version=version,
                period=period_at(every, now).label,
                areas=areas,
                zones=zones,
            )
        )
    return found


async def spend_refs(
    conn: AsyncConnection, restricted: Iterable[str], now: datetime
) -> dict[str, dict[str, str]]:
    """The spend annotations of payments from these restricted accounts."""
    wanted = sorted(set(restricted))
    orgs = {account: account.split(":")[1] for account in wanted}
    rules = await grant_policies(conn, orgs.values())
    found: dict[str, dict[str, str]] = {}
    for account, org in orgs.items():
        rule = rules.get(org)
        if rule is None:
            continue
        policy_id, version, canonical = rule
        every = grant_rule(canonical)[2]
        found[account] = {
            "policy": policy_id,
            "policy_version": version,
            "period": period_at(every, now).label,
            "rule": SPEND,
        }
    return found


def split(
    minutes: int,
    own_account: str,
    available: Sequence[Credit],
    area: str | None,
    zone: str | None,
) -> list[Leg]:
    """Sponsored credit that covers this area and zone first, then the payer's own."""
    legs: list[Leg] = []
    left = minutes
    usable = [c for c in available if c.available > 0 and c.covers(area, zone)]
    for credit in usable[:MAX_SPONSORED_LEGS]:
        if left == 0:
            break
        take = min(credit.available, left)
        legs.append(Leg(credit.account, take, credit.refs(zone)))
        left -= take
    if left > 0:
        legs.append(Leg(own_account, left, {}))
    return legs


def allocate(final: int, held: Sequence[int]) -> list[int]:
    """How much of `final` minutes each leg pays: sponsored legs (listed first) first."""
    amounts: list[int] = []
    left = final
    for minutes in held:
        take = min(minutes, left)
        amounts.append(take)
        left -= take
    return amounts


async def exchange_zone(
    conn: AsyncConnection, listing_id: str | None, receiver_account: str
) -> str | None:
    """The listing's zone, else the receiving member's zone."""
    if listing_id is not None:
        row = (
            await conn.execute(select(listings.c.zone).where(listings.c.id == listing_id))
        ).one_or_none()
        if row is not None and row.zone:
            return str(row.zone)
    row = (
        await conn.execute(select(members.c.zone).where(members.c.account_id == receiver_account))
    ).one_or_none()
    return None if row is None or not row.zone else str(row.zone)


async def plan(
    conn: AsyncConnection,
    payer: str,
    minutes: int,
    *,
    area: str | None,
    now: datetime,
    listing_id: str | None = None,
    zone: str | None = None,
    known_zone: bool = False,
) -> list[Leg]:
    """The legs that pay `minutes` for `payer` (one leg, their own, when no sponsored
    credit applies). `zone` is used as given when `known_zone` (group exchanges)."""
    available = await credits(conn, payer, now)
    if not available:
        return [Leg(payer, minutes, {})]
    if not known_zone:
        zone = await exchange_zone(conn, listing_id, payer)
    return split(minutes, payer, available, area, zone)


async def written_legs(conn: AsyncConnection, base: str, kind: str) -> list[Written]:
    """The legs of a payment already in the ledger (holds or transfers), in leg order."""
    ids = leg_ids(base)
    rows = await conn.execute(
        select(entries.c.id, entries.c.idx, entries.c.canonical).where(
            entries.c.id.in_(ids), entries.c.kind == kind
        )
    )
    found: dict[str, Written] = {}
    for row in rows:
        entry = decode_entry(bytes(row.canonical))
        debit, credit = entry.postings[0], entry.postings[-1]
        found[row.id] = Written(
            row.id,
            int(row.idx),
            entry.kind,
            debit.account,
            credit.account,
            credit.minutes,
            annotations_of(entry),
        )
    return [found[i] for i in ids if i in found]
