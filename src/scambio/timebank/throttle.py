"""Throttling of login attempts (and reset requests) against brute force.

Failures are counted per email address and per client address in a sliding window, in the
database, so that every app process sees the same counts. Over the limit, the caller gets
the number of seconds until the oldest counted failure leaves the window (the HTTP layer's
`Retry-After`). A successful login clears its email's failures, not the client address's:
an attacker with one valid account cannot reset the counter they are running down.

Keys are SHA-256 hashes of "email:<address>" or "ip:<address>", so the table holds no raw
addresses, not even of people who never registered.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import format_time, parse_time
from scambio.store.people_tables import login_failures
from scambio.timebank.db import Clock


def key(kind: str, value: str) -> bytes:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "surrogatepass")).digest()


class Throttle:
    def __init__(self, clock: Clock, window: int) -> None:
        self.clock = clock
        self.window = window

    def _since(self) -> str:
        return format_time(self.clock() - timedelta(seconds=self.window))

    async def wait(self, conn: AsyncConnection, limits: Iterable[tuple[bytes, int]]) -> int | None:
        """Seconds to wait before trying again under any of (key, limit), or None."""
        since = self._since()
        longest: int | None = None
        for key_hash, limit in limits:
            rows = await conn.execute(
                select(login_failures.c.at)
                .where(login_failures.c.key_hash == key_hash, login_failures.c.at > since)
                .order_by(login_failures.c.at.desc())
                .limit(limit)
            )
            times = [row.at for row in rows]
            if len(times) < limit:
                continue
            frees_at = parse_time(times[-1]) + timedelta(seconds=self.window)
            seconds = max(1, math.ceil((frees_at - self.clock()).total_seconds()))
            longest = seconds if longest is None else max(longest, seconds)
        return longest

    async def count(self, conn: AsyncConnection, key_hash: bytes) -> int:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(login_failures)
                    .where(
                        login_failures.c.key_hash == key_hash, login_failures.c.at > self._since()
                    )
                )
            ).scalar_one()
        )

    async def fail(self, conn: AsyncConnection, keys: Iterable[bytes]) -> None:
        """Count a failure against each key, and forget failures older than the window."""
        now = format_time(self.clock())
        await conn.execute(delete(login_failures).where(login_failures.c.at <= self._since()))
        await conn.execute(insert(login_failures), [{"key_hash": k, "at": now} for k in keys])

    async def clear(self, conn: AsyncConnection, key_hash: bytes) -> None:
        await conn.execute(delete(login_failures).where(login_failures.c.key_hash == key_hash))
