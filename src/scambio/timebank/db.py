"""Transactions for the timebank's own tables (people, organisations, audit, outbox).

Writes take the database's write lock at BEGIN on SQLite (`BEGIN IMMEDIATE`), as the
ledger's appender does, so that a read-then-write transaction never fails halfway on a
lock upgrade; on PostgreSQL they are ordinary transactions guarded by conditional updates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import format_time
from scambio.store.db import WRITER

Clock = Callable[[], datetime]


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One write transaction; committed when the block ends without an error."""
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{WRITER: True})
        async with conn.begin():
            yield conn


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn, conn.begin():
        yield conn


def stamp(clock: Clock, seconds: float = 0) -> str:
    """The clock's time (plus `seconds`) in the ledger's fixed-width format."""
    return format_time(clock() + timedelta(seconds=seconds))
