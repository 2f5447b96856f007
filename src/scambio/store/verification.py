"""What `verify-ledger` last proved about the ledger, kept in `ledger_verification`.

One row. After a successful verification: the tree size, root and signed checkpoint it
reached and the replay state to resume from (`ledger.verify.ReplayerSnapshot`). After a
failed one: status `compromised`, the first bad index and the reason, while the last good
state stays (the next run starts from it again, and fails again until the database is
restored). `/health` and `GET /api/v1/ledger/verification` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.store.jobs_tables import COMPROMISED, VERIFIED, ledger_verification


@dataclass(frozen=True, slots=True)
class Verification:
    status: str
    verified_size: int | None
    verified_root: bytes | None
    verified_checkpoint: str | None
    verified_at: str | None
    state: bytes | None
    failed_at: str | None
    failed_index: int | None
    failure: str | None
    updated_at: str

    @property
    def compromised(self) -> bool:
        return self.status == COMPROMISED


async def load(conn: AsyncConnection) -> Verification | None:
    row = (
        await conn.execute(select(ledger_verification).where(ledger_verification.c.id == 1))
    ).one_or_none()
    if row is None:
        return None
    return Verification(
        status=row.status,
        verified_size=None if row.verified_size is None else int(row.verified_size),
        verified_root=None if row.verified_root is None else bytes(row.verified_root),
        verified_checkpoint=row.verified_checkpoint,
        verified_at=row.verified_at,
        state=None if row.state is None else bytes(row.state),
        failed_at=row.failed_at,
        failed_index=None if row.failed_index is None else int(row.failed_index),
        failure=row.failure,
        updated_at=row.updated_at,
    )


async def _ensure(conn: AsyncConnection, at: str, status: str) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(
        insert(ledger_verification)
        .values(id=1, status=status, updated_at=at)
        .on_conflict_do_nothing()
    )


async def record_verified(
    conn: AsyncConnection, *, size: int, root: bytes, checkpoint: str, state: bytes, at: str
) -> bool:
    """Record a successful verification up to `size`; an older run that finishes after a
    newer one does not move the state back. Returns whether the row changed."""
    await _ensure(conn, at, VERIFIED)
    values: dict[str, Any] = {
        "status": VERIFIED,
        "verified_size": size,
        "verified_root": root,
        "verified_checkpoint": checkpoint,
        "verified_at": at,
        "state": state,
        "failed_at": None,
        "failed_index": None,
        "failure": None,
        "updated_at": at,
    }
    table = ledger_verification
    result = await conn.execute(
        update(table)
        .where(
            table.c.id == 1,
            (table.c.verified_size.is_(None)) | (table.c.verified_size <= size),
        )
        .values(values)
    )
    return bool(result.rowcount)


async def record_failure(conn: AsyncConnection, *, index: int | None, reason: str, at: str) -> None:
    """Mark the ledger compromised; the last good state stays for the next run."""
    await _ensure(conn, at, COMPROMISED)
    await conn.execute(
        update(ledger_verification)
        .where(ledger_verification.c.id == 1)
        .values(status=COMPROMISED, failed_at=at, failed_index=index, failure=reason, updated_at=at)
    )
