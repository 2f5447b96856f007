"""Offers and requests: what members and organisations put on the community's board.

A listing is an offer ("I can help with homework") or a request ("I need help with
homework"), in one of the six areas, with free tags, a zone, in person or remote, and
when its owner is usually available. Organisations post listings too: a meeting room in
the evening (`resource` space), a projector (equipment), a digital-skills session by
staff (skill); they are booked through the same exchange flow as members' services.

Listings lapse, so the board shows what is still wanted: each expires after the
community's listing lifetime (60 days unless configured) and its owner is reminded a week
before, once per period; renewing is one call that extends from now. Statuses:

    active <-> paused          (the owner hides it for a while; PATCH status)
    active | paused -> expired (the lifetime passed; `expire_listings`, a scheduled job)
    active | paused | expired -> active (renew; a paused listing stays paused)
    anything but closed -> closed (final)

A listing whose expiry has passed reads as expired even before the job has run, so
search never shows a lapsed listing. Changes by someone other than the owner's side (a
manager editing a member's listing) are written to the audit log with the change.

Who may act is decided here too (`owner_side`, `may_change`, `visible_to`), because it
depends on the listing's owner: the member, their organisation's admins, or staff.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec
from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scambio.ledger.entry import format_time, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.settings import Settings
from scambio.store.listings_tables import (
    LISTING_KINDS,
    LISTING_MODES,
    LISTING_RESOURCES,
    listings,
)
from scambio.store.people_tables import members, organisations
from scambio.store.tokens import SCOPE_MANAGE, SCOPE_WRITE, Principal
from scambio.timebank import audit, notifications
from scambio.timebank.areas import AREA_IDS, AREAS
from scambio.timebank.audit import Actor
from scambio.timebank.authz import forbidden, require_scope
from scambio.timebank.context import Timebank
from scambio.timebank.db import writing
from scambio.timebank.people import AVAILABILITY_MAX, Slot, clean_slots, clean_zone
from scambio.timebank.text import TAG_MAX, clean_name, clean_tags, clean_text, invalid
from scambio.timebank.zones import Zones

TITLE_MAX: Final = 120
DESCRIPTION_MAX: Final = 4000
TAGS_MAX: Final = 10
REASON_MAX: Final = 1000
#: Defaults for the settings `listing_ttl_days` and `listing_reminder_days` (see
#: `ttl_days`): a listing lives 60 days and its owner is reminded 7 days before.
DEFAULT_TTL_DAYS: Final = 60
DEFAULT_REMINDER_DAYS: Final = 7
#: The longest lifetime a community may configure, and a listing may ask for.
TTL_DAYS_MAX: Final = 365

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES: Final = dict(
    zip(
        DAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
AREA_NAMES: Final = {area.id: area.name for area in AREAS}

OFFER: Final = "offer"
REQUEST: Final = "request"
MEMBER: Final = "member"
ORGANISATION: Final = "organisation"

#: Audit actions (stable strings clients may filter on).
LISTING_CREATED: Final = "listing.created"
LISTING_CHANGED: Final = "listing.changed"
LISTING_RENEWED: Final = "listing.renewed"
LISTING_CLOSED: Final = "listing.closed"

_encoder: Final = msgspec.json.Encoder(order="sorted")


def ttl_days(settings: Settings) -> int:
    """The community's listing lifetime in days.

    Read with a default so that this works before `Settings` gains the field
    (`SCAMBIO_LISTING_TTL_DAYS`); any value outside 1..365 falls back to the default.
    """
    value = getattr(settings, "listing_ttl_days", DEFAULT_TTL_DAYS)
    return value if isinstance(value, int) and 1 <= value <= TTL_DAYS_MAX else DEFAULT_TTL_DAYS


def reminder_days(settings: Settings) -> int:
    """Days before expiry that the owner is reminded (`SCAMBIO_LISTING_REMINDER_DAYS`)."""
    value = getattr(settings, "listing_reminder_days", DEFAULT_REMINDER_DAYS)
    return value if isinstance(value, int) and 0 <= value <= TTL_DAYS_MAX else DEFAULT_REMINDER_DAYS


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose listing it is: a member or an organisation."""

    type: str
    id: str

    @property
    def is_member(self) -> bool:
        return self.type == MEMBER


@dataclass(frozen=True, slots=True)
class Listing:
    id: str
    kind: str
    resource: str
    owner: Owner
    owner_name: str
    #: The owner is active (a suspended member's or organisation's listings are hidden).
    owner_active: bool
    posted_by: str | None
    title: str
    description: str
    area: str
    tags: list[str]
    zone: str | None
    mode: str
    availability: str
    availability_slots: list[Slot]
    #: As stored; see `status_at` for what it means now.
    status: str
    created_at: str
    updated_at: str
    expires_at: str
    renewed_at: str | None
    closed_at: str | None

    def status_at(self, now: str) -> str:
        """The status as people should see it: a lapsed listing is expired already."""
        if self.status in ("active", "paused") and self.expires_at <= now:
            return "expired"
        return self.status


# -- cleaning --------------------------------------------------------------------------------


def slot_mask(slots: list[Slot]) -> int:
    """The weekdays of `slots` as a bit mask, bit 0 = Monday."""
    mask = 0
    for slot in slots:
        mask |= 1 << DAYS.index(slot.day)
    return mask


def clean_area(area: str) -> str:
    if area not in AREA_IDS:
        raise RuleViolation(
            "unknown-area",
            f"area {area!r} is not one of {', '.join(sorted(AREA_IDS))}",
            field="area",
        )
    return area


def _choice(value: str, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise invalid(field, f"{field} must be one of {', '.join(allowed)}")
    return value


def clean_fields(zones: Zones, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate the listing fields present in `raw`; return them as columns.

    Lists are stored as canonical JSON text (one encoder), with `slot_days` derived from
    the slots. HTML is not an error: text is stored as typed and returned inside JSON.
    """
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "kind":
            values[name] = _choice(value, name, LISTING_KINDS)
        elif name == "resource":
            values[name] = _choice(value, name, LISTING_RESOURCES)
        elif name == "mode":
            values[name] = _choice(value, name, LISTING_MODES)
        elif name == "title":
            values[name] = clean_name(value, "title", TITLE_MAX)
        elif name == "description":
            values[name] = clean_text(value, "description", DESCRIPTION_MAX, multiline=True)
        elif name == "area":
            values[name] = clean_area(value)
        elif name == "tags":
            tags = clean_tags(value)
            if len(tags) > TAGS_MAX:
                raise invalid("tags", f"at most {TAGS_MAX} tags of at most {TAG_MAX} characters")
            values[name] = _encoder.encode(tags).decode()
        elif name == "zone":
            values[name] = clean_zone(zones, value)
        elif name == "availability":
            values[name] = clean_text(value, "availability", AVAILABILITY_MAX, multiline=True)
        elif name == "availability_slots":
            slots = clean_slots(value)
            values[name] = _encoder.encode(slots).decode()
            values["slot_days"] = slot_mask(slots)
        else:
            raise invalid(name, f"{name} is not a listing field")
    return values


def _check_place(mode: str, zone: str | None) -> None:
    if mode != "remote" and zone is None:
        raise invalid("zone", "a listing that can happen in person needs a zone")


def clean_reason(reason: str | None) -> str | None:
    return clean_text(reason or "", "reason", REASON_MAX, multiline=True) or None


# -- authorisation ---------------------------------------------------------------------------


def owner_side(principal: Principal, owner: Owner) -> bool:
    """The owner member, or an admin of the owner organisation."""
    if owner.is_member:
        return principal.member_id == owner.id
    return principal.admins(owner.id)


def may_change(principal: Principal, owner: Owner) -> None:
    """Create, edit, renew or close: the owner's side (scope write), or a manager or admin
    for anyone (scope manage). Auditors never reach here: the guard refuses their writes."""
    if owner_side(principal, owner):
        require_scope(principal, SCOPE_WRITE)
        return
    if not principal.can_write:
        if owner.is_member:
            raise forbidden("only the member, or a community manager, may change their listings")
        raise forbidden(
            "only this organisation's admins, or a community manager, may change its listings"
        )
    require_scope(principal, SCOPE_MANAGE)


def visible_to(principal: Principal, listing: Listing) -> bool:
    """Any listing by its id, except a suspended owner's: those only to staff and the
    owner's side (who could not log in anyway, while suspended)."""
    return listing.owner_active or principal.is_staff or owner_side(principal, listing.owner)


# -- reads -----------------------------------------------------------------------------------

_owner_member = members.alias("owner_member")
_owner_org = organisations.alias("owner_org")


def owner_active_clause() -> ColumnElement[bool]:
    return or_(_owner_member.c.status == "active", _owner_org.c.status == "active")


def base_select() -> Select[Any]:
    """Listings with their owner's name and status (the joins search and reads share)."""
    return select(
        listings,
        _owner_member.c.name.label("owner_member_name"),
        _owner_member.c.status.label("owner_member_status"),
        _owner_org.c.name.label("owner_org_name"),
        _owner_org.c.status.label("owner_org_status"),
    ).select_from(
        listings.outerjoin(
            _owner_member, _owner_member.c.id == listings.c.owner_member_id
        ).outerjoin(_owner_org, _owner_org.c.id == listings.c.owner_org_id)
    )


def from_row(row: Any) -> Listing:
    if row.owner_member_id is not None:
        owner = Owner(MEMBER, row.owner_member_id)
        name, status = row.owner_member_name, row.owner_member_status
    else:
        owner = Owner(ORGANISATION, row.owner_org_id)
        name, status = row.owner_org_name, row.owner_org_status
    return Listing(
        id=row.id,
        kind=row.kind,
        resource=row.resource,
        owner=owner,
        owner_name=name or "",
        owner_active=status == "active",
        posted_by=row.posted_by,
        title=row.title,
        description=row.description,
        area=row.area,
        tags=msgspec.json.decode(row.tags, type=list[str]),
        zone=row.zone,
        mode=row.mode,
        availability=row.availability,
        availability_slots=msgspec.json.decode(row.availability_slots, type=list[Slot]),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        renewed_at=row.renewed_at,
        closed_at=row.closed_at,
    )


def not_found(listing_id: str) -> RuleViolation:
    return RuleViolation(
        "listing-not-found", f"listing {listing_id!r} does not exist", listing=listing_id
    )


async def get(conn: AsyncConnection, listing_id: str) -> Listing | None:
    row = (await conn.execute(base_select().where(listings.c.id == listing_id))).one_or_none()
    return None if row is None else from_row(row)


async def require(conn: AsyncConnection, listing_id: str) -> Listing:
    listing = await get(conn, listing_id)
    if listing is None:
        raise not_found(listing_id)
    return listing


async def _owner_facts(conn: AsyncConnection, owner: Owner) -> tuple[str, str | None]:
    """The owner's status and zone; a RuleViolation if there is no such owner."""
    table = members if owner.is_member else organisations
    row = (
        await conn.execute(select(table.c.status, table.c.zone).where(table.c.id == owner.id))
    ).one_or_none()
    if row is None:
        if owner.is_member:
            raise RuleViolation(
                "member-not-found", f"member {owner.id!r} does not exist", member=owner.id
            )
        raise RuleViolation(
            "organisation-not-found",
            f"organisation {owner.id!r} does not exist",
            organisation=owner.id,
        )
    return row.status, row.zone


# -- writes ----------------------------------------------------------------------------------


def _new_id() -> str:
    return secrets.token_hex(8)


def _fields_of(values: dict[str, Any]) -> list[str]:
    return sorted(name for name in values if name != "slot_days")


async def create(
    tb: Timebank,
    actor: Actor,
    *,
    owner: Owner,
    values: dict[str, Any],
    expires_in_days: int | None = None,
    audited: bool = False,
) -> Listing:
    """Post a listing for `owner` (active). `values` come from `clean_fields` and hold at
    least kind, title and area; the zone defaults to the owner's. `audited` when the
    poster is not on the owner's side (a manager posting for an offline member)."""
    ttl = ttl_days(tb.settings)
    if expires_in_days is not None and not 1 <= expires_in_days <= ttl:
        raise invalid("expires_in_days", f"expires_in_days must be 1 to {ttl}")
    now = tb.clock()
    at = format_time(now)
    listing_id = _new_id()
    async with writing(tb.engine) as conn:
        status, owner_zone = await _owner_facts(conn, owner)
        if status != "active":
            raise RuleViolation(
                "invalid-status",
                f"{owner.type} {owner.id} is {status}: only active owners may post listings",
                current_status=status,
            )
        row = {"resource": "service", "mode": "in_person", **values}
        if "zone" not in row:
            row["zone"] = owner_zone
        _check_place(row["mode"], row["zone"])
        await conn.execute(
            insert(listings).values(
                id=listing_id,
                owner_member_id=owner.id if owner.is_member else None,
                owner_org_id=None if owner.is_member else owner.id,
                posted_by=actor.member_id,
                status="active",
                created_at=at,
                updated_at=at,
                expires_at=format_time(now + timedelta(days=expires_in_days or ttl)),
                **row,
            )
        )
        if audited:
            await audit.record(
                conn,
                actor,
                LISTING_CREATED,
                "listing",
                listing_id,
                at=at,
                details={"owner": f"{owner.type}:{owner.id}", "kind": row["kind"]},
            )
        return await require(conn, listing_id)


async def _conditional(conn: AsyncConnection, listing: Listing, values: dict[str, Any]) -> None:
    """Update if nobody changed the status meanwhile; otherwise tell the caller what did."""
    result = await conn.execute(
        update(listings)
        .where(listings.c.id == listing.id, listings.c.status == listing.status)
        .values(values)
    )
    if result.rowcount != 1:
        current = await require(conn, listing.id)
        raise _wrong_status(current, current.status)


def _wrong_status(listing: Listing, status: str, hint: str = "") -> RuleViolation:
    return RuleViolation(
        "invalid-status",
        f"listing {listing.id} is {status}{hint}",
        listing=listing.id,
        current_status=status,
    )


async def change(
    tb: Timebank, actor: Actor, listing_id: str, values: dict[str, Any], *, audited: bool
) -> Listing:
    """Edit fields, and pause or resume (`status` paused/active). A closed listing cannot
    change; an expired one can be edited but only `renew` makes it active again."""
    at = format_time(tb.clock())
    async with writing(tb.engine) as conn:
        listing = await require(conn, listing_id)
        status = listing.status_at(at)
        if status == "closed":
            raise _wrong_status(listing, status, ": a closed listing cannot change")
        wanted = values.get("status")
        if wanted is not None:
            if status == "expired":
                raise _wrong_status(listing, status, ": renew it to make it visible again")
            if wanted not in ("active", "paused"):
                raise invalid("status", "status may be set to active or paused")
        if not values:
            return listing
        _check_place(values.get("mode", listing.mode), values.get("zone", listing.zone))
        await _conditional(conn, listing, {**values, "updated_at": at})
        if audited:
            await audit.record(
                conn,
                actor,
                LISTING_CHANGED,
                "listing",
                listing_id,
                at=at,
                details={"fields": _fields_of(values)},
            )
        return await require(conn, listing_id)


async def renew(tb: Timebank, actor: Actor, listing_id: str, *, audited: bool) -> Listing:
    """Extend the listing's life to a full period from now; an expired one is active again,
    a paused one stays paused. Renewing twice just extends from the later moment."""
    now = tb.clock()
    at = format_time(now)
    expires = format_time(now + timedelta(days=ttl_days(tb.settings)))
    async with writing(tb.engine) as conn:
        listing = await require(conn, listing_id)
        if listing.status == "closed":
            raise _wrong_status(listing, "closed", ": a closed listing cannot be renewed")
        status = "active" if listing.status == "expired" else listing.status
        await _conditional(
            conn,
            listing,
            {"status": status, "expires_at": expires, "renewed_at": at, "updated_at": at},
        )
        if audited:
            await audit.record(
                conn,
                actor,
                LISTING_RENEWED,
                "listing",
                listing_id,
                at=at,
                details={"expires_at": expires},
            )
        return await require(conn, listing_id)


async def close(
    tb: Timebank, actor: Actor, listing_id: str, *, reason: str | None, audited: bool
) -> Listing:
    """Close for good (found help, no longer offered). A second close is a 409."""
    at = format_time(tb.clock())
    async with writing(tb.engine) as conn:
        listing = await require(conn, listing_id)
        if listing.status == "closed":
            raise _wrong_status(listing, "closed", " already")
        await _conditional(conn, listing, {"status": "closed", "closed_at": at, "updated_at": at})
        if audited:
            await audit.record(
                conn, actor, LISTING_CLOSED, "listing", listing_id, at=at, reason=reason
            )
        return await require(conn, listing_id)


# -- expiry and reminders (called by the scheduled jobs) -------------------------------------


def _lapsing(now: str, until: str) -> ColumnElement[bool]:
    return and_(
        listings.c.status == "active",
        listings.c.expires_at > now,
        listings.c.expires_at <= until,
        or_(listings.c.reminded_for.is_(None), listings.c.reminded_for != listings.c.expires_at),
    )


async def due_reminders(
    conn: AsyncConnection, now: datetime, *, days: int = DEFAULT_REMINDER_DAYS, limit: int = 1000
) -> list[Listing]:
    """Active listings that lapse within `days` of `now` and whose owner has not yet been
    reminded for this expiry date (oldest expiry first)."""
    at = format_time(now)
    until = format_time(now + timedelta(days=days))
    rows = await conn.execute(
        base_select()
        .where(_lapsing(at, until), owner_active_clause())
        .order_by(listings.c.expires_at, listings.c.id)
        .limit(limit)
    )
    return [from_row(row) for row in rows]


def _reminder(listing: Listing, name: str, days_left: int) -> tuple[str, str]:
    date = listing.expires_at[:10]
    noun = "offer" if listing.kind == OFFER else "request"
    subject = f"Scambio: your {noun} \u201c{listing.title[:60]}\u201d expires on {date}"
    when = "tomorrow" if days_left <= 1 else f"in {days_left} days"
    body = (
        f"Hello {name},\n\nyour {noun} \u201c{listing.title}\u201d expires {when} ({date}); "
        "after that nobody will find it in search.\n\n"
        f"If it is still current, renew it with one click: in Scambio, or with "
        f"POST /api/v1/listings/{listing.id}/renew. It will then stay up for another "
        "period.\nIf it is no longer needed, you can close it, or simply let it expire."
    )
    return subject, body


def _reminder_mail(listing: Listing, days_left: int) -> notifications.Mail:
    return notifications.Mail(
        "listing-expiry-reminder", lambda r: _reminder(listing, r.name, days_left)
    )


async def send_expiry_reminders(tb: Timebank, *, limit: int = 1000) -> int:
    """Remind the owner of each lapsing listing (the member, or each admin of the
    organisation), once per expiry date: in the app and, as their settings say, by email.
    Returns how many listings were reminded.

    Each listing is marked in the same transaction as its notifications, with a conditional
    update, so two workers running at once remind once. Renewing moves the expiry date,
    and the next period gets its own reminder.
    """
    now = tb.clock()
    days = reminder_days(tb.settings)
    reminded = 0
    async with writing(tb.engine) as conn:
        for listing in await due_reminders(conn, now, days=days, limit=limit):
            marked = await conn.execute(
                update(listings)
                .where(
                    listings.c.id == listing.id,
                    listings.c.expires_at == listing.expires_at,
                    or_(
                        listings.c.reminded_for.is_(None),
                        listings.c.reminded_for != listings.c.expires_at,
                    ),
                )
                .values(reminded_for=listing.expires_at)
            )
            if marked.rowcount != 1:
                continue
            reminded += 1
            seconds = int((parse_time(listing.expires_at) - now).total_seconds())
            days_left = max(1, -(-seconds // 86400))
            noun = "offer" if listing.kind == OFFER else "request"
            when = "tomorrow" if days_left <= 1 else f"in {days_left} days"
            await notifications.notify(
                conn,
                tb.clock,
                await notifications.owner(conn, listing.owner.type, listing.owner.id),
                kind="listing.expiring",
                text=(
                    f"Your {noun} \u201c{notifications.short(listing.title)}\u201d expires "
                    f"{when} ({listing.expires_at[:10]}): renew it if it is still current."
                ),
                refs=notifications.Refs(
                    listing=listing.id,
                    organisation=None if listing.owner.is_member else listing.owner.id,
                ),
                mail=_reminder_mail(listing, days_left),
            )
    if reminded:
        tb.mailer.kick()
    return reminded


async def expire_listings(tb: Timebank) -> int:
    """Mark every active or paused listing whose expiry has passed as expired; return how
    many. Search already hides them; this makes the stored status say so too."""
    at = format_time(tb.clock())
    async with writing(tb.engine) as conn:
        result = await conn.execute(
            update(listings)
            .where(listings.c.status.in_(("active", "paused")), listings.c.expires_at <= at)
            .values(status="expired", updated_at=at)
        )
    return int(result.rowcount)
