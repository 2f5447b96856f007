"""Reversals with a reason: a manager compensates an earlier entry, and says why.

The ledger's `reverse` appends an entry whose postings negate the original's (once per
entry; the request id makes a retry harmless). This records, in the audit log, who
reversed which entry and why, right after the ledger committed: the reason is also the
reversal entry's memo, so the signed ledger itself carries it. If the audit write fails
after the ledger committed, retrying the same request finds the reversal already made
(`created` false) and writes the audit row then.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from scambio.ledger.errors import RuleViolation
from scambio.store.commands import Appended
from scambio.store.people_tables import audit_log
from scambio.timebank import audit
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import stamp, writing
from scambio.timebank.text import clean_text, invalid

ENTRY_REVERSED: Final = "entry.reversed"
REASON_MAX: Final = 500


def clean_reason(reason: str) -> str:
    text = clean_text(reason, "reason", REASON_MAX)
    if not text:
        raise invalid("reason", "a reason is required to reverse an entry")
    return text


async def reverse_entry(
    tb: Timebank, actor: Actor, *, request_id: str, index: int, reason: str
) -> Appended:
    """Reverse entry `index` (idempotent by `request_id`) and audit it with the reason."""
    outcome = await tb.ledger.reverse(request_id, index, reason)
    if isinstance(outcome, RuleViolation):
        raise outcome
    async with writing(tb.engine) as conn:
        subject = str(outcome.index)
        done = (
            await conn.execute(
                select(audit_log.c.idx).where(
                    audit_log.c.action == ENTRY_REVERSED, audit_log.c.subject_id == subject
                )
            )
        ).first()
        if done is None:
            await audit.record(
                conn,
                actor,
                ENTRY_REVERSED,
                "entry",
                subject,
                at=stamp(tb.clock),
                reason=reason,
                details={"reversed": index, "request": request_id},
            )
    return outcome
