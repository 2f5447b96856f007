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
