"""Members: registration, approval, suspension, roles and profiles.

A member registers with an email and a password and waits, `pending`, until a manager
approves them; approval opens their time account in the ledger (default limits unless the
manager sets others) and only then can they log in. Managers reject, suspend (with a
reason, always) and reactivate; an admin changes roles. Every one of these acts, and every
change one person makes to another's profile, is written to the audit log in the same
transaction as the change.

This module is policy-free about *who* may do what: the API checks that (see
`timebank.authz`) before calling in, and the command line acts as the operator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.errors import RuleViolation
from scambio.store.people_tables import MEMBER_ROLES, members
from scambio.store.tokens import revoke_all_member_tokens
from scambio.timebank import audit
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.outbox import enqueue
from scambio.timebank.text import (
    clean_languages,
    clean_name,
    clean_tags,
    clean_text,
    invalid,
)
from scambio.timebank.zones import Zones

ABOUT_MAX: Final = 2000
AVAILABILITY_MAX: Final = 1000
REASON_MAX: Final = 1000
SLOTS_MAX: Final = 28
PHONE_MAX: Final = 32
CONTACT_NOTE_MAX: Final = 300
_PHONE_CHARS: Final = frozenset("0123456789 +-()./")

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ContactChannel = Literal["in_app", "email", "phone"]

_encoder: Final = msgspec.json.Encoder(order="sorted")


class Slot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A weekly time a member is usually available, e.g. Tuesdays 17:00-19:00."""

    day: Day
    start: str
    end: str


class Contact(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a member likes to be reached. Only `preferred` is shown to other members."""

    preferred: ContactChannel = "in_app"
    phone: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    email: str | None
    name: str
    role: str
    status: str
    account_id: str | None
    zone: str | None
    areas: list[str]
    tags: list[str]
    languages: list[str]
    about: str
    availability: str
    availability_slots: list[Slot]
    contact: Contact
    created_at: str
    updated_at: str
    approved_at: str | None
    approved_by: str | None
    has_password: bool


@dataclass
class Profile:
    """Cleaned profile fields; only those present are set or changed."""

    values: dict[str, Any] = field(default_factory=dict)


def member_account_id(member_id: str) -> str:
    """The ledger account of a member: stable, derived from the member id."""
    return f"m-{member_id}"


def _new_id() -> str:
    return secrets.token_hex(8)


def _member(row: Any) -> Member:
    return Member(
        id=row.id,
        email=row.email,
        name=row.name,
        role=row.role,
        status=row.status,
        account_id=row.account_id,
        zone=row.zone,
        areas=msgspec.json.decode(row.areas, type=list[str]),
        tags=msgspec.json.decode(row.tags, type=list[str]),
        languages=msgspec.json.decode(row.languages, type=list[str]),
        about=row.about,
        availability=row.availability,
        availability_slots=msgspec.json.decode(row.availability_slots, type=list[Slot]),
        contact=msgspec.json.decode(row.contact, type=Contact),
        created_at=row.created_at,
        updated_at=row.updated_at,
        approved_at=row.approved_at,
        approved_by=row.approved_by,
        has_password=row.password_hash is not None,
    )


# -- profile cleaning ---------------------------------------------------------------------


def _clean_time(value: str, name: str) -> int:
    hours, sep, minutes = value.partition(":")
    if (
        sep != ":"
        or len(hours) != 2
        or len(minutes) != 2
        or not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit())
        or int(hours) > 24
        or int(minutes) > 59
        or (int(hours) == 24 and int(minutes) != 0)
    ):
        raise invalid("availability_slots", f"{name} must be a time HH:MM, got {value!r}")
    return int(hours) * 60 + int(minutes)


def clean_slots(slots: list[Slot]) -> list[Slot]:
    if len(slots) > SLOTS_MAX:
        raise invalid("availability_slots", f"at most {SLOTS_MAX} weekly slots")
    for slot in slots:
        if _clean_time(slot.start, "start") >= _clean_time(slot.end, "end"):
            raise invalid("availability_slots", "each slot must end after it starts")
    return list(slots)


def clean_contact(contact: Contact) -> Contact:
    phone = contact.phone
    if phone is not None:
        phone = clean_text(phone, "contact.phone", PHONE_MAX)
        if not phone or not set(phone) <= _PHONE_CHARS or not any(c.isdigit() for c in phone):
            raise invalid("contact.phone", "phone must be digits, spaces and + - ( ) . /")
    if contact.preferred == "phone" and not phone:
        raise invalid("contact.phone", "a phone number is needed when phone is preferred")
    note = clean_text(contact.note, "contact.note", CONTACT_NOTE_MAX, multiline=True)
    return Contact(preferred=contact.preferred, phone=phone, note=note)


def clean_zone(zones: Zones, zone: str | None) -> str | None:
    if zone is None:
        return None
    if zone not in zones.ids:
        raise RuleViolation(
            "unknown-zone",
            f"zone {zone!r} is not one of this community's zones (see /api/v1/zones)",
            field="zone",
        )
    return zone


def clean_areas(areas: list[str]) -> list[str]:
    cleaned: list[str] = []
    for area in areas:
        if area not in AREA_IDS:
            raise RuleViolation(
                "unknown-area",
                f"area {area!r} is not one of {', '.join(sorted(AREA_IDS))}",
                field="areas",
            )
        if area not in cleaned:
            cleaned.append(area)
    return cleaned


def clean_profile(zones: Zones, raw: dict[str, Any]) -> Profile:
    """Validate the profile fields present in `raw` (name, zone, areas, ...)."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "name":
            values[name] = clean_name(value)
        elif name == "zone":
            values[name] = clean_zone(zones, value)
        elif name == "areas":
            values[name] = clean_areas(value)
        elif name == "tags":
            values[name] = clean_tags(value)
        elif name == "languages":
            values[name] = clean_languages(value)
        elif name == "about":
            values[name] = clean_text(value, "about", ABOUT_MAX, multiline=True)
        elif name == "availability":
            values[name] = clean_text(value, "availability", AVAILABILITY_MAX, multiline=True)
        elif name == "availability_slots":
            values[name] = clean_slots(value)
        elif name == "contact":
            values[name] = clean_contact(value)
        else:
            raise invalid(name, f"{name} is not a profile field")
    return Profile(values)


def _columns(profile: Profile) -> dict[str, Any]:
    """Profile values as stored: lists and objects as canonical JSON text."""
    columns: dict[str, Any] = {}
    for name, value in profile.values.items():
        if name in ("areas", "tags", "languages", "availability_slots", "contact"):
            columns[name] = _encoder.encode(value).decode()
        else:
            columns[name] = value
    return columns


def clean_reason(reason: str | None, *, required: bool) -> str | None:
    text = clean_text(reason or "", "reason", REASON_MAX, multiline=True)
    if required and not text:
        raise invalid("reason", "a reason is required")
    return text or None


# -- reads -----------------------------------------------------------------------------------


async def get(conn: AsyncConnection, member_id: str) -> Member | None:
    row = (await conn.execute(select(members).where(members.c.id == member_id))).one_or_none()
    return None if row is None else _member(row)


async def require(conn: AsyncConnection, member_id: str) -> Member:
    member = await get(conn, member_id)
    if member is None:
        raise RuleViolation(
            "member-not-found", f"member {member_id!r} does not exist", member=member_id
        )
    return member


async def by_email(conn: AsyncConnection, email: str) -> tuple[Member, str | None] | None:
    """The member with this (normalised) email and their password hash."""
    row = (await conn.execute(select(members).where(members.c.email == email))).one_or_none()
    return None if row is None else (_member(row), row.password_hash)


async def by_account(conn: AsyncConnection, account_ids: list[str]) -> dict[str, Member]:
    rows = await conn.execute(select(members).where(members.c.account_id.in_(account_ids)))
    return {row.account_id: _member(row) for row in rows}


async def listing(
    conn: AsyncConnection,
    *,
    after: str | None = None,
    limit: int = 100,
    status: str | None = None,
    zone: str | None = None,
    area: str | None = None,
    role: str | None = None,
) -> list[Member]:
    """Members in id order after `after` (an opaque, stable cursor), optionally filtered.

    `area` must be a known area id (checked by the caller): it is matched as a quoted
    string inside the stored JSON list.
    """
    query = select(members).order_by(members.c.id).limit(limit)
    if after is not None:
        query = query.where(members.c.id > after)
    if status is not None:
        query = query.where(members.c.status == status)
    if zone is not None:
        query = query.where(members.c.zone == zone)
    if role is not None:
        query = query.where(members.c.role == role)
    if area is not None:
        query = query.where(members.c.areas.contains(f'"{area}"'))
    return [_member(row) for row in await conn.execute(query)]


# -- writes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """The outcome of a self-registration: the new member, or None if the email was taken
    (the owner of the address is told by email; the caller answers the same either way)."""

    member_id: str | None


async def register(
    tb: Timebank, *, email: str, password: str, name: str, profile: Profile
) -> Registered:
    """Create a pending member. `email` and `password` are already checked."""
    password_hash = await tb.passwords.hash(password)
    now = stamp(tb.clock)
    member_id = _new_id()
    async with writing(tb.engine) as conn:
        taken = (
            await conn.execute(select(members.c.id).where(members.c.email == email))
        ).one_or_none()
        if taken is not None:
            await enqueue(
                conn,
                tb.clock,
                kind="registration-duplicate",
                recipient=email,
                subject="Scambio: you already have an account",
                body=(
                    "Someone (perhaps you) tried to register on Scambio with this address, "
                    "which already has an account. If you forgot your password, ask for a "
                    "password reset. If it was not you, you can ignore this message."
                ),
            )
            member_id_out = None
        else:
            await conn.execute(
                insert(members).values(
                    id=member_id,
                    email=email,
                    name=name,
                    role="member",
                    status="pending",
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                    **{k: v for k, v in _columns(profile).items() if k != "name"},
                )
            )
            await audit.record(
                conn,
                Actor(f"member {member_id} (self-registration)", member_id=member_id),
                audit.MEMBER_REGISTERED,
                "member",
                member_id,
                at=now,
            )
            await enqueue(
                conn,
                tb.clock,
                kind="registration-received",
                recipient=email,
                subject="Scambio: registration received",
                body=(
                    f"Hello {name},\n\nthank you for registering with Scambio. A community "
                    "manager will review your registration; you can log in once it is "
                    "approved."
                ),
            )
            member_id_out = member_id
    tb.mailer.kick()
    return Registered(member_id_out)


async def _open_account(
    tb: Timebank, member_id: str, limits: dict[str, int | None]
) -> dict[str, Any]:
    """Open the member's ledger account (idempotent for identical limits)."""
    account_id = member_account_id(member_id)
    outcome = await tb.ledger.open_account(account_id, "member", **limits)
    if isinstance(outcome, RuleViolation):
        raise outcome
    spec = outcome.entry.account
    assert spec is not None
    return {
        "account": account_id,
        "min_balance": spec.min_balance,
        "max_balance": spec.max_balance,
        "ledger_index": outcome.index,
    }


async def create(
    tb: Timebank,
    actor: Actor,
    *,
    name: str,
    email: str | None,
    password: str | None,
    role: str = "member",
    profile: Profile | None = None,
    limits: dict[str, int | None] | None = None,
    reason: str | None = None,
) -> Member:
    """Register an active member directly (a manager for someone offline, or the CLI for
    the first admin): the account is opened at once."""
    if role not in MEMBER_ROLES:
        raise invalid("role", f"role must be one of {', '.join(MEMBER_ROLES)}")
    password_hash = await tb.passwords.hash(password) if password is not None else None
    member_id = _new_id()
    async with reading(tb.engine) as conn:
        if (
            email is not None
            and (
                await conn.execute(select(members.c.id).where(members.c.email == email))
            ).one_or_none()
        ):
            raise RuleViolation(
                "email-taken", "another member already uses this email", field="email"
            )
    opened = await _open_account(tb, member_id, limits or {})
    now = stamp(tb.clock)
    columns = _columns(profile or Profile())
    columns.pop("name", None)
    async with writing(tb.engine) as conn:
        await conn.execute(
            insert(members).values(
                id=member_id,
                email=email,
                name=name,
                role=role,
                status="active",
                password_hash=password_hash,
                account_id=opened["account"],
                created_at=now,
                updated_at=now,
                approved_at=now,
                approved_by=actor.label[:200],
                **columns,
            )
        )
        await audit.record(
            conn,
            actor,
            audit.MEMBER_CREATED,
            "member",
            member_id,
            at=now,
            reason=reason,
            details={"role": role, **opened},
        )
        created = await require(conn, member_id)
    return created


async def _transition(
    conn: AsyncConnection,
    member_id: str,
    expected: tuple[str, ...],
    values: dict[str, Any],
) -> Member:
    """Move a member from one of `expected` statuses; a 409 if they are elsewhere.

    The update is conditional on the status, so two managers acting at once change the
    member once and the second is told what happened.
    """
    member = await require(conn, member_id)
    result = await conn.execute(
        update(members)
        .where(members.c.id == member_id, members.c.status.in_(expected))
        .values(values)
    )
    if result.rowcount != 1:
        raise RuleViolation(
            "invalid-status",
            f"member {member_id} is {member.status}, not {' or '.join(expected)}",
            member=member_id,
            current_status=member.status,
        )
    return member


async def approve(
    tb: Timebank,
    actor: Actor,
    member_id: str,
    *,
    reason: str | None = None,
    limits: dict[str, int | None] | None = None,
) -> Member:
    """Approve a pending member: open their account, then make them active.

    The account is opened first (through the ledger, its own transaction), so an active
    member always has one. If the status update then loses a race, the account stays
    open for the member; approving again is an identical, harmless retry.
    """
    async with reading(tb.engine) as conn:
        member = await require(conn, member_id)
    if member.status != "pending":
        raise RuleViolation(
            "invalid-status",
            f"member {member_id} is {member.status}, not pending",
            member=member_id,
            current_status=member.status,
        )
    opened = await _open_account(tb, member_id, limits or {})
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await _transition(
            conn,
            member_id,
            ("pending",),
            {
                "status": "active",
                "account_id": opened["account"],
                "approved_at": now,
                "approved_by": actor.label[:200],
                "updated_at": now,
            },
        )
        await audit.record(
            conn,
            actor,
            audit.MEMBER_APPROVED,
            "member",
            member_id,
            at=now,
            reason=reason,
            details=opened,
        )
        if member.email:
            await enqueue(
                conn,
                tb.clock,
                kind="member-approved",
                recipient=member.email,
                subject="Scambio: your membership is approved",
                body=f"Hello {member.name},\n\nyour membership is approved: you can log in now.",
            )
        approved = await require(conn, member_id)
    tb.mailer.kick()
    return approved


async def reject(tb: Timebank, actor: Actor, member_id: str, *, reason: str) -> Member:
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await _transition(conn, member_id, ("pending",), {"status": "rejected", "updated_at": now})
        await audit.record(
            conn, actor, audit.MEMBER_REJECTED, "member", member_id, at=now, reason=reason
        )
        return await require(conn, member_id)


async def suspend(tb: Timebank, actor: Actor, member_id: str, *, reason: str) -> Member:
    """Suspend an active member: their tokens are revoked and they can neither log in nor
    transact (the transfer routes refuse their account) until reactivated."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        member = await _transition(
            conn, member_id, ("active",), {"status": "suspended", "updated_at": now}
        )
        revoked = await revoke_all_member_tokens(conn, member_id, now)
        await audit.record(
            conn,
            actor,
            audit.MEMBER_SUSPENDED,
            "member",
            member_id,
            at=now,
            reason=reason,
            details={"tokens_revoked": revoked},
        )
        if member.email:
            await enqueue(
                conn,
                tb.clock,
                kind="member-suspended",
                recipient=member.email,
                subject="Scambio: your account is suspended",
                body=(
                    f"Hello {member.name},\n\nyour Scambio account has been suspended by a "
                    f"community manager. The reason given:\n\n{reason}\n\nPlease contact "
                    "your community manager."
                ),
            )
        suspended = await require(conn, member_id)
    tb.mailer.kick()
    return suspended


async def reactivate(
    tb: Timebank, actor: Actor, member_id: str, *, reason: str | None = None
) -> Member:
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await _transition(conn, member_id, ("suspended",), {"status": "active", "updated_at": now})
        await audit.record(
            conn, actor, audit.MEMBER_REACTIVATED, "member", member_id, at=now, reason=reason
        )
        return await require(conn, member_id)


async def set_role(tb: Timebank, actor: Actor, member_id: str, *, role: str, reason: str) -> Member:
    if role not in MEMBER_ROLES:
        raise invalid("role", f"role must be one of {', '.join(MEMBER_ROLES)}")
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        member = await require(conn, member_id)
        if member.role != role:
            await conn.execute(
                update(members).where(members.c.id == member_id).values(role=role, updated_at=now)
            )
            await audit.record(
                conn,
                actor,
                audit.MEMBER_ROLE_CHANGED,
                "member",
                member_id,
                at=now,
                reason=reason,
                details={"from": member.role, "to": role},
            )
        return await require(conn, member_id)


async def update_profile(tb: Timebank, actor: Actor, member_id: str, profile: Profile) -> Member:
    """Change profile fields. A change by someone other than the member is audited, with
    the names of the fields changed (and the old and new name, when that changes)."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        member = await require(conn, member_id)
        if profile.values:
            await conn.execute(
                update(members)
                .where(members.c.id == member_id)
                .values(updated_at=now, **_columns(profile))
            )
            if actor.member_id != member_id:
                details: dict[str, Any] = {"fields": sorted(profile.values)}
                if "name" in profile.values and profile.values["name"] != member.name:
                    details["name"] = {"from": member.name, "to": profile.values["name"]}
                await audit.record(
                    conn,
                    actor,
                    audit.MEMBER_PROFILE_CHANGED,
                    "member",
                    member_id,
                    at=now,
                    details=details,
                )
        return await require(conn, member_id)
