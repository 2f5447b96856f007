"""Cross-timebank transfers: the two-phase protocol on each side (docs/federation.md).

The payer's node decides. It holds the payer's minutes (to the peer's clearing account),
sends a signed prepare, and commits only with the payee node's signed accept; without
one it may abort at any time. The payee's node votes once: it refuses, or it holds the
minutes (from the payer node's clearing account to the payee) and accepts, after which
it only follows the payer node's decision, which it learns from the commit or abort
message or by asking (`recovery`).

Each transfer has one row per side (`federation_transfers`), whose `state` moves by
compare-and-set, so concurrent deliveries of the same message, a retried request and the
recovery job act once. Every ledger effect has an id derived from the transfer id
(`fed.<id>`, `fed.<id>:void`, `fed.<id>.commit`), so repeating an effect finds the
first. The order is always: decide (row), then the ledger, then tell the peer.

Committing replaces the hold by a transfer, in one linked batch (the hold's void and the
transfer): a post could not carry the peer's signature (SPEC section 5.4), a transfer can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.federation import peers as peers_mod
from scambio.federation.client import PeerRefusal, PeerUnreachable, call
from scambio.federation.peers import Peer
from scambio.federation.protocol import (
    DecisionIn,
    PrepareIn,
    Statement,
    TransferState,
    check_step,
    commit_id,
    hold_id,
    parse_address,
    parse_statement,
    rate_matches,
    sign_step,
    sign_unknown_abort,
    to_theirs,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import check_minutes
from scambio.store.commands import Appended, Transfer, VoidHold
from scambio.store.federation_tables import federation_transfers
from scambio.store.people_tables import members, organisations
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing

log = logging.getLogger(__name__)

#: Refusals a payee node gives that reach the payer as they are; others as `peer-refused`.
RELAYED: Final = frozenset(
    {
        "unknown-payee",
        "payee-inactive",
        "net-position-exceeded",
        "limit-exceeded",
        "rate-mismatch",
        "peer-suspended",
        "invalid-amount",
        "invalid-memo",
    }
)
FINAL: Final = frozenset({"committed", "aborted", "refused"})


@dataclass(frozen=True, slots=True)
class FedTransfer:
    id: str
    peer: str
    direction: str
    state: str
    local_account: str
    remote_account: str
    minutes: int
    peer_minutes: int
    memo: str
    statement: Statement
    our_sig: str | None
    peer_sig: str | None
    decision: str | None
    decision_sig: str | None
    reason_code: str | None
    reason: str | None
    hold_index: int | None
    commit_index: int | None
    peer_acked: bool
    prepare_sent: bool
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str
    decided_at: str | None

    @property
    def pending(self) -> bool:
        return self.state not in FINAL

    def view(self) -> TransferState:
        """This side's state as told to the peer."""
        return TransferState(
            id=self.id,
            state=self.state,
            accept=self.our_sig if self.direction == "in" else self.peer_sig,
            decision=self.decision,
            decision_sig=self.decision_sig,
            reason_code=self.reason_code,
            reason=self.reason,
        )


def _transfer(row: Any) -> FedTransfer:
    return FedTransfer(
        id=row.id,
        peer=row.peer,
        direction=row.direction,
        state=row.state,
        local_account=row.local_account,
        remote_account=row.remote_account,
        minutes=int(row.minutes),
        peer_minutes=int(row.peer_minutes),
        memo=row.memo,
        statement=parse_statement(row.statement),
        our_sig=row.our_sig,
        peer_sig=row.peer_sig,
        decision=row.decision,
        decision_sig=row.decision_sig,
        reason_code=row.reason_code,
        reason=row.reason,
        hold_index=row.hold_index,
        commit_index=row.commit_index,
        peer_acked=bool(row.peer_acked),
        prepare_sent=bool(row.prepare_sent),
        attempts=int(row.attempts),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        decided_at=row.decided_at,
    )


async def fetch(conn: AsyncConnection, transfer_id: str) -> FedTransfer | None:
    row = (
        await conn.execute(
            select(federation_transfers).where(federation_transfers.c.id == transfer_id)
        )
    ).one_or_none()
    return None if row is None else _transfer(row)


async def get(tb: Timebank, transfer_id: str) -> FedTransfer | None:
    async with reading(tb.engine) as conn:
        return await fetch(conn, transfer_id)


async def listing(
    tb: Timebank,
    *,
    peer: str | None = None,
    states: tuple[str, ...] | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[FedTransfer]:
    """Transfers by creation (then id), optionally of one peer or in some states."""
    query = select(federation_transfers).order_by(
        federation_transfers.c.created_at, federation_transfers.c.id
    )
    if peer is not None:
        query = query.where(federation_transfers.c.peer == peer)
    if states is not None:
        query = query.where(federation_transfers.c.state.in_(states))
    if after is not None:
        query = query.where(federation_transfers.c.id > after)
    async with reading(tb.engine) as conn:
        return [_transfer(row) for row in await conn.execute(query.limit(limit))]


async def _cas(tb: Timebank, row: FedTransfer, states: tuple[str, ...], **values: Any) -> bool:
    """Move the row on, only from one of `states`; False when another actor moved it."""
    async with writing(tb.engine) as conn:
        result = await conn.execute(
            update(federation_transfers)
            .where(federation_transfers.c.id == row.id, federation_transfers.c.state.in_(states))
            .values(updated_at=stamp(tb.clock), **values)
        )
        return bool(result.rowcount)


async def _note(tb: Timebank, row: FedTransfer, **values: Any) -> None:
    """Record something about the row without changing its state."""
    async with writing(tb.engine) as conn:
        await conn.execute(
            update(federation_transfers)
            .where(federation_transfers.c.id == row.id)
            .values(updated_at=stamp(tb.clock), **values)
        )


async def _reload(tb: Timebank, row: FedTransfer) -> FedTransfer:
    fresh = await get(tb, row.id)
    assert fresh is not None
    return fresh


async def _insert(tb: Timebank, values: dict[str, Any]) -> bool:
    """Insert a new row; False when one with this id exists already."""
    try:
        async with writing(tb.engine) as conn:
            await conn.execute(insert(federation_transfers).values(**values))
    except IntegrityError:
        return False
    return True


# -- ledger effects ----------------------------------------------------------------------


def _refs(peer: Peer, row: FedTransfer, signature: str | None = None) -> dict[str, str]:
    refs = {
        "peer": peer.name,
        "peer_transfer": row.id,
        "peer_account": row.remote_account,
        "peer_minutes": str(row.peer_minutes),
    }
    if signature:
        refs["peer_sig"] = signature
    return refs


def _legs(peer: Peer, row: FedTransfer) -> tuple[str, str]:
    if row.direction == "out":
        return row.local_account, peer.clearing_account
    return peer.clearing_account, row.local_account


async def _hold(tb: Timebank, peer: Peer, row: FedTransfer) -> Appended | RuleViolation:
    """The first phase on this side. No expiry: only the protocol resolves it."""
    payer, payee = _legs(peer, row)
    signature = row.peer_sig if row.direction == "in" else None
    command = Transfer(
        hold_id(row.id),
        payer,
        payee,
        row.minutes,
        row.memo,
        hold=True,
        expires_in=None,
        refs=_refs(peer, row, signature),
    )
    return await tb.ledger.appender.submit(command)


async def _commit_entries(tb: Timebank, peer: Peer, row: FedTransfer) -> int:
    """Replace the hold by a transfer carrying the other node's signature (atomically)."""
    payer, payee = _legs(peer, row)
    signature = row.peer_sig if row.direction == "out" else row.decision_sig
    transfer = Transfer(
        commit_id(row.id), payer, payee, row.minutes, row.memo, refs=_refs(peer, row, signature)
    )
    outcome = await tb.ledger.linked([VoidHold(hold_id(row.id)), transfer])
    if outcome.ok:
        committed = outcome.items[1]
        assert isinstance(committed, Appended)
        return committed.index
    failure = next(i for i in outcome.items if isinstance(i, RuleViolation))
    raise RuntimeError(f"federation transfer {row.id}: commit entries refused: {failure.detail}")


async def _void(tb: Timebank, row: FedTransfer) -> None:
    outcome = await tb.ledger.void(hold_id(row.id))
    if isinstance(outcome, RuleViolation) and outcome.code != "hold-not-found":
        raise RuntimeError(f"federation transfer {row.id}: void refused: {outcome.detail}")


def _translate(violation: RuleViolation, peer: Peer) -> RuleViolation:
    if violation.code == "limit-exceeded" and violation.fields.get("account") == (
        peer.clearing_account
    ):
        return RuleViolation(
            "net-position-exceeded",
            f"the net position with {peer.name} would go beyond its limit "
            f"({peer.max_we_owe} minutes we may owe, {peer.max_they_owe} they may owe): "
            f"{violation.detail}",
            peer=peer.name,
        )
    return violation


# -- the payer's side (out) --------------------------------------------------------------


async def send(
    tb: Timebank,
    *,
    transfer_id: str,
    payer: str,
    payee: str,
    minutes: int,
    memo: str = "",
) -> FedTransfer:
    """Pay `payee` (`account@peer`) from our account `payer`; idempotent by `transfer_id`.

    Returns the row: `committed`, or `held` when the peer's answer is not known yet (the
    recovery job finishes it). A refusal, ours or the peer's, raises RuleViolation.
    """
    address = parse_address(payee)
    bad = check_minutes(minutes)
    if bad is not None:
        raise bad
    async with reading(tb.engine) as conn:
        peer = await peers_mod.require(conn, address.peer)
        existing = await fetch(conn, transfer_id)
    if not peer.active:
        raise RuleViolation("peer-suspended", f"transfers with {peer.name} are suspended")
    statement = Statement(
        id=transfer_id,
        payer_ledger=tb.settings.ledger_origin,
        payer=payer,
        payee_ledger=peer.origin,
        payee=address.account,
        minutes=minutes,
        payee_minutes=to_theirs(minutes, peer.rate_ours, peer.rate_theirs),
        memo=memo,
    )
    statement.check()
    if existing is None:
        now = stamp(tb.clock)
        created = await _insert(
            tb,
            {
                "id": transfer_id,
                "peer": peer.name,
                "direction": "out",
                "state": "preparing",
                "local_account": payer,
                "remote_account": address.account,
                "minutes": minutes,
                "peer_minutes": statement.payee_minutes,
                "memo": memo,
                "statement": statement.canonical().decode(),
                "our_sig": sign_step(tb.ledger.signer, "prepare", statement),
                "created_at": now,
                "updated_at": now,
            },
        )
        existing = await get(tb, transfer_id)
        assert existing is not None
        if created:
            return await _start(tb, peer, existing)
    if existing.direction != "out" or existing.statement != statement:
        raise RuleViolation(
            "idempotency-conflict",
            f"id {transfer_id!r} was already used for a different transfer",
            field="id",
        )
    return await _raise_refusal(await drive(tb, existing))


async def _raise_refusal(row: FedTransfer) -> FedTransfer:
    if row.state in ("refused", "aborted", "aborting") and row.reason_code:
        raise RuleViolation(row.reason_code, row.reason or "refused", peer=row.peer)
    return row


async def _start(tb: Timebank, peer: Peer, row: FedTransfer) -> FedTransfer:
    outcome = await _hold(tb, peer, row)
    if isinstance(outcome, RuleViolation):
        violation = _translate(outcome, peer)
        await _cas(
            tb,
            row,
            ("preparing",),
            state="refused",
            reason_code=violation.code,
            reason=violation.detail[:1000],
        )
        raise violation
    held = await _cas(tb, row, ("preparing",), state="held", hold_index=outcome.index)
    row = await _reload(tb, row)
    if not held:
        # Recovery decided meanwhile (an abort of an interrupted transfer): follow it.
        return await _raise_refusal(row)
    return await _raise_refusal(await _prepare(tb, peer, row))


async def _prepare(tb: Timebank, peer: Peer, row: FedTransfer) -> FedTransfer:
    """Send (or re-send) the prepare and act on the answer."""
    if not row.prepare_sent:
        await _note(tb, row, prepare_sent=True)
    message = PrepareIn(transfer=row.statement, signature=row.our_sig or "")
    try:
        answer = await call(
            tb, peer, "POST", "/api/v1/federation/prepare", message, answer=TransferState
        )
    except PeerRefusal as refusal:
        code = refusal.code if refusal.code in RELAYED else "peer-refused"
        return await abort(
            tb, row, code=code, reason=f"{peer.name} refused the transfer: {refusal.detail}"
        )
    except PeerUnreachable as exc:
        await _note(tb, row, attempts=row.attempts + 1, last_error=str(exc)[:500])
        return await _reload(tb, row)
    if answer.state in ("prepared", "committing", "committed") and check_step(
        peer.verifier, "accept", row.statement, answer.accept
    ):
        return await commit(tb, row, answer.accept or "")
    return await abort(
        tb,
        row,
        code="peer-refused",
        reason=f"{peer.name} answered the prepare without a valid accept ({answer.state})",
    )


async def commit(tb: Timebank, row: FedTransfer, accept: str) -> FedTransfer:
    """Decide commit (payer side, with the payee node's accept), write it, tell the peer."""
    statement = row.statement
    decided = await _cas(
        tb,
        row,
        ("held",),
        state="committing",
        decision="commit",
        decision_sig=sign_step(tb.ledger.signer, "commit", statement),
        peer_sig=accept,
        decided_at=stamp(tb.clock),
        last_error=None,
    )
    row = await _reload(tb, row)
    if not decided and row.state not in ("committing", "committed"):
        return row
    return await settle(tb, row)


async def abort(tb: Timebank, row: FedTransfer, *, code: str, reason: str) -> FedTransfer:
    """Decide abort (payer side; possible until a commit is decided), void, tell the peer."""
    decided = await _cas(
        tb,
        row,
        ("preparing", "held"),
        state="aborting",
        decision="abort",
        decision_sig=sign_step(tb.ledger.signer, "abort", row.statement),
        reason_code=code,
        reason=reason[:1000],
        decided_at=stamp(tb.clock),
    )
    row = await _reload(tb, row)
    if not decided and row.state not in ("aborting", "aborted"):
        return row
    return await settle(tb, row)


async def settle(tb: Timebank, row: FedTransfer) -> FedTransfer:
    """Carry out a decision already recorded (idempotent), then tell the peer (out)."""
    async with reading(tb.engine) as conn:
        peer = await peers_mod.require(conn, row.peer)
    if row.state == "committing":
        index = await _commit_entries(tb, peer, row)
        await _cas(tb, row, ("committing",), state="committed", commit_index=index)
        row = await _reload(tb, row)
    elif row.state == "aborting":
        await _void(tb, row)
        await _cas(tb, row, ("aborting",), state="aborted")
        row = await _reload(tb, row)
    if needs_telling(row):
        row = await _tell(tb, peer, row)
    return row


def needs_telling(row: FedTransfer) -> bool:
    """Payer side: a final decision the peer has not acknowledged (an abort only matters
    to the peer if a prepare may have reached it)."""
    return (
        row.direction == "out"
        and row.state in ("committed", "aborted")
        and not row.peer_acked
        and (row.decision == "commit" or row.prepare_sent)
    )


async def _tell(tb: Timebank, peer: Peer, row: FedTransfer) -> FedTransfer:
    """Send our decision to the peer; acknowledged once it answers 2xx."""
    path = "/api/v1/federation/commit" if row.decision == "commit" else "/api/v1/federation/abort"
    message = DecisionIn(transfer=row.statement, signature=row.decision_sig or "")
    try:
        await call(tb, peer, "POST", path, message, answer=TransferState)
    except PeerUnreachable as exc:
        await _note(tb, row, attempts=row.attempts + 1, last_error=str(exc)[:500])
        return await _reload(tb, row)
    except PeerRefusal as refusal:
        if row.decision == "abort" and refusal.code in ("transfer-unknown",):
            await _note(tb, row, peer_acked=True)
            return await _reload(tb, row)
        log.error(
            "peer %s refused our %s of transfer %s: %s %s",
            peer.name,
            row.decision,
            row.id,
            refusal.code,
            refusal.detail,
        )
        await _note(
            tb,
            row,
            attempts=row.attempts + 1,
            last_error=f"{refusal.code}: {refusal.detail}"[:500],
        )
        return await _reload(tb, row)
    await _note(tb, row, peer_acked=True, last_error=None)
    return await _reload(tb, row)


async def drive(tb: Timebank, row: FedTransfer) -> FedTransfer:
    """Take one step towards the end for an out transfer (what a retry or recovery does)."""
    async with reading(tb.engine) as conn:
        peer = await peers_mod.require(conn, row.peer)
    if row.state == "preparing":
        return await _start_again(tb, peer, row)
    if row.state == "held":
        return await _prepare(tb, peer, row)
    return await settle(tb, row)


async def _start_again(tb: Timebank, peer: Peer, row: FedTransfer) -> FedTransfer:
    try:
        return await _start(tb, peer, row)
    except RuleViolation:
        return await _reload(tb, row)


# -- the payee's side (in) ---------------------------------------------------------------


async def on_prepare(tb: Timebank, peer: Peer, message: PrepareIn) -> TransferState:
    """The peer asks us to hold minutes for our payee. Vote once: accept or refuse."""
    statement = message.transfer
    statement.check()
    if statement.payer_ledger != peer.origin or statement.payee_ledger != (
        tb.settings.ledger_origin
    ):
        raise RuleViolation(
            "invalid-transfer",
            f"the transfer must be from ledger {peer.origin!r} to ledger "
            f"{tb.settings.ledger_origin!r}",
        )
    if not check_step(peer.verifier, "prepare", statement, message.signature):
        raise RuleViolation(
            "bad-signature", "the prepare is not signed by the peer's key over this transfer"
        )
    existing = await get(tb, statement.id)
    if existing is not None:
        _same(existing, peer, statement, "in")
        if existing.state != "preparing":
            return _answer(existing)
    else:
        if not peer.active:
            raise RuleViolation(
                "peer-suspended", f"this node has suspended transfers with {peer.origin}"
            )
        if not rate_matches(
            statement.payee_minutes, statement.minutes, peer.rate_ours, peer.rate_theirs
        ):
            raise RuleViolation(
                "rate-mismatch",
                f"{statement.minutes} of the peer's minutes are not {statement.payee_minutes} "
                f"here at this node's rate {peer.rate_ours}:{peer.rate_theirs}",
            )
        await _check_payee(tb, statement.payee)
        now = stamp(tb.clock)
        await _insert(
            tb,
            {
                "id": statement.id,
                "peer": peer.name,
                "direction": "in",
                "state": "preparing",
                "local_account": statement.payee,
                "remote_account": statement.payer,
                "minutes": statement.payee_minutes,
                "peer_minutes": statement.minutes,
                "memo": statement.memo,
                "statement": statement.canonical().decode(),
                "peer_sig": message.signature,
                "created_at": now,
                "updated_at": now,
            },
        )
        existing = await get(tb, statement.id)
        assert existing is not None
        _same(existing, peer, statement, "in")
        if existing.state != "preparing":
            return _answer(existing)
    return _answer(await _vote(tb, peer, existing))


async def _vote(tb: Timebank, peer: Peer, row: FedTransfer) -> FedTransfer:
    outcome = await _hold(tb, peer, row)
    if isinstance(outcome, RuleViolation):
        violation = _translate(outcome, peer)
        await _cas(
            tb,
            row,
            ("preparing",),
            state="refused",
            reason_code=violation.code,
            reason=violation.detail[:1000],
        )
        return await _reload(tb, row)
    await _cas(
        tb,
        row,
        ("preparing",),
        state="prepared",
        hold_index=outcome.index,
        our_sig=sign_step(tb.ledger.signer, "accept", row.statement),
    )
    return await _reload(tb, row)


def _answer(row: FedTransfer) -> TransferState:
    """What a (repeated) prepare gets: the accept, or the same refusal as the first time."""
    if row.state == "refused":
        raise RuleViolation(row.reason_code or "refused", row.reason or "refused")
    if row.state in ("aborting", "aborted"):
        raise RuleViolation(
            "transfer-aborted", f"transfer {row.id} was aborted; it cannot be prepared again"
        )
    return row.view()


def _same(row: FedTransfer, peer: Peer, statement: Statement, direction: str) -> None:
    if row.peer != peer.name or row.direction != direction or row.statement != statement:
        raise RuleViolation(
            "idempotency-conflict",
            f"transfer id {statement.id!r} is already used for a different transfer",
            field="id",
        )


async def _check_payee(tb: Timebank, account: str) -> None:
    """The payee must be an active member's or organisation's account here."""
    async with reading(tb.engine) as conn:
        member = (
            await conn.execute(select(members.c.status).where(members.c.account_id == account))
        ).scalar_one_or_none()
        org = (
            await conn.execute(
                select(organisations.c.status).where(organisations.c.account_id == account)
            )
        ).scalar_one_or_none()
    status = member or org
    if status is None:
        raise RuleViolation(
            "unknown-payee", f"no member or organisation here has the account {account!r}"
        )
    if status != "active":
        raise RuleViolation(
            "payee-inactive", f"the account {account!r} belongs to a {status} member"
        )


async def on_commit(tb: Timebank, peer: Peer, message: DecisionIn) -> TransferState:
    row = await _known(tb, peer, message.transfer)
    if not check_step(peer.verifier, "commit", row.statement, message.signature):
        raise RuleViolation("bad-signature", "the commit is not signed by the peer's key")
    if row.state in ("committing", "committed"):
        return (await settle(tb, row)).view()
    if row.state != "prepared":
        log.error("peer %s commits transfer %s, which is %s here", peer.name, row.id, row.state)
        raise RuleViolation(
            "transfer-aborted"
            if row.state in ("aborting", "aborted", "refused")
            else "transfer-unknown",
            f"transfer {row.id} is {row.state} here; it cannot be committed",
            state=row.state,
        )
    await _cas(
        tb,
        row,
        ("prepared",),
        state="committing",
        decision="commit",
        decision_sig=message.signature,
        decided_at=stamp(tb.clock),
    )
    row = await _reload(tb, row)
    if row.state not in ("committing", "committed"):
        raise RuleViolation("transfer-aborted", f"transfer {row.id} is {row.state} here")
    return (await settle(tb, row)).view()


async def on_abort(tb: Timebank, peer: Peer, message: DecisionIn) -> TransferState:
    statement = message.transfer
    if not check_step(peer.verifier, "abort", statement, message.signature):
        raise RuleViolation("bad-signature", "the abort is not signed by the peer's key")
    row = await get(tb, statement.id)
    if row is None:
        # A tombstone: a prepare that arrives late is refused, never held.
        statement.check()
        if statement.payer_ledger != peer.origin:
            raise RuleViolation("invalid-transfer", "the transfer is not from this peer")
        now = stamp(tb.clock)
        await _insert(
            tb,
            {
                "id": statement.id,
                "peer": peer.name,
                "direction": "in",
                "state": "aborted",
                "local_account": statement.payee,
                "remote_account": statement.payer,
                "minutes": statement.payee_minutes,
                "peer_minutes": statement.minutes,
                "memo": statement.memo,
                "statement": statement.canonical().decode(),
                "decision": "abort",
                "decision_sig": message.signature,
                "reason_code": "transfer-aborted",
                "reason": f"{peer.name} aborted the transfer before its prepare arrived",
                "created_at": now,
                "updated_at": now,
                "decided_at": now,
            },
        )
        row = await get(tb, statement.id)
        assert row is not None
    _same(row, peer, statement, "in")
    if row.state in ("committing", "committed"):
        log.error("peer %s aborts transfer %s, which is committed here", peer.name, row.id)
        raise RuleViolation(
            "transfer-committed", f"transfer {row.id} is committed here; it cannot be aborted"
        )
    if row.state in ("preparing", "prepared"):
        await _cas(
            tb,
            row,
            ("preparing", "prepared"),
            state="aborting",
            decision="abort",
            decision_sig=message.signature,
            reason_code="transfer-aborted",
            reason=f"{peer.name} aborted the transfer",
            decided_at=stamp(tb.clock),
        )
        row = await _reload(tb, row)
    return (await settle(tb, row)).view()


async def _known(tb: Timebank, peer: Peer, statement: Statement) -> FedTransfer:
    row = await get(tb, statement.id)
    if row is None:
        raise RuleViolation("transfer-unknown", f"transfer {statement.id} is unknown here")
    _same(row, peer, statement, "in")
    return row


async def status(tb: Timebank, peer: Peer, ids: list[str]) -> list[TransferState]:
    """Our view of these transfers with `peer`. As the deciding side we sign an abort for a
    transfer we never had, so the asking side may release its hold."""
    answers = []
    async with reading(tb.engine) as conn:
        for transfer_id in ids:
            row = await fetch(conn, transfer_id)
            if row is None or row.peer != peer.name:
                answers.append(
                    TransferState(
                        id=transfer_id,
                        state="unknown",
                        decision="abort",
                        decision_sig=sign_unknown_abort(tb.ledger.signer, transfer_id),
                    )
                )
            else:
                answers.append(row.view())
    return answers


async def apply_decision(
    tb: Timebank, peer: Peer, row: FedTransfer, answer: TransferState
) -> FedTransfer:
    """Payee side: follow the payer node's decision, learnt by asking (recovery). A
    decision whose signature does not verify is refused (`bad-signature`)."""
    message = DecisionIn(transfer=row.statement, signature=answer.decision_sig or "")
    if answer.decision == "commit":
        await on_commit(tb, peer, message)
    elif answer.decision == "abort":
        await on_abort(tb, peer, message)
    return await _reload(tb, row)
