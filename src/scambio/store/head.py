"""Creating and checking the ledger head: the row the append path locks."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scambio.ledger import merkle
from scambio.ledger.entry import now_time
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Checkpoint, Signer, open_checkpoint, sign_checkpoint
from scambio.store.db import WRITER
from scambio.store.tables import checkpoints, ledger_head


class LedgerMismatch(RuntimeError):
    """The database holds another ledger, or one signed by another key."""


async def ensure_head(
    engine: AsyncEngine, origin: str, signer: Signer, *, now: str | None = None
) -> None:
    """Create the empty ledger (size 0, signed) or check the existing one is ours.

    `now` stamps the empty checkpoint (default: the real time); the ledger service passes
    its own clock's, so that a ledger seeded with a clock in the past starts there too.
    """
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{WRITER: True})
        async with conn.begin():
            row = (
                await conn.execute(select(ledger_head).where(ledger_head.c.id == 1))
            ).one_or_none()
            if row is None:
                note = sign_checkpoint(Checkpoint(origin, 0, merkle.EMPTY_ROOT), signer)
                await conn.execute(
                    insert(ledger_head),
                    {
                        "id": 1,
                        "origin": origin,
                        "size": 0,
                        "root": merkle.EMPTY_ROOT,
                        "checkpoint": note,
                    },
                )
                await conn.execute(
                    insert(checkpoints),
                    {
                        "size": 0,
                        "root": merkle.EMPTY_ROOT,
                        "note": note,
                        "created_at": now or now_time(),
                    },
                )
                return
    if row.origin != origin:
        raise LedgerMismatch(
            f"this database holds the ledger {row.origin!r}, not {origin!r}: "
            "set SCAMBIO_LEDGER_ORIGIN to match or use another database"
        )
    try:
        open_checkpoint(row.checkpoint, signer.verifier(), origin)
    except VerificationError as exc:
        raise LedgerMismatch(
            f"the ledger's latest checkpoint was not signed by this node's key "
            f"({signer.verifier().to_string()}): {exc}. Restore the original key file."
        ) from exc
