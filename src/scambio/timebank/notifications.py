"""In-app notifications, members' notification settings, and the digest.

Whatever needs a member's attention (an exchange proposed to them, one to confirm, a
dispute, a listing about to lapse, an introduction, an employee link to accept) becomes a
row in `notifications`, written by `notify` inside the transaction of the event itself:
a notification never exists for a change that rolled back, and is never missing for one
that committed. In-app notifications are always kept; each member chooses which kinds
*also* go to their email (through the outbox, in the same transaction), and whether they
want a digest of what they did not read. A member without an email address (registered
offline by a manager) gets in-app notifications only.

Kinds are stable strings clients may branch on (`KINDS`, with whether each is emailed by
default: the events that need the member to act, as the issue asks; the others are
in-app only unless the member asks for email too).

Who is told about an account's events: the member who holds it, or the active admins of
the organisation that holds it. The person who caused an event is not told about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.errors import RuleViolation
from scambio.store.notifications_tables import notification_settings, notifications
from scambio.store.people_tables import members, org_admins, organisations
from scambio.timebank.context import Timebank
from scambio.timebank.db import Clock, stamp, writing
from scambio.timebank.outbox import enqueue
from scambio.timebank.text import invalid

#: Every kind of notification, and whether it also goes to email unless the member says
#: otherwise. Exchange kinds are `exchange.<state the exchange reached>`.
KINDS: Final[dict[str, bool]] = {
    "exchange.proposed": True,
    "exchange.accepted": True,
    "exchange.done": True,
    "exchange.confirmed": False,
    "exchange.declined": False,
    "exchange.cancelled": False,
    "exchange.expired": False,
    "exchange.disputed": True,
    "exchange.resolved": True,
    "exchange.recorded": True,
    "listing.expiring": True,
    "introduction": True,
    "employee-link.proposed": True,
    "organisation.suspended": True,
    "organisation.reactivated": True,
}
TEXT_MAX: Final = 500
#: Most managers told about one dispute.
STAFF_MAX: Final = 50
#: Most notifications listed in one digest email (the rest: "and N more").
DIGEST_LINES: Final = 20

_encoder: Final = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member to notify: their id, name (for the email's greeting) and email, if any."""

    member_id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Refs:
    """What a notification is about (each optional)."""

    exchange: str | None = None
    listing: str | None = None
    link: str | None = None
    organisation: str | None = None
    introduction: str | None = None


@dataclass(frozen=True, slots=True)
class Mail:
    """The email version of a notification: its outbox kind, and (subject, body) for one
    recipient."""

    kind: str
    render: Callable[[Recipient], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    member_id: str
    kind: str
    text: str
    refs: Refs
    created_at: str
    read_at: str | None
    emailed: bool


@dataclass(frozen=True, slots=True)
class Settings:
    """A member's choices: which kinds also go to email, and whether to get digests."""

    email: dict[str, bool]
    digest: bool
    updated_at: str | None


def short(text: str, length: int = 80) -> str:
    """`text` cut to `length` characters with an ellipsis, for titles inside sentences."""
    return text if len(text) <= length else text[: length - 1].rstrip() + "\u2026"


def not_found(notification_id: str) -> RuleViolation:
    return RuleViolation(
        "notification-not-found",
        f"notification {notification_id!r} does not exist",
        notification=notification_id,
    )


# -- who hears about what --------------------------------------------------------------------


def _recipient(row: Any) -> Recipient:
    return Recipient(str(row.id), str(row.name), row.email)


async def member(conn: AsyncConnection, member_id: str) -> list[Recipient]:
    """The member, if active."""
    rows = await conn.execute(
        select(members.c.id, members.c.name, members.c.email).where(
            members.c.id == member_id, members.c.status == "active"
        )
    )
    return [_recipient(row) for row in rows]


async def org_admins_of(conn: AsyncConnection, org_id: str) -> list[Recipient]:
    """The organisation's active admins (whatever the organisation's own status)."""
    rows = await conn.execute(
        select(members.c.id, members.c.name, members.c.email)
        .join(org_admins, org_admins.c.member_id == members.c.id)
        .where(org_admins.c.org_id == org_id, members.c.status == "active")
        .order_by(members.c.id)
    )
    return [_recipient(row) for row in rows]


async def owner(conn: AsyncConnection, owner_type: str, owner_id: str) -> list[Recipient]:
    """Whoever acts for a listing's owner: the member, or the organisation's admins."""
    if owner_type == "member":
        return await member(conn, owner_id)
    return await org_admins_of(conn, owner_id)


async def account_holders(conn: AsyncConnection, account_id: str) -> list[Recipient]:
    """Whoever acts for a ledger account: its member, or its organisation's active admins
    (only while the organisation is active: a suspended one has nobody acting for it)."""
    rows = list(
        await conn.execute(
            select(members.c.id, members.c.name, members.c.email).where(
                members.c.account_id == account_id, members.c.status == "active"
            )
        )
    )
    if not rows:
        rows = list(
            await conn.execute(
                select(members.c.id, members.c.name, members.c.email)
                .join(org_admins, org_admins.c.member_id == members.c.id)
                .join(organisations, organisations.c.id == org_admins.c.org_id)
                .where(
                    organisations.c.account_id == account_id,
                    organisations.c.status == "active",
                    members.c.status == "active",
                )
                .order_by(members.c.id)
            )
        )
    return [_recipient(row) for row in rows]


async def staff(conn: AsyncConnection) -> list[Recipient]:
    """Active community managers and admins (who resolve disputes)."""
    rows = await conn.execute(
        select(members.c.id, members.c.name, members.c.email)
        .where(members.c.role.in_(("manager", "admin")), members.c.status == "active")
        .order_by(members.c.id)
        .limit(STAFF_MAX)
    )
    return [_recipient(row) for row in rows]


# -- settings --------------------------------------------------------------------------------


def _email_choices(stored: str | None) -> dict[str, bool]:
    """The defaults, overridden by a member's stored choices (unknown kinds ignored)."""
    choices = dict(KINDS)
    if stored:
        for kind, wanted in msgspec.json.decode(stored, type=dict[str, bool]).items():
            if kind in choices:
                choices[kind] = wanted
    return choices


async def get_settings(conn: AsyncConnection, member_id: str) -> Settings:
    row = (
        await conn.execute(
            select(notification_settings).where(notification_settings.c.member_id == member_id)
        )
    ).one_or_none()
    if row is None:
        return Settings(email=dict(KINDS), digest=True, updated_at=None)
    return Settings(
        email=_email_choices(row.email), digest=bool(row.digest), updated_at=row.updated_at
    )


def clean_email_choices(raw: dict[str, bool]) -> dict[str, bool]:
    """Check that every kind named is known; return the choices that differ from the
    defaults (what is stored, so that a later change of default reaches everyone else)."""
    for kind in raw:
        if kind not in KINDS:
            raise invalid(
                "email", f"{kind[:60]!r} is not a notification kind (see `kinds` in the reply)"
            )
    return {kind: wanted for kind, wanted in sorted(raw.items()) if wanted != KINDS[kind]}


async def put_settings(
    conn: AsyncConnection, clock: Clock, member_id: str, *, email: dict[str, bool], digest: bool
) -> Settings:
    """Replace a member's settings: `email` names kinds and whether they go to email
    (kinds not named take their default); `digest` switches digests on or off."""
    overrides = clean_email_choices(email)
    now = stamp(clock)
    values = {"email": _encoder.encode(overrides).decode(), "digest": digest, "updated_at": now}
    changed = await conn.execute(
        update(notification_settings)
        .where(notification_settings.c.member_id == member_id)
        .values(values)
    )
    if changed.rowcount == 0:
        await conn.execute(insert(notification_settings).values(member_id=member_id, **values))
    return await get_settings(conn, member_id)


async def _wants_email(conn: AsyncConnection, member_ids: list[str], kind: str) -> set[str]:
    """Which of these members want `kind` by email (one query for all of them)."""
    default = KINDS[kind]
    wanted = set(member_ids) if default else set()
    rows = await conn.execute(
        select(notification_settings.c.member_id, notification_settings.c.email).where(
            notification_settings.c.member_id.in_(member_ids),
            notification_settings.c.email != "{}",
        )
    )
    for row in rows:
        if _email_choices(row.email)[kind]:
            wanted.add(row.member_id)
        else:
            wanted.discard(row.member_id)
    return wanted


# -- writing ---------------------------------------------------------------------------------


async def notify(
    conn: AsyncConnection,
    clock: Clock,
    recipients: Iterable[Recipient],
    *,
    kind: str,
    text: str,
    refs: Refs | None = None,
    mail: Mail | None = None,
    skip: str | None = None,
) -> list[str]:
    """Notify each recipient once (in app; and by email if they have an address and want
    this kind by email), inside the caller's transaction. `skip` is the member who caused
    the event: they are not told about their own act. Returns the member ids notified.

    The caller kicks the mailer after its commit, as for any outbox message.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    unique: dict[str, Recipient] = {}
    for recipient in recipients:
        if recipient.member_id != skip:
            unique.setdefault(recipient.member_id, recipient)
    if not unique:
        return []
    refs = refs or Refs()
    emailing = await _wants_email(conn, list(unique), kind) if mail is not None else set()
    now = stamp(clock)
    rows: list[dict[str, Any]] = []
    for recipient in unique.values():
        emailed = mail is not None and bool(recipient.email) and recipient.member_id in emailing
        if emailed:
            assert mail is not None and recipient.email is not None
            subject, body = mail.render(recipient)
            await enqueue(
                conn, clock, kind=mail.kind, recipient=recipient.email, subject=subject, body=body
            )
        rows.append(
            {
                "member_id": recipient.member_id,
                "kind": kind,
                "text": short(text, TEXT_MAX),
                "exchange_id": refs.exchange,
                "listing_id": refs.listing,
                "link_id": refs.link,
                "organisation_id": refs.organisation,
                "introduction_id": refs.introduction,
                "created_at": now,
                "read_at": None,
                "emailed": emailed,
            }
        )
    await conn.execute(insert(notifications), rows)
    return list(unique)


# -- reading and marking read ----------------------------------------------------------------


def _notification(row: Any) -> Notification:
    return Notification(
        id=int(row.id),
        member_id=row.member_id,
        kind=row.kind,
        text=row.text,
        refs=Refs(
            exchange=row.exchange_id,
            listing=row.listing_id,
            link=row.link_id,
            organisation=row.organisation_id,
            introduction=row.introduction_id,
        ),
        created_at=row.created_at,
        read_at=row.read_at,
        emailed=bool(row.emailed),
    )


async def listing(
    conn: AsyncConnection,
    member_id: str,
    *,
    unread: bool = False,
    before: int | None = None,
    limit: int = 50,
) -> list[Notification]:
    """A member's notifications, newest first; `before` is the previous page's last id."""
    query = (
        select(notifications)
        .where(notifications.c.member_id == member_id)
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    if unread:
        query = query.where(notifications.c.read_at.is_(None))
    if before is not None:
        query = query.where(notifications.c.id < before)
    return [_notification(row) for row in await conn.execute(query)]


async def unread_count(conn: AsyncConnection, member_id: str) -> int:
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(notifications)
                .where(notifications.c.member_id == member_id, notifications.c.read_at.is_(None))
            )
        ).scalar_one()
    )


async def mark_read(
    conn: AsyncConnection, clock: Clock, member_id: str, notification_id: int
) -> Notification:
    """Mark one of the member's notifications read (again: it keeps its first read time).
    Another member's notification does not exist for them."""
    await conn.execute(
        update(notifications)
        .where(
            notifications.c.id == notification_id,
            notifications.c.member_id == member_id,
            notifications.c.read_at.is_(None),
        )
        .values(read_at=stamp(clock))
    )
    row = (
        await conn.execute(
            select(notifications).where(
                notifications.c.id == notification_id, notifications.c.member_id == member_id
            )
        )
    ).one_or_none()
    if row is None:
        raise not_found(str(notification_id))
    return _notification(row)


async def mark_all_read(
    conn: AsyncConnection, clock: Clock, member_id: str, *, up_to: int | None = None
) -> int:
    """Mark the member's unread notifications read (only up to id `up_to`, when given, so
    that one arriving while the member looked stays unread). Returns how many."""
    query = update(notifications).where(
        notifications.c.member_id == member_id, notifications.c.read_at.is_(None)
    )
    if up_to is not None:
        query = query.where(notifications.c.id <= up_to)
    return int((await conn.execute(query.values(read_at=stamp(clock)))).rowcount)


# -- the digest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What one `send_digests` did: members emailed, and notifications they covered."""

    members: int
    notifications: int


async def send_digests(tb: Timebank, *, limit: int = 500) -> DigestRun:
    """Email each member who wants digests one summary of their unread notifications that
    no email has covered yet (neither their own email nor an earlier digest).

    For the scheduled jobs (daily, say). A member with digests off, or without an email
    address, gets none; their notifications stay in the app. One transaction: running it
    again sends nothing new (two workers at once are kept apart by the scheduled jobs'
    once-per-period record, as for every job).
    """
    async with writing(tb.engine) as conn:
        run = await _digests(conn, tb.clock, limit=limit)
    if run.members:
        tb.mailer.kick()
    return run


async def _digests(conn: AsyncConnection, clock: Clock, *, limit: int) -> DigestRun:
    settings_row = notification_settings.alias("s")
    watermark = func.coalesce(settings_row.c.digest_up_to, 0)
    due = (
        select(
            notifications.c.member_id,
            members.c.name,
            members.c.email,
            func.max(notifications.c.id).label("up_to"),
            func.count().label("pending"),
        )
        .join(members, members.c.id == notifications.c.member_id)
        .outerjoin(settings_row, settings_row.c.member_id == notifications.c.member_id)
        .where(
            notifications.c.read_at.is_(None),
            notifications.c.emailed.is_(False),
            notifications.c.id > watermark,
            members.c.status == "active",
            members.c.email.is_not(None),
            or_(settings_row.c.digest.is_(None), settings_row.c.digest.is_(True)),
        )
        .group_by(notifications.c.member_id, members.c.name, members.c.email)
        .order_by(notifications.c.member_id)
        .limit(limit)
    )
    emailed = covered = 0
    now = stamp(clock)
    for row in list(await conn.execute(due)):
        previous = (
            await conn.execute(
                select(notification_settings.c.digest_up_to).where(
                    notification_settings.c.member_id == row.member_id
                )
            )
        ).one_or_none()
        since = 0 if previous is None or previous.digest_up_to is None else previous.digest_up_to
        items = list(
            await conn.execute(
                select(notifications.c.text, notifications.c.created_at)
                .where(
                    and_(
                        notifications.c.member_id == row.member_id,
                        notifications.c.read_at.is_(None),
                        notifications.c.emailed.is_(False),
                        notifications.c.id > since,
                        notifications.c.id <= row.up_to,
                    )
                )
                .order_by(notifications.c.id)
                .limit(DIGEST_LINES)
            )
        )
        count = int(row.pending)
        lines = "\n".join(f"- {item.created_at[:10]}: {item.text}" for item in items)
        more = f"\n... and {count - len(items)} more." if count > len(items) else ""
        await enqueue(
            conn,
            clock,
            kind="notification-digest",
            recipient=row.email,
            subject=f"Scambio: {count} unread notification{'s' if count != 1 else ''}",
            body=(
                f"Hello {row.name},\n\nwhat happened in Scambio that you have not read yet:"
                f"\n\n{lines}{more}\n\nRead them in Scambio. You can switch this digest off "
                "in your notification settings."
            ),
        )
        if previous is None:
            await conn.execute(
                insert(notification_settings).values(
                    member_id=row.member_id, digest_up_to=int(row.up_to), updated_at=now
                )
            )
        else:
            await conn.execute(
                update(notification_settings)
                .where(notification_settings.c.member_id == row.member_id)
                .values(digest_up_to=int(row.up_to))
            )
        emailed += 1
        covered += count
    return DigestRun(members=emailed, notifications=covered)
