"""Repairing the cached balances from the postings: `scambio ledger repair-cache`.

`reconcile-balances` only reports differences; a manager decides to repair, with a
reason. The repair holds the ledger head lock (as the appender does: `SELECT ... FOR
UPDATE` on PostgreSQL, the write lock on SQLite), so no batch commits between the
recomputation and the update; it writes one audit log row naming every figure it changed,
from what to what, in the same transaction. An account with postings but no cached row
cannot be repaired from postings (its kind and limits are in the log's account entries):
it is reported, and `scambio ledger verify` names the entry to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select, update

from scambio.store.reconcile import MISSING, BalanceDifference, differences
from scambio.store.tables import accounts, ledger_head
from scambio.timebank import audit
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import stamp, writing

CACHE_REPAIRED: Final = "ledger.cache-repaired"


@dataclass(frozen=True, slots=True)
class Repair:
    checked: int
    repaired: list[BalanceDifference] = field(default_factory=list)
    #: Differences a repair cannot fix (accounts without a cached row).
    left: list[BalanceDifference] = field(default_factory=list)


async def repair_cache(tb: Timebank, actor: Actor, *, reason: str, dry_run: bool = False) -> Repair:
    """Set every differing cached balance to what the postings give; audited."""
    async with writing(tb.engine) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                select(ledger_head.c.id).where(ledger_head.c.id == 1).with_for_update()
            )
        checked, found = await differences(conn)
        fixable = [d for d in found if d.field != MISSING]
        left = [d for d in found if d.field == MISSING]
        if dry_run or not fixable:
            return Repair(checked, fixable, left)
        changes: dict[str, dict[str, int]] = {}
        for difference in fixable:
            changes.setdefault(difference.account, {})[difference.field] = difference.recomputed
        for account, values in changes.items():
            await conn.execute(update(accounts).where(accounts.c.id == account).values(values))
        await audit.record(
            conn,
            actor,
            CACHE_REPAIRED,
            "ledger",
            tb.ledger.origin[:64],
            at=stamp(tb.clock),
            reason=reason,
            details={
                "changes": [
                    {"account": d.account, "field": d.field, "from": d.cached, "to": d.recomputed}
                    for d in fixable
                ],
                "unrepairable": [d.account for d in left],
            },
        )
    return Repair(checked, fixable, left)
