"""Dependencies handlers share: the ledger service put on `app.state` by the lifespan."""

from __future__ import annotations

from litestar.datastructures import State

from scambio.store.ledger import LedgerService


def provide_ledger(state: State) -> LedgerService:
    service: LedgerService = state.ledger
    return service
