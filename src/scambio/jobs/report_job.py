"""The monthly co-production report job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.jobs.base import Result, RunContext
from scambio.jobs.collector import collector_paused
from scambio.ledger.entry import format_time, parse_time
from scambio.reports import stored
from scambio.reports.live import compute_report
from scambio.reports.pairs import ingest_pairs
from scambio.reports.signing import encode_document
from scambio.store.tables import entries
from scambio.timebank.context import Timebank

#: Months a start-up catches up, at most (never before the ledger's first entry).
CATCH_UP_MONTHS: Final = 12
#: Figures of the total row copied into the run's record.
HEADLINE: Final = ("minutes_exchanged", "exchanges", "active_members", "new_members")


async def coproduction_report(ctx: RunContext) -> Result:
    """Compute, sign and store the month's co-production report.

    The pairs projection is brought up to the head first (in its own transactions: it is
    a re-derivable cache), then the report is computed at the current checkpoint and
    stored in the run's transaction.
    """
    tb = ctx.tb
    await ingest_pairs(tb.engine)
    month = ctx.period
    date_from = month.start.date().isoformat()
    date_to = month.end.date().isoformat()
    at = format_time(ctx.now)
    with collector_paused():
        computed = await compute_report(
            tb.engine, tb.ledger.origin, date_from, date_to, generated_at=at
        )
    document = encode_document(computed.signed(tb.ledger.signer))
    total = computed.report["rows"][0]
    summary: dict[str, Any] = {
        "from": date_from,
        "to": date_to,
        "size": computed.scope.size,
        "root": computed.scope.root.hex(),
        "entries": computed.scope.end - computed.scope.first,
        "rows": len(computed.report["rows"]),
        **{name: total[name] for name in HEADLINE},
    }

    async def save(conn: AsyncConnection) -> None:
        await stored.save(conn, month.key, computed, document, at)

    return Result(summary, save)


async def ledger_start(tb: Timebank) -> datetime | None:
    """When the ledger's first entry was written (None: the ledger is empty)."""
    async with tb.ledger.read() as conn:
        time = (
            await conn.execute(select(entries.c.time).where(entries.c.idx == 0))
        ).scalar_one_or_none()
    return None if time is None else parse_time(str(time))
