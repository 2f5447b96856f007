"""The email outbox: messages are written in the transaction that causes them, then sent.

Writing first means a message is never sent for a change that rolled back, and never lost
for one that committed. `Mailer.flush` claims due messages one at a time (a conditional
update, so two processes never send the same one), sends each through SMTP when
`SCAMBIO_SMTP_HOST` is set and otherwise writes it to the log at INFO (the development
mode: the body, reset codes included, is then in the log by design). Failures are retried
with backoff and give up after `MAX_ATTEMPTS`. A body marked `sensitive` (it carries a
one-time secret) is blanked once delivered, so secrets do not stay at rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final

from sqlalchemy import and_, case, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.settings import Settings
from scambio.store.people_tables import outbox
from scambio.timebank.db import Clock, stamp, writing

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 6
#: Seconds a claimed message may stay "sending" before another sender retries it.
CLAIM_TIMEOUT: Final = 600
SMTP_TIMEOUT: Final = 30
REDACTED: Final = "[delivered; body removed because it contained a one-time secret]"
#: Messages claimed (and marked sent) together.
CLAIM_BATCH: Final = 25


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    kind: str
    recipient: str
    subject: str
    body: str
    sensitive: bool


async def enqueue(
    conn: AsyncConnection,
    clock: Clock,
    *,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    sensitive: bool = False,
) -> None:
    """Add a message inside the caller's transaction; `Mailer.kick` sends it after commit."""
    now = stamp(clock)
    await conn.execute(
        insert(outbox).values(
            created_at=now,
            kind=kind,
            recipient=recipient,
            subject=subject[:200],
            body=body,
            sensitive=sensitive,
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
    )


class Mailer:
    """Delivers the outbox. One per process; `kick` runs a flush in the background."""

    def __init__(self, engine: AsyncEngine, settings: Settings, clock: Clock) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        """Flush soon, without making the caller wait (nor its timing depend on mail)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scambio-mail")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox flush failed: %s: %s", type(exc).__name__, exc)
            if not self._again:
                return

    async def idle(self) -> None:
        """Wait for a background flush in progress (tests and shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def flush(self, limit: int = 100) -> int:
        """Send every due message (at most `limit`); return how many were delivered.

        Messages are claimed a few at a time (one statement) and those delivered are
        marked sent together: a busy community queues several per request, and two
        transactions per message were most of what the outbox cost the database.
        """
        delivered = 0
        while delivered < limit:
            claimed = await self._claim(min(CLAIM_BATCH, limit - delivered))
            if not claimed:
                break
            sent: list[Message] = []
            for message in claimed:
                try:
                    await self._send(message)
                except Exception as exc:
                    await self._failed(message, exc)
                else:
                    sent.append(message)
            await self._sent(sent)
            delivered += len(sent)
            if len(claimed) < CLAIM_BATCH:
                break
        return delivered

    async def _claim(self, limit: int) -> list[Message]:
        """Claim up to `limit` due messages for this sender (oldest first).

        One conditional update: a message another sender claimed meanwhile no longer
        matches (its next attempt is in the future), so two processes never send the same
        one; PostgreSQL re-checks the condition on rows it had to wait for.
        """
        now = stamp(self.clock)
        due = and_(
            or_(outbox.c.status == "pending", outbox.c.status == "sending"),
            outbox.c.next_attempt_at <= now,
        )
        oldest = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
        async with writing(self.engine) as conn:
            rows = await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(oldest.scalar_subquery()), due)
                .values(
                    status="sending",
                    attempts=outbox.c.attempts + 1,
                    next_attempt_at=stamp(self.clock, CLAIM_TIMEOUT),
                )
                .returning(
                    outbox.c.id,
                    outbox.c.kind,
                    outbox.c.recipient,
                    outbox.c.subject,
                    outbox.c.body,
                    outbox.c.sensitive,
                )
            )
            claimed = [
                Message(int(r.id), r.kind, r.recipient, r.subject, r.body, bool(r.sensitive))
                for r in rows
            ]
        return sorted(claimed, key=lambda m: m.id)

    async def _sent(self, messages: list[Message]) -> None:
        if not messages:
            return
        async with writing(self.engine) as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([m.id for m in messages]))
                .values(
                    status="sent",
                    sent_at=stamp(self.clock),
                    body=case((outbox.c.sensitive == true(), REDACTED), else_=outbox.c.body),
                )
            )

    async def _failed(self, message: Message, exc: Exception) -> None:
        async with writing(self.engine) as conn:
            attempts = (
                await conn.execute(select(outbox.c.attempts).where(outbox.c.id == message.id))
            ).scalar_one()
            give_up = attempts >= MAX_ATTEMPTS
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == message.id)
                .values(
                    status="failed" if give_up else "pending",
                    next_attempt_at=stamp(self.clock, 60 * 2**attempts),
                    last_error=f"{type(exc).__name__}: {exc}"[:500],
                )
            )
        log.warning(
            "email %d (%s) not delivered, attempt %d%s: %s: %s",
            message.id,
            message.kind,
            attempts,
            ", giving up" if give_up else "",
            type(exc).__name__,
            exc,
        )

    async def _send(self, message: Message) -> None:
        if not self.settings.smtp_host:
            log.info(
                "email (no SMTP configured) to %s, subject %r:\n%s",
                message.recipient,
                message.subject,
                message.body,
            )
            return
        await asyncio.to_thread(self._smtp_send, message)

    def _smtp_send(self, message: Message) -> None:
        settings = self.settings
        assert settings.smtp_host is not None
        email = EmailMessage()
        email["From"] = settings.mail_from
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email.set_content(message.body)
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, str(settings.smtp_password))
            smtp.send_message(email)
