from scambio.store import queries
from scambio.store.commands import Appended, Transfer
from scambio.store.ledger import LedgerService

from .conftest import new_id


async def test_a_transfer_moves_minutes_and_is_checkpointed(ledger: LedgerService) -> None:
    await ledger.open_account("giulia", "member")
    await ledger.open_account("marco", "member")
    result = await ledger.transfer(Transfer(new_id(), "marco", "giulia", 90, "homework help"))
    assert isinstance(result, Appended)
    async with ledger.read() as conn:
        assert (await queries.account(conn, "giulia")).posted == 90
        assert (await queries.account(conn, "marco")).posted == -90
        assert (await queries.head(conn)).size == 3


async def test_a_malformed_request_fails_alone_not_its_batch(ledger: LedgerService) -> None:
    import asyncio

    from scambio.ledger.errors import RuleViolation

    await ledger.open_account("ada", "member")
    await ledger.open_account("bea", "member")
    good, nul, far = await asyncio.gather(
        ledger.transfer(Transfer(new_id(), "ada", "bea", 5)),
        ledger.transfer(Transfer(new_id(), "ada\x00x", "bea", 5)),
        ledger.transfer(Transfer(new_id(), "ada", "bea", 5, hold=True, expires_in=10**12)),
    )
    assert isinstance(good, Appended)
    assert isinstance(nul, RuleViolation) and nul.code == "invalid-account-id"
    assert isinstance(far, RuleViolation) and far.code == "invalid-hold"
    assert "hold_expires_in must be between 1 and" in far.detail
    async with ledger.read() as conn:
        assert (await queries.account(conn, "bea")).posted == 5
