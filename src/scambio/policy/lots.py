"""Which sponsored credit is still unspent: a replay of one restricted account.

A restricted account receives grants (lots), each expiring some days after it was
granted. Spending draws on the lots that expire soonest first, so that as little as
possible expires; an expiry returns what is left of its lot. The ledger records only
amounts, so what is left of each lot is recomputed by replaying the account's posted
movements in ledger order - the same answer every time, from the ledger alone.

Holds are not spending: minutes an open exchange holds still belong to their lot until
the exchange is confirmed. When a lot expires while some of it is held, the expiry
returns only what is available; the held minutes are spent when the exchange is
confirmed, or (if it is cancelled) stay as the member's sponsored credit and are spent
first next time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

GRANTED: Final = "grant"
EXPIRED: Final = "expiry"
#: Any other posted debit (an exchange paid) or credit (a payment reversed).
SPENT: Final = "spend"
REFUNDED: Final = "refund"


@dataclass(frozen=True, slots=True)
class Movement:
    """One posted movement of a restricted account, in ledger order."""

    index: int
    what: str
    minutes: int
    #: For grants and expiries: the lot's key (policy and period).
    lot: tuple[str, str] | None = None
    #: For grants: when the lot expires.
    expires_at: str | None = None


@dataclass(slots=True)
class LotState:
    key: tuple[str, str]
    granted: int
    expires_at: str
    remaining: int
    expired: bool = False
    order: int = 0


@dataclass(slots=True)
class Replay:
    lots: dict[tuple[str, str], LotState] = field(default_factory=dict)
    #: Minutes no lot accounts for (a refund after every lot expired).
    residue: int = 0

    def fifo(self) -> list[LotState]:
        return sorted(self.lots.values(), key=lambda lot: (lot.expires_at, lot.order))


def replay(movements: list[Movement]) -> Replay:
    """Replay a restricted account's movements (in ledger order) into its lots."""
    state = Replay()
    for move in sorted(movements, key=lambda m: m.index):
        if move.what == GRANTED and move.lot is not None:
            state.lots[move.lot] = LotState(
                move.lot,
                move.minutes,
                move.expires_at or "",
                move.minutes,
                order=len(state.lots),
            )
        elif move.what == EXPIRED and move.lot is not None and move.lot in state.lots:
            lot = state.lots[move.lot]
            lot.remaining -= move.minutes
            lot.expired = True
        elif move.what == SPENT:
            left = move.minutes
            for lot in state.fifo():
                if left == 0:
                    break
                take = min(lot.remaining, left)
                lot.remaining -= take
                left -= take
            state.residue -= left
        elif move.what == REFUNDED:
            back = move.minutes
            for lot in state.fifo():
                if back == 0:
                    break
                if lot.expired:
                    continue
                give = min(lot.granted - lot.remaining, back)
                lot.remaining += give
                back -= give
            state.residue += back
    return state
