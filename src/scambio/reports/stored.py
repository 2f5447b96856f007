"""The monthly co-production reports the scheduled job signed and stored."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.reports.live import Computed
from scambio.store.jobs_tables import coproduction_reports


@dataclass(frozen=True, slots=True)
class StoredReport:
    period: str
    tree_size: int
    root: bytes
    #: The signed document, canonical JSON.
    document: str
    #: The directory it was computed with, canonical JSON.
    directory: str
    created_at: str


async def save(
    conn: AsyncConnection, period: str, computed: Computed, document: bytes, at: str
) -> None:
    """Store (or, when the month is run again, replace) the month's report."""
    await conn.execute(delete(coproduction_reports).where(coproduction_reports.c.period == period))
    await conn.execute(
        insert(coproduction_reports).values(
            period=period,
            tree_size=computed.scope.size,
            root=computed.scope.root,
            document=document.decode(),
            directory=computed.directory.canonical().decode(),
            created_at=at,
        )
    )


async def load(conn: AsyncConnection, period: str) -> StoredReport | None:
    row = (
        await conn.execute(
            select(coproduction_reports).where(coproduction_reports.c.period == period)
        )
    ).one_or_none()
    if row is None:
        return None
    return StoredReport(
        period=row.period,
        tree_size=int(row.tree_size),
        root=bytes(row.root),
        document=row.document,
        directory=row.directory,
        created_at=row.created_at,
    )
