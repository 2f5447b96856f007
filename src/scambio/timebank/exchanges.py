"""Exchanges: the workflow that turns an agreement between two people into ledger entries.

`timebank.exchange_rules` says which move is allowed; this module performs it, exactly
once, against two stores that cannot share a transaction: the exchange row and the
ledger (whose appender owns its own transactions). The pattern:

- Every change to a row is a compare-and-set on (`state`, `version`): of two concurrent
  acts (two confirmations, a confirmation and a dispute, an accept and a cancel) one
  updates the row and the other finds it changed and is told so - or, when it was the
  same act, gets the exchange as it now is.
- Every ledger entry has an id derived from the exchange id (`xch-<id>`, `:post`,
  `:void`, `.settle`), so a retried or racing ledger call finds the entry already
  written: the ledger moves minutes once however many callers ask. A payment that
  sponsored credit covers in part has further legs (`xch-<id>.1`, ...; see
  `policy.funding`), written together with the first and resolved with it.
- Accepting holds first and changes state second, because a hold can be refused (the
  receiver's limit) and then the exchange must stay proposed. If the state changed
  meanwhile to declined or cancelled, the accept voids its own hold.
- Confirming, resolving, cancelling and expiring change state first, recording the
  ledger effect due (`ledger_due`), then apply it. A crash in between leaves the effect
  due; the next request or the scheduled job (`auto_confirm_due`) applies it, and
  because it is idempotent, applying it twice is harmless. The ledger is the truth.

Group exchanges (workshops, urban labs) and the manager's record of an exchange for an
offline member are here too, as are thanks. Every event goes through one function, `emit`,
which notifies the people concerned in the app and, as their settings say, by email.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import delete, exists, insert, literal, null, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import format_time, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import check_account_id
from scambio.policy import funding
from scambio.store import queries
from scambio.store.commands import Appended, Outcome, Transfer
from scambio.store.exchanges_tables import (
    exchange_thanks,
    exchanges,
    group_exchanges,
    group_members,
    group_transfers,
)
from scambio.store.people_tables import members, organisations
from scambio.store.tables import entries
from scambio.store.tokens import Principal
from scambio.timebank import audit, authz, listings, notifications
from scambio.timebank import exchange_rules as rules
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.orgs import org_account_id
from scambio.timebank.people import member_account_id
from scambio.timebank.text import clean_name, clean_text, invalid

#: The actor the scheduled job appears as in the audit log.
SYSTEM_ACTOR: Final = Actor("system (exchange job)")
LISTING_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
POOL_RE: Final = re.compile(r"pool:[a-z0-9][a-z0-9._-]{0,58}")
DEFAULT_POOL: Final = "pool:community"

# Audit actions (stable strings, like those in `timebank.audit`).
EXCHANGE_RECORDED: Final = "exchange.recorded"
EXCHANGE_RESOLVED: Final = "exchange.resolved"
GROUP_CREATED: Final = "group-exchange.created"
GROUP_SETTLED: Final = "group-exchange.settled"

# -- what the service returns ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    seq: int
    id: str
    state: str
    version: int
    provider_account: str
    receiver_account: str
    proposer_side: str | None
    proposed_by: str
    proposed_by_member: str | None
    title: str
    description: str
    area: str | None
    listing_id: str | None
    minutes: int
    actual_minutes: int | None
    final_minutes: int | None
    hold_expires_in: int
    hold_index: int | None
    settle_index: int | None
    ledger_due: str | None
    ledger_error: str | None
    recorded_by: str | None
    recorded_reason: str | None
    created_at: str
    updated_at: str
    accepted_at: str | None
    done_at: str | None
    done_due_at: str | None
    confirm_due_at: str | None
    closed_at: str | None
    closed_by: str | None
    reason: str | None
    disputed_by: str | None
    dispute_reason: str | None
    resolution_reason: str | None

    @property
    def entry_id(self) -> str:
        return rules.entry_id(self.id)

    @property
    def payer(self) -> str:
        """The receiver of help pays."""
        return self.receiver_account

    @property
    def payee(self) -> str:
        return self.provider_account

    def side_account(self, side: str) -> str:
        return self.provider_account if side == rules.PROVIDER else self.receiver_account


_EXCHANGE_FIELDS: Final = tuple(f.name for f in fields(Exchange))


def _exchange(row: Any) -> Exchange:
    mapping = row._mapping
    return Exchange(**{name: mapping[name] for name in _EXCHANGE_FIELDS})


@dataclass(frozen=True, slots=True)
class Party:
    """The holder of an account an exchange names: a member or an organisation."""

    account: str
    kind: str
    id: str
    name: str
    status: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Thanks:
    seq: int
    exchange_id: str
    from_account: str
    to_account: str
    author: str
    message: str
    created_at: str


@dataclass(frozen=True, slots=True)
class GroupMember:
    account: str
    role: str
    paid_by: str | None
    present: bool


@dataclass(frozen=True, slots=True)
class GroupTransfer:
    seq: int
    entry_id: str
    payer: str
    payee: str
    minutes: int
    participant: str | None
    entry_index: int | None


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    state: str
    version: int
    title: str
    description: str
    area: str | None
    zone: str | None
    minutes: int
    pool_account: str
    created_by: str
    created_at: str
    updated_at: str
    settled_at: str | None
    settled_by: str | None
    last_error: str | None
    members: list[GroupMember] = field(default_factory=list)
    transfers: list[GroupTransfer] = field(default_factory=list)

    @property
    def facilitators(self) -> list[str]:
        return [m.account for m in self.members if m.role == "facilitator"]

    @property
    def participants(self) -> list[GroupMember]:
        return [m for m in self.members if m.role == "participant"]

    def involves(self, account_ids: Iterable[str]) -> bool:
        wanted = set(account_ids)
        return any(m.account in wanted for m in self.members)


# -- errors ------------------------------------------------------------------------------------


def not_found(exchange_id: str) -> RuleViolation:
    return RuleViolation(
        "exchange-not-found", f"exchange {exchange_id!r} does not exist", exchange=exchange_id
    )


def group_not_found(group_id: str) -> RuleViolation:
    return RuleViolation(
        "group-not-found", f"group exchange {group_id!r} does not exist", group=group_id
    )


def _idempotency(exchange_id: str, field_name: str) -> RuleViolation:
    return RuleViolation(
        "idempotency-conflict",
        f"id {exchange_id!r} was already used for a different request: {field_name} differs",
        field=field_name,
    )


def _label(principal: Principal | None) -> str:
    return SYSTEM_ACTOR.label if principal is None else authz.actor(principal).label


def _actor(principal: Principal | None) -> Actor:
    return SYSTEM_ACTOR if principal is None else authz.actor(principal)


# -- cleaning what people typed ----------------------------------------------------------------


def clean_title(value: str) -> str:
    return clean_name(value, "title", rules.TITLE_MAX)


def clean_description(value: str) -> str:
    return clean_text(value, "description", rules.DESCRIPTION_MAX, multiline=True)


def clean_area(area: str | None) -> str | None:
    if area is not None and area not in AREA_IDS:
        raise RuleViolation(
            "unknown-area",
            f"area {area!r} is not one of {', '.join(sorted(AREA_IDS))}",
            field="area",
        )
    return area


def clean_listing_id(value: str | None) -> str | None:
    if value is not None and not LISTING_ID_RE.fullmatch(value):
        raise invalid("listing_id", "listing_id must be a listing's id")
    return value


def clean_reason(value: str, *, required: bool) -> str | None:
    text = clean_text(value, "reason", rules.REASON_MAX, multiline=True)
    if required and not text:
        raise invalid("reason", "a reason is required")
    return text or None


def clean_account(value: str, field_name: str) -> str:
    if check_account_id(value) is not None:
        raise RuleViolation(
            "invalid-party",
            f"{field_name} must be a member's or an organisation's account id (m-..., o-...)",
            field=field_name,
        )
    return value


# -- parties -----------------------------------------------------------------------------------


async def parties(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, Party]:
    """The members and organisations holding these accounts (absent: no such holder)."""
    wanted = sorted(set(account_ids))
    found: dict[str, Party] = {}
    if not wanted:
        return found
    # One statement for both kinds of holder: every exchange read and move asks.
    rows = await conn.execute(
        union_all(
            select(
                members.c.account_id,
                literal("member").label("kind"),
                members.c.id,
                members.c.name,
                members.c.status,
                members.c.email,
            ).where(members.c.account_id.in_(wanted)),
            select(
                organisations.c.account_id,
                literal("organisation").label("kind"),
                organisations.c.id,
                organisations.c.name,
                organisations.c.status,
                null().label("email"),
            ).where(organisations.c.account_id.in_(wanted)),
        )
    )
    for row in rows:
        found[row.account_id] = Party(
            row.account_id, str(row.kind), row.id, row.name, row.status, row.email
        )
    return found


async def _active_parties(conn: AsyncConnection, named: dict[str, str]) -> dict[str, Party]:
    """Check that each account (keyed by the field that named it) belongs to an active
    member or organisation, and that none is suspended."""
    found = await parties(conn, named.values())
    for field_name, account in named.items():
        party = found.get(account)
        if party is None:
            raise RuleViolation(
                "invalid-party",
                f"{field_name} {account!r} is not the account of a member or an organisation",
                field=field_name,
                account=account,
            )
        if party.status == "suspended":
            raise authz.account_suspended(account)
        if party.status != "active":
            raise RuleViolation(
                "invalid-party",
                f"{field_name} {account!r} belongs to a {party.kind} who is {party.status}",
                field=field_name,
                account=account,
            )
    return found


# -- notifications -----------------------------------------------------------------------------


def _event_text(event: str, ex: Exchange, named: dict[str, Party]) -> str | None:
    """The in-app sentence for an exchange event (None: nobody is notified of it)."""
    title = f"\u201c{notifications.short(ex.title)}\u201d"
    if event == "proposed":
        side = ex.proposer_side
        party = named.get(ex.side_account(side)) if side else None
        who = party.name if party else "A community manager"
        return f"{who} proposes {title}, {ex.minutes} minutes: accept or decline it."
    if event == "accepted":
        return f"{title} was accepted: {ex.minutes} minutes are reserved until it is done."
    if event == "done":
        due = (ex.confirm_due_at or "")[:10]
        return (
            f"{title} is reported done, {ex.actual_minutes} minutes: confirm it or open a "
            f"dispute by {due}, or it is confirmed automatically."
        )
    if event == "confirmed":
        return f"{title} is confirmed: {ex.final_minutes} minutes moved."
    if event == "declined":
        return f"{title} was declined."
    if event == "cancelled":
        return f"{title} was cancelled; any reserved minutes are released."
    if event == "expired":
        return f"{title} lapsed: it was not marked done in time; the reserved minutes are released."
    if event == "disputed":
        return f"{title} is disputed; a community manager will resolve it."
    if event == "resolved":
        moved = ex.final_minutes or 0
        outcome = f"{moved} minutes moved" if moved else "no minutes moved"
        return f"The dispute about {title} was resolved: {outcome}."
    if event == "recorded":
        return f"A community manager recorded {title}, {ex.final_minutes} minutes, for you."
    return None


def _event_mail(event: str, ex: Exchange) -> tuple[str, str]:
    """(subject, body) of the email for an exchange event."""
    if event == "proposed":
        return (
            f"Scambio: a proposal for you: {ex.title}",
            f"You have a new exchange proposal, {ex.title!r}, for {ex.minutes} minutes. "
            f"Accept or decline it in Scambio (exchange {ex.id}).",
        )
    if event == "accepted":
        return (
            f"Scambio: accepted: {ex.title}",
            f"The exchange {ex.title!r} was accepted; {ex.minutes} minutes are reserved. "
            f"When it has happened, the provider marks it done (exchange {ex.id}).",
        )
    if event == "done":
        return (
            f"Scambio: please confirm: {ex.title}",
            f"The exchange {ex.title!r} is reported done, {ex.actual_minutes} minutes. "
            f"Please confirm it or open a dispute by {ex.confirm_due_at}; after that it is "
            f"confirmed automatically (exchange {ex.id}).",
        )
    if event == "disputed":
        return (
            f"Scambio: exchange disputed: {ex.title}",
            f"The exchange {ex.title!r} was disputed by {ex.disputed_by or ''}. A community "
            f"manager will resolve it (exchange {ex.id}).",
        )
    if event == "recorded":
        return (
            f"Scambio: an exchange was recorded for you: {ex.title}",
            f"A community manager recorded the exchange {ex.title!r}, {ex.final_minutes} "
            f"minutes, on your behalf (exchange {ex.id}).",
        )
    text = _event_text(event, ex, {}) or ""
    return f"Scambio: {event}: {ex.title}", f"{text} (exchange {ex.id})"


async def emit(
    conn: AsyncConnection, tb: Timebank, event: str, ex: Exchange, by: Principal | None = None
) -> None:
    """Tell people about an exchange event, inside the transaction that caused it.

    The one place exchange events leave this module. A proposal goes to the side that
    must answer it; a report that it is done, to the receiver who must confirm; every
    other event to both sides; a dispute also to the community's managers. Whoever acts
    for an account (the member, or the organisation's admins) is told, in the app and,
    as their settings say, by email - except the person who made the move (`by`).
    """
    side = ex.proposer_side if event == "proposed" else None
    named = await parties(conn, [ex.side_account(side)]) if side else {}
    text = _event_text(event, ex, named)
    if text is None:
        return
    if event == "proposed":
        accounts = [ex.side_account(rules.counterpart_side(ex.proposer_side))]
    elif event == "done":
        accounts = [ex.receiver_account]
    else:
        accounts = [ex.provider_account, ex.receiver_account]
    recipients = [r for a in accounts for r in await notifications.account_holders(conn, a)]
    if event == "disputed":
        recipients += await notifications.staff(conn)
    subject, body = _event_mail(event, ex)
    await notifications.notify(
        conn,
        tb.clock,
        recipients,
        kind=f"exchange.{event}",
        text=text,
        refs=notifications.Refs(exchange=ex.id, listing=ex.listing_id),
        mail=notifications.Mail(
            f"exchange-{event}", lambda r: (subject, f"Hello {r.name},\n\n{body}")
        ),
        skip=None if by is None else by.member_id,
    )


# -- reading -----------------------------------------------------------------------------------


async def get(conn: AsyncConnection, exchange_id: str) -> Exchange | None:
    row = (await conn.execute(select(exchanges).where(exchanges.c.id == exchange_id))).one_or_none()
    return None if row is None else _exchange(row)


def sees(principal: Principal | None, ex: Exchange) -> bool:
    """Staff and the parties (members, and admins of organisations that are parties)."""
    if principal is None or principal.is_staff:
        return True
    return principal.holds_account(ex.provider_account) or principal.holds_account(
        ex.receiver_account
    )


def who_of(principal: Principal | None, ex: Exchange) -> frozenset[str]:
    if principal is None:
        return frozenset({rules.SYSTEM})
    return rules.roles(
        holds_provider=principal.holds_account(ex.provider_account),
        holds_receiver=principal.holds_account(ex.receiver_account),
        proposer_side=ex.proposer_side,
        manager=principal.can_write,
    )


async def require_visible(
    conn: AsyncConnection, principal: Principal | None, exchange_id: str
) -> Exchange:
    """The exchange, if `principal` may see it; otherwise it does not exist for them."""
    ex = await get(conn, exchange_id)
    if ex is None or not sees(principal, ex):
        raise not_found(exchange_id)
    return ex


async def listing(
    conn: AsyncConnection,
    *,
    accounts: list[str] | None,
    state: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Exchange]:
    """Newest first; `accounts` limits to exchanges with one of them as a party (None:
    every exchange); `before` is the `seq` cursor of the previous page."""
    query = select(exchanges).order_by(exchanges.c.seq.desc()).limit(limit)
    if accounts is not None:
        query = query.where(
            or_(
                exchanges.c.provider_account.in_(accounts),
                exchanges.c.receiver_account.in_(accounts),
            )
        )
    if state is not None:
        query = query.where(exchanges.c.state == state)
    if before is not None:
        query = query.where(exchanges.c.seq < before)
    return [_exchange(row) for row in await conn.execute(query)]


async def thanked_by(conn: AsyncConnection, exchange_ids: list[str]) -> dict[str, set[str]]:
    """For each exchange, the accounts that have thanked for it."""
    found: dict[str, set[str]] = {i: set() for i in exchange_ids}
    if exchange_ids:
        rows = await conn.execute(
            select(exchange_thanks.c.exchange_id, exchange_thanks.c.from_account).where(
                exchange_thanks.c.exchange_id.in_(exchange_ids)
            )
        )
        for row in rows:
            found[row.exchange_id].add(row.from_account)
    return found


def actions_for(ex: Exchange, who: frozenset[str], thanked: set[str]) -> list[str]:
    """What `who` may do now, including thanking once the exchange is settled."""
    found = rules.available(ex.state, who)
    if ex.state in rules.SETTLED_STATES:
        own = [
            ex.side_account(side)
            for side in rules.SIDES
            if side in who and ex.side_account(side) not in thanked
        ]
        if own:
            found.append(rules.THANK)
    return found


# -- proposing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal as cleaned: the fields an identical retry must repeat."""

    id: str
    provider: str
    receiver: str
    minutes: int
    title: str
    description: str = ""
    area: str | None = None
    listing_id: str | None = None


def clean_proposal(
    *,
    exchange_id: str,
    provider: str,
    receiver: str,
    minutes: int,
    title: str,
    description: str = "",
    area: str | None = None,
    listing_id: str | None = None,
) -> Proposal:
    provider = clean_account(provider, "provider")
    receiver = clean_account(receiver, "receiver")
    if provider == receiver:
        raise RuleViolation(
            "invalid-party", "provider and receiver must be different accounts", field="receiver"
        )
    return Proposal(
        id=exchange_id,
        provider=provider,
        receiver=receiver,
        minutes=rules.check_agreed(minutes),
        title=clean_title(title),
        description=clean_description(description),
        area=clean_area(area),
        listing_id=clean_listing_id(listing_id),
    )


async def _check_listing(conn: AsyncConnection, proposal: Proposal) -> None:
    """An exchange made from a listing names one that exists, and whose owner is the side
    it speaks for: an offer's owner provides, a request's owner receives (the manager's
    queue counts on it to know which requests are being served)."""
    if proposal.listing_id is None:
        return
    listing = await listings.get(conn, proposal.listing_id)
    if listing is None:
        raise RuleViolation(
            "listing-not-found",
            f"listing {proposal.listing_id!r} does not exist",
            listing=proposal.listing_id,
            field="listing_id",
        )
    owner = listing.owner
    account = member_account_id(owner.id) if owner.is_member else org_account_id(owner.id)
    side, expected = (
        ("provider", proposal.provider)
        if listing.kind == listings.OFFER
        else ("receiver", proposal.receiver)
    )
    if account != expected:
        raise invalid(
            "listing_id",
            f"listing {listing.id} is {owner.type} {owner.id}'s {listing.kind}: its owner "
            f"must be the exchange's {side}",
        )


def _differs(ex: Exchange, proposal: Proposal) -> str | None:
    pairs = (
        ("provider", ex.provider_account, proposal.provider),
        ("receiver", ex.receiver_account, proposal.receiver),
        ("minutes", ex.minutes, proposal.minutes),
        ("title", ex.title, proposal.title),
        ("description", ex.description, proposal.description),
        ("area", ex.area, proposal.area),
        ("listing_id", ex.listing_id, proposal.listing_id),
    )
    return next((name for name, stored, asked in pairs if stored != asked), None)


async def _existing(
    principal: Principal | None, ex: Exchange | None, proposal: Proposal, recorded: bool
) -> Exchange | None:
    """An identical retry finds the original; the same id for something else is a 409."""
    if ex is None:
        return None
    if not sees(principal, ex) or (ex.recorded_by is not None) != recorded:
        raise _idempotency(proposal.id, "id")
    differs = _differs(ex, proposal)
    if differs:
        raise _idempotency(proposal.id, differs)
    return ex


def proposer_side(principal: Principal, proposal: Proposal) -> str | None:
    """Which side the caller proposes from; None when a manager introduces two others."""
    provider = principal.holds_account(proposal.provider)
    receiver = principal.holds_account(proposal.receiver)
    if provider and receiver and not principal.can_write:
        raise authz.forbidden("you hold both accounts: an exchange needs two parties")
    if provider != receiver:
        return rules.PROVIDER if provider else rules.RECEIVER
    if not principal.can_write:
        raise authz.forbidden("you may propose exchanges only for accounts you hold")
    return None


async def propose(tb: Timebank, principal: Principal, proposal: Proposal) -> tuple[Exchange, bool]:
    """Create a proposed exchange; (exchange, created). Nothing moves in the ledger yet."""
    side = proposer_side(principal, proposal)
    who = rules.roles(
        holds_provider=side == rules.PROVIDER,
        holds_receiver=side == rules.RECEIVER,
        proposer_side=side,
        manager=principal.can_write,
    )
    if rules.needs_transfer_scope("propose", who):
        authz.require_scope(principal, "transfer")
    now = stamp(tb.clock)
    policy = rules.policy_from(tb.settings)
    try:
        async with writing(tb.engine) as conn:
            found = await _existing(principal, await get(conn, proposal.id), proposal, False)
            if found is not None:
                return found, False
            await _active_parties(
                conn, {"provider": proposal.provider, "receiver": proposal.receiver}
            )
            await _check_listing(conn, proposal)
            await conn.execute(
                insert(exchanges).values(
                    id=proposal.id,
                    state=rules.PROPOSED,
                    version=0,
                    provider_account=proposal.provider,
                    receiver_account=proposal.receiver,
                    proposer_side=side,
                    proposed_by=_label(principal)[:300],
                    proposed_by_member=principal.member_id,
                    title=proposal.title,
                    description=proposal.description,
                    area=proposal.area,
                    listing_id=proposal.listing_id,
                    minutes=proposal.minutes,
                    hold_expires_in=policy.hold_seconds,
                    created_at=now,
                    updated_at=now,
                )
            )
            created = await get(conn, proposal.id)
            assert created is not None
            await emit(conn, tb, "proposed", created, principal)
    except IntegrityError:
        # The same id proposed twice at once: the unique id let one through.
        async with reading(tb.engine) as conn:
            found = await _existing(principal, await get(conn, proposal.id), proposal, False)
        if found is None:  # pragma: no cover - the other insert committed
            raise
        return found, False
    tb.mailer.kick()
    return created, True


# -- moving ------------------------------------------------------------------------------------


async def accept(tb: Timebank, principal: Principal | None, exchange_id: str) -> Exchange:
    return await act(tb, principal, exchange_id, rules.ACCEPT)


async def decline(
    tb: Timebank, principal: Principal | None, exchange_id: str, reason: str | None = None
) -> Exchange:
    return await act(tb, principal, exchange_id, rules.DECLINE, reason=reason)


async def cancel(
    tb: Timebank, principal: Principal | None, exchange_id: str, reason: str | None = None
) -> Exchange:
    return await act(tb, principal, exchange_id, rules.CANCEL, reason=reason)


async def mark_done(
    tb: Timebank, principal: Principal | None, exchange_id: str, minutes: int | None = None
) -> Exchange:
    return await act(tb, principal, exchange_id, rules.MARK_DONE, minutes=minutes)


async def confirm(tb: Timebank, principal: Principal | None, exchange_id: str) -> Exchange:
    return await act(tb, principal, exchange_id, rules.CONFIRM)


async def dispute(
    tb: Timebank, principal: Principal | None, exchange_id: str, reason: str
) -> Exchange:
    return await act(tb, principal, exchange_id, rules.DISPUTE, reason=reason)


async def resolve(
    tb: Timebank, principal: Principal | None, exchange_id: str, minutes: int, reason: str
) -> Exchange:
    return await act(tb, principal, exchange_id, rules.RESOLVE, minutes=minutes, reason=reason)


async def act(
    tb: Timebank,
    principal: Principal | None,
    exchange_id: str,
    action: str,
    *,
    minutes: int | None = None,
    reason: str | None = None,
) -> Exchange:
    """Make one move on an exchange, for `principal` (None: the scheduled job)."""
    async with reading(tb.engine) as conn:
        ex = await require_visible(conn, principal, exchange_id)
        who = who_of(principal, ex)
        repeat = rules.reached_by(ex.state, action) and rules.may_repeat(action, who)
        step = None if repeat else rules.step(ex.id, ex.state, action, who)
        # A move that will hold or post minutes checks the parties in the same read.
        moves_minutes = step is not None and (
            step.effect in (rules.HOLD, rules.POST)
            or (step.effect == rules.POST_OR_VOID and bool(minutes))
        )
        frozen = (
            await authz.suspended_accounts(conn, [ex.payer, ex.payee]) if moves_minutes else set()
        )
    if step is None:
        _check_repeat(ex, action, minutes)
        return await settle_due(tb, ex)
    if principal is not None and rules.needs_transfer_scope(action, who):
        authz.require_scope(principal, "transfer")
    now_dt = tb.clock()
    now = format_time(now_dt)
    label = _label(principal)[:300]
    values: dict[str, Any] = {"state": step.target}
    event = step.target
    if step.target in rules.FINAL_STATES:
        values.update(closed_at=now, closed_by=label)
    if action in (rules.DECLINE, rules.CANCEL):
        values["reason"] = reason
    if action == rules.MARK_DONE:
        if ex.done_due_at is not None and now > ex.done_due_at:
            raise RuleViolation(
                "exchange-lapsed",
                f"exchange {ex.id} had to be marked done by {ex.done_due_at}; it lapses and "
                "its hold is released",
                exchange=ex.id,
            )
        actual = rules.check_actual(ex.minutes if minutes is None else minutes, ex.minutes)
        policy = rules.policy_from(tb.settings)
        values.update(
            actual_minutes=actual,
            done_at=now,
            confirm_due_at=format_time(policy.confirm_due(now_dt)),
        )
    elif action == rules.DISPUTE:
        values.update(disputed_by=label, dispute_reason=reason)
    elif action == rules.RESOLVE:
        assert minutes is not None
        values.update(
            final_minutes=rules.check_resolution(minutes, ex.minutes),
            resolution_reason=reason,
        )
    if step.effect == rules.HOLD:
        authz.refuse_suspended(frozen, [ex.payer, ex.payee])
        return await _accept(tb, principal, ex, values)
    if step.effect == rules.POST or (step.effect == rules.POST_OR_VOID and minutes):
        if step.effect == rules.POST:
            values["final_minutes"] = ex.actual_minutes
        values["ledger_due"] = "post"
        authz.refuse_suspended(frozen, [ex.payer, ex.payee])
    elif step.effect in (rules.VOID, rules.POST_OR_VOID):
        values["ledger_due"] = "void"
    audited = action == rules.RESOLVE or (
        principal is not None and rules.MANAGER in who and not rules.is_party(who)
    )
    moved = await _compare_and_set(
        tb,
        ex,
        values,
        event=event,
        by=principal,
        audit_as=(principal, action, reason) if audited else None,
    )
    if moved is None:
        return await _lost_race(tb, principal, ex, action, minutes)
    return await settle_due(tb, moved)


def _check_repeat(ex: Exchange, action: str, minutes: int | None) -> None:
    """A repeat must ask for the same thing: another amount is a conflict, not a retry."""
    if action == rules.MARK_DONE and minutes is not None and minutes != ex.actual_minutes:
        raise rules.invalid_transition(ex.id, ex.state, action)
    if action == rules.RESOLVE and minutes != ex.final_minutes:
        raise rules.invalid_transition(ex.id, ex.state, action)


async def _lost_race(
    tb: Timebank, principal: Principal | None, ex: Exchange, action: str, minutes: int | None
) -> Exchange:
    """Someone else changed the exchange first: the same move is a repeat, anything else
    means this one is no longer possible."""
    async with reading(tb.engine) as conn:
        now = await require_visible(conn, principal, ex.id)
    if rules.reached_by(now.state, action):
        _check_repeat(now, action, minutes)
        return await settle_due(tb, now)
    raise rules.invalid_transition(ex.id, now.state, action)


async def _compare_and_set(
    tb: Timebank,
    ex: Exchange,
    values: dict[str, Any],
    *,
    event: str,
    by: Principal | None = None,
    audit_as: tuple[Principal | None, str, str | None] | None = None,
) -> Exchange | None:
    """Apply `values` if the exchange is still as read; None if it changed meanwhile."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        row = (
            await conn.execute(
                update(exchanges)
                .where(
                    exchanges.c.id == ex.id,
                    exchanges.c.state == ex.state,
                    exchanges.c.version == ex.version,
                )
                .values(version=ex.version + 1, updated_at=now, **values)
                .returning(*exchanges.c)
            )
        ).one_or_none()
        if row is None:
            return None
        moved = _exchange(row)
        if audit_as is not None:
            principal, action, reason = audit_as
            await audit.record(
                conn,
                _actor(principal),
                EXCHANGE_RESOLVED if action == rules.RESOLVE else f"exchange.{action}",
                "exchange",
                ex.id,
                at=now,
                reason=reason,
                details={
                    "from": ex.state,
                    "to": moved.state,
                    "minutes": moved.final_minutes,
                    "on_behalf": action != rules.RESOLVE,
                },
            )
        await emit(conn, tb, event, moved, by)
    tb.mailer.kick()
    return moved


async def _accept(
    tb: Timebank, principal: Principal | None, ex: Exchange, values: dict[str, Any]
) -> Exchange:
    """Hold the receiver's minutes, then mark the exchange accepted.

    The hold comes first so that a refusal (the receiver's limit) leaves the exchange
    proposed. If the exchange was declined or cancelled in between, this accept releases
    the hold it made; if another accept won, both made the same hold (same id). The
    caller has checked that neither party is suspended.
    """
    hold_index = await _hold(tb, ex)
    now_dt = tb.clock()
    policy = rules.policy_from(tb.settings)
    values.update(
        hold_index=hold_index,
        accepted_at=format_time(now_dt),
        done_due_at=format_time(policy.done_due(now_dt)),
    )
    who = who_of(principal, ex)
    audited = principal is not None and rules.MANAGER in who and not rules.is_party(who)
    moved = await _compare_and_set(
        tb,
        ex,
        values,
        event="accepted",
        by=principal,
        audit_as=(principal, rules.ACCEPT, None) if audited else None,
    )
    if moved is not None:
        return moved
    async with reading(tb.engine) as conn:
        current = await require_visible(conn, principal, ex.id)
    if current.state in (rules.DECLINED, rules.CANCELLED):
        await _void_all(tb, ex.entry_id)
        raise rules.invalid_transition(ex.id, current.state, rules.ACCEPT)
    if current.state == rules.ACCEPTED:
        return current
    raise rules.invalid_transition(ex.id, current.state, rules.ACCEPT)


async def settle_due(tb: Timebank, ex: Exchange) -> Exchange:
    """Apply the ledger effect the exchange's state calls for, if not yet applied.

    Idempotent: the entry ids are fixed, so a second call finds the entry the first wrote.
    A payment may have several legs (sponsored credit first, see `policy.funding`): a
    post pays the final minutes from the legs in order, voiding legs left with nothing;
    a void releases every leg. A post whose hold has lapsed (expired, or voided by the
    expiry sweep) pays with a plain transfer `<leg id>.settle` instead (`xch-<id>.settle`
    for the first leg). A refusal is kept in `ledger_error` and retried by the scheduled
    job; nothing is lost, nothing is paid twice.
    """
    if ex.ledger_due is None:
        return ex
    if ex.ledger_due == "void":
        outcome = await _void_all(tb, ex.entry_id)
        if isinstance(outcome, RuleViolation) and outcome.code == "hold-not-found":
            return await _settled(tb, ex, None, None)
        if isinstance(outcome, RuleViolation):
            return await _settled(tb, ex, None, f"{outcome.code}: {outcome.detail}"[:500])
        return await _settled(tb, ex, outcome.index, None)
    minutes = ex.final_minutes
    assert minutes is not None
    async with tb.ledger.read() as conn:
        legs = await funding.written_legs(conn, ex.entry_id, "hold")
    if not legs:  # no hold (never made, or not yet visible): the post says which
        legs = [
            funding.Written(
                ex.entry_id,
                -1,
                "hold",
                ex.payer,
                ex.payee,
                ex.minutes,
                rules.ledger_refs(ex.id, ex.area),
            )
        ]
    first: int | None = None
    failure: RuleViolation | None = None
    for leg, amount in zip(legs, funding.allocate(minutes, [g.minutes for g in legs]), strict=True):
        if amount == 0:
            # Nothing left for this leg to pay: release it (lapsed already is as good).
            released = await tb.ledger.void(leg.id)
            if isinstance(released, RuleViolation) and released.code not in (
                "hold-resolved",
                "hold-not-found",
            ):
                failure = failure or released
            continue
        result = await _post_leg(tb, ex, leg, amount)
        if isinstance(result, RuleViolation):
            failure = failure or result
        elif first is None:
            first = result
    if failure is not None:
        return await _settled(tb, ex, None, f"{failure.code}: {failure.detail}"[:500])
    return await _settled(tb, ex, first, None)


async def _hold(tb: Timebank, ex: Exchange) -> int:
    """Hold the payment for an accepted exchange; the index of its first leg.

    The receiver's eligible sponsored credit is held first and their own minutes for the
    rest, all legs linked. A retry after a crash may plan differently (the first attempt's
    holds changed what is available): the ledger then refuses the first leg's id as used
    for something else, and the holds already written are the exchange's. If sponsored
    credit was spent meanwhile by another payment, the plan is made again.
    """
    failure: RuleViolation | None = None
    for _attempt in range(3):
        async with reading(tb.engine) as conn:
            legs = await funding.plan(
                conn,
                ex.payer,
                ex.minutes,
                area=ex.area,
                listing_id=ex.listing_id,
                now=tb.clock(),
            )
        holds = [
            Transfer(
                funding.leg_id(ex.entry_id, position),
                leg.payer,
                ex.payee,
                leg.minutes,
                rules.memo(ex.id),
                hold=True,
                expires_in=ex.hold_expires_in,
                refs={**rules.ledger_refs(ex.id, ex.area), **leg.refs},
            )
            for position, leg in enumerate(legs)
        ]
        index, failure = await _write_legs(tb, holds)
        if failure is None:
            assert index is not None
            return index
        if failure.code == "idempotency-conflict":
            async with tb.ledger.read() as conn:
                written = await funding.written_legs(conn, ex.entry_id, "hold")
            if _is_payment(written, ex.id, ex.area, ex.payee, ex.minutes) and all(
                leg.payer == ex.payer or funding.is_restricted(leg.payer) for leg in written
            ):
                return written[0].index
            raise failure
        if failure.code == "limit-exceeded" and funding.is_restricted(
            str(failure.fields.get("account", ""))
        ):
            continue
        raise failure
    assert failure is not None
    raise failure


def _is_payment(
    written: list[funding.Written], exchange_id: str, area: str | None, payee: str, minutes: int
) -> bool:
    """Whether legs found in the ledger are this payment (planned differently, perhaps)."""
    return (
        bool(written)
        and all(
            leg.payee == payee
            and leg.refs.get("exchange") == exchange_id
            and leg.refs.get("area") == area
            for leg in written
        )
        and sum(leg.minutes for leg in written) == minutes
    )


async def _write_legs(
    tb: Timebank, legs: list[Transfer]
) -> tuple[int | None, RuleViolation | None]:
    """Write a payment's legs (one transfer, or several linked); (first index, failure)."""
    if len(legs) == 1:
        outcome = await tb.ledger.transfer(legs[0])
        if isinstance(outcome, RuleViolation):
            return None, outcome
        return outcome.index, None
    linked = await tb.ledger.linked(legs)
    if linked.ok:
        first = linked.items[0]
        assert isinstance(first, Appended)
        return first.index, None
    culprit = next(
        item
        for item in linked.items
        if isinstance(item, RuleViolation) and item.code != "linked-failed"
    )
    assert isinstance(culprit, RuleViolation)
    return None, culprit


async def _post_leg(
    tb: Timebank, ex: Exchange, leg: funding.Written, amount: int
) -> int | RuleViolation:
    """Post `amount` of one leg's hold, or pay it by transfer if the hold lapsed."""
    outcome = await tb.ledger.post(leg.id, amount)
    if not isinstance(outcome, RuleViolation):
        return outcome.index
    if outcome.code not in ("hold-expired", "hold-resolved"):
        return outcome
    settle = f"{leg.id}.settle"
    memo = rules.memo(ex.id)
    paid = await tb.ledger.transfer(
        Transfer(settle, leg.payer, ex.payee, amount, memo, refs=leg.refs)
    )
    if (
        isinstance(paid, RuleViolation)
        and paid.code == "limit-exceeded"
        and funding.is_restricted(leg.payer)
    ):
        # The sponsored credit it held has expired since: the member pays this part.
        paid = await tb.ledger.transfer(
            Transfer(
                settle, ex.payer, ex.payee, amount, memo, refs=rules.ledger_refs(ex.id, ex.area)
            )
        )
    if isinstance(paid, RuleViolation) and paid.code == "idempotency-conflict":
        async with tb.ledger.read() as conn:
            written = await funding.written_legs(conn, settle, "transfer")
        if written and written[0].id == settle:
            return written[0].index
    if isinstance(paid, RuleViolation):
        return paid
    return paid.index


async def _void_all(tb: Timebank, base: str) -> Outcome:
    """Release every leg of a payment's hold; the outcome for the first leg.

    Later legs are voided before the first, so that while the first is open the others
    may be, and once it is resolved they are too (what `_orphan_holds` relies on).
    """
    async with tb.ledger.read() as conn:
        legs = await funding.written_legs(conn, base, "hold")
    errors: list[RuleViolation] = []
    for leg in reversed([leg for leg in legs if leg.id != base]):
        outcome = await tb.ledger.void(leg.id)
        if isinstance(outcome, RuleViolation) and outcome.code != "hold-resolved":
            errors.append(outcome)
    first = await tb.ledger.void(base)
    if not legs and isinstance(first, Appended) and first.created:
        # The holds appeared after they were read (an accept racing this void).
        async with tb.ledger.read() as conn:
            late = await funding.written_legs(conn, base, "hold")
        for leg in reversed([leg for leg in late if leg.id != base]):
            await tb.ledger.void(leg.id)
    if errors and not isinstance(first, RuleViolation):
        return errors[0]
    return first


async def _settled(tb: Timebank, ex: Exchange, index: int | None, error: str | None) -> Exchange:
    async with writing(tb.engine) as conn:
        values: dict[str, Any] = {"ledger_error": error}
        if error is None:
            values.update(ledger_due=None, settle_index=index)
        row = (
            await conn.execute(
                update(exchanges)
                .where(exchanges.c.id == ex.id, exchanges.c.ledger_due == ex.ledger_due)
                .values(**values)
                .returning(*exchanges.c)
            )
        ).one_or_none()
        # Not updated: someone else settled it meanwhile; read it as it is.
        settled = _exchange(row) if row is not None else await get(conn, ex.id)
    assert settled is not None
    return settled


# -- the scheduled job -------------------------------------------------------------------------


@dataclass(slots=True)
class Sweep:
    """What one run of `auto_confirm_due` did (exchange ids)."""

    confirmed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    #: Holds left open on exchanges that were declined or cancelled (see `_orphan_holds`).
    released: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


async def auto_confirm_due(tb: Timebank, *, limit: int = 500) -> Sweep:
    """Confirm exchanges whose receiver neither confirmed nor disputed in time; expire
    accepted exchanges never marked done in time (their hold is released); retry ledger
    effects left due. Safe to run anywhere, any number of times, concurrently with people
    acting: every move is a compare-and-set and every ledger entry idempotent."""
    now = stamp(tb.clock)
    async with tb.ledger.read() as conn:
        orphans = await _orphan_holds(conn, limit=limit)
    async with reading(tb.engine) as conn:
        to_confirm = await _ids(
            conn, exchanges.c.state == rules.DONE, exchanges.c.confirm_due_at <= now, limit=limit
        )
        to_expire = await _ids(
            conn, exchanges.c.state == rules.ACCEPTED, exchanges.c.done_due_at <= now, limit=limit
        )
        to_settle = await _ids(conn, exchanges.c.ledger_due.is_not(None), limit=limit)
    sweep = Sweep()

    async def run(exchange_id: str, action: str, done: list[str]) -> None:
        try:
            if action == "settle":
                async with reading(tb.engine) as conn:
                    ex = await get(conn, exchange_id)
                assert ex is not None
                settled = await settle_due(tb, ex)
                if settled.ledger_error:
                    sweep.skipped[exchange_id] = settled.ledger_error
                    return
            else:
                await act(tb, None, exchange_id, action)
        except RuleViolation as exc:
            sweep.skipped[exchange_id] = f"{exc.code}: {exc.detail}"
            return
        done.append(exchange_id)

    # Submitted together so that their ledger entries share the appender's batches.
    await asyncio.gather(
        *(run(i, rules.AUTO_CONFIRM, sweep.confirmed) for i in to_confirm),
        *(run(i, rules.EXPIRE, sweep.expired) for i in to_expire),
    )
    await asyncio.gather(*(run(i, "settle", sweep.settled) for i in to_settle))
    for exchange_id, outcome in zip(
        orphans,
        await asyncio.gather(*(_void_all(tb, rules.entry_id(i)) for i in orphans)),
        strict=True,
    ):
        if isinstance(outcome, RuleViolation):
            sweep.skipped[exchange_id] = f"{outcome.code}: {outcome.detail}"
        else:
            sweep.released.append(exchange_id)
    return sweep


async def _orphan_holds(conn: AsyncConnection, *, limit: int) -> list[str]:
    """Exchanges declined or cancelled whose hold is still open.

    Only a crash can leave one: an accept that made its hold, lost the race to a decline
    or cancel whose own void found no hold yet, and died before voiding it. Without this
    the minutes would stay reserved until the hold expired.
    """
    resolution = entries.alias("resolution")
    resolved = exists().where(resolution.c.hold_idx == entries.c.idx)
    rows = await conn.execute(
        select(exchanges.c.id)
        .join(entries, entries.c.id == literal(rules.ENTRY_PREFIX) + exchanges.c.id)
        .where(
            exchanges.c.state.in_((rules.DECLINED, rules.CANCELLED)),
            exchanges.c.ledger_due.is_(None),
            entries.c.kind == "hold",
            ~resolved,
        )
        .order_by(exchanges.c.seq)
        .limit(limit)
    )
    return [row.id for row in rows]


async def _ids(conn: AsyncConnection, *where: Any, limit: int) -> list[str]:
    rows = await conn.execute(
        select(exchanges.c.id).where(*where).order_by(exchanges.c.seq).limit(limit)
    )
    return [row.id for row in rows]


# -- a manager records an exchange for an offline member ---------------------------------------


async def record(
    tb: Timebank, principal: Principal, proposal: Proposal, reason: str | None
) -> tuple[Exchange, bool]:
    """Record an exchange that already happened, for someone who cannot use Scambio (an
    elderly member helped at home): the minutes move at once, by a plain transfer, and the
    exchange is marked as recorded by the manager and audited."""
    if not principal.can_write:  # the API allows managers only; this is the service's guard
        raise authz.forbidden("only a community manager may record an exchange")
    async with reading(tb.engine) as conn:
        found = await _existing(principal, await get(conn, proposal.id), proposal, True)
        if found is not None:
            return found, False
        await _active_parties(conn, {"provider": proposal.provider, "receiver": proposal.receiver})
        await _check_listing(conn, proposal)
    settle_index = await _record_payment(tb, proposal)
    now = stamp(tb.clock)
    label = _label(principal)[:300]
    policy = rules.policy_from(tb.settings)
    try:
        async with writing(tb.engine) as conn:
            await conn.execute(
                insert(exchanges).values(
                    id=proposal.id,
                    state=rules.CONFIRMED,
                    version=0,
                    provider_account=proposal.provider,
                    receiver_account=proposal.receiver,
                    proposer_side=None,
                    proposed_by=label,
                    proposed_by_member=principal.member_id,
                    title=proposal.title,
                    description=proposal.description,
                    area=proposal.area,
                    listing_id=proposal.listing_id,
                    minutes=proposal.minutes,
                    actual_minutes=proposal.minutes,
                    final_minutes=proposal.minutes,
                    hold_expires_in=policy.hold_seconds,
                    settle_index=settle_index,
                    recorded_by=label,
                    recorded_reason=reason,
                    created_at=now,
                    updated_at=now,
                    done_at=now,
                    closed_at=now,
                    closed_by=label,
                )
            )
            await audit.record(
                conn,
                authz.actor(principal),
                EXCHANGE_RECORDED,
                "exchange",
                proposal.id,
                at=now,
                reason=reason,
                details={
                    "provider": proposal.provider,
                    "receiver": proposal.receiver,
                    "minutes": proposal.minutes,
                    "ledger_index": settle_index,
                },
            )
            created = await get(conn, proposal.id)
            assert created is not None
            await emit(conn, tb, "recorded", created, principal)
    except IntegrityError:
        async with reading(tb.engine) as conn:
            found = await _existing(principal, await get(conn, proposal.id), proposal, True)
        if found is None:  # pragma: no cover - the other insert committed
            raise
        return found, False
    tb.mailer.kick()
    return created, True


async def _record_payment(tb: Timebank, proposal: Proposal) -> int:
    """Pay a recorded exchange at once, as an accepted one would be held: the receiver's
    eligible sponsored credit first, their own minutes for the rest (linked transfers
    `xch-<id>`, `xch-<id>.1`...); the index of the first."""
    base = rules.entry_id(proposal.id)
    failure: RuleViolation | None = None
    for _attempt in range(3):
        async with reading(tb.engine) as conn:
            legs = await funding.plan(
                conn,
                proposal.receiver,
                proposal.minutes,
                area=proposal.area,
                listing_id=proposal.listing_id,
                now=tb.clock(),
            )
        transfers = [
            Transfer(
                funding.leg_id(base, position),
                leg.payer,
                proposal.provider,
                leg.minutes,
                rules.memo(proposal.id, recorded=True),
                refs={**rules.ledger_refs(proposal.id, proposal.area), **leg.refs},
            )
            for position, leg in enumerate(legs)
        ]
        index, failure = await _write_legs(tb, transfers)
        if failure is None:
            assert index is not None
            return index
        if failure.code == "idempotency-conflict":
            async with tb.ledger.read() as conn:
                written = await funding.written_legs(conn, base, "transfer")
            if _is_payment(
                written, proposal.id, proposal.area, proposal.provider, proposal.minutes
            ) and all(
                leg.payer == proposal.receiver or funding.is_restricted(leg.payer)
                for leg in written
            ):
                return written[0].index
            raise failure
        if failure.code == "limit-exceeded" and funding.is_restricted(
            str(failure.fields.get("account", ""))
        ):
            continue
        raise failure
    assert failure is not None
    raise failure


# -- thanks ------------------------------------------------------------------------------------


async def thank(tb: Timebank, principal: Principal, exchange_id: str, message: str) -> Thanks:
    """One short note per party per exchange, once it is settled; shown on profiles."""
    text = clean_text(message, "message", rules.THANKS_MAX, multiline=True)
    if not text:
        raise invalid("message", "a message is required")
    now = stamp(tb.clock)
    try:
        async with writing(tb.engine) as conn:
            ex = await require_visible(conn, principal, exchange_id)
            who = who_of(principal, ex)
            sides = [side for side in rules.SIDES if side in who]
            if not sides:
                raise authz.forbidden("only the people in an exchange may thank for it")
            if ex.state not in rules.SETTLED_STATES:
                raise rules.invalid_transition(ex.id, ex.state, rules.THANK)
            side = sides[0]
            other = rules.RECEIVER if side == rules.PROVIDER else rules.PROVIDER
            from_account, to_account = ex.side_account(side), ex.side_account(other)
            await conn.execute(
                insert(exchange_thanks).values(
                    exchange_id=ex.id,
                    from_account=from_account,
                    to_account=to_account,
                    author=_label(principal)[:300],
                    author_member=principal.member_id,
                    message=text,
                    created_at=now,
                )
            )
            row = (
                await conn.execute(
                    select(exchange_thanks).where(
                        exchange_thanks.c.exchange_id == ex.id,
                        exchange_thanks.c.from_account == from_account,
                    )
                )
            ).one()
    except IntegrityError:
        raise RuleViolation(
            "already-thanked",
            f"you already thanked for exchange {exchange_id}",
            exchange=exchange_id,
        ) from None
    return _thanks(row)


def _thanks(row: Any) -> Thanks:
    return Thanks(
        int(row.seq),
        row.exchange_id,
        row.from_account,
        row.to_account,
        row.author,
        row.message,
        row.created_at,
    )


async def received_thanks(
    conn: AsyncConnection, account: str, *, before: int | None = None, limit: int = 50
) -> list[Thanks]:
    """Newest first."""
    query = (
        select(exchange_thanks)
        .where(exchange_thanks.c.to_account == account)
        .order_by(exchange_thanks.c.seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(exchange_thanks.c.seq < before)
    return [_thanks(row) for row in await conn.execute(query)]


# -- group exchanges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """A group exchange as cleaned: what an identical retry must repeat."""

    id: str
    title: str
    minutes: int
    facilitators: list[str]
    participants: list[tuple[str, str]]
    pool: str = DEFAULT_POOL
    description: str = ""
    area: str | None = None
    zone: str | None = None


def clean_group(
    *,
    group_id: str,
    title: str,
    minutes: int,
    facilitators: list[str],
    participants: list[tuple[str, str]],
    pool: str = DEFAULT_POOL,
    description: str = "",
    area: str | None = None,
    zone: str | None = None,
) -> GroupPlan:
    if not 1 <= len(facilitators) <= rules.FACILITATORS_MAX:
        raise invalid("facilitators", f"1 to {rules.FACILITATORS_MAX} facilitators")
    if not 1 <= len(participants) <= rules.PARTICIPANTS_MAX:
        raise invalid("participants", f"1 to {rules.PARTICIPANTS_MAX} participants")
    seen: set[str] = set()
    for position, account in enumerate(facilitators):
        clean_account(account, f"facilitators[{position}]")
        if account in seen:
            raise invalid("facilitators", f"{account} is listed twice")
        seen.add(account)
    for position, (account, paid_by) in enumerate(participants):
        clean_account(account, f"participants[{position}]")
        if account in seen:
            raise invalid("participants", f"{account} is listed twice (or also facilitates)")
        if paid_by not in rules.PAID_BY:
            raise invalid("participants", "paid_by must be self or pool")
        seen.add(account)
    if not POOL_RE.fullmatch(pool):
        raise RuleViolation(
            "invalid-pool", "pool must be a pool account id such as pool:community", field="pool"
        )
    return GroupPlan(
        id=group_id,
        title=clean_title(title),
        minutes=rules.check_agreed(minutes),
        facilitators=list(facilitators),
        participants=list(participants),
        pool=pool,
        description=clean_description(description),
        area=clean_area(area),
        zone=zone,
    )


async def get_group(conn: AsyncConnection, group_id: str) -> Group | None:
    row = (
        await conn.execute(select(group_exchanges).where(group_exchanges.c.id == group_id))
    ).one_or_none()
    if row is None:
        return None
    people = [
        GroupMember(r.account_id, r.role, r.paid_by, bool(r.present))
        for r in await conn.execute(
            select(group_members)
            .where(group_members.c.group_id == group_id)
            .order_by(group_members.c.position)
        )
    ]
    legs = [
        GroupTransfer(
            int(r.seq),
            rules.group_entry_id(group_id, int(r.seq)),
            r.payer,
            r.payee,
            int(r.minutes),
            r.participant,
            None if r.entry_index is None else int(r.entry_index),
        )
        for r in await conn.execute(
            select(group_transfers)
            .where(group_transfers.c.group_id == group_id)
            .order_by(group_transfers.c.seq)
        )
    ]
    return Group(
        id=row.id,
        state=row.state,
        version=int(row.version),
        title=row.title,
        description=row.description,
        area=row.area,
        zone=row.zone,
        minutes=int(row.minutes),
        pool_account=row.pool_account,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        settled_at=row.settled_at,
        settled_by=row.settled_by,
        last_error=row.last_error,
        members=people,
        transfers=legs,
    )


def sees_group(principal: Principal, group: Group) -> bool:
    if principal.is_staff:
        return True
    held = [a for a in (m.account for m in group.members) if principal.holds_account(a)]
    return bool(held)


async def require_group(conn: AsyncConnection, principal: Principal, group_id: str) -> Group:
    group = await get_group(conn, group_id)
    if group is None or not sees_group(principal, group):
        raise group_not_found(group_id)
    return group


def _group_differs(group: Group, plan: GroupPlan) -> str | None:
    pairs = (
        ("title", group.title, plan.title),
        ("minutes", group.minutes, plan.minutes),
        ("facilitators", group.facilitators, plan.facilitators),
        ("participants", [(m.account, m.paid_by) for m in group.participants], plan.participants),
        ("pool", group.pool_account, plan.pool),
        ("description", group.description, plan.description),
        ("area", group.area, plan.area),
        ("zone", group.zone, plan.zone),
    )
    return next((name for name, stored, asked in pairs if stored != asked), None)


async def create_group(tb: Timebank, principal: Principal, plan: GroupPlan) -> tuple[Group, bool]:
    """Plan a workshop or urban lab: who facilitates, who takes part, who pays for whom."""
    now = stamp(tb.clock)
    try:
        async with writing(tb.engine) as conn:
            existing = await get_group(conn, plan.id)
            if existing is not None:
                differs = _group_differs(existing, plan)
                if differs:
                    raise _idempotency(plan.id, differs)
                return existing, False
            named = {f"facilitators[{i}]": a for i, a in enumerate(plan.facilitators)}
            named |= {f"participants[{i}]": a for i, (a, _) in enumerate(plan.participants)}
            await _active_parties(conn, named)
            await conn.execute(
                insert(group_exchanges).values(
                    id=plan.id,
                    state="planned",
                    version=0,
                    title=plan.title,
                    description=plan.description,
                    area=plan.area,
                    zone=plan.zone,
                    minutes=plan.minutes,
                    pool_account=plan.pool,
                    created_by=_label(principal)[:300],
                    created_at=now,
                    updated_at=now,
                )
            )
            rows = [
                {"account_id": a, "role": "facilitator", "paid_by": None} for a in plan.facilitators
            ] + [
                {"account_id": a, "role": "participant", "paid_by": paid}
                for a, paid in plan.participants
            ]
            await conn.execute(
                insert(group_members),
                [
                    {"group_id": plan.id, "position": position, "present": True, **row}
                    for position, row in enumerate(rows)
                ],
            )
            await audit.record(
                conn,
                authz.actor(principal),
                GROUP_CREATED,
                "group-exchange",
                plan.id,
                at=now,
                details={
                    "minutes": plan.minutes,
                    "facilitators": len(plan.facilitators),
                    "participants": len(plan.participants),
                    "pool": plan.pool,
                },
            )
            group = await get_group(conn, plan.id)
    except IntegrityError:
        async with reading(tb.engine) as conn:
            existing = await get_group(conn, plan.id)
        if existing is None:  # pragma: no cover - the other insert committed
            raise
        differs = _group_differs(existing, plan)
        if differs:
            raise _idempotency(plan.id, differs) from None
        return existing, False
    assert group is not None
    return group, True


async def _ensure_pool(tb: Timebank, pool: str) -> None:
    """Open the community pool on first use (an empty pool pays nothing until funded)."""
    async with tb.ledger.read() as conn:
        try:
            view = await queries.account(conn, pool)
        except RuleViolation:
            view = None
    if view is None:
        outcome = await tb.ledger.open_account(pool, "pool")
        if isinstance(outcome, RuleViolation) and outcome.code != "idempotency-conflict":
            raise outcome
        return
    if view.kind != "pool":
        raise RuleViolation(
            "invalid-pool", f"account {pool!r} is a {view.kind} account, not a pool", field="pool"
        )


async def settle_group(
    tb: Timebank, principal: Principal, group_id: str, absent: list[str]
) -> Group:
    """Pay the facilitators, all together or not at all (one linked ledger call).

    Participants listed as `absent` pay nothing; the others' shares are paid by them or
    the pool, as the manager set. If one payer cannot pay (say, a participant over their
    limit), nothing moves and the error names them, so the manager can change who pays
    for them or mark them absent, and settle again.
    """
    async with reading(tb.engine) as conn:
        group = await require_group(conn, principal, group_id)
    if group.state == "settled":
        if sorted(absent) != sorted(m.account for m in group.participants if not m.present):
            raise RuleViolation(
                "invalid-transition",
                f"group exchange {group_id} is already settled, with other absences",
                group=group_id,
                current_state=group.state,
            )
        return group
    if group.state == "planned":
        group = await _start_settling(tb, principal, group, absent)
    if group.state == "settled":  # pragma: no cover - settled by a concurrent request
        return group
    legs = group.transfers
    async with tb.ledger.read() as conn:
        spends = await funding.spend_refs(
            conn, [leg.payer for leg in legs if funding.is_restricted(leg.payer)], tb.clock()
        )
    outcome = await tb.ledger.linked(
        [
            Transfer(
                leg.entry_id,
                leg.payer,
                leg.payee,
                leg.minutes,
                rules.group_memo(group.id),
                refs={
                    **rules.ledger_refs(group.id, group.area, group=True, zone=group.zone),
                    **spends.get(leg.payer, {}),
                },
            )
            for leg in legs
        ]
    )
    if outcome.ok:
        indexes = [item.index for item in outcome.items if isinstance(item, Appended)]
        return await _finish_settling(tb, principal, group, indexes)
    committed = await _committed(tb, [leg.entry_id for leg in legs])
    if committed is not None:
        # An earlier or concurrent settlement of this plan committed (perhaps in another
        # period, so that a sponsored leg's annotations now differ): it stands.
        return await _finish_settling(tb, principal, group, committed)
    await _abandon_settling(tb, group, outcome.items)
    position = next(
        i
        for i, item in enumerate(outcome.items)
        if isinstance(item, RuleViolation) and item.code != "linked-failed"
    )
    failure = outcome.items[position]
    assert isinstance(failure, RuleViolation)
    leg = legs[position]
    async with reading(tb.engine) as conn:
        named = await parties(conn, [leg.payer])
    payer = named.get(leg.payer)
    who = f"{payer.name} ({leg.payer})" if payer else f"the pool {leg.payer}"
    if funding.is_restricted(leg.payer):
        who = f"the sponsored credit {leg.payer} of {leg.participant}"
    extra = {k: v for k, v in failure.fields.items() if k in ("available", "shortfall")}
    raise RuleViolation(
        "group-settlement-failed",
        f"nothing was settled: {who} cannot pay {leg.minutes} minutes: {failure.detail}",
        group=group.id,
        participant=leg.participant if leg.participant is not None else leg.payer,
        member=payer.id if payer is not None and payer.kind == "member" else None,
        cause=failure.code,
        **extra,
    )


async def _start_settling(
    tb: Timebank, principal: Principal, group: Group, absent: list[str]
) -> Group:
    participants = {m.account for m in group.participants}
    for account in absent:
        if account not in participants:
            raise invalid("absent", f"{account!r} is not a participant of this group")
    present = [(m.account, m.paid_by or rules.SELF) for m in group.participants]
    present = [(a, paid) for a, paid in present if a not in set(absent)]
    if not present:
        raise RuleViolation("invalid-group", "nobody took part: nothing to settle")
    legs = await _fund_group(
        tb,
        rules.plan_group(group.minutes, group.facilitators, present, group.pool_account),
        group.area,
        group.zone,
    )
    async with reading(tb.engine) as conn:
        await authz.check_not_suspended(
            conn, sorted({a for leg in legs for a in (leg.payer, leg.payee)})
        )
    if any(leg.participant is None for leg in legs):
        await _ensure_pool(tb, group.pool_account)
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        result = await conn.execute(
            update(group_exchanges)
            .where(
                group_exchanges.c.id == group.id,
                group_exchanges.c.state == "planned",
                group_exchanges.c.version == group.version,
            )
            .values(state="settling", version=group.version + 1, updated_at=now, last_error=None)
        )
        if result.rowcount == 1:
            await conn.execute(
                update(group_members)
                .where(group_members.c.group_id == group.id)
                .values(present=True)
            )
            if absent:
                await conn.execute(
                    update(group_members)
                    .where(
                        group_members.c.group_id == group.id,
                        group_members.c.account_id.in_(absent),
                    )
                    .values(present=False)
                )
            await conn.execute(
                delete(group_transfers).where(group_transfers.c.group_id == group.id)
            )
            await conn.execute(
                insert(group_transfers),
                [
                    {
                        "group_id": group.id,
                        "seq": seq,
                        "payer": leg.payer,
                        "payee": leg.payee,
                        "minutes": leg.minutes,
                        "participant": leg.participant,
                    }
                    for seq, leg in enumerate(legs)
                ],
            )
        current = await get_group(conn, group.id)
    assert current is not None
    if current.state == "planned":  # pragma: no cover - changed between read and update
        raise RuleViolation(
            "invalid-transition", f"group exchange {group.id} changed meanwhile; try again"
        )
    return current


async def _fund_group(
    tb: Timebank, legs: list[rules.Leg], area: str | None, zone: str | None
) -> list[rules.Leg]:
    """Participants who pay for themselves pay with their eligible sponsored credit first
    (split into legs with the restricted account as payer, the participant unchanged)."""
    now = tb.clock()
    funded: list[rules.Leg] = []
    left: dict[str, int] = {}
    async with reading(tb.engine) as conn:
        for leg in legs:
            if leg.participant is None or leg.payer != leg.participant:
                funded.append(leg)
                continue
            available = [
                dataclasses.replace(credit, available=left.get(credit.account, credit.available))
                for credit in await funding.credits(conn, leg.payer, now)
            ]
            for part in funding.split(leg.minutes, leg.payer, available, area, zone):
                if part.sponsored:
                    had = next(c.available for c in available if c.account == part.payer)
                    left[part.payer] = had - part.minutes
                funded.append(rules.Leg(part.payer, leg.payee, part.minutes, leg.participant))
    return funded


async def _committed(tb: Timebank, entry_ids: list[str]) -> list[int] | None:
    """The indexes of these entries if every one is in the ledger, else None."""
    async with tb.ledger.read() as conn:
        rows = await conn.execute(
            select(entries.c.id, entries.c.idx).where(entries.c.id.in_(entry_ids))
        )
        found = {row.id: int(row.idx) for row in rows}
    if len(found) != len(set(entry_ids)):
        return None
    return [found[i] for i in entry_ids]


async def _finish_settling(
    tb: Timebank, principal: Principal, group: Group, indexes: list[int]
) -> Group:
    """The ledger committed: the group is settled, whatever its row says meanwhile."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        current = await get_group(conn, group.id)
        assert current is not None
        if current.state != "settled":
            await conn.execute(
                update(group_exchanges)
                .where(group_exchanges.c.id == group.id)
                .values(
                    state="settled",
                    version=current.version + 1,
                    updated_at=now,
                    settled_at=now,
                    settled_by=_label(principal)[:300],
                    last_error=None,
                )
            )
            for leg, index in zip(group.transfers, indexes, strict=True):
                await conn.execute(
                    update(group_transfers)
                    .where(group_transfers.c.group_id == group.id, group_transfers.c.seq == leg.seq)
                    .values(entry_index=index)
                )
            await audit.record(
                conn,
                authz.actor(principal),
                GROUP_SETTLED,
                "group-exchange",
                group.id,
                at=now,
                details={
                    "transfers": len(indexes),
                    "minutes": sum(leg.minutes for leg in group.transfers),
                    "absent": [m.account for m in group.participants if not m.present],
                },
            )
        settled = await get_group(conn, group.id)
    assert settled is not None
    return settled


async def _abandon_settling(tb: Timebank, group: Group, items: list[Outcome]) -> None:
    """Back to planned, with the error kept - unless the ledger shows that a concurrent
    settlement of the same plan committed (the batch is all-or-nothing, so its first
    transfer tells)."""
    failure = next(
        (i for i in items if isinstance(i, RuleViolation) and i.code != "linked-failed"), None
    )
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        first = rules.group_entry_id(group.id, 0)
        if (
            await conn.execute(select(entries.c.idx).where(entries.c.id == first))
        ).one_or_none() is not None:
            return
        await conn.execute(
            update(group_exchanges)
            .where(
                group_exchanges.c.id == group.id,
                group_exchanges.c.state == "settling",
                group_exchanges.c.version == group.version,
            )
            .values(
                state="planned",
                version=group.version + 1,
                updated_at=now,
                last_error=None if failure is None else f"{failure.code}: {failure.detail}",
            )
        )


def hold_expiry(ex: Exchange) -> str | None:
    """About when the exchange's hold lapses (for display): the ledger counts from the
    hold's own entry time, which is the acceptance give or take a batch."""
    if ex.accepted_at is None or ex.hold_index is None:
        return None
    return format_time(parse_time(ex.accepted_at) + timedelta(seconds=ex.hold_expires_in))
