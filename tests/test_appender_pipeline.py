"""The appender builds batch n+1 while batch n commits, and never answers before a commit.

Batch n+1 is built on the state batch n will leave, reading without the head lock; its
write checks the head under the lock in the same round trip. These tests make that path
run (many concurrent requests, small batches), make it fail (a second appender on the same
database moves the head), and check that a request the database refuses fails alone.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from scambio.ledger.entry import decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.commands import Appended, Outcome, Transfer
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService

from .conftest import ORIGIN, SIGNER, Clock, make_settings, new_id

HOT = ("ada", "bea", "cai", "dan")


async def _service(db_url: str, tmp_path: Path, batch: int, clock: Clock) -> LedgerService:
    settings = make_settings(db_url, tmp_path, SCAMBIO_BATCH_SIZE=str(batch))
    service = LedgerService(make_engine(db_url, null_pool=True), SIGNER, settings, clock=clock)
    await service.start()
    return service


@pytest.fixture
async def small_batches(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[LedgerService]:
    service = await _service(db_url, tmp_path, 8, clock)
    for name in HOT:
        await service.open_account(name, "member", -100, 100)
    try:
        yield service
    finally:
        await service.stop()
        await service.engine.dispose()


async def _traffic(service: LedgerService, count: int, seed: int) -> list[tuple[str, Outcome]]:
    rng = random.Random(seed)

    async def one() -> tuple[str, Outcome]:
        payer, payee = rng.sample(HOT, 2)
        transfer = Transfer(new_id(), payer, payee, rng.randint(1, 40))
        return transfer.id, await service.transfer(transfer)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _check_ledger(service: LedgerService, acked: dict[str, int]) -> None:
    """Every acknowledged transfer is stored once at its index; the audit passes."""
    report = await verify_database(service.engine, SIGNER.verifier(), ORIGIN)
    async with service.read() as conn:
        stored = {decode_entry(e.canonical).id: e.index async for e in queries.stream_entries(conn)}
        balances = [(await queries.account(conn, name)).posted for name in HOT]
    assert report.size == len(stored)
    for entry_id, index in acked.items():
        assert stored[entry_id] == index
    assert sum(balances) == 0
    assert all(-100 <= b <= 100 for b in balances), balances


async def test_batches_are_built_ahead_of_the_commit_before_them(
    small_batches: LedgerService,
) -> None:
    service = small_batches
    results = await _traffic(service, 400, seed=1)
    acked = {i: o.index for i, o in results if isinstance(o, Appended)}
    refused = [o for _, o in results if isinstance(o, RuleViolation)]
    # Tight limits on four hot accounts: some transfers are refused, most go through.
    assert len(acked) > 200
    assert {r.code for r in refused} <= {"limit-exceeded"}
    appender = service.appender
    assert appender.built_ahead > 0, (appender.batches, appender.built_ahead)
    assert appender.rebuilt == 0
    await _check_ledger(service, acked)


async def test_a_second_appender_moving_the_head_makes_a_batch_build_again(
    small_batches: LedgerService, db_url: str, tmp_path: Path, clock: Clock
) -> None:
    # Two services on one database (as two processes would be): each one's batches built
    # ahead are invalidated whenever the other commits in between.
    other = await _service(db_url, tmp_path / "other", 8, clock)
    try:
        first, second = await asyncio.gather(
            _traffic(small_batches, 300, seed=2), _traffic(other, 300, seed=3)
        )
    finally:
        await other.stop()
        await other.engine.dispose()
    acked = {i: o.index for i, o in first + second if isinstance(o, Appended)}
    assert len(acked) > 300
    assert small_batches.appender.rebuilt + other.appender.rebuilt > 0
    assert len(set(acked.values())) == len(acked), "two transfers acknowledged at one index"
    await _check_ledger(small_batches, acked)


async def _poison(service: LedgerService) -> None:
    """A trigger that refuses any posting to the account `poison`, as a database would
    refuse a value that slipped past validation."""
    async with service.engine.begin() as conn:
        if service.engine.dialect.name == "postgresql":
            await conn.execute(
                text(
                    "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.account_id = 'poison' THEN RAISE EXCEPTION 'poisoned' "
                    "USING ERRCODE = '22023'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON postings FOR EACH ROW "
                    "EXECUTE FUNCTION poison()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON postings "
                    "WHEN NEW.account_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                )
            )


async def test_a_request_the_database_refuses_fails_alone(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    service = await _service(db_url, tmp_path, 100, clock)
    try:
        for name in (*HOT, "poison"):
            await service.open_account(name, "member", None, None)
        await _poison(service)
        transfers = [Transfer(new_id(), "ada", "bea", 1) for _ in range(10)]
        transfers.insert(5, Transfer(new_id(), "cai", "poison", 7))
        outcomes = await asyncio.gather(
            *(service.transfer(t) for t in transfers), return_exceptions=True
        )
        bad = outcomes.pop(5)
        assert all(isinstance(o, Appended) for o in outcomes), outcomes
        if service.engine.dialect.name == "postgresql":
            # A value the database refuses (SQLSTATE class 22) is the request's fault: 422.
            assert isinstance(bad, RuleViolation) and bad.code == "unstorable"
        else:
            assert isinstance(bad, Exception) and "poisoned" in str(bad)
        # The good transfers committed; the refused one wrote nothing.
        async with service.read() as conn:
            assert (await queries.account(conn, "bea")).posted == 10
            assert (await queries.account(conn, "cai")).posted == 0
        # And the appender goes on.
        again = await service.transfer(Transfer(new_id(), "bea", "ada", 3))
        assert isinstance(again, Appended)
    finally:
        await service.stop()
        await service.engine.dispose()
