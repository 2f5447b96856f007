"""Recomputing balances from the postings and comparing them with the `accounts` cache.

The cache (posted, pending debits, pending credits per account) is updated by the
appender in the same transaction as the entries, and the appender checks limits against
it, so a wrong cache would let the ledger accept what it should refuse. Here, in one
snapshot:

- `posted` = sum of the account's postings that are not pending (hold legs are);
- `debits_pending` / `credits_pending` = the account's legs of holds that no post or void
  resolves yet (an entry whose `hold_idx` names the hold), minutes taken / added.

`differences` reports every cached figure that differs, and every account that has
postings but no cached row. Nothing is changed here; `timebank.cache_repair` does that,
audited, when a manager asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.store.tables import accounts, entries, postings

FIELDS: Final = ("posted", "debits_pending", "credits_pending")
#: `field` of a difference for an account with postings but no row in the cache.
MISSING: Final = "row"


@dataclass(frozen=True, slots=True)
class BalanceDifference:
    account: str
    #: posted, debits_pending, credits_pending, or "row" (no cached row at all).
    field: str
    cached: int | None
    recomputed: int

    def describe(self) -> str:
        if self.field == MISSING:
            return f"account {self.account!r} has postings but no cached balance row"
        return (
            f"{self.field} of {self.account!r} is {self.cached} in the cache, "
            f"{self.recomputed} from the postings"
        )


async def recompute(conn: AsyncConnection) -> dict[str, tuple[int, int, int]]:
    """(posted, debits_pending, credits_pending) of every account with postings."""
    totals: dict[str, list[int]] = {}
    for account, posted in await conn.execute(
        select(postings.c.account_id, func.sum(postings.c.minutes))
        .where(postings.c.pending.is_(False))
        .group_by(postings.c.account_id)
    ):
        totals.setdefault(account, [0, 0, 0])[0] = int(posted)
    resolution = entries.alias("resolution")
    open_hold = ~exists().where(resolution.c.hold_idx == postings.c.entry_idx)
    for account, debits, credits in await conn.execute(
        select(
            postings.c.account_id,
            func.sum(case((postings.c.minutes < 0, -postings.c.minutes), else_=0)),
            func.sum(case((postings.c.minutes > 0, postings.c.minutes), else_=0)),
        )
        .where(postings.c.pending.is_(True), open_hold)
        .group_by(postings.c.account_id)
    ):
        row = totals.setdefault(account, [0, 0, 0])
        row[1], row[2] = int(debits), int(credits)
    return {account: (p, d, c) for account, (p, d, c) in totals.items()}


async def differences(conn: AsyncConnection) -> tuple[int, list[BalanceDifference]]:
    """(accounts checked, every difference), in account order."""
    computed = await recompute(conn)
    found: list[BalanceDifference] = []
    checked = 0
    seen: set[str] = set()
    for row in await conn.execute(
        select(
            accounts.c.id, accounts.c.posted, accounts.c.debits_pending, accounts.c.credits_pending
        ).order_by(accounts.c.id)
    ):
        checked += 1
        seen.add(row.id)
        expected = computed.get(row.id, (0, 0, 0))
        for name, value in zip(FIELDS, expected, strict=True):
            cached = int(getattr(row, name))
            if cached != value:
                found.append(BalanceDifference(row.id, name, cached, value))
    for account in sorted(set(computed) - seen):
        found.append(BalanceDifference(account, MISSING, None, computed[account][0]))
    found.sort(key=lambda d: (d.account, FIELDS.index(d.field) if d.field in FIELDS else 3))
    return checked, found
