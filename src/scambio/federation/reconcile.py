"""Reconciliation with each peer: checkpoints, clearing statements, cross transfers.

For each active peer, one pass:

1. Fetch the peer's latest signed checkpoint (public) and open it with the peer's key.
2. Check it extends the last checkpoint we accepted from that peer: an RFC 9162
   consistency proof from the peer's public `/ledger/proof/consistency`. A peer that
   rewrote its history (restored a backup and went on, replaced an entry...) cannot
   produce one: the finding `history-rewritten` says so, and the old checkpoint stays
   the reference. Only a consistent checkpoint replaces it.
3. Fetch the peer's clearing statement (a signed request; the answer is signed by the
   peer's key): its position with us and every cross transfer it knows.
4. Compare both sides' view of every cross transfer and of the position (at the exchange
   rate, the two clearing accounts mirror each other) and report each difference.

Findings are facts to act on, never fixed silently. Transfers still in flight on either
side are listed as such, not as differences. Each pass is stored in
`federation_reconciliations`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx
import msgspec
from sqlalchemy import delete, insert, select

from scambio.federation import peers as peers_mod
from scambio.federation import transfers as fed
from scambio.federation.client import PeerRefusal, PeerUnreachable, call
from scambio.federation.peers import Peer
from scambio.federation.protocol import (
    ClearingStatement,
    SignedStatement,
    StatementLine,
    b64,
    statement_payload,
    unb64,
)
from scambio.ledger import merkle
from scambio.ledger.entry import format_time
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import open_checkpoint
from scambio.store import queries
from scambio.store.federation_tables import (
    federation_checkpoints,
    federation_reconciliations,
    federation_transfers,
)
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing

log = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder(order="sorted")


@dataclass
class Finding:
    #: history-rewritten, bad-checkpoint, bad-statement, unreachable, missing-on-peer,
    #: missing-here, state-mismatch, amount-mismatch, position-mismatch.
    kind: str
    detail: str
    transfer: str | None = None


@dataclass
class PeerReport:
    peer: str
    at: str
    ok: bool = True
    checkpoint_size: int | None = None
    previous_size: int | None = None
    position: int | None = None
    peer_position: int | None = None
    transfers_compared: int = 0
    in_flight: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def find(self, kind: str, detail: str, transfer: str | None = None) -> None:
        self.ok = False
        self.findings.append(Finding(kind, detail, transfer))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the answering side: our clearing statement for a peer -------------------------------


async def clearing_statement(tb: Timebank, peer: Peer) -> SignedStatement:
    """Our view of the relationship with `peer`, signed with the node key."""
    async with reading(tb.engine) as conn:
        head = await queries.head(conn)
        account = await queries.account(conn, peer.clearing_account)
        rows = await conn.execute(
            select(federation_transfers)
            .where(federation_transfers.c.peer == peer.name)
            .order_by(federation_transfers.c.created_at, federation_transfers.c.id)
        )
        lines = [
            StatementLine(
                id=row.id,
                direction=row.direction,
                state=row.state,
                minutes=int(row.minutes),
                peer_minutes=int(row.peer_minutes),
                commit_index=row.commit_index,
            )
            for row in rows
        ]
    statement = ClearingStatement(
        origin=tb.settings.ledger_origin,
        peer_origin=peer.origin,
        at=stamp(tb.clock),
        checkpoint=head.checkpoint,
        position=account.posted,
        pending=account.pending,
        lines=lines,
    )
    return SignedStatement(
        statement=statement, signature=b64(tb.ledger.signer.sign(statement_payload(statement)))
    )


# -- the asking side ---------------------------------------------------------------------


async def reconcile(tb: Timebank, now: datetime) -> list[PeerReport]:
    """Reconcile with every active peer; one report each (also stored)."""
    async with reading(tb.engine) as conn:
        every = await peers_mod.listing(conn)
    return [await reconcile_peer(tb, peer, now) for peer in every if peer.active]


async def reconcile_peer(tb: Timebank, peer: Peer, now: datetime) -> PeerReport:
    report = PeerReport(peer=peer.name, at=format_time(now))
    try:
        await _check_history(tb, peer, report)
        signed = await call(
            tb, peer, "GET", "/api/v1/federation/statement", None, answer=SignedStatement
        )
        _check_statement(tb, peer, signed, report)
        if not any(f.kind == "bad-statement" for f in report.findings):
            await _compare(tb, peer, signed.statement, report)
    except (PeerUnreachable, PeerRefusal, httpx.HTTPError) as exc:
        report.find("unreachable", f"{peer.name}: {exc}")
    await _store(tb, report)
    if not report.ok:
        log.warning(
            "reconciliation with %s: %s",
            peer.name,
            "; ".join(f"{f.kind}: {f.detail}" for f in report.findings)[:2000],
        )
    return report


async def _public(tb: Timebank, peer: Peer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=tb.settings.federation_timeout) as client:
        response = await client.get(peer.url(path))
    if response.status_code >= 500:
        raise PeerUnreachable(f"{peer.name}: HTTP {response.status_code} for {path}")
    return response


async def _check_history(tb: Timebank, peer: Peer, report: PeerReport) -> None:
    response = await _public(tb, peer, "/api/v1/ledger/checkpoint")
    try:
        checkpoint = open_checkpoint(response.text, peer.verifier, peer.origin)
    except VerificationError as exc:
        report.find("bad-checkpoint", f"the peer's checkpoint does not verify: {exc}")
        return
    report.checkpoint_size = checkpoint.size
    async with reading(tb.engine) as conn:
        last = (
            await conn.execute(
                select(federation_checkpoints).where(federation_checkpoints.c.peer == peer.name)
            )
        ).one_or_none()
    if last is not None:
        size, root = int(last.size), bytes(last.root)
        report.previous_size = size
        problem = await _consistency(tb, peer, (size, root), (checkpoint.size, checkpoint.root))
        if problem is not None:
            report.find(
                "history-rewritten",
                f"the peer's checkpoint of size {checkpoint.size} is not consistent with the "
                f"one of size {size} seen on {last.seen_at}: {problem}",
            )
            return
    async with writing(tb.engine) as conn:
        await conn.execute(
            delete(federation_checkpoints).where(federation_checkpoints.c.peer == peer.name)
        )
        await conn.execute(
            insert(federation_checkpoints).values(
                peer=peer.name,
                size=checkpoint.size,
                root=checkpoint.root,
                note=response.text,
                seen_at=stamp(tb.clock),
            )
        )


async def _consistency(
    tb: Timebank, peer: Peer, first: tuple[int, bytes], second: tuple[int, bytes]
) -> str | None:
    """None when the tree `second` extends `first` (size, root); else what is wrong."""
    (size1, root1), (size2, root2) = first, second
    if size2 < size1:
        return f"the tree shrank from {size1} to {size2} entries"
    if size1 == 0:
        return None
    if size1 == size2:
        return None if root1 == root2 else "same size, different root"
    response = await _public(tb, peer, f"/api/v1/ledger/proof/consistency?from={size1}&to={size2}")
    if response.status_code != 200:
        return f"no consistency proof (HTTP {response.status_code})"
    try:
        body = msgspec.json.decode(response.content, type=dict[str, Any])
        proof = [unb64(h) for h in body["proof"]]
        if any(h is None for h in proof):
            return "the proof is not base64"
        merkle.verify_consistency(size1, size2, [h for h in proof if h], root1, root2)
    except (VerificationError, msgspec.DecodeError, KeyError, TypeError) as exc:
        return f"the consistency proof fails: {exc}"
    return None


def _check_statement(tb: Timebank, peer: Peer, signed: SignedStatement, report: PeerReport) -> None:
    raw = unb64(signed.signature)
    statement = signed.statement
    if raw is None or not peer.verifier.verify(statement_payload(statement), raw):
        report.find("bad-statement", "the clearing statement is not signed by the peer's key")
        return
    if statement.origin != peer.origin or statement.peer_origin != tb.settings.ledger_origin:
        report.find("bad-statement", "the clearing statement is about other ledgers")
        return
    try:
        open_checkpoint(statement.checkpoint, peer.verifier, peer.origin)
    except VerificationError as exc:
        report.find("bad-statement", f"the statement's checkpoint does not verify: {exc}")


async def _compare(
    tb: Timebank, peer: Peer, theirs_statement: ClearingStatement, report: PeerReport
) -> None:
    ours = {row.id: row for row in await fed.listing(tb, peer=peer.name, limit=10**9)}
    theirs = {line.id: line for line in theirs_statement.lines}
    in_flight: set[str] = set()
    for transfer_id in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(transfer_id), theirs.get(transfer_id)
        if (mine is not None and mine.pending) or (
            other is not None and other.state not in fed.FINAL
        ):
            in_flight.add(transfer_id)
            continue
        if mine is not None and fed.needs_telling(mine):
            in_flight.add(transfer_id)
            continue
        report.transfers_compared += 1
        mine_committed = mine is not None and mine.state == "committed"
        other_committed = other is not None and other.state == "committed"
        if mine is None:
            if other_committed:
                report.find("missing-here", "committed at the peer, unknown here", transfer_id)
            continue
        if other is None:
            if mine_committed:
                report.find("missing-on-peer", "committed here, unknown at the peer", transfer_id)
            continue
        if mine_committed != other_committed:
            report.find(
                "state-mismatch",
                f"{mine.state} here, {other.state} at the peer",
                transfer_id,
            )
            continue
        if mine.direction == other.direction or (mine.minutes, mine.peer_minutes) != (
            other.peer_minutes,
            other.minutes,
        ):
            report.find(
                "amount-mismatch",
                f"here {mine.direction} {mine.minutes}/{mine.peer_minutes}, at the peer "
                f"{other.direction} {other.minutes}/{other.peer_minutes}",
                transfer_id,
            )
    report.in_flight = sorted(in_flight)
    async with reading(tb.engine) as conn:
        account = await queries.account(conn, peer.clearing_account)
    report.position = account.posted
    report.peer_position = theirs_statement.position
    mirrored = account.posted * peer.rate_theirs == -theirs_statement.position * peer.rate_ours
    if not mirrored and not in_flight:
        report.find(
            "position-mismatch",
            f"our clearing account for {peer.name} stands at {account.posted}, theirs for us "
            f"at {theirs_statement.position} (rate {peer.rate_ours}:{peer.rate_theirs})",
        )


async def _store(tb: Timebank, report: PeerReport) -> None:
    async with writing(tb.engine) as conn:
        await conn.execute(
            insert(federation_reconciliations).values(
                peer=report.peer,
                at=report.at,
                ok=report.ok,
                checkpoint_size=report.checkpoint_size,
                report=_encoder.encode(report.to_json()).decode(),
            )
        )


async def history(
    tb: Timebank, *, peer: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Stored reports, newest first."""
    query = select(federation_reconciliations).order_by(federation_reconciliations.c.id.desc())
    if peer is not None:
        query = query.where(federation_reconciliations.c.peer == peer)
    async with reading(tb.engine) as conn:
        rows = await conn.execute(query.limit(limit))
        return [
            {"id": int(row.id), **msgspec.json.decode(row.report, type=dict[str, Any])}
            for row in rows
        ]
