"""Jobs that keep the ledger honest: verify-ledger, reconcile-balances, expire-holds."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.jobs.base import JobFailed, Result, RunContext
from scambio.jobs.collector import collector_paused
from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.verify import LogReplayer, ReplayerSnapshot
from scambio.store import queries
from scambio.store import verification as stored
from scambio.store.audit import verify_database
from scambio.store.db import read_snapshot
from scambio.store.reconcile import differences
from scambio.store.tables import checkpoints

log = logging.getLogger(__name__)

#: The hour (UTC) whose verify-ledger run re-verifies the whole log from entry 0.
FULL_VERIFY_HOUR: Final = 3
#: A verification forgets its history every so many entries (bounded memory).
FORGET_EVERY: Final = 100_000
#: Most differences a reconcile-balances run lists in its record.
LISTED: Final = 200
#: Holds voided per round of expire-holds.
EXPIRE_BATCH: Final = 1000


# -- verify-ledger ---------------------------------------------------------------------------


async def verify_ledger(ctx: RunContext) -> Result:
    """Verify the log since the last verified checkpoint (the whole log once a day).

    Incremental runs resume from the stored replay state (`ledger_verification.state`):
    the balances, open holds and Merkle frontier at the size verified last. Each new entry
    is checked as `scambio ledger verify` checks it (canonical bytes, stored leaf hash,
    rules, postings rows, tree nodes) and every new signed checkpoint against the root the
    frontier extended by the new leaves gives, which also proves it consistent with the
    previous one. The full run (hour `FULL_VERIFY_HOUR`, the first run, or `--force`)
    replays from entry 0, which also catches rows altered below the last checkpoint, and
    requires the root at the previously verified size to be the one verified then.

    A failure is recorded (status compromised, first bad index, reason; `/health` shows
    it) and fails the run; the last good state is kept.
    """
    tb = ctx.tb
    ledger = tb.ledger
    verifier = ledger.signer.verifier()
    async with ledger.read() as conn:
        previous = await stored.load(conn)
    snapshot = _snapshot(previous)
    full = snapshot is None or ctx.forced or ctx.period.start.hour == FULL_VERIFY_HOUR
    if full or snapshot is None:
        replayer = LogReplayer(ledger.origin, verifier)
    else:
        replayer = LogReplayer.from_snapshot(snapshot, verifier)
    start = replayer.size
    summary: dict[str, Any] = {"full": full, "from": start}
    at = format_time(ctx.now)
    try:
        with collector_paused():
            report = await verify_database(
                ledger.engine,
                verifier,
                ledger.origin,
                resume=replayer,
                check_cache=False,
                forget_every=FORGET_EVERY,
            )
        if previous is not None and previous.verified_size is not None:
            await _check_history(ledger.engine, previous, report.size)
    except VerificationError as exc:
        reason, index = exc.reason, exc.index
        summary.update(index=index, reason=reason)
        log.critical(
            "LEDGER VERIFICATION FAILED%s: %s",
            "" if exc.index is None else f" at entry {exc.index}",
            reason,
        )

        async def failed(conn: AsyncConnection) -> None:
            await stored.record_failure(conn, index=index, reason=reason, at=at)

        raise JobFailed(f"ledger verification failed: {exc}", summary, failed) from None
    replayer.forget_history()
    state = replayer.snapshot().encode()
    async with ledger.read() as conn:
        note = await queries.checkpoint_at(conn, report.size)
    assert note is not None  # the audit verified it
    summary.update(
        size=report.size,
        entries=report.entries,
        checkpoints=report.checkpoints,
        root=report.root.hex(),
    )

    async def verified(conn: AsyncConnection) -> None:
        await stored.record_verified(
            conn, size=report.size, root=report.root, checkpoint=note, state=state, at=at
        )

    return Result(summary, verified)


def _snapshot(previous: stored.Verification | None) -> ReplayerSnapshot | None:
    if previous is None or previous.state is None:
        return None
    try:
        return ReplayerSnapshot.decode(previous.state)
    except (ValueError, TypeError) as exc:
        log.warning("verify-ledger: stored state unusable (%s); verifying from entry 0", exc)
        return None


async def _check_history(engine: Any, previous: stored.Verification, size: int) -> None:
    """The ledger must still hold what was verified before, with the same root."""
    verified_size = previous.verified_size
    assert verified_size is not None
    if size < verified_size:
        raise VerificationError(
            f"the ledger has {size} entries but {verified_size} were verified on "
            f"{previous.verified_at}: entries were removed",
            index=size,
        )
    async with read_snapshot(engine) as conn:
        root = (
            await conn.execute(
                select(checkpoints.c.root).where(checkpoints.c.size == verified_size)
            )
        ).scalar_one_or_none()
    if root is None or bytes(root) != previous.verified_root:
        now = "no checkpoint" if root is None else f"root {bytes(root).hex()}"
        was = (previous.verified_root or b"").hex()
        raise VerificationError(
            f"history was rewritten: at size {verified_size} the ledger now has {now}, but "
            f"root {was} was verified there on {previous.verified_at}"
        )


# -- reconcile-balances ----------------------------------------------------------------------


async def reconcile_balances(ctx: RunContext) -> Result:
    """Recompute every balance from the postings and compare it with the cache.

    Every difference is reported (the first `LISTED` in the record, all in the log) and
    fails the run; nothing is fixed: `scambio ledger repair-cache` does that, audited.
    """
    async with ctx.tb.ledger.read() as conn:
        checked, found = await differences(conn)
    summary: dict[str, Any] = {"accounts": checked, "differences": len(found)}
    if not found:
        return Result(summary)
    summary["listed"] = [
        {"account": d.account, "field": d.field, "cached": d.cached, "recomputed": d.recomputed}
        for d in found[:LISTED]
    ]
    for difference in found:
        log.error("reconcile-balances: %s", difference.describe())
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    raise JobFailed(
        f"{len(found)} cached balance(s) differ from the postings: "
        + "; ".join(d.describe() for d in found[:3])
        + more
        + ". Run `scambio ledger repair-cache` to repair them (audited).",
        summary,
    )


# -- expire-holds ----------------------------------------------------------------------------


async def expire_holds(ctx: RunContext) -> Result:
    """Void every hold whose expiry has passed, through the normal append path."""
    voided = 0
    refused: Counter[str] = Counter()
    while True:
        outcomes = await ctx.tb.ledger.expire_holds(limit=EXPIRE_BATCH)
        done = sum(1 for o in outcomes if not isinstance(o, RuleViolation))
        refused.update(o.code for o in outcomes if isinstance(o, RuleViolation))
        voided += done
        if len(outcomes) < EXPIRE_BATCH or done == 0:
            break
    summary: dict[str, Any] = {"voided": voided}
    if refused:
        summary["refused"] = dict(refused)
    return Result(summary)
