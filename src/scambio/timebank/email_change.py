"""Changing a member's email address.

A member asks, with their current password (a stolen token alone must not be able to
redirect the account's mail, and with it password resets); a one-time code goes to the
NEW address through the outbox, so the change proves that the member reads it. The code
is stored only as a SHA-256 hash, lives `SCAMBIO_EMAIL_CHANGE_TTL` seconds (a day by
default), works once, and confirming it switches the address, audit-logs the change and
sends a notice to the OLD address (the account's owner learns of a change they did not
make). A request for an address another member already uses is answered like any other,
and that address is told instead, so the form reveals nothing about who is registered.

A community manager may set the email of a member who cannot do it themselves (one
registered offline, without a password) directly; an admin may do so for anyone. Both
are audited with a reason, and the old address gets the same notice.

Any change ends the member's other pending email changes and outstanding password reset
codes: those went to an address that is no longer the account's.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.errors import RuleViolation
from scambio.store.notifications_tables import email_changes
from scambio.store.people_tables import members, password_resets
from scambio.timebank import audit, people
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import Clock, reading, stamp, writing
from scambio.timebank.outbox import enqueue
from scambio.timebank.people import Member
from scambio.timebank.throttle import key

PREFIX: Final = "eml"
_CODE_RE: Final = re.compile(r"eml_[A-Za-z0-9_-]{43}")
#: Requests (and wrong passwords) per member within the throttle window.
REQUESTS_MAX: Final = 3


def invalid_code() -> RuleViolation:
    return RuleViolation(
        "invalid-confirmation-token",
        "the confirmation code is unknown, already used or expired",
    )


def email_taken() -> RuleViolation:
    return RuleViolation("email-taken", "another member already uses this email", field="email")


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def masked(email: str) -> str:
    """ "giulia@example.org" -> "g***@example.org": enough for the owner to recognise."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


async def _taken(conn: AsyncConnection, email: str, member_id: str) -> bool:
    row = (
        await conn.execute(
            select(members.c.id).where(members.c.email == email, members.c.id != member_id)
        )
    ).one_or_none()
    return row is not None


async def request_change(tb: Timebank, member_id: str, *, email: str, password: str) -> None:
    """Send a confirmation code to `email` (normalised by the caller) for `member_id`.

    Refused with `invalid-credentials` when the password is wrong, `invalid-email` when it
    is already the member's address, `too-many-attempts` beyond `REQUESTS_MAX` requests or
    wrong passwords per window.
    """
    throttle_key = key("email-change", member_id)
    async with reading(tb.engine) as conn:
        wait = await tb.throttle.wait(conn, [(throttle_key, REQUESTS_MAX)])
        row = (
            await conn.execute(select(members.c.password_hash).where(members.c.id == member_id))
        ).one_or_none()
    if wait is not None:
        raise RuleViolation(
            "too-many-attempts",
            f"too many email change requests; try again in {wait} seconds",
            retry_after=wait,
        )
    stored = None if row is None else row.password_hash
    if not await tb.passwords.verify(stored, password):
        async with writing(tb.engine) as conn:
            await tb.throttle.fail(conn, [throttle_key])
        raise RuleViolation(
            "invalid-credentials", "the current password is wrong", field="password"
        )
    code = f"{PREFIX}_{secrets.token_urlsafe(32)}"
    ttl = tb.settings.email_change_ttl
    async with writing(tb.engine) as conn:
        member = await people.require(conn, member_id)
        if member.email == email:
            raise RuleViolation(
                "invalid-email", "this is already your email address", field="email"
            )
        await tb.throttle.fail(conn, [throttle_key])
        if await _taken(conn, email, member_id):
            await enqueue(
                conn,
                tb.clock,
                kind="email-change-taken",
                recipient=email,
                subject="Scambio: this address already has an account",
                body=(
                    "Someone (perhaps you) asked to move a Scambio account to this address, "
                    "which already belongs to another account, so nothing was changed. If "
                    "you forgot the password of that account, ask for a password reset. If "
                    "it was not you, you can ignore this message."
                ),
            )
        else:
            await conn.execute(
                insert(email_changes).values(
                    token_hash=_hash(code),
                    member_id=member_id,
                    new_email=email,
                    created_at=stamp(tb.clock),
                    expires_at=stamp(tb.clock, ttl),
                    used_at=None,
                )
            )
            hours = max(1, ttl // 3600)
            await enqueue(
                conn,
                tb.clock,
                kind="email-change-confirm",
                recipient=email,
                subject="Scambio: confirm your new email address",
                body=(
                    f"Hello {member.name},\n\nyou asked to use this address for your Scambio "
                    f"account. Your one-time confirmation code, valid for {hours} "
                    f"hour{'s' if hours != 1 else ''}:\n\n{code}\n\nConfirm it in Scambio. "
                    "If you did not ask for this, ignore this message: nothing changes."
                ),
                sensitive=True,
            )
    tb.mailer.kick()


async def _switch(
    conn: AsyncConnection,
    clock: Clock,
    actor: Actor,
    member: Member,
    email: str | None,
    *,
    now: str,
    reason: str | None,
    direct: bool,
) -> None:
    """Set the address, end what was sent to the old one, audit it, tell the old one."""
    try:
        await conn.execute(
            update(members).where(members.c.id == member.id).values(email=email, updated_at=now)
        )
    except IntegrityError:  # taken meanwhile: the caller's transaction rolls back
        raise email_taken() from None
    await conn.execute(
        update(email_changes)
        .where(email_changes.c.member_id == member.id, email_changes.c.used_at.is_(None))
        .values(used_at=now)
    )
    await conn.execute(
        update(password_resets)
        .where(password_resets.c.member_id == member.id, password_resets.c.used_at.is_(None))
        .values(used_at=now)
    )
    await audit.record(
        conn,
        actor,
        audit.MEMBER_EMAIL_CHANGED,
        "member",
        member.id,
        at=now,
        reason=reason,
        details={"from": member.email, "to": email, "confirmed_by_member": not direct},
    )
    if member.email:
        by = "A community manager changed" if direct else "You changed"
        now_reads = f"now {masked(email)}" if email else "now removed"
        await enqueue(
            conn,
            clock,
            kind="email-changed-notice",
            recipient=member.email,
            subject="Scambio: your email address was changed",
            body=(
                f"Hello {member.name},\n\n{by} the email address of your Scambio account: "
                f"it is {now_reads}, and messages no longer come to this address.\n\nIf "
                "you did not ask for this, contact your community manager at once."
            ),
        )


async def confirm_change(tb: Timebank, code: str) -> Member:
    """Switch the member's email to the address the code was sent to (once, in time)."""
    if not _CODE_RE.fullmatch(code):
        raise invalid_code()
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        row = (
            await conn.execute(
                select(email_changes).where(email_changes.c.token_hash == _hash(code))
            )
        ).one_or_none()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise invalid_code()
        member = await people.require(conn, row.member_id)
        if member.status != "active":
            raise RuleViolation(
                "invalid-status",
                f"member {member.id} is {member.status}: the email cannot change now",
                member=member.id,
                current_status=member.status,
            )
        if await _taken(conn, row.new_email, member.id):
            raise email_taken()
        used = await conn.execute(
            update(email_changes)
            .where(email_changes.c.token_hash == row.token_hash, email_changes.c.used_at.is_(None))
            .values(used_at=now)
        )
        if used.rowcount != 1:  # pragma: no cover - a concurrent confirm won
            raise invalid_code()
        await _switch(
            conn,
            tb.clock,
            Actor(f"member {member.id} (email confirmation)", member_id=member.id),
            member,
            row.new_email,
            now=now,
            reason=None,
            direct=False,
        )
        changed = await people.require(conn, member.id)
    tb.mailer.kick()
    return changed


async def set_directly(
    tb: Timebank, actor: Actor, member_id: str, *, email: str | None, reason: str
) -> Member:
    """A manager sets (or, with None, removes) a member's email without a confirmation;
    who may is the caller's check (see `authz.may_set_email`)."""
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        member = await people.require(conn, member_id)
        if member.email != email:
            if email is not None and await _taken(conn, email, member_id):
                raise email_taken()
            await _switch(conn, tb.clock, actor, member, email, now=now, reason=reason, direct=True)
        changed = await people.require(conn, member_id)
    tb.mailer.kick()
    return changed
