"""Recovery of in-doubt transfers: finish what a crash, a timeout or a lost message left.

Idempotent and safe to run at any time, concurrently with live requests and with itself:
every step is a compare-and-set on the transfer's row and every ledger effect has a
derived id. One pass, for each unfinished transfer:

- payer side (`out`): a recorded decision (`committing`, `aborting`) is carried out; a
  final decision the peer has not acknowledged is sent again; a transfer still `held`
  re-sends its prepare (the peer answers a repeated prepare as it did the first time),
  and past the prepare deadline is aborted: the payer's node decides, so it may; one
  interrupted before its prepare left (`preparing`) is aborted.
- payee side (`in`): a `prepared` transfer asks the payer's node for its decision and
  follows it (the answer is signed by the payer's node; an unsigned or forged one is
  ignored); one interrupted before it voted is refused, its hold (if any) voided.

Rows younger than a grace period (twice the request timeout) in `preparing` are left to
the request that is creating them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select

from scambio.federation import peers as peers_mod
from scambio.federation import transfers as fed
from scambio.federation.client import PeerRefusal, PeerUnreachable, call
from scambio.federation.httpsig import MAX_SKEW
from scambio.federation.protocol import StatusIn, StatusOut
from scambio.ledger.entry import parse_time
from scambio.ledger.errors import RuleViolation
from scambio.store.federation_tables import federation_nonces, federation_transfers
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, writing

log = logging.getLogger(__name__)

#: Most transfers one pass looks at (the next pass takes the rest).
BATCH = 500


@dataclass
class RecoveryReport:
    examined: int = 0
    committed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    told: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nonces_dropped: int = 0

    def summary(self) -> str:
        return (
            f"examined {self.examined}: {len(self.committed)} committed, {len(self.aborted)} "
            f"aborted, {len(self.told)} decisions delivered, {len(self.pending)} still pending, "
            f"{len(self.errors)} errors; {self.nonces_dropped} old nonces dropped"
        )


async def _unfinished(tb: Timebank) -> list[fed.FedTransfer]:
    t = federation_transfers.c
    query = (
        select(federation_transfers)
        .where(
            or_(
                t.state.in_(("preparing", "held", "prepared", "committing", "aborting")),
                and_(
                    t.direction == "out",
                    t.state.in_(("committed", "aborted")),
                    t.peer_acked.is_(False),
                    or_(t.decision == "commit", t.prepare_sent.is_(True)),
                ),
            )
        )
        .order_by(t.created_at, t.id)
        .limit(BATCH)
    )
    async with reading(tb.engine) as conn:
        return [fed._transfer(row) for row in await conn.execute(query)]


async def drop_old_nonces(tb: Timebank, now: datetime) -> int:
    """Nonces older than the freshness window can never be replayed: a replay is stale."""
    cutoff = int(now.timestamp()) - 2 * MAX_SKEW
    async with writing(tb.engine) as conn:
        result = await conn.execute(
            delete(federation_nonces).where(federation_nonces.c.created < cutoff)
        )
        return int(result.rowcount or 0)


def _record(report: RecoveryReport, before: fed.FedTransfer, after: fed.FedTransfer) -> None:
    if after.state == "committed" and before.state != "committed":
        report.committed.append(after.id)
    elif after.state in ("aborted", "refused") and before.state not in ("aborted", "refused"):
        report.aborted.append(after.id)
    elif fed.needs_telling(before) and not fed.needs_telling(after):
        report.told.append(after.id)
    if after.pending or fed.needs_telling(after):
        report.pending.append(after.id)


async def recover(tb: Timebank, now: datetime) -> RecoveryReport:
    report = RecoveryReport(nonces_dropped=await drop_old_nonces(tb, now))
    rows = await _unfinished(tb)
    report.examined = len(rows)
    grace = timedelta(seconds=2 * tb.settings.federation_timeout)
    deadline = timedelta(seconds=tb.settings.federation_prepare_deadline)
    asking: dict[str, list[fed.FedTransfer]] = defaultdict(list)
    for row in rows:
        created = parse_time(row.created_at)
        try:
            if row.direction == "in" and row.state == "prepared":
                if now - created >= grace:
                    asking[row.peer].append(row)
                else:
                    report.pending.append(row.id)
                continue
            after = await _step(tb, row, now - created, grace, deadline)
        except (RuleViolation, RuntimeError, PeerUnreachable, PeerRefusal) as exc:
            report.errors.append(f"{row.id}: {exc}")
            continue
        _record(report, row, after)
    for peer_name, waiting in asking.items():
        await _ask(tb, peer_name, waiting, report)
    if report.errors:
        log.warning("federation recovery: %s", "; ".join(report.errors)[:2000])
    return report


async def _step(
    tb: Timebank,
    row: fed.FedTransfer,
    age: timedelta,
    grace: timedelta,
    deadline: timedelta,
) -> fed.FedTransfer:
    if row.state == "preparing":
        if age < grace:
            return row
        if row.direction == "out":
            return await fed.abort(
                tb,
                row,
                code="interrupted",
                reason="the transfer was interrupted before its prepare was sent",
            )
        return await _refuse_interrupted(tb, row)
    if row.state == "held":
        if age >= deadline:
            return await fed.abort(
                tb,
                row,
                code="peer-unreachable",
                reason=f"{row.peer} gave no answer within {int(deadline.total_seconds())} s",
            )
        return await fed.drive(tb, row)
    return await fed.settle(tb, row)


async def _refuse_interrupted(tb: Timebank, row: fed.FedTransfer) -> fed.FedTransfer:
    """Payee side, before its vote was sent: it may still refuse (the payer's node then
    aborts); the hold, if it was written, is released."""
    refused = await fed._cas(
        tb,
        row,
        ("preparing",),
        state="aborting",
        reason_code="interrupted",
        reason="this node was interrupted before it answered the prepare",
    )
    row = await fed._reload(tb, row)
    if not refused:
        return row
    await fed._void(tb, row)
    await fed._cas(tb, row, ("aborting",), state="refused")
    return await fed._reload(tb, row)


async def _ask(
    tb: Timebank, peer_name: str, waiting: list[fed.FedTransfer], report: RecoveryReport
) -> None:
    """Payee side: ask the payer's node for its decisions and follow them."""
    async with reading(tb.engine) as conn:
        peer = await peers_mod.require(conn, peer_name)
    try:
        answer = await call(
            tb,
            peer,
            "POST",
            "/api/v1/federation/status",
            StatusIn(ids=[row.id for row in waiting]),
            answer=StatusOut,
        )
    except (PeerUnreachable, PeerRefusal) as exc:
        report.errors.append(f"{peer_name}: status: {exc}")
        report.pending.extend(row.id for row in waiting)
        return
    by_id = {state.id: state for state in answer.transfers}
    for row in waiting:
        state = by_id.get(row.id)
        if state is None or state.decision not in ("commit", "abort"):
            report.pending.append(row.id)
            continue
        try:
            after = await fed.apply_decision(tb, peer, row, state)
        except (RuleViolation, RuntimeError) as exc:
            report.errors.append(f"{row.id}: {peer_name}'s decision not applied: {exc}")
            continue
        _record(report, row, after)
