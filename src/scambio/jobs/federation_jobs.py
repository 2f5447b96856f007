"""Jobs that keep cross-timebank transfers and peers in step (scambio.federation)."""

from __future__ import annotations

from typing import Any, Final

from scambio.federation import jobs as federation
from scambio.jobs.base import JobFailed, Result, RunContext

#: Most ids or findings a run lists in its record.
LISTED: Final = 50


async def federation_recover(ctx: RunContext) -> Result:
    """Finish in-doubt cross-timebank transfers: ask peers, deliver decisions, abort what
    waited past its deadline; drop expired nonces. A peer that does not answer is tried
    again next minute (listed in `errors`, not a failed run)."""
    report = await federation.recover(ctx.tb, ctx.now)
    summary: dict[str, Any] = {
        "examined": report.examined,
        "committed": report.committed[:LISTED],
        "aborted": report.aborted[:LISTED],
        "told": len(report.told),
        "pending": report.pending[:LISTED],
        "nonces_dropped": report.nonces_dropped,
    }
    if report.errors:
        summary["errors"] = report.errors[:LISTED]
    return Result(summary)


async def federation_reconcile(ctx: RunContext) -> Result:
    """Compare checkpoints (consistency proofs), clearing statements and every cross
    transfer with each peer. Any finding fails the run, loudly: a peer that rewrote its
    history or disagrees about a transfer is for a manager to look at now."""
    reports = await federation.reconcile(ctx.tb, ctx.now)
    summary: dict[str, Any] = {
        "peers": [
            {
                "peer": r.peer,
                "ok": r.ok,
                "checkpoint_size": r.checkpoint_size,
                "transfers_compared": r.transfers_compared,
                "findings": [f"{f.kind}: {f.detail}" for f in r.findings][:LISTED],
            }
            for r in reports
        ]
    }
    bad = [r.peer for r in reports if not r.ok]
    if bad:
        raise JobFailed(f"reconciliation found differences with: {', '.join(bad)}", summary)
    return Result(summary)
