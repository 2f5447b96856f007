"""The ledger service: the one object the API, CLI and jobs use to read and write.

It owns the engine, the node key and the appender, and applies defaults from settings
(account limits by kind, hold expiry) before commands reach the pure rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import AccountSpec, format_time
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer
from scambio.settings import Settings
from scambio.store.appender import Appender, Clock
from scambio.store.commands import (
    Linked,
    LinkedOutcome,
    OpenAccount,
    Outcome,
    PostHold,
    Reverse,
    SetLimits,
    Single,
    Transfer,
    VoidHold,
)
from scambio.store.db import read_snapshot
from scambio.store.head import ensure_head
from scambio.store.tables import entries

#: Account kinds whose limits default to the settings' member limits; the others default
#: to these fixed limits (a pool cannot go below zero; sponsors, clearing and system
#: accounts issue credit and are unbounded unless told otherwise).
FIXED_DEFAULT_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "pool": (0, None),
    "sponsor": (None, None),
    "clearing": (None, None),
    "system": (None, None),
}
_UNSET = object()


class LedgerService:
    def __init__(
        self, engine: AsyncEngine, signer: Signer, settings: Settings, *, clock: Clock | None = None
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.settings = settings
        self.origin = settings.ledger_origin
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.appender = Appender(
            engine, signer, self.origin, batch_size=settings.batch_size, clock=self.clock
        )

    async def start(self) -> None:
        await ensure_head(self.engine, self.origin, self.signer, now=format_time(self.clock()))
        self.appender.start()

    async def stop(self) -> None:
        await self.appender.stop()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection in one transaction: one consistent snapshot."""
        async with read_snapshot(self.engine) as conn:
            yield conn

    # -- writes ------------------------------------------------------------------------

    def default_limits(self, kind: str) -> tuple[int | None, int | None]:
        if kind in FIXED_DEFAULT_LIMITS:
            return FIXED_DEFAULT_LIMITS[kind]
        return self.settings.default_min_balance, self.settings.default_max_balance

    async def open_account(
        self,
        account_id: str,
        kind: str,
        min_balance: int | object | None = _UNSET,
        max_balance: int | object | None = _UNSET,
    ) -> Outcome:
        low, high = self.default_limits(kind)
        spec = AccountSpec(
            id=account_id,
            kind=kind,
            min_balance=low if min_balance is _UNSET else min_balance,  # type: ignore[arg-type]
            max_balance=high if max_balance is _UNSET else max_balance,  # type: ignore[arg-type]
        )
        return await self.appender.submit(OpenAccount(spec))

    async def set_limits(
        self,
        request_id: str,
        account_id: str,
        min_balance: int | None,
        max_balance: int | None,
        memo: str = "",
    ) -> Outcome:
        """Change an account's limits (an `account` entry; retried safely by request id).

        Refused with `invalid-limits` when the current balances would break the new limits.
        """
        return await self.appender.submit(
            SetLimits(request_id, account_id, min_balance, max_balance, memo)
        )

    async def transfer(self, command: Transfer) -> Outcome:
        if command.hold and command.expires_in is None and self.settings.default_hold_expiry:
            command = dataclasses.replace(command, expires_in=self.settings.default_hold_expiry)
        return await self.appender.submit(command)

    async def linked(self, items: Sequence[Single]) -> LinkedOutcome:
        return await self.appender.submit_linked(Linked(tuple(items)))

    async def post(self, hold_id: str, minutes: int | None = None) -> Outcome:
        return await self.appender.submit(PostHold(hold_id, minutes))

    async def void(self, hold_id: str) -> Outcome:
        return await self.appender.submit(VoidHold(hold_id))

    async def reverse(self, entry_id: str, target: int, memo: str = "") -> Outcome:
        return await self.appender.submit(Reverse(entry_id, target, memo))

    async def expire_holds(self, limit: int = 1000) -> list[Outcome]:
        """Void every open hold whose expiry has passed (through the normal append path)."""
        now = format_time(self.clock())
        async with self.read() as conn:
            resolved = select(entries.c.hold_idx).where(entries.c.hold_idx.is_not(None))
            rows = await conn.execute(
                select(entries.c.id)
                .where(
                    entries.c.kind == "hold",
                    entries.c.expires.is_not(None),
                    entries.c.expires <= now,
                    entries.c.idx.not_in(resolved),
                )
                .order_by(entries.c.idx)
                .limit(limit)
            )
            due = [str(r.id) for r in rows]
        # Submitted together so that they share batches.
        return list(
            await asyncio.gather(
                *(self.appender.submit(VoidHold(hold_id, reason="expired")) for hold_id in due)
            )
        )


def require(outcome: Outcome) -> Outcome:
    """Raise a rejected outcome (for callers that treat rule violations as errors)."""
    if isinstance(outcome, RuleViolation):
        raise outcome
    return outcome
