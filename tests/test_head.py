"""A ledger is tied to its origin and its key: the service refuses to start otherwise."""

from __future__ import annotations

import pytest

from scambio.ledger.note import Signer
from scambio.store.db import make_engine
from scambio.store.head import LedgerMismatch, ensure_head

from .conftest import ORIGIN, SIGNER


async def test_ledger_refuses_another_origin_or_key(db_url: str) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        await ensure_head(engine, ORIGIN, SIGNER)
        await ensure_head(engine, ORIGIN, SIGNER)  # idempotent for the right pair
        with pytest.raises(LedgerMismatch, match=r"holds the ledger 'test\.scambio\.local/ledger'"):
            await ensure_head(engine, "other.example/ledger", SIGNER)
        stranger = Signer.generate(ORIGIN)
        with pytest.raises(LedgerMismatch, match="not signed by this node's key"):
            await ensure_head(engine, ORIGIN, stranger)
    finally:
        await engine.dispose()
