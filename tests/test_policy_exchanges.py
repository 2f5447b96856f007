"""Paying exchanges with sponsored credit: races, retries and lapsed holds.

The payment of an exchange may have several legs (sponsored credit first, then the
member's own hours), written together. These stories check that it stays idempotent and
race-safe like a one-leg payment: two accepts hold once, a retry after a crash finds the
legs it wrote, two payments competing for the same credit never overdraw it, a lapsed
hold is paid by transfer, and a hold orphaned by a crash is released leg by leg.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scambio.ledger.errors import RuleViolation
from scambio.policy.funding import restricted_account
from scambio.store.ledger import LedgerService
from scambio.timebank import exchange_rules as rules
from scambio.timebank import exchanges
from scambio.timebank.context import Timebank

from .conftest import Clock
from .policy_helpers import MANAGER, Person, Town, policy_text


@pytest.fixture
async def town(ledger: LedgerService, tmp_path: Path) -> AsyncIterator[Town]:
    tb = Timebank.create(ledger, ledger.settings)
    try:
        yield Town(tb, tmp_path / "policies")
    finally:
        await tb.mailer.aclose()


async def sponsored(town: Town, minutes: int = 60, days: int = 90) -> tuple[str, Person, Person]:
    """Acme grants `minutes` of childcare credit to Marco once (for November 2026);
    Lucia looks after children."""
    acme = await town.company("Acme")
    marco = await town.join("Marco")
    await town.employ(acme, marco)
    lucia = await town.join("Lucia")
    town.write(
        "care.toml",
        policy_text(
            "acme-care",
            "grant",
            acme.id,
            {"minutes": minutes, "areas": ["childcare"], "expire_after_days": days},
            start="2026-11",
            end="2026-11",
        ),
    )
    assert (await town.apply()).ok
    assert (await town.run("acme-care", "2026-11")).issued == 1
    return restricted_account(acme.id, marco.id), marco, lucia


async def proposed(town: Town, lucia: Person, marco: Person, minutes: int) -> exchanges.Exchange:
    proposal = exchanges.clean_proposal(
        exchange_id=str(uuid.uuid4()),
        provider=lucia.account,
        receiver=marco.account,
        minutes=minutes,
        title="Babysitting",
        area="childcare",
    )
    ex, _ = await exchanges.propose(town.tb, MANAGER, proposal)
    return ex


async def test_two_accepts_at_once_hold_once(town: Town) -> None:
    credit, marco, lucia = await sponsored(town)
    ex = await proposed(town, lucia, marco, 90)
    first, second = await asyncio.gather(
        exchanges.accept(town.tb, marco.principal, ex.id),
        exchanges.accept(town.tb, MANAGER, ex.id),
    )
    assert first.state == second.state == "accepted"
    assert first.hold_index == second.hold_index
    assert await town.entry_ids(f"xch-{ex.id}") == [f"xch-{ex.id}", f"xch-{ex.id}.1"]
    assert await town.available(credit) == 0
    assert await town.available(marco.account) == -30


async def test_an_accept_retried_after_a_crash_finds_the_holds_it_made(town: Town) -> None:
    credit, marco, lucia = await sponsored(town)
    ex = await proposed(town, lucia, marco, 90)
    # An accept holds (60 sponsored + 30 own) and dies before marking the exchange accepted.
    index = await exchanges._hold(town.tb, ex)
    # Retried now, it would plan differently (the credit is held already): the ledger
    # refuses the first leg's id for a different hold, and the retry takes the holds made.
    accepted = await exchanges.accept(town.tb, marco.principal, ex.id)
    assert (accepted.state, accepted.hold_index) == ("accepted", index)
    assert await town.entry_ids(f"xch-{ex.id}") == [f"xch-{ex.id}", f"xch-{ex.id}.1"]
    done = await exchanges.mark_done(town.tb, MANAGER, ex.id)
    await exchanges.confirm(town.tb, marco.principal, done.id)
    assert (await town.balance(credit), await town.balance(marco.account)) == (0, -30)
    assert await town.balance(lucia.account) == 90


async def test_two_payments_compete_for_the_same_credit_and_never_overdraw_it(
    town: Town,
) -> None:
    credit, marco, lucia = await sponsored(town)
    exs = [await proposed(town, lucia, marco, 60) for _ in range(3)]
    accepted = await asyncio.gather(
        *(exchanges.accept(town.tb, marco.principal, ex.id) for ex in exs)
    )
    assert [a.state for a in accepted] == ["accepted"] * 3
    assert await town.available(credit) == 0
    # 60 sponsored in all; the rest from Marco's own hours (120).
    assert await town.available(marco.account) == -120
    for ex in exs:
        await exchanges.mark_done(town.tb, MANAGER, ex.id)
        await exchanges.confirm(town.tb, marco.principal, ex.id)
    assert (await town.balance(credit), await town.balance(marco.account)) == (0, -120)
    assert await town.total() == (0, 0, 0)


async def test_two_confirmations_at_once_post_each_leg_once(town: Town) -> None:
    credit, marco, lucia = await sponsored(town)
    ex = await town.exchange(lucia, marco, 90, "childcare", confirm=False)
    await exchanges.mark_done(town.tb, MANAGER, ex.id)
    await asyncio.gather(
        exchanges.confirm(town.tb, marco.principal, ex.id),
        exchanges.confirm(town.tb, MANAGER, ex.id),
        exchanges.auto_confirm_due(town.tb),
    )
    posts = [i for i in await town.entry_ids(f"xch-{ex.id}") if i.endswith(":post")]
    assert sorted(posts) == [f"xch-{ex.id}.1:post", f"xch-{ex.id}:post"]
    assert (await town.balance(credit), await town.balance(marco.account)) == (0, -30)


async def test_a_lapsed_sponsored_hold_is_paid_by_transfer_or_by_the_member(
    town: Town, clock: Clock
) -> None:
    credit, marco, lucia = await sponsored(town, minutes=60, days=400)
    ex = await town.exchange(lucia, marco, 90, "childcare", confirm=False)
    await exchanges.dispute(town.tb, marco.principal, ex.id, "only part of it happened")
    # The dispute outlives the holds; the sweep voids both legs.
    clock.advance(seconds=ex.hold_expires_in + 1)
    assert len(await town.ledger.expire_holds()) == 2
    resolved = await exchanges.resolve(town.tb, MANAGER, ex.id, 75, "75 minutes")
    assert (resolved.state, resolved.ledger_due) == ("resolved", None)
    ids = await town.entry_ids(f"xch-{ex.id}")
    assert f"xch-{ex.id}.settle" in ids and f"xch-{ex.id}.1.settle" in ids
    assert (await town.balance(credit), await town.balance(marco.account)) == (0, -15)
    assert await town.balance(lucia.account) == 75


async def test_a_lapsed_hold_whose_credit_expired_is_paid_by_the_member(
    town: Town, clock: Clock
) -> None:
    credit, marco, lucia = await sponsored(town, minutes=60, days=30)
    ex = await town.exchange(lucia, marco, 60, "childcare", confirm=False)
    await exchanges.dispute(town.tb, marco.principal, ex.id, "later")
    clock.advance(seconds=ex.hold_expires_in + 1)
    await town.ledger.expire_holds()
    # Meanwhile the credit expired and went back to Acme.
    await town.run_due()
    assert await town.balance(credit) == 0
    resolved = await exchanges.resolve(town.tb, MANAGER, ex.id, 60, "it happened")
    assert resolved.ledger_due is None
    assert await town.balance(marco.account) == -60
    assert await town.balance(lucia.account) == 60


async def test_a_hold_orphaned_by_a_crash_is_released_leg_by_leg(town: Town) -> None:
    credit, marco, lucia = await sponsored(town)
    ex = await proposed(town, lucia, marco, 90)
    await exchanges.cancel(town.tb, MANAGER, ex.id)
    # An accept that had started makes its holds after the cancellation and dies.
    await exchanges._hold(town.tb, ex)
    assert await town.available(credit) == 0
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.released == [ex.id]
    assert await town.available(credit) == 60
    assert await town.available(marco.account) == 0
    assert await town.total() == (0, 0, 0)


async def test_accept_and_cancel_at_once_leave_no_leg_held(town: Town) -> None:
    credit, marco, lucia = await sponsored(town)
    for _ in range(3):
        ex = await proposed(town, lucia, marco, 90)
        results = await asyncio.gather(
            exchanges.accept(town.tb, marco.principal, ex.id),
            exchanges.cancel(town.tb, MANAGER, ex.id),
            return_exceptions=True,
        )
        async with town.ledger.read() as conn:
            final = await exchanges.get(conn, ex.id)
        assert final is not None
        if final.state == "accepted":
            assert isinstance(results[1], RuleViolation)
            await exchanges.cancel(town.tb, MANAGER, ex.id)
        assert await town.available(credit) == 60
        assert await town.available(marco.account) == 0


async def test_a_recorded_exchange_retried_with_other_minutes_is_a_conflict(town: Town) -> None:
    _credit, marco, lucia = await sponsored(town)
    proposal = exchanges.clean_proposal(
        exchange_id=str(uuid.uuid4()),
        provider=lucia.account,
        receiver=marco.account,
        minutes=90,
        title="Afternoon",
        area="childcare",
    )
    # The ledger payment went through but the exchange row was never written (a crash).
    await exchanges._record_payment(town.tb, proposal)
    other = exchanges.clean_proposal(
        exchange_id=proposal.id,
        provider=lucia.account,
        receiver=marco.account,
        minutes=80,
        title="Afternoon",
        area="childcare",
    )
    with pytest.raises(RuleViolation) as caught:
        await exchanges.record(town.tb, MANAGER, other, None)
    assert caught.value.code == "idempotency-conflict"
    recorded, created = await exchanges.record(town.tb, MANAGER, proposal, None)
    assert created and recorded.state == rules.CONFIRMED
    assert await town.balance(lucia.account) == 90
