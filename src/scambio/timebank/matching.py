"""Matching: the community manager's "meeting of demand and supply".

For a request, who could help? `rank` is a pure function: given what the request needs
and what is known about each candidate (their offers, profile, balance, activity), it
scores every candidate with integer weights and says why, reason by reason, so a manager
can trust (or overrule) the order. The same inputs always give the same list. `gather`
is the query layer that feeds it from the database; `queue` lists the requests nobody has
been introduced to yet and no live exchange serves, oldest first; `introduce` records that
a manager put a helper in touch with a request's owner, notifies both (in the app and by
email) and writes the audit log.

What counts, and why (weights in `Weights`):

- the area: an offer in the request's area counts most; a member who lists the area
  among their competences but has posted no offer counts too (many people who can help
  never post), and shared tags add a little;
- the place: the same zone for something done in person, or both sides able to work
  remotely;
- the time: a weekly slot that overlaps the request's (an hour or more counts more);
- recent activity: people active in the last weeks answer;
- reciprocity: the project prefers people who have received help and not yet given (it
  is how a timebank turns beneficiaries into contributors), and members whose balance
  says they can give: a negative balance wants earning back, while an account at its
  maximum cannot be paid for more help at all;
- a helper already introduced for this request drops down the list.

A candidate must be relevant by area or tags to be suggested at all: a neighbour who is
free on Tuesdays is not a match for childcare by that alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import and_, case, exists, false, func, insert, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scambio.ledger.entry import format_time, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.store.exchanges_tables import exchanges
from scambio.store.listings_tables import introductions, listings
from scambio.store.people_tables import members, organisations
from scambio.store.tables import accounts, api_tokens, entries, postings
from scambio.timebank import audit, notifications
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import writing
from scambio.timebank.listings import (
    AREA_NAMES,
    DAY_NAMES,
    MEMBER,
    OFFER,
    ORGANISATION,
    REQUEST,
    Listing,
    Owner,
    base_select,
    from_row,
    owner_active_clause,
    require,
)
from scambio.timebank.orgs import org_account_id
from scambio.timebank.people import Slot, member_account_id
from scambio.timebank.search import decode_cursor, encode_cursor, status_clause
from scambio.timebank.text import clean_text, invalid

NOTE_MAX: Final = 1000
#: Most offers and most profile-only members considered for one request.
POOL: Final = 300
QUEUE_ORDER: Final = "queue"
INTRODUCTIONS_ORDER: Final = "intro"
INTRODUCTION_CREATED: Final = "introduction.created"
#: Exchange states that leave a request unserved: it still waits in the manager's queue.
DEAD_EXCHANGE_STATES: Final = ("declined", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class Weights:
    """Points per reason. Integers, so that scores are exact and ties are broken by id."""

    same_area: int = 40
    profile_area: int = 20
    shared_tag: int = 5
    shared_tags_max: int = 15
    same_zone: int = 20
    remote_match: int = 20
    remote_possible: int = 10
    other_zone: int = -10
    in_person_only: int = -10
    slot_overlap: int = 15
    short_overlap: int = 10
    same_day: int = 5
    active_month: int = 10
    active_quarter: int = 5
    received_not_given: int = 15
    negative_balance: int = 10
    at_maximum: int = -30
    introduced: int = -20
    #: Minutes an account must still be able to receive not to count as at its maximum.
    headroom_min: int = 60


WEIGHTS: Final = Weights()


@dataclass(frozen=True, slots=True)
class Need:
    """What a request asks for."""

    listing_id: str
    owner: Owner
    area: str
    tags: frozenset[str]
    zone: str | None
    mode: str
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class Offer:
    listing_id: str
    title: str
    area: str
    tags: frozenset[str]
    zone: str | None
    mode: str
    slots: tuple[Slot, ...]
    created_at: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member or organisation who might help, with what is known about them."""

    owner: Owner
    name: str
    zone: str | None = None
    areas: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    slots: tuple[Slot, ...] = ()
    offers: tuple[Offer, ...] = ()
    #: Posted balance in minutes (None: no account yet).
    balance: int | None = None
    #: Minutes received in payment so far (help given) and paid (help received).
    earned: int = 0
    spent: int = 0
    #: Minutes the account may still receive before its maximum (None: no maximum).
    headroom: int | None = None
    last_active: str | None = None
    introduced: bool = False


@dataclass(frozen=True, slots=True)
class Reason:
    #: A stable slug: same-area, profile-area, shared-tags, same-zone, remote, other-zone,
    #: in-person-only, slot-overlap, same-day, recent-activity, received-not-given,
    #: negative-balance, at-maximum, already-introduced.
    code: str
    weight: int
    detail: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    owner: Owner
    name: str
    offer_id: str | None
    offer_title: str | None
    score: int
    reasons: tuple[Reason, ...]


# -- the pure ranking ------------------------------------------------------------------------


def minutes_text(minutes: int) -> str:
    """90 -> "1 h 30 min", -120 -> "-2 h"."""
    sign, value = ("-" if minutes < 0 else ""), abs(minutes)
    hours, rest = divmod(value, 60)
    if not hours:
        return f"{sign}{rest} min"
    return f"{sign}{hours} h" + (f" {rest} min" if rest else "")


def _clock(value: str) -> int:
    hours, _, minutes = value.partition(":")
    return int(hours) * 60 + int(minutes)


def _availability(need: Sequence[Slot], theirs: Sequence[Slot], weights: Weights) -> list[Reason]:
    best: tuple[int, Slot, int, int] | None = None
    same_day: str | None = None
    for mine in need:
        for slot in theirs:
            if mine.day != slot.day:
                continue
            same_day = same_day or mine.day
            start = max(_clock(mine.start), _clock(slot.start))
            end = min(_clock(mine.end), _clock(slot.end))
            if end > start and (best is None or end - start > best[0]):
                best = (end - start, mine, start, end)
    if best is not None:
        overlap, slot, start, end = best
        weight = weights.slot_overlap if overlap >= 60 else weights.short_overlap
        window = f"{start // 60:02}:{start % 60:02}-{end // 60:02}:{end % 60:02}"
        return [Reason("slot-overlap", weight, f"both available {DAY_NAMES[slot.day]}s {window}")]
    if same_day is not None:
        detail = f"both available on {DAY_NAMES[same_day]}s, at different times"
        return [Reason("same-day", weights.same_day, detail)]
    return []


def _place(
    need: Need,
    zone: str | None,
    mode: str | None,
    weights: Weights,
    zone_names: Mapping[str, str],
) -> list[Reason]:
    remote_ok = mode in ("remote", "either")
    if need.mode == "remote":
        if remote_ok:
            return [Reason("remote", weights.remote_match, "can help remotely, as requested")]
        if mode == "in_person":
            return [Reason("in-person-only", weights.in_person_only, "offers this in person only")]
        return []
    if zone is not None and zone == need.zone:
        return [Reason("same-zone", weights.same_zone, f"also in {zone_names.get(zone, zone)}")]
    if need.mode == "either" and remote_ok:
        return [Reason("remote", weights.remote_possible, "can help remotely")]
    if zone is not None and need.zone is not None and mode == "in_person":
        where = zone_names.get(zone, zone)
        return [Reason("other-zone", weights.other_zone, f"in another zone ({where})")]
    return []


def _tags(need: Need, tags: frozenset[str], weights: Weights) -> list[Reason]:
    shared = sorted(need.tags & tags)
    if not shared:
        return []
    weight = min(weights.shared_tag * len(shared), weights.shared_tags_max)
    return [Reason("shared-tags", weight, "shares tags: " + ", ".join(shared))]


def _area(area: str) -> str:
    return AREA_NAMES.get(area, area).lower()


def _options(
    need: Need, candidate: Candidate, weights: Weights, zone_names: Mapping[str, str]
) -> list[tuple[Offer | None, list[Reason]]]:
    """Each way the candidate could help (each offer; their profile), with its reasons.
    Only relevant ways (by area or tags) are returned."""
    options: list[tuple[Offer | None, list[Reason]]] = []
    for offer in candidate.offers:
        relevance = _tags(need, offer.tags, weights)
        if offer.area == need.area:
            relevance.insert(
                0, Reason("same-area", weights.same_area, f"offers help in {_area(offer.area)}")
            )
        if not relevance:
            continue
        slots = offer.slots or candidate.slots
        reasons = [
            *relevance,
            *_place(need, offer.zone, offer.mode, weights, zone_names),
            *_availability(need.slots, slots, weights),
        ]
        options.append((offer, reasons))
    relevance = _tags(need, candidate.tags, weights)
    if need.area in candidate.areas:
        detail = f"lists {_area(need.area)} among their competences"
        relevance.insert(0, Reason("profile-area", weights.profile_area, detail))
    if relevance:
        reasons = [
            *relevance,
            *_place(need, candidate.zone, None, weights, zone_names),
            *_availability(need.slots, candidate.slots, weights),
        ]
        options.append((None, reasons))
    return options


def _personal(candidate: Candidate, now: datetime, weights: Weights) -> list[Reason]:
    reasons: list[Reason] = []
    if candidate.last_active is not None:
        days = (now - parse_time(candidate.last_active)).days
        if days <= 30:
            reasons.append(
                Reason("recent-activity", weights.active_month, "active in the last 30 days")
            )
        elif days <= 90:
            reasons.append(
                Reason("recent-activity", weights.active_quarter, "active in the last 3 months")
            )
    if candidate.spent > 0 and candidate.earned == 0:
        detail = f"has received {minutes_text(candidate.spent)} of help and not yet given"
        reasons.append(Reason("received-not-given", weights.received_not_given, detail))
    elif candidate.balance is not None and candidate.balance < 0:
        detail = f"balance is {minutes_text(candidate.balance)}: giving brings it back up"
        reasons.append(Reason("negative-balance", weights.negative_balance, detail))
    if candidate.headroom is not None and candidate.headroom < weights.headroom_min:
        detail = "balance is at its maximum: cannot be paid for more help now"
        reasons.append(Reason("at-maximum", weights.at_maximum, detail))
    if candidate.introduced:
        detail = "already introduced for this request"
        reasons.append(Reason("already-introduced", weights.introduced, detail))
    return reasons


def rank(
    need: Need,
    candidates: Iterable[Candidate],
    *,
    now: datetime,
    weights: Weights = WEIGHTS,
    limit: int = 10,
    zone_names: Mapping[str, str] | None = None,
) -> list[Suggestion]:
    """The best `limit` candidates for `need`, best first, each with its reasons.

    Per candidate, the best of their ways to help counts (an offer beats their profile at
    equal points); then personal reasons (activity, reciprocity) are added once. Order:
    score, then an offer before a profile, then owner type and id, so it is total.
    """
    names = zone_names or {}
    scored: list[tuple[tuple[int, int, str, str], Suggestion]] = []
    for candidate in candidates:
        if candidate.owner == need.owner:
            continue
        options = _options(need, candidate, weights, names)
        if not options:
            continue

        def points(option: tuple[Offer | None, list[Reason]]) -> tuple[int, int, str, str]:
            offer, reasons = option
            return (
                sum(r.weight for r in reasons),
                offer is not None,
                offer.created_at if offer else "",
                offer.listing_id if offer else "",
            )

        offer, reasons = max(options, key=points)
        reasons = reasons + _personal(candidate, now, weights)
        score = sum(r.weight for r in reasons)
        suggestion = Suggestion(
            owner=candidate.owner,
            name=candidate.name,
            offer_id=offer.listing_id if offer else None,
            offer_title=offer.title if offer else None,
            score=score,
            reasons=tuple(reasons),
        )
        key = (-score, 0 if offer else 1, candidate.owner.type, candidate.owner.id)
        scored.append((key, suggestion))
    scored.sort(key=lambda item: item[0])
    return [suggestion for _key, suggestion in scored[:limit]]


# -- the query layer -------------------------------------------------------------------------


def need_of(request: Listing) -> Need:
    return Need(
        listing_id=request.id,
        owner=request.owner,
        area=request.area,
        tags=frozenset(request.tags),
        zone=request.zone,
        mode=request.mode,
        slots=tuple(request.availability_slots),
    )


def _not_owned_by(owner: Owner) -> ColumnElement[bool]:
    column = listings.c.owner_member_id if owner.is_member else listings.c.owner_org_id
    return or_(column.is_(None), column != owner.id)


def _account(owner: Owner) -> str:
    return member_account_id(owner.id) if owner.is_member else org_account_id(owner.id)


async def _offers(conn: AsyncConnection, need: Need, at: str) -> list[Listing]:
    relevant: list[ColumnElement[bool]] = [listings.c.area == need.area]
    relevant += [
        listings.c.tags.contains(msgspec.json.encode(tag).decode(), autoescape=True)
        for tag in sorted(need.tags)
    ]
    rows = await conn.execute(
        base_select()
        .where(
            listings.c.kind == OFFER,
            status_clause(("active",), at),
            owner_active_clause(),
            _not_owned_by(need.owner),
            or_(*relevant),
        )
        .order_by(listings.c.seq.desc())
        .limit(POOL)
    )
    return [from_row(row) for row in rows]


async def _profiles(conn: AsyncConnection, need: Need, extra: set[str]) -> dict[str, Any]:
    """Active members competent in the area (up to POOL), plus the members in `extra`."""
    query = select(members).where(
        members.c.status == "active", members.c.areas.contains(f'"{need.area}"')
    )
    if need.owner.is_member:
        query = query.where(members.c.id != need.owner.id)
    found = {
        row.id: row
        for row in await conn.execute(
            query.order_by(members.c.updated_at.desc(), members.c.id).limit(POOL)
        )
    }
    missing = sorted(extra - set(found))
    if missing:
        for row in await conn.execute(select(members).where(members.c.id.in_(missing))):
            found[row.id] = row
    return found


async def _ledger_facts(
    conn: AsyncConnection, account_ids: list[str]
) -> tuple[dict[str, Any], dict[str, tuple[int, int]], dict[str, str]]:
    """Balances and limits, minutes earned and spent, and the last entry's time."""
    if not account_ids:
        return {}, {}, {}
    balances = {
        row.id: row
        for row in await conn.execute(select(accounts).where(accounts.c.id.in_(account_ids)))
    }
    credit = func.sum(case((postings.c.minutes > 0, postings.c.minutes), else_=0))
    debit = func.sum(case((postings.c.minutes < 0, -postings.c.minutes), else_=0))
    totals = {
        row.account_id: (int(row.earned), int(row.spent))
        for row in await conn.execute(
            select(postings.c.account_id, credit.label("earned"), debit.label("spent"))
            .where(postings.c.account_id.in_(account_ids), postings.c.pending == false())
            .group_by(postings.c.account_id)
        )
    }
    last_idx = {
        row.account_id: int(row.idx)
        for row in await conn.execute(
            select(postings.c.account_id, func.max(postings.c.entry_idx).label("idx"))
            .where(postings.c.account_id.in_(account_ids))
            .group_by(postings.c.account_id)
        )
    }
    times: dict[int, str] = {}
    if last_idx:
        times = {
            int(row.idx): row.time
            for row in await conn.execute(
                select(entries.c.idx, entries.c.time).where(
                    entries.c.idx.in_(sorted(set(last_idx.values())))
                )
            )
        }
    last = {account: times[idx] for account, idx in last_idx.items() if idx in times}
    return balances, totals, last


async def _last_touch(
    conn: AsyncConnection, member_ids: list[str], org_ids: list[str]
) -> dict[Owner, str]:
    """The latest listing change and (for members) login, per owner."""
    latest: dict[Owner, str] = {}

    def note(owner: Owner, at: str | None) -> None:
        if at is not None and at > latest.get(owner, ""):
            latest[owner] = at

    if member_ids:
        for row in await conn.execute(
            select(listings.c.owner_member_id, func.max(listings.c.updated_at).label("at"))
            .where(listings.c.owner_member_id.in_(member_ids))
            .group_by(listings.c.owner_member_id)
        ):
            note(Owner(MEMBER, row.owner_member_id), row.at)
        for row in await conn.execute(
            select(api_tokens.c.member_id, func.max(api_tokens.c.created_at).label("at"))
            .where(api_tokens.c.member_id.in_(member_ids))
            .group_by(api_tokens.c.member_id)
        ):
            note(Owner(MEMBER, row.member_id), row.at)
    if org_ids:
        for row in await conn.execute(
            select(listings.c.owner_org_id, func.max(listings.c.updated_at).label("at"))
            .where(listings.c.owner_org_id.in_(org_ids))
            .group_by(listings.c.owner_org_id)
        ):
            note(Owner(ORGANISATION, row.owner_org_id), row.at)
    return latest


def _offer(listing: Listing) -> Offer:
    return Offer(
        listing_id=listing.id,
        title=listing.title,
        area=listing.area,
        tags=frozenset(listing.tags),
        zone=listing.zone,
        mode=listing.mode,
        slots=tuple(listing.availability_slots),
        created_at=listing.created_at,
    )


async def gather(conn: AsyncConnection, request: Listing, now: datetime) -> list[Candidate]:
    """Everyone who might help with `request`: owners of relevant active offers and
    active members competent in its area, with their ledger facts and activity."""
    need = need_of(request)
    at = format_time(now)
    offers: dict[Owner, list[Offer]] = {}
    for listing in await _offers(conn, need, at):
        offers.setdefault(listing.owner, []).append(_offer(listing))
    offer_members = {owner.id for owner in offers if owner.is_member}
    profiles = await _profiles(conn, need, offer_members)
    org_ids = sorted(owner.id for owner in offers if not owner.is_member)
    orgs = {
        row.id: row
        for row in (
            await conn.execute(select(organisations).where(organisations.c.id.in_(org_ids)))
            if org_ids
            else []
        )
    }
    owners = [Owner(MEMBER, member_id) for member_id in sorted(profiles)]
    owners += [Owner(ORGANISATION, org_id) for org_id in org_ids]
    balances, totals, last_entry = await _ledger_facts(conn, [_account(o) for o in owners])
    touched = await _last_touch(conn, sorted(profiles), org_ids)
    introduced = {
        Owner(row.helper_type, row.helper_id)
        for row in await conn.execute(
            select(introductions.c.helper_type, introductions.c.helper_id).where(
                introductions.c.request_id == request.id
            )
        )
    }
    candidates: list[Candidate] = []
    for owner in owners:
        account = _account(owner)
        balance_row = balances.get(account)
        headroom = None
        if balance_row is not None and balance_row.max_balance is not None:
            headroom = int(balance_row.max_balance) - int(
                balance_row.posted + balance_row.credits_pending
            )
        activity = max(
            (t for t in (last_entry.get(account), touched.get(owner)) if t is not None),
            default=None,
        )
        earned, spent = totals.get(account, (0, 0))
        common: dict[str, Any] = {
            "owner": owner,
            "offers": tuple(offers.get(owner, ())),
            "balance": None if balance_row is None else int(balance_row.posted),
            "earned": earned,
            "spent": spent,
            "headroom": headroom,
            "last_active": activity,
            "introduced": owner in introduced,
        }
        if owner.is_member:
            row = profiles[owner.id]
            candidates.append(
                Candidate(
                    name=row.name,
                    zone=row.zone,
                    areas=frozenset(msgspec.json.decode(row.areas, type=list[str])),
                    tags=frozenset(msgspec.json.decode(row.tags, type=list[str])),
                    slots=tuple(msgspec.json.decode(row.availability_slots, type=list[Slot])),
                    **common,
                )
            )
        else:
            row = orgs[owner.id]
            candidates.append(Candidate(name=row.name, zone=row.zone, **common))
    return candidates


async def suggestions(
    conn: AsyncConnection,
    request: Listing,
    now: datetime,
    *,
    limit: int = 10,
    zone_names: Mapping[str, str] | None = None,
) -> list[Suggestion]:
    """Ranked helpers for a request (gather, then rank)."""
    candidates = await gather(conn, request, now)
    return rank(need_of(request), candidates, now=now, limit=limit, zone_names=zone_names)


# -- the manager's queue ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuePage:
    requests: list[Listing]
    next_cursor: str | None


async def queue(
    conn: AsyncConnection,
    now: datetime,
    *,
    zone: str | None = None,
    area: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> QueuePage:
    """Active requests nobody has been introduced to yet and that no live exchange serves
    (one made from the request that was not declined, cancelled or left to lapse), oldest
    first."""
    at = format_time(now)
    introduced = exists().where(introductions.c.request_id == listings.c.id)
    served = exists().where(
        exchanges.c.listing_id == listings.c.id, exchanges.c.state.not_in(DEAD_EXCHANGE_STATES)
    )
    query = base_select().where(
        listings.c.kind == REQUEST,
        status_clause(("active",), at),
        owner_active_clause(),
        not_(introduced),
        not_(served),
    )
    if zone is not None:
        query = query.where(listings.c.zone == zone)
    if area is not None:
        query = query.where(listings.c.area == area)
    if cursor:
        (after,) = decode_cursor(cursor, QUEUE_ORDER, integers=1)
        query = query.where(listings.c.seq > after)
    rows = list(await conn.execute(query.order_by(listings.c.seq).limit(limit + 1)))
    found = [from_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(QUEUE_ORDER, [int(rows[limit - 1].seq)])
    return QueuePage(found, next_cursor)


# -- introductions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Introduction:
    id: str
    request_id: str
    helper: Owner
    offer_id: str | None
    note: str
    created_at: str
    created_by: str
    created_by_member_id: str | None = None


def _introduction(row: Any) -> Introduction:
    return Introduction(
        id=row.id,
        request_id=row.request_id,
        helper=Owner(row.helper_type, row.helper_id),
        offer_id=row.offer_id,
        note=row.note,
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_member_id=row.created_by_member_id,
    )


def clean_note(note: str) -> str:
    return clean_text(note, "note", NOTE_MAX, multiline=True)


async def _helper_name(conn: AsyncConnection, helper: Owner) -> str:
    table = members if helper.is_member else organisations
    row = (
        await conn.execute(select(table.c.name, table.c.status).where(table.c.id == helper.id))
    ).one_or_none()
    if row is None:
        if helper.is_member:
            raise RuleViolation(
                "member-not-found", f"member {helper.id!r} does not exist", member=helper.id
            )
        raise RuleViolation(
            "organisation-not-found",
            f"organisation {helper.id!r} does not exist",
            organisation=helper.id,
        )
    if row.status != "active":
        raise RuleViolation(
            "invalid-status",
            f"{helper.type} {helper.id} is {row.status}: only active members and "
            "organisations can be introduced",
            current_status=row.status,
        )
    return str(row.name)


def _already(request_id: str, helper: Owner) -> RuleViolation:
    return RuleViolation(
        "already-introduced",
        f"{helper.type} {helper.id} was already introduced for request {request_id}",
        request=request_id,
    )


async def introduce(
    tb: Timebank,
    actor: Actor,
    *,
    request_id: str,
    helper: Owner,
    offer_id: str | None,
    note: str,
) -> Introduction:
    """Record that `actor` (a manager) put `helper` in touch with the request's owner, and
    email both sides (names and listings only: contact details stay private until they
    choose to share them). Once per request and helper."""
    now = tb.clock()
    at = format_time(now)
    intro_id = secrets.token_hex(8)
    async with writing(tb.engine) as conn:
        request = await require(conn, request_id)
        if request.kind != REQUEST:
            raise RuleViolation(
                "not-a-request",
                f"listing {request_id} is an offer; introductions are made for requests",
                field="request_id",
            )
        status = request.status_at(at)
        if status not in ("active", "paused") or not request.owner_active:
            raise RuleViolation(
                "invalid-status",
                f"request {request_id} is {status if request.owner_active else 'hidden'}",
                listing=request_id,
                current_status=status,
            )
        if helper == request.owner:
            raise invalid("member_id", "the helper must not be the request's owner")
        helper_name = await _helper_name(conn, helper)
        offer: Listing | None = None
        if offer_id is not None:
            offer = await require(conn, offer_id)
            if offer.kind != OFFER or offer.owner != helper:
                raise invalid("offer_id", "offer_id must be one of the helper's offers")
        taken = await conn.execute(
            select(introductions.c.id).where(
                introductions.c.request_id == request_id,
                introductions.c.helper_type == helper.type,
                introductions.c.helper_id == helper.id,
            )
        )
        if taken.first() is not None:
            raise _already(request_id, helper)
        try:
            await conn.execute(
                insert(introductions).values(
                    id=intro_id,
                    request_id=request_id,
                    helper_type=helper.type,
                    helper_id=helper.id,
                    offer_id=offer_id,
                    note=note,
                    created_at=at,
                    created_by=actor.label[:300],
                    created_by_member_id=actor.member_id,
                )
            )
        except IntegrityError:
            raise _already(request_id, helper) from None
        await audit.record(
            conn,
            actor,
            INTRODUCTION_CREATED,
            "introduction",
            intro_id,
            at=at,
            details={
                "request": request_id,
                "requester": f"{request.owner.type}:{request.owner.id}",
                "helper": f"{helper.type}:{helper.id}",
                "offer": offer_id,
            },
        )
        await _notify(
            conn,
            tb,
            intro_id=intro_id,
            request=request,
            helper=helper,
            helper_name=helper_name,
            offer=offer,
            note=note,
        )
    tb.mailer.kick()
    return Introduction(
        id=intro_id,
        request_id=request_id,
        helper=helper,
        offer_id=offer_id,
        note=note,
        created_at=at,
        created_by=actor.label[:300],
        created_by_member_id=actor.member_id,
    )


async def _notify(
    conn: AsyncConnection,
    tb: Timebank,
    *,
    intro_id: str,
    request: Listing,
    helper: Owner,
    helper_name: str,
    offer: Listing | None,
    note: str,
) -> None:
    """Tell both sides, in the app and (as their settings say) by email: names and
    listings only, no contact details."""
    said = f"\n\nThe community manager adds:\n{note}" if note else ""
    offered = f" (their offer \u201c{offer.title}\u201d)" if offer else ""
    title = notifications.short(request.title)

    def to_owner(r: notifications.Recipient) -> tuple[str, str]:
        return (
            f"Scambio: meet {helper_name[:80]}, who could help you",
            f"Hello {r.name},\n\na community manager has introduced you to {helper_name}"
            f"{offered}, who could help with your request \u201c{request.title}\u201d."
            f"{said}\n\nYou can propose an exchange to {helper_name} in Scambio.",
        )

    def to_helper(r: notifications.Recipient) -> tuple[str, str]:
        return (
            f"Scambio: {request.owner_name[:80]} could use your help",
            f"Hello {r.name},\n\na community manager has introduced you to "
            f"{request.owner_name}, who asked for help: \u201c{request.title}\u201d."
            f"{said}\n\nIf you can help, propose an exchange from the request in Scambio.",
        )

    await notifications.notify(
        conn,
        tb.clock,
        await notifications.owner(conn, request.owner.type, request.owner.id),
        kind="introduction",
        text=(
            f"A community manager introduced you to {notifications.short(helper_name, 60)}, "
            f"who could help with your request \u201c{title}\u201d."
        ),
        refs=notifications.Refs(
            listing=request.id,
            introduction=intro_id,
            organisation=None if request.owner.is_member else request.owner.id,
        ),
        mail=notifications.Mail("introduction", to_owner),
    )
    await notifications.notify(
        conn,
        tb.clock,
        await notifications.owner(conn, helper.type, helper.id),
        kind="introduction",
        text=(
            f"A community manager introduced you to "
            f"{notifications.short(request.owner_name, 60)}, who asked for help: "
            f"\u201c{title}\u201d."
        ),
        refs=notifications.Refs(
            listing=request.id,
            introduction=intro_id,
            organisation=None if helper.is_member else helper.id,
        ),
        mail=notifications.Mail("introduction", to_helper),
    )


async def list_introductions(
    conn: AsyncConnection,
    *,
    request_id: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Introduction], str | None]:
    """Introductions, newest first."""
    query = select(introductions)
    if request_id is not None:
        query = query.where(introductions.c.request_id == request_id)
    if cursor:
        created, last_id = decode_cursor(cursor, INTRODUCTIONS_ORDER)
        query = query.where(
            or_(
                introductions.c.created_at < created,
                and_(introductions.c.created_at == created, introductions.c.id < last_id),
            )
        )
    rows = list(
        await conn.execute(
            query.order_by(introductions.c.created_at.desc(), introductions.c.id.desc()).limit(
                limit + 1
            )
        )
    )
    found = [_introduction(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(INTRODUCTIONS_ORDER, [found[-1].created_at, found[-1].id])
    return found, next_cursor
