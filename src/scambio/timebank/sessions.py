"""Logging in, member tokens, and passwords (change and reset).

Login answers the same way, after the same Argon2 work, whether the email is unknown,
has no password, or the password is wrong (`invalid-credentials`); only a correct password
learns that the member is pending, suspended or rejected. Failures are throttled per email
and per client address (`throttle`). A password reset is requested by email and always
"accepted", so the request reveals nothing; the one-time code (hashed at rest, valid for
an hour, single use) goes out through the outbox. Setting a new password revokes the
member's tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.errors import RuleViolation
from scambio.store.people_tables import members, password_resets
from scambio.store.tokens import (
    SCOPES,
    TokenError,
    issue_member_token,
    revoke_all_member_tokens,
)
from scambio.timebank import audit, people
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.outbox import enqueue
from scambio.timebank.people import Member
from scambio.timebank.text import check_password, try_normalise_email
from scambio.timebank.throttle import key

RESET_PREFIX: Final = "rst"
_RESET_RE: Final = re.compile(r"rst_[A-Za-z0-9_-]{43}")
#: Reset requests per email within the throttle window (beyond: silently dropped).
RESET_REQUESTS_MAX: Final = 3
TOKEN_NAME_MAX: Final = 100


def credentials_refused() -> RuleViolation:
    return RuleViolation("invalid-credentials", "the email or the password is wrong")


def too_many(seconds: int) -> RuleViolation:
    return RuleViolation(
        "too-many-attempts",
        f"too many failed logins; try again in {seconds} seconds",
        retry_after=seconds,
    )


def _status_refusal(member: Member) -> RuleViolation | None:
    if member.status == "active":
        return None
    detail = {
        "pending": "your registration is waiting for a community manager's approval",
        "suspended": "your account is suspended; contact your community manager",
        "rejected": "your registration was not approved",
    }[member.status]
    return RuleViolation(f"member-{member.status}", detail, member=member.id)


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    token_id: str
    scopes: tuple[str, ...]
    expires_at: str | None
    member: Member


def _expiry(tb: Timebank, seconds: int | None) -> str | None:
    return None if seconds is None else stamp(tb.clock, seconds)


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    unknown = wanted - SCOPES
    if unknown or not wanted:
        raise RuleViolation(
            "invalid-scope",
            f"scopes must be a non-empty list drawn from {', '.join(sorted(SCOPES))}",
            field="scopes",
        )
    return wanted


async def login(
    tb: Timebank,
    *,
    email: str,
    password: str,
    client: str,
    token_name: str = "login",  # noqa: S107 - a label, not a secret
    scopes: Iterable[str] | None = None,
) -> LoginResult:
    wanted = check_scopes(scopes) if scopes is not None else SCOPES
    normal = try_normalise_email(email)
    email_key = key("email", normal or email.strip().lower())
    client_key = key("ip", client)
    settings = tb.settings
    async with reading(tb.engine) as conn:
        wait = await tb.throttle.wait(
            conn,
            [
                (email_key, settings.login_max_failures),
                (client_key, settings.login_max_failures_per_ip),
            ],
        )
        found = await people.by_email(conn, normal) if normal else None
    if wait is not None:
        raise too_many(wait)
    member, stored = found if found is not None else (None, None)
    if not await tb.passwords.verify(stored, password) or member is None:
        async with writing(tb.engine) as conn:
            await tb.throttle.fail(conn, [email_key, client_key])
        raise credentials_refused()
    refusal = _status_refusal(member)
    if refusal is not None:
        raise refusal
    rehash = await tb.passwords.hash(password) if tb.passwords.needs_rehash(stored or "") else None
    now = stamp(tb.clock)
    expires = _expiry(tb, settings.member_token_ttl)
    async with writing(tb.engine) as conn:
        await tb.throttle.clear(conn, email_key)
        if rehash is not None:
            await conn.execute(
                update(members).where(members.c.id == member.id).values(password_hash=rehash)
            )
        token, token_id = await issue_member_token(
            conn, member.id, token_name, wanted, created_at=now, expires_at=expires
        )
    return LoginResult(token, token_id, tuple(sorted(wanted)), expires, member)


async def create_token(
    tb: Timebank,
    member_id: str,
    *,
    name: str,
    scopes: Iterable[str],
    allowed: frozenset[str],
    expires_in: int | None,
) -> tuple[str, str, str | None]:
    """Another token for a member, with at most the scopes of the token asking for it."""
    wanted = check_scopes(scopes)
    if not wanted <= allowed:
        raise RuleViolation(
            "invalid-scope",
            "a new token cannot have scopes the current token lacks: "
            + ", ".join(sorted(wanted - allowed)),
            field="scopes",
        )
    ttl = tb.settings.member_token_ttl
    seconds = expires_in if ttl is None or expires_in is None else min(expires_in, ttl)
    if seconds is None:
        seconds = ttl
    now = stamp(tb.clock)
    expires = _expiry(tb, seconds)
    async with writing(tb.engine) as conn:
        try:
            token, token_id = await issue_member_token(
                conn, member_id, name, wanted, created_at=now, expires_at=expires
            )
        except TokenError as exc:
            raise RuleViolation("invalid-field", str(exc), field="name") from None
    return token, token_id, expires


def _reset_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


async def request_reset(tb: Timebank, email: str) -> None:
    """Send a reset code if the address belongs to a member; otherwise do nothing.

    The caller answers 202 either way. Requests beyond `RESET_REQUESTS_MAX` per window
    for one address are dropped (no mail bombing through this form).
    """
    normal = try_normalise_email(email)
    if normal is None:
        return
    reset_key = key("reset", normal)
    async with writing(tb.engine) as conn:
        if await tb.throttle.wait(conn, [(reset_key, RESET_REQUESTS_MAX)]) is not None:
            return
        await tb.throttle.fail(conn, [reset_key])
        found = await people.by_email(conn, normal)
        if found is None or found[0].status == "rejected":
            return
        member = found[0]
        code = f"{RESET_PREFIX}_{secrets.token_urlsafe(32)}"
        minutes = tb.settings.password_reset_ttl // 60
        await conn.execute(
            insert(password_resets).values(
                token_hash=_reset_hash(code),
                member_id=member.id,
                created_at=stamp(tb.clock),
                expires_at=stamp(tb.clock, tb.settings.password_reset_ttl),
                used_at=None,
            )
        )
        await enqueue(
            conn,
            tb.clock,
            kind="password-reset",
            recipient=normal,
            subject="Scambio: reset your password",
            body=(
                f"Hello {member.name},\n\nsomeone (perhaps you) asked to reset your Scambio "
                f"password. Your one-time reset code, valid for {minutes} minutes:\n\n"
                f"{code}\n\nIf you did not ask for it, ignore this message: your password "
                "stays as it is."
            ),
            sensitive=True,
        )
    tb.mailer.kick()


def invalid_reset() -> RuleViolation:
    return RuleViolation(
        "invalid-reset-token", "the reset code is unknown, already used or expired"
    )


async def confirm_reset(tb: Timebank, code: str, new_password: str) -> Member:
    """Set a new password with a reset code; the code works once, within its hour."""
    check_password(new_password)
    if not _RESET_RE.fullmatch(code):
        raise invalid_reset()
    password_hash = await tb.passwords.hash(new_password)
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        row = (
            await conn.execute(
                select(password_resets).where(password_resets.c.token_hash == _reset_hash(code))
            )
        ).one_or_none()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise invalid_reset()
        used = await conn.execute(
            update(password_resets)
            .where(
                password_resets.c.token_hash == row.token_hash, password_resets.c.used_at.is_(None)
            )
            .values(used_at=now)
        )
        if used.rowcount != 1:  # pragma: no cover - a concurrent confirm won
            raise invalid_reset()
        member = await people.require(conn, row.member_id)
        await _set_password(conn, member, password_hash, now, keep_token=None)
        # Any other outstanding code for this member dies with this one.
        await conn.execute(
            update(password_resets)
            .where(password_resets.c.member_id == member.id, password_resets.c.used_at.is_(None))
            .values(used_at=now)
        )
        await audit.record(
            conn,
            Actor(f"member {member.id} (password reset)", member_id=member.id),
            audit.MEMBER_PASSWORD_RESET,
            "member",
            member.id,
            at=now,
        )
        if member.email:
            await tb.throttle.clear(conn, key("email", member.email))
    return member


async def _set_password(
    conn: AsyncConnection, member: Member, password_hash: str, now: str, *, keep_token: str | None
) -> None:
    await conn.execute(
        update(members)
        .where(members.c.id == member.id)
        .values(password_hash=password_hash, updated_at=now)
    )
    await revoke_all_member_tokens(conn, member.id, now, keep=keep_token)


async def change_password(
    tb: Timebank, actor: Actor, member_id: str, current: str, new: str, *, token_id: str
) -> None:
    """Change one's own password; every other token of the member is revoked."""
    check_password(new, "new_password")
    async with reading(tb.engine) as conn:
        row = (
            await conn.execute(select(members.c.password_hash).where(members.c.id == member_id))
        ).one_or_none()
    stored = None if row is None else row.password_hash
    if not await tb.passwords.verify(stored, current):
        raise RuleViolation(
            "invalid-credentials", "the current password is wrong", field="current_password"
        )
    password_hash = await tb.passwords.hash(new)
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        member = await people.require(conn, member_id)
        await _set_password(conn, member, password_hash, now, keep_token=token_id)
        await audit.record(conn, actor, audit.MEMBER_PASSWORD_CHANGED, "member", member_id, at=now)
