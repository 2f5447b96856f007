"""Transfers, holds (post/void), linked batches and reversals: the API's write path.

Every write goes through `LedgerService`, which answers only after the commit: a 201 here
means the entry is in a signed checkpoint. Ids are client-generated UUIDs and act as
idempotency keys: an identical retry gets 200 and the original receipt, the same id with
other fields a 409 naming the first differing field.

Who may move what (see `timebank.authz`): managers and admins any account; a member (or
org admin) only from accounts they hold, with a token carrying the `transfer` scope:
transfers and batches name such a payer, a post resolves a hold they pay, a void one
they pay or receive. Reversals stay with managers and admins. No account of a suspended
member or organisation pays or is paid (409 `account-suspended`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from scambio.api.auth import ACT, BEARER, WRITE, require_principal
from scambio.api.decode import canonical_uuid, strict_body
from scambio.api.problems import NotFoundViolation, problem_spec, violation_body
from scambio.api.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    PostIn,
    Receipt,
    ReverseIn,
    TransferIn,
    VoidIn,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import check_account_id, check_entry_id
from scambio.store.commands import Appended, Outcome, Transfer
from scambio.store.ledger import LedgerService
from scambio.store.tokens import Principal
from scambio.timebank import authz

WRITE_PROBLEMS: Final = (400, 401, 403, 409, 413, 422, 503)
#: Routes members may call for accounts they hold (the handler checks which).
MEMBER_TRANSFER: Final = {"access": ACT, "scope": "transfer"}


async def check_parties(ledger: LedgerService, accounts: list[str]) -> None:
    """Refuse a movement to or from a suspended member's or organisation's account."""
    async with ledger.read() as conn:
        await authz.check_not_suspended(conn, accounts)


async def check_hold(
    ledger: LedgerService, principal: Principal, hold_id: str, *, post: bool
) -> None:
    """A member posts holds they pay, voids holds they pay or receive; posting also needs
    both parties unsuspended. Unknown holds are left to the ledger (404). Holds of
    cross-timebank transfers (`fed.` ids) are resolved only by the federation protocol."""
    if hold_id.startswith("fed."):
        raise authz.forbidden(
            f"hold {hold_id!r} belongs to a cross-timebank transfer: only the federation "
            "protocol posts or voids it"
        )
    async with ledger.read() as conn:
        parties = await authz.hold_parties(conn, hold_id)
        if parties is None:
            return
        payer, payee = parties
        if not principal.can_write:
            allowed = principal.holds_account(payer) or (
                not post and principal.holds_account(payee)
            )
            if not allowed:
                raise authz.forbidden(
                    f"this token may not {'post' if post else 'void'} hold {hold_id!r}"
                )
        if post:
            await authz.check_not_suspended(conn, [payer, payee])


def receipt(outcome: Appended) -> Receipt:
    return Receipt(
        id=outcome.entry.id,
        index=outcome.index,
        leaf_hash=outcome.leaf_hash,
        tree_size=outcome.tree_size,
    )


def respond(outcome: Outcome) -> Response[Receipt]:
    """201 for a new entry, 200 for an identical retry; a violation becomes its problem."""
    if isinstance(outcome, RuleViolation):
        raise outcome
    return Response(receipt(outcome), status_code=201 if outcome.created else 200)


def to_command(item: TransferIn) -> Transfer:
    """Check what the rules cannot (UUID ids, expiry only on holds) and build the command."""
    transfer_id = canonical_uuid(item.id)
    # Checked here as well as by the rules: the appender looks accounts up before checking
    # their ids, and a database may answer some malformed ids (NUL bytes) with an error.
    for account_id in (item.payer, item.payee):
        bad = check_account_id(account_id)
        if bad is not None:
            raise bad
    if item.hold_expires_in is not None and not item.hold:
        raise RuleViolation(
            "invalid-hold",
            "hold_expires_in applies only to holds (hold: true)",
            field="hold_expires_in",
        )
    return Transfer(
        transfer_id,
        item.payer,
        item.payee,
        item.minutes,
        item.memo,
        item.hold,
        item.hold_expires_in,
    )


@post(
    "/transfers",
    operation_id="createTransfer",
    summary="Transfer minutes, or hold them for a later post or void",
    description=(
        "Moves `minutes` from `payer` to `payee`. With `hold: true` the minutes are reserved "
        "(pending) until `/transfers/{id}/post` or `/void`, or until `hold_expires_in` "
        "seconds pass. 201 with the entry's receipt once committed; an identical retry gets "
        "200 and the same receipt; the same id with different fields is a 409."
    ),
    opt=dict(MEMBER_TRANSFER),
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=["transfers"],
)
async def create_transfer(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    data: JSONBody[TransferIn],
) -> Response[Receipt]:
    principal = require_principal(request)
    body = await strict_body(request, TransferIn)
    command = to_command(body)
    authz.may_spend_from(principal, command.payer)
    await check_parties(ledger, [command.payer, command.payee])
    return respond(await ledger.transfer(command))


@post(
    "/transfers/{transfer_id:str}/post",
    operation_id="postHold",
    summary="Post a hold, wholly or in part",
    description=(
        "Moves the held minutes (or `minutes`, at most the held amount) and releases the "
        "rest. A hold resolves once: after a post or void this is a 409, except that an "
        "identical retry of the post returns 200 and its receipt."
    ),
    opt=dict(MEMBER_TRANSFER),
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS, 404),
    tags=["transfers"],
)
async def post_hold(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    transfer_id: FromPath[str],
    data: JSONBody[PostIn | None] = None,
) -> Response[Receipt]:
    principal = require_principal(request)
    body = await strict_body(request, PostIn, optional=True)
    hold_id = _hold_id(transfer_id)
    await check_hold(ledger, principal, hold_id, post=True)
    return respond(await ledger.post(hold_id, body.minutes))


@post(
    "/transfers/{transfer_id:str}/void",
    operation_id="voidHold",
    summary="Void a hold, releasing its minutes",
    description="The body may be empty or `{}`. An identical retry returns 200.",
    opt=dict(MEMBER_TRANSFER),
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS, 404),
    tags=["transfers"],
)
async def void_hold(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    transfer_id: FromPath[str],
    data: JSONBody[VoidIn | None] = None,
) -> Response[Receipt]:
    principal = require_principal(request)
    await strict_body(request, VoidIn, optional=True)
    hold_id = _hold_id(transfer_id)
    await check_hold(ledger, principal, hold_id, post=False)
    return respond(await ledger.void(hold_id))


def _hold_id(transfer_id: str) -> str:
    """Holds made through this API have UUID ids; normalise those, pass other valid ids
    through (holds made elsewhere), and call anything that cannot be an id not found."""
    try:
        return canonical_uuid(transfer_id)
    except RuleViolation:
        pass
    if check_entry_id(transfer_id) is not None:
        raise NotFoundViolation("hold-not-found", f"no hold with id {transfer_id!r}")
    return transfer_id


def _item_result(item_id: str, outcome: Outcome) -> BatchItemOut:
    if isinstance(outcome, RuleViolation):
        problem = violation_body(outcome)
        return BatchItemOut(id=item_id, status=int(problem["status"]), problem=problem)
    return BatchItemOut(
        id=item_id, status=201 if outcome.created else 200, receipt=receipt(outcome)
    )


@post(
    "/transfers/batch",
    operation_id="createTransferBatch",
    summary="Several transfers at once, independent or linked (all or nothing)",
    description=(
        "Always 200 once the batch was processed, with one result per item, in order: "
        "`status` is what the item would have got alone (201 created, 200 identical retry, "
        "or a 4xx) with either a `receipt` or a `problem`. `ok` is true when every item "
        "succeeded. Unlinked (`linked: false`): each item commits or fails on its own. "
        "Linked (`linked: true`): all commit or none does; the failing item carries its "
        "problem and every other item a `urn:scambio:problem:linked-failed` problem naming "
        "it. A batch that cannot be read at all (bad JSON, unknown field) is a 400, a "
        "database outage a 503."
    ),
    opt=dict(MEMBER_TRANSFER),
    security=BEARER,
    status_code=200,
    responses=problem_spec(400, 401, 403, 413, 503),
    tags=["transfers"],
)
async def create_batch(
    request: Request[Any, Any, Any], ledger: NamedDependency[LedgerService], data: JSONBody[BatchIn]
) -> BatchOut:
    principal = require_principal(request)
    body = await strict_body(request, BatchIn)
    # A member's batch may name only payers they hold: one stranger's payer refuses it all.
    for item in body.transfers:
        authz.may_spend_from(principal, item.payer)
    commands: list[Transfer | RuleViolation] = []
    for item in body.transfers:
        try:
            commands.append(to_command(item))
        except RuleViolation as exc:
            commands.append(exc)
    await _refuse_suspended(ledger, commands)
    ids = [
        c.id if isinstance(c, Transfer) else item.id
        for c, item in zip(commands, body.transfers, strict=True)
    ]
    outcomes: list[Outcome]
    if body.linked:
        outcomes = await _linked(ledger, commands, ids)
    else:
        outcomes = await _independent(ledger, commands)
    results = [_item_result(i, o) for i, o in zip(ids, outcomes, strict=True)]
    return BatchOut(
        ok=all(isinstance(o, Appended) for o in outcomes), linked=body.linked, results=results
    )


async def _refuse_suspended(
    ledger: LedgerService, commands: list[Transfer | RuleViolation]
) -> None:
    """Replace, in place, each transfer touching a suspended account by its violation."""
    accounts = sorted({a for c in commands if isinstance(c, Transfer) for a in (c.payer, c.payee)})
    if not accounts:
        return
    async with ledger.read() as conn:
        frozen = await authz.suspended_accounts(conn, accounts)
    for position, command in enumerate(commands):
        if isinstance(command, Transfer):
            for account in (command.payer, command.payee):
                if account in frozen:
                    commands[position] = authz.account_suspended(account)
                    break


async def _independent(
    ledger: NamedDependency[LedgerService], commands: list[Transfer | RuleViolation]
) -> list[Outcome]:
    async def one(command: Transfer | RuleViolation) -> Outcome:
        return command if isinstance(command, RuleViolation) else await ledger.transfer(command)

    # Submitted together, so the appender commits them in one transaction.
    return list(await asyncio.gather(*(one(c) for c in commands)))


async def _linked(
    ledger: NamedDependency[LedgerService], commands: list[Transfer | RuleViolation], ids: list[str]
) -> list[Outcome]:
    for position, command in enumerate(commands):
        if isinstance(command, RuleViolation):
            # Refused before reaching the ledger: report it as the appender would.
            return [
                command
                if i == position
                else RuleViolation(
                    "linked-failed",
                    f"not applied: linked item {position} ({ids[position]}) failed: "
                    f"{command.detail}",
                    failed_item=position,
                )
                for i in range(len(commands))
            ]
    transfers = [c for c in commands if isinstance(c, Transfer)]
    return (await ledger.linked(transfers)).items


@post(
    "/entries/{index:int}/reverse",
    operation_id="reverseEntry",
    summary="Reverse a transfer or posted hold with a compensating entry",
    description=(
        "Appends an entry whose postings negate those of entry `index`. An entry is "
        "reversed at most once (409). The id is a client UUID; an identical retry returns "
        "200 and the same receipt."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=["transfers"],
)
async def reverse_entry(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    index: FromPath[int],
    data: JSONBody[ReverseIn],
) -> Response[Receipt]:
    body = await strict_body(request, ReverseIn)
    if index < 0:
        raise RuleViolation(
            "not-reversible", f"entry {index} cannot be reversed: indexes start at 0"
        )
    return respond(await ledger.reverse(canonical_uuid(body.id), index, body.memo))


ROUTES = [create_transfer, post_hold, void_hold, create_batch, reverse_entry]
