"""Jobs that move the timebank along: exchanges, listings and mail."""

from __future__ import annotations

from typing import Any, Final

from scambio.jobs.base import Result, RunContext
from scambio.timebank import exchanges, listings, notifications

#: Most ids a run lists in its record (the counts are always complete).
LISTED: Final = 100


async def auto_confirm_exchanges(ctx: RunContext) -> Result:
    """Confirm exchanges nobody confirmed or disputed in time, expire accepted exchanges
    never marked done, retry ledger effects left due and release orphaned holds
    (`timebank.exchanges.auto_confirm_due`)."""
    sweep = await exchanges.auto_confirm_due(ctx.tb)
    summary: dict[str, Any] = {}
    for name in ("confirmed", "expired", "settled", "released"):
        ids: list[str] = getattr(sweep, name)
        summary[name] = len(ids)
        if ids:
            summary[f"{name}_ids"] = ids[:LISTED]
    if sweep.skipped:
        summary["skipped"] = dict(list(sweep.skipped.items())[:LISTED])
    return Result(summary)


async def listing_reminders(ctx: RunContext) -> Result:
    """Email the owners of listings about to lapse, once per expiry date."""
    return Result({"reminded": await listings.send_expiry_reminders(ctx.tb)})


async def expire_listings(ctx: RunContext) -> Result:
    """Mark listings past their expiry as expired."""
    return Result({"expired": await listings.expire_listings(ctx.tb)})


async def flush_mail(ctx: RunContext) -> Result:
    """Deliver due mail: retries of failed deliveries, and mail other processes queued."""
    return Result({"delivered": await ctx.tb.mailer.flush()})


async def send_digests(ctx: RunContext) -> Result:
    """Email each member who asked for it one summary of their unread notifications that no
    email covered yet (`timebank.notifications.send_digests`)."""
    run = await notifications.send_digests(ctx.tb)
    return Result({"members": run.members, "notifications": run.notifications})
