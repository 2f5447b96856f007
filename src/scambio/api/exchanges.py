"""Exchanges over HTTP: propose, accept, mark done, confirm, dispute, resolve, thank; group
exchanges for workshops and urban labs; a manager's record for an offline member.

Parties are named by their account ids: a member's (`m-<member id>`) or an
organisation's (`o-<organisation id>`, acted for by its admins). The receiver of help pays
the provider. An exchange is visible to its parties and to staff; to anyone else it does
not exist (404). Who may make which move is `timebank.exchange_rules`; every exchange
lists the moves the caller may make now in `actions`.

Exchange and group ids are client-generated UUIDs and idempotency keys, as for
transfers: an identical retry gets 200 and the original, another body with the same id a
409. Moves are idempotent too: repeating one already made (a confirmation retried after a
timeout, or two at once) answers 200 with the exchange as it is, and the ledger moves
minutes once.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.api.auth import ACT, BEARER, READ, WRITE, require_principal
from scambio.api.decode import InvalidRequest, canonical_uuid, strict_body
from scambio.api.people import (
    PAGE_DEFAULT,
    Cursor,
    Limit,
    checked_member_id,
    index_cursor,
    member_not_found,
)
from scambio.api.problems import problem_spec
from scambio.api.schemas import Input, ShortText, Text, Uuid, VoidIn
from scambio.ledger.errors import RuleViolation
from scambio.store.exchanges_tables import EXCHANGE_STATES
from scambio.store.tokens import Principal
from scambio.timebank import authz, exchanges, people
from scambio.timebank import exchange_rules as rules
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.exchanges import Exchange, Group, Party, Thanks
from scambio.timebank.statement import proof_link

WRITE_PROBLEMS: Final = (400, 401, 403, 404, 409, 413, 422, 503)
TAGS: Final = ["exchanges"]
AccountRef = Annotated[
    str,
    msgspec.Meta(
        max_length=200,
        description="An account id: a member's (m-<member id>) or an organisation's (o-<id>).",
    ),
]
WholeMinutes = Annotated[int, msgspec.Meta(description="Whole minutes (integers only).")]


# -- bodies ------------------------------------------------------------------------------------


class ProposeIn(Input, frozen=True, kw_only=True):
    id: Uuid
    #: Who gives the help (is paid).
    provider: AccountRef
    #: Who receives the help (pays).
    receiver: AccountRef
    minutes: WholeMinutes
    title: ShortText
    description: Text = ""
    area: ShortText | None = None
    #: The listing the exchange comes from (its id, as text).
    listing_id: ShortText | None = None


class RecordIn(ProposeIn, frozen=True, kw_only=True):
    #: Why the manager records it (e.g. "signed paper form, home visit 3 March").
    reason: Text = ""


class ReasonIn(Input, frozen=True, kw_only=True):
    reason: Text = ""


class DoneIn(Input, frozen=True, kw_only=True):
    #: Minutes it actually took (at most those agreed); absent: as agreed.
    minutes: WholeMinutes | None = None


class DisputeIn(Input, frozen=True, kw_only=True):
    reason: Text


class ResolveIn(Input, frozen=True, kw_only=True):
    #: Minutes to post: all those held, part, or 0 to release the hold.
    minutes: WholeMinutes
    reason: Text


class ThankIn(Input, frozen=True, kw_only=True):
    message: Text


class ParticipantIn(Input, frozen=True, kw_only=True):
    account: AccountRef
    #: Who pays this participant's share: themselves, or the community pool.
    paid_by: Literal["self", "pool"] = "self"


class GroupIn(Input, frozen=True, kw_only=True):
    id: Uuid
    title: ShortText
    #: Minutes each facilitator gives (the session, preparation included).
    minutes: WholeMinutes
    facilitators: Annotated[list[AccountRef], msgspec.Meta(min_length=1, max_length=50)]
    participants: Annotated[list[ParticipantIn], msgspec.Meta(min_length=1, max_length=1000)]
    #: The pool that pays for participants with paid_by "pool" (opened if missing).
    pool: ShortText = exchanges.DEFAULT_POOL
    description: Text = ""
    area: ShortText | None = None
    zone: ShortText | None = None


class SettleIn(Input, frozen=True, kw_only=True):
    #: Participants who did not come: they pay nothing.
    absent: Annotated[list[AccountRef], msgspec.Meta(max_length=1000)] = msgspec.field(
        default_factory=list
    )


# -- outputs -----------------------------------------------------------------------------------


class PartyOut(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    #: member or organisation (null if the account has no holder any more).
    kind: str | None
    id: str | None
    name: str | None


class ExchangeOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    #: proposed, accepted, done, confirmed, declined, cancelled, disputed, resolved, expired.
    state: str
    #: Increases with every change of state.
    version: int
    provider: PartyOut
    receiver: PartyOut
    #: provider, receiver, or null when a manager proposed it.
    proposer_side: str | None
    proposed_by: str
    title: str
    description: str
    area: str | None
    listing_id: str | None
    #: Agreed (and held) minutes.
    minutes: int
    #: Reported by the provider at done.
    actual_minutes: int | None
    #: Posted (or 0 for a dispute resolved by releasing the hold).
    final_minutes: int | None
    #: The ledger id of the exchange's hold (or transfer, when recorded); its post and void
    #: are "<entry_id>:post" and ":void".
    entry_id: str
    hold_index: int | None
    settle_index: int | None
    #: Inclusion proofs of the hold and of the entry that settled it.
    hold_proof: str | None
    settle_proof: str | None
    #: A ledger effect is decided but not yet written (it is retried).
    ledger_pending: bool
    ledger_error: str | None
    recorded_by: str | None
    recorded_reason: str | None
    created_at: str
    updated_at: str
    accepted_at: str | None
    done_at: str | None
    #: The provider must mark it done by then, or it expires.
    done_due_at: str | None
    #: Confirmed automatically then, unless confirmed or disputed first.
    confirm_due_at: str | None
    hold_expires_at: str | None
    closed_at: str | None
    closed_by: str | None
    reason: str | None
    disputed_by: str | None
    dispute_reason: str | None
    resolution_reason: str | None
    #: What the caller may do now (accept, decline, cancel, done, confirm, dispute,
    #: resolve, thank).
    actions: list[str]


class ExchangePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ExchangeOut]
    next_cursor: str | None


class ThanksOut(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: str
    #: Who thanks (the other party of the exchange).
    by: PartyOut
    message: str
    created_at: str


class ThanksPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ThanksOut]
    next_cursor: str | None


class GroupParticipantOut(msgspec.Struct, frozen=True, kw_only=True):
    party: PartyOut
    paid_by: str
    present: bool


class GroupTransferOut(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: str
    payer: str
    payee: str
    minutes: int
    #: Whose share it pays (null: the pool's combined share).
    participant: str | None
    index: int | None
    proof: str | None


class GroupOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    #: planned, settling or settled.
    state: str
    title: str
    description: str
    area: str | None
    zone: str | None
    minutes: int
    pool: str
    facilitators: list[PartyOut]
    participants: list[GroupParticipantOut]
    transfers: list[GroupTransferOut]
    created_by: str
    created_at: str
    settled_at: str | None
    settled_by: str | None
    last_error: str | None


# -- helpers -----------------------------------------------------------------------------------


def checked_exchange_id(value: str) -> str:
    try:
        return canonical_uuid(value)
    except RuleViolation:
        raise exchanges.not_found(value) from None


def checked_group_id(value: str) -> str:
    try:
        return canonical_uuid(value)
    except RuleViolation:
        raise exchanges.group_not_found(value) from None


def party_out(account: str, found: dict[str, Party]) -> PartyOut:
    party = found.get(account)
    if party is None:
        return PartyOut(account=account, kind=None, id=None, name=None)
    return PartyOut(account=account, kind=party.kind, id=party.id, name=party.name)


def exchange_out(
    ex: Exchange, found: dict[str, Party], principal: Principal, thanked: set[str]
) -> ExchangeOut:
    who = exchanges.who_of(principal, ex)
    return ExchangeOut(
        id=ex.id,
        state=ex.state,
        version=ex.version,
        provider=party_out(ex.provider_account, found),
        receiver=party_out(ex.receiver_account, found),
        proposer_side=ex.proposer_side,
        proposed_by=ex.proposed_by,
        title=ex.title,
        description=ex.description,
        area=ex.area,
        listing_id=ex.listing_id,
        minutes=ex.minutes,
        actual_minutes=ex.actual_minutes,
        final_minutes=ex.final_minutes,
        entry_id=ex.entry_id,
        hold_index=ex.hold_index,
        settle_index=ex.settle_index,
        hold_proof=None if ex.hold_index is None else proof_link(ex.hold_index),
        settle_proof=None if ex.settle_index is None else proof_link(ex.settle_index),
        ledger_pending=ex.ledger_due is not None,
        ledger_error=ex.ledger_error,
        recorded_by=ex.recorded_by,
        recorded_reason=ex.recorded_reason,
        created_at=ex.created_at,
        updated_at=ex.updated_at,
        accepted_at=ex.accepted_at,
        done_at=ex.done_at,
        done_due_at=ex.done_due_at,
        confirm_due_at=ex.confirm_due_at,
        hold_expires_at=exchanges.hold_expiry(ex),
        closed_at=ex.closed_at,
        closed_by=ex.closed_by,
        reason=ex.reason,
        disputed_by=ex.disputed_by,
        dispute_reason=ex.dispute_reason,
        resolution_reason=ex.resolution_reason,
        actions=exchanges.actions_for(ex, who, thanked),
    )


async def views(
    conn: AsyncConnection, principal: Principal, found: list[Exchange]
) -> list[ExchangeOut]:
    named = await exchanges.parties(
        conn, [a for ex in found for a in (ex.provider_account, ex.receiver_account)]
    )
    thanked = await exchanges.thanked_by(
        conn, [ex.id for ex in found if ex.state in rules.SETTLED_STATES]
    )
    return [exchange_out(ex, named, principal, thanked.get(ex.id, set())) for ex in found]


async def view(tb: Timebank, principal: Principal, ex: Exchange) -> ExchangeOut:
    async with reading(tb.engine) as conn:
        return (await views(conn, principal, [ex]))[0]


def _proposal(body: ProposeIn) -> exchanges.Proposal:
    return exchanges.clean_proposal(
        exchange_id=canonical_uuid(body.id),
        provider=body.provider,
        receiver=body.receiver,
        minutes=body.minutes,
        title=body.title,
        description=body.description,
        area=body.area,
        listing_id=body.listing_id,
    )


def _created(out: ExchangeOut, created: bool) -> Response[ExchangeOut]:
    return Response(
        out,
        status_code=201 if created else 200,
        headers={"Location": f"/api/v1/exchanges/{out.id}"},
    )


# -- proposing and reading ---------------------------------------------------------------------


@post(
    "/exchanges",
    operation_id="proposeExchange",
    summary="Propose an exchange (from either side, usually from a listing)",
    description=(
        "The caller proposes from the side whose account they hold (a member's own, or an "
        "organisation's they administer); a manager may propose between two others. The "
        "counterpart accepts or declines; when a manager proposed, the receiver does. "
        "A receiver proposing needs a token with the `transfer` scope. 201 with the "
        "exchange; an identical retry 200."
    ),
    opt={"access": ACT, "scope": "write"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def propose_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[ProposeIn],
) -> Response[ExchangeOut]:
    principal = require_principal(request)
    body = await strict_body(request, ProposeIn)
    ex, created = await exchanges.propose(timebank, principal, _proposal(body))
    return _created(await view(timebank, principal, ex), created)


@get(
    "/exchanges",
    operation_id="listExchanges",
    summary="Exchanges: the caller's own, or (staff) everyone's; newest first",
    description=(
        "Members see exchanges where they, or an organisation they administer, are a "
        "party; staff see all. Filter by `state` and by `account` (staff: any account; "
        "others: one they hold)."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=TAGS,
)
async def list_exchanges(  # noqa: PLR0917 - Litestar injects parameters by name
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
    state_: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
    account: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> ExchangePage:
    principal = require_principal(request)
    state = state_
    if state is not None and state not in EXCHANGE_STATES:
        raise InvalidRequest(f"state must be one of {', '.join(EXCHANGE_STATES)}")
    accounts: list[str] | None
    if account is not None:
        if not (principal.is_staff or principal.holds_account(account)):
            raise authz.forbidden(f"you may not list the exchanges of {account!r}")
        accounts = [account]
    elif principal.is_staff:
        accounts = None
    else:
        accounts = sorted(
            {a for a in (principal.account_id, *principal.org_accounts) if a is not None}
        )
    async with reading(timebank.engine) as conn:
        found = await exchanges.listing(
            conn, accounts=accounts, state=state, before=index_cursor(cursor), limit=limit
        )
        items = await views(conn, principal, found)
    return ExchangePage(
        items=items, next_cursor=str(found[-1].seq) if len(found) == limit else None
    )


@get(
    "/exchanges/{exchange_id:str}",
    operation_id="getExchange",
    summary="An exchange (its parties and staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def get_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
) -> ExchangeOut:
    principal = require_principal(request)
    async with reading(timebank.engine) as conn:
        ex = await exchanges.require_visible(conn, principal, checked_exchange_id(exchange_id))
        return (await views(conn, principal, [ex]))[0]


# -- moves -------------------------------------------------------------------------------------


def _move_options(summary: str, description: str, operation: str) -> dict[str, Any]:
    return {
        "operation_id": operation,
        "summary": summary,
        "description": description,
        "opt": {"access": ACT, "scope": "write"},
        "security": BEARER,
        "status_code": 200,
        "responses": problem_spec(*WRITE_PROBLEMS),
        "tags": TAGS,
    }


async def _act(
    request: Request[Any, Any, Any],
    timebank: Timebank,
    exchange_id: str,
    action: str,
    *,
    minutes: int | None = None,
    reason: str | None = None,
) -> ExchangeOut:
    principal = require_principal(request)
    ex = await exchanges.act(
        timebank,
        principal,
        checked_exchange_id(exchange_id),
        action,
        minutes=minutes,
        reason=reason,
    )
    return await view(timebank, principal, ex)


@post(
    "/exchanges/{exchange_id:str}/accept",
    **_move_options(
        "Accept a proposal: the receiver's minutes are held",
        "The counterpart (or a manager). The agreed minutes are held on the receiver's "
        "account until the exchange is confirmed, cancelled or resolved; a receiver over "
        "their limit gets 422 `limit-exceeded` and the exchange stays proposed. A receiver "
        "accepting needs the `transfer` scope.",
        "acceptExchange",
    ),
)
async def accept_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[VoidIn | None] = None,
) -> ExchangeOut:
    await strict_body(request, VoidIn, optional=True)
    return await _act(request, timebank, exchange_id, rules.ACCEPT)


@post(
    "/exchanges/{exchange_id:str}/decline",
    **_move_options(
        "Decline a proposal",
        "The counterpart (or a manager); `reason` is optional.",
        "declineExchange",
    ),
)
async def decline_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> ExchangeOut:
    body = await strict_body(request, ReasonIn, optional=True)
    reason = exchanges.clean_reason(body.reason, required=False)
    return await _act(request, timebank, exchange_id, rules.DECLINE, reason=reason)


@post(
    "/exchanges/{exchange_id:str}/cancel",
    **_move_options(
        "Cancel an exchange (the hold is released)",
        "The proposer while proposed; either party once accepted (before it is done); or a "
        "manager. `reason` is optional.",
        "cancelExchange",
    ),
)
async def cancel_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> ExchangeOut:
    body = await strict_body(request, ReasonIn, optional=True)
    reason = exchanges.clean_reason(body.reason, required=False)
    return await _act(request, timebank, exchange_id, rules.CANCEL, reason=reason)


@post(
    "/exchanges/{exchange_id:str}/done",
    **_move_options(
        "The provider reports the exchange done, with the minutes it took",
        "At most the minutes agreed (422 `exceeds-agreed` otherwise). The receiver then "
        "confirms or disputes; without either it is confirmed automatically after the "
        "community's confirmation period.",
        "markExchangeDone",
    ),
)
async def mark_done(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[DoneIn | None] = None,
) -> ExchangeOut:
    body = await strict_body(request, DoneIn, optional=True)
    return await _act(request, timebank, exchange_id, rules.MARK_DONE, minutes=body.minutes)


@post(
    "/exchanges/{exchange_id:str}/confirm",
    **_move_options(
        "The receiver confirms: the minutes reported are paid",
        "Posts the hold for the minutes reported at done. Needs the `transfer` scope. Two "
        "confirmations at once pay once.",
        "confirmExchange",
    ),
)
async def confirm_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[VoidIn | None] = None,
) -> ExchangeOut:
    await strict_body(request, VoidIn, optional=True)
    return await _act(request, timebank, exchange_id, rules.CONFIRM)


@post(
    "/exchanges/{exchange_id:str}/dispute",
    **_move_options(
        "A party disputes the exchange (a manager will resolve it)",
        "Once accepted or done, before confirmation. `reason` is required; managers are told.",
        "disputeExchange",
    ),
)
async def dispute_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[DisputeIn],
) -> ExchangeOut:
    body = await strict_body(request, DisputeIn)
    reason = exchanges.clean_reason(body.reason, required=True)
    return await _act(request, timebank, exchange_id, rules.DISPUTE, reason=reason)


@post(
    "/exchanges/{exchange_id:str}/resolve",
    operation_id="resolveExchange",
    summary="A manager resolves a dispute: post all, part, or none of the hold",
    description=(
        "`minutes` from 0 (release the hold) to the minutes held; `reason` is required and "
        "audited. A manager who is a party to the exchange may not resolve it."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=200,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def resolve_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[ResolveIn],
) -> ExchangeOut:
    body = await strict_body(request, ResolveIn)
    reason = exchanges.clean_reason(body.reason, required=True)
    rules.check_resolution(body.minutes, rules.EXCHANGE_MAX_MINUTES)
    return await _act(
        request, timebank, exchange_id, rules.RESOLVE, minutes=body.minutes, reason=reason
    )


@post(
    "/exchanges/{exchange_id:str}/thank",
    operation_id="thankExchange",
    summary="Thank the other party, with a short note (once per party per exchange)",
    description="After the exchange is confirmed or resolved; at most 500 characters.",
    opt={"access": ACT, "scope": "write"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def thank_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    exchange_id: FromPath[str],
    data: JSONBody[ThankIn],
) -> ThanksOut:
    principal = require_principal(request)
    body = await strict_body(request, ThankIn)
    thanks = await exchanges.thank(
        timebank, principal, checked_exchange_id(exchange_id), body.message
    )
    async with reading(timebank.engine) as conn:
        named = await exchanges.parties(conn, [thanks.from_account])
    return thanks_out(thanks, named)


def thanks_out(thanks: Thanks, named: dict[str, Party]) -> ThanksOut:
    return ThanksOut(
        exchange_id=thanks.exchange_id,
        by=party_out(thanks.from_account, named),
        message=thanks.message,
        created_at=thanks.created_at,
    )


@get(
    "/members/{member_id:str}/thanks",
    operation_id="listMemberThanks",
    summary="Thanks a member received, newest first (shown on their profile)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 404, 503),
    tags=TAGS,
)
async def list_member_thanks(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> ThanksPage:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(timebank.engine) as conn:
        member = await people.require(conn, member_id)
        if member.status != "active" and not authz.sees_private(principal, member_id):
            raise member_not_found(member_id)
        found = (
            await exchanges.received_thanks(
                conn, member.account_id, before=index_cursor(cursor), limit=limit
            )
            if member.account_id
            else []
        )
        named = await exchanges.parties(conn, [t.from_account for t in found])
    return ThanksPage(
        items=[thanks_out(t, named) for t in found],
        next_cursor=str(found[-1].seq) if len(found) == limit else None,
    )


# -- managers: recording, group exchanges ------------------------------------------------------


@post(
    "/exchanges/record",
    operation_id="recordExchange",
    summary="Record an exchange that happened, for a member who is offline (managers)",
    description=(
        "For people who do not use Scambio themselves (often in elder care): the minutes "
        "move at once from receiver to provider, and the exchange is marked as recorded by "
        "the manager, with the reason, in the exchange and in the audit log."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def record_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[RecordIn],
) -> Response[ExchangeOut]:
    principal = require_principal(request)
    body = await strict_body(request, RecordIn)
    proposal = _proposal(body)
    reason = exchanges.clean_reason(body.reason, required=False)
    ex, created = await exchanges.record(timebank, principal, proposal, reason)
    return _created(await view(timebank, principal, ex), created)


async def group_view(conn: AsyncConnection, group: Group) -> GroupOut:
    named = await exchanges.parties(conn, [m.account for m in group.members])
    return GroupOut(
        id=group.id,
        state=group.state,
        title=group.title,
        description=group.description,
        area=group.area,
        zone=group.zone,
        minutes=group.minutes,
        pool=group.pool_account,
        facilitators=[party_out(a, named) for a in group.facilitators],
        participants=[
            GroupParticipantOut(
                party=party_out(m.account, named), paid_by=m.paid_by or "self", present=m.present
            )
            for m in group.participants
        ],
        transfers=[
            GroupTransferOut(
                entry_id=t.entry_id,
                payer=t.payer,
                payee=t.payee,
                minutes=t.minutes,
                participant=t.participant,
                index=t.entry_index,
                proof=None if t.entry_index is None else proof_link(t.entry_index),
            )
            for t in group.transfers
        ],
        created_by=group.created_by,
        created_at=group.created_at,
        settled_at=group.settled_at,
        settled_by=group.settled_by,
        last_error=group.last_error,
    )


@post(
    "/exchanges/group",
    operation_id="createGroupExchange",
    summary="Plan a group exchange: a workshop or urban lab (managers)",
    description=(
        "Facilitators each earn `minutes`; the total is shared equally among the "
        "participants present at settlement, each share paid by the participant or by the "
        "community pool (`paid_by`), as the manager sets. Nothing moves until `settle`."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def create_group_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[GroupIn],
) -> Response[GroupOut]:
    principal = require_principal(request)
    body = await strict_body(request, GroupIn)
    zone = people.clean_zone(timebank.zones, body.zone)
    plan = exchanges.clean_group(
        group_id=canonical_uuid(body.id),
        title=body.title,
        minutes=body.minutes,
        facilitators=list(body.facilitators),
        participants=[(p.account, p.paid_by) for p in body.participants],
        pool=body.pool,
        description=body.description,
        area=body.area,
        zone=zone,
    )
    group, created = await exchanges.create_group(timebank, principal, plan)
    async with reading(timebank.engine) as conn:
        out = await group_view(conn, group)
    return Response(
        out,
        status_code=201 if created else 200,
        headers={"Location": f"/api/v1/exchanges/group/{group.id}"},
    )


@get(
    "/exchanges/group/{group_id:str}",
    operation_id="getGroupExchange",
    summary="A group exchange (its facilitators, participants and staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 404, 503),
    tags=TAGS,
)
async def get_group_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    group_id: FromPath[str],
) -> GroupOut:
    principal = require_principal(request)
    async with reading(timebank.engine) as conn:
        group = await exchanges.require_group(conn, principal, checked_group_id(group_id))
        return await group_view(conn, group)


@post(
    "/exchanges/group/{group_id:str}/settle",
    operation_id="settleGroupExchange",
    summary="Settle a group exchange: every transfer commits, or none (managers)",
    description=(
        "One linked ledger call: if any payer cannot pay (a participant over their limit, "
        "an empty pool), nothing moves and the 422 `group-settlement-failed` names them "
        "(`participant`, `member`, `cause`). List in `absent` those who did not come. A "
        "settled group answers a repeat with 200 and the same result."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=200,
    responses=problem_spec(*WRITE_PROBLEMS),
    tags=TAGS,
)
async def settle_group_exchange(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    group_id: FromPath[str],
    data: JSONBody[SettleIn | None] = None,
) -> GroupOut:
    principal = require_principal(request)
    body = await strict_body(request, SettleIn, optional=True)
    group = await exchanges.settle_group(
        timebank, principal, checked_group_id(group_id), list(body.absent)
    )
    async with reading(timebank.engine) as conn:
        return await group_view(conn, group)


ROUTES = [
    propose_exchange,
    list_exchanges,
    record_exchange,
    create_group_exchange,
    get_group_exchange,
    settle_group_exchange,
    get_exchange,
    accept_exchange,
    decline_exchange,
    cancel_exchange,
    mark_done,
    confirm_exchange,
    dispute_exchange,
    resolve_exchange,
    thank_exchange,
    list_member_thanks,
]
