"""Exchanges as worked examples from Milano Sei l'Altro, through the timebank service.

Each test reads as a short story and runs on SQLite and PostgreSQL (the `ledger` fixture:
a started ledger service with a controllable clock). The people act through `Principal`s
like those the API builds from their tokens, so the service's own checks of who may do
what are exercised here too; the HTTP layer has its own tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from scambio.ledger import merkle
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import open_checkpoint
from scambio.store import queries
from scambio.store.commands import Transfer
from scambio.store.exchanges_tables import exchanges as exchanges_table
from scambio.store.ledger import LedgerService
from scambio.store.people_tables import audit_log, outbox
from scambio.store.tables import entries
from scambio.store.tokens import SCOPES, Principal
from scambio.timebank import exchange_rules as rules
from scambio.timebank import exchanges, orgs, people
from scambio.timebank.audit import CLI
from scambio.timebank.context import Timebank
from scambio.timebank.exchanges import Exchange, Proposal

from .conftest import ORIGIN, SIGNER, Clock

MANAGER = Principal("op-sara", "Sara (manager)", "manager")


@dataclass
class Person:
    name: str
    id: str
    account: str
    principal: Principal


class Community:
    """A timebank with people in it, and shorthand for what they do."""

    def __init__(self, tb: Timebank) -> None:
        self.tb = tb

    @property
    def ledger(self) -> LedgerService:
        return self.tb.ledger

    async def join(
        self, name: str, *, email: bool = True, scopes: frozenset[str] = SCOPES, **limits: int
    ) -> Person:
        member = await people.create(
            self.tb,
            CLI,
            name=name,
            email=f"{name.lower()}@example.org" if email else None,
            password=None,
            limits=dict(limits) or None,
        )
        assert member.account_id is not None
        principal = Principal(f"tok-{name}", name, "member", member.id, scopes, member.account_id)
        return Person(name, member.id, member.account_id, principal)

    async def propose(
        self, by: Principal, provider: Person, receiver: Person, minutes: int, title: str
    ) -> Exchange:
        proposal = exchanges.clean_proposal(
            exchange_id=str(uuid.uuid4()),
            provider=provider.account,
            receiver=receiver.account,
            minutes=minutes,
            title=title,
        )
        ex, created = await exchanges.propose(self.tb, by, proposal)
        assert created
        return ex

    async def balances(self, *people_: Person | str) -> dict[str, tuple[int, int]]:
        """(posted, net pending) per account."""
        ids = [p if isinstance(p, str) else p.account for p in people_]
        async with self.ledger.read() as conn:
            views = [await queries.account(conn, i) for i in ids]
        return {v.id: (v.posted, v.pending) for v in views}

    async def count(self, table: object) -> int:
        async with self.ledger.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]

    async def entry_ids(self) -> list[str]:
        async with self.ledger.read() as conn:
            return [r.id for r in await conn.execute(select(entries.c.id).order_by(entries.c.idx))]


@pytest.fixture
async def town(ledger: LedgerService) -> AsyncIterator[Community]:
    tb = Timebank.create(ledger, ledger.settings)
    try:
        yield Community(tb)
    finally:
        await tb.mailer.aclose()


def refused(caught: pytest.ExceptionInfo[RuleViolation], code: str) -> RuleViolation:
    assert caught.value.code == code, f"{caught.value.code}: {caught.value.detail}"
    return caught.value


# -- the worked example -------------------------------------------------------------------------


async def test_giulia_helps_marco_with_homework_and_the_ledger_proves_it(
    town: Community, clock: Clock
) -> None:
    # Giulia offers homework help in Zone 6; Marco requests it for his son.
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    # They agree 90 minutes; Giulia proposes from her side (from her offer).
    ex = await town.propose(giulia.principal, giulia, marco, 90, "Homework help, Zone 6")
    assert (ex.state, ex.payer, ex.payee) == ("proposed", marco.account, giulia.account)

    # Marco accepts: 90 minutes are held on his account.
    ex = await exchanges.accept(town.tb, marco.principal, ex.id)
    assert ex.state == "accepted" and ex.hold_index is not None
    assert await town.balances(marco, giulia) == {
        marco.account: (0, -90),
        giulia.account: (0, 90),
    }

    # Giulia marks it done: it took 75 minutes.
    clock.advance(days=2)
    ex = await exchanges.mark_done(town.tb, giulia.principal, ex.id, 75)
    assert (ex.state, ex.actual_minutes) == ("done", 75)

    # Marco confirms: Marco -75, Giulia +75, nothing pending.
    ex = await exchanges.confirm(town.tb, marco.principal, ex.id)
    assert (ex.state, ex.final_minutes, ex.ledger_due) == ("confirmed", 75, None)
    assert await town.balances(marco, giulia) == {
        marco.account: (-75, 0),
        giulia.account: (75, 0),
    }

    # Every entry the exchange produced carries its id; the memo names it.
    assert [i for i in await town.entry_ids() if i.startswith("xch-")] == [
        f"xch-{ex.id}",
        f"xch-{ex.id}:post",
    ]
    assert ex.settle_index is not None
    async with town.ledger.read() as conn:
        row = (
            await conn.execute(
                select(entries.c.canonical, entries.c.tree_size).where(
                    entries.c.idx == ex.settle_index
                )
            )
        ).one()
        note = await queries.checkpoint_at(conn, int(row.tree_size))
        hold = (
            await conn.execute(select(entries.c.canonical).where(entries.c.idx == ex.hold_index))
        ).one()
        assert note is not None
        # The post entry is covered by the next signed checkpoint, and its inclusion
        # proof verifies against the root that the node's key signed.
        checkpoint = open_checkpoint(note, SIGNER.verifier(), ORIGIN)
        assert checkpoint.size > ex.settle_index
        leaf, proof = await queries.inclusion_proof(conn, ex.settle_index, checkpoint.size)
    assert leaf == merkle.leaf_hash(bytes(row.canonical))
    merkle.verify_inclusion(leaf, ex.settle_index, checkpoint.size, proof, checkpoint.root)
    assert f"exchange {ex.id}".encode() in bytes(hold.canonical)

    # Marco was told of the proposal, Giulia of the acceptance, Marco to confirm.
    async with town.ledger.read() as conn:
        mails = [
            (r.kind, r.recipient)
            for r in await conn.execute(select(outbox.c.kind, outbox.c.recipient))
            if r.kind.startswith("exchange-")
        ]
    assert mails == [
        ("exchange-proposed", "marco@example.org"),
        ("exchange-accepted", "giulia@example.org"),
        ("exchange-done", "marco@example.org"),
    ]


async def test_marco_requests_help_and_giulia_accepts_it(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    # This time Marco proposes, from his request; Giulia is the counterpart.
    ex = await town.propose(marco.principal, giulia, marco, 60, "Maths for Luca")
    assert ex.proposer_side == "receiver"
    with pytest.raises(RuleViolation, match="may not accept") as caught:
        await exchanges.accept(town.tb, marco.principal, ex.id)
    refused(caught, "forbidden")
    ex = await exchanges.accept(town.tb, giulia.principal, ex.id)
    assert await town.balances(marco) == {marco.account: (0, -60)}


# -- auto-confirmation and expiry ----------------------------------------------------------------


async def test_an_unanswered_exchange_confirms_itself_after_seven_days(
    town: Community, clock: Clock
) -> None:
    rosa = await town.join("Rosa")
    anna = await town.join("Anna")
    ex = await town.propose(rosa.principal, rosa, anna, 45, "Shopping for Anna")
    await exchanges.accept(town.tb, anna.principal, ex.id)
    ex = await exchanges.mark_done(town.tb, rosa.principal, ex.id, None)
    assert ex.actual_minutes == 45
    # Six days on, nothing is due yet.
    clock.advance(days=6)
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.confirmed == []
    # A day later Anna still has not answered: the job confirms for her.
    clock.advance(days=1, seconds=1)
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.confirmed == [ex.id]
    assert await town.balances(rosa, anna) == {rosa.account: (45, 0), anna.account: (-45, 0)}
    async with town.ledger.read() as conn:
        confirmed = await exchanges.get(conn, ex.id)
    assert confirmed is not None
    assert (confirmed.state, confirmed.closed_by) == ("confirmed", exchanges.SYSTEM_ACTOR.label)
    # Running it again changes nothing.
    assert await exchanges.auto_confirm_due(town.tb) == exchanges.Sweep()


async def test_auto_confirmation_waits_for_a_suspended_party(town: Community, clock: Clock) -> None:
    rosa = await town.join("Rosa")
    anna = await town.join("Anna")
    ex = await town.propose(rosa.principal, rosa, anna, 45, "Shopping")
    await exchanges.accept(town.tb, anna.principal, ex.id)
    await exchanges.mark_done(town.tb, rosa.principal, ex.id, None)
    await people.suspend(town.tb, CLI, rosa.id, reason="checking a complaint")
    clock.advance(days=8)
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.confirmed == [] and "account-suspended" in sweep.skipped[ex.id]
    await people.reactivate(town.tb, CLI, rosa.id)
    assert (await exchanges.auto_confirm_due(town.tb)).confirmed == [ex.id]


async def test_an_exchange_never_marked_done_expires_and_releases_the_hold(
    town: Community, clock: Clock
) -> None:
    paolo = await town.join("Paolo")
    lucia = await town.join("Lucia")
    ex = await town.propose(paolo.principal, paolo, lucia, 120, "Moving boxes")
    await exchanges.accept(town.tb, lucia.principal, ex.id)
    clock.advance(days=91)
    with pytest.raises(RuleViolation, match="had to be marked done") as caught:
        await exchanges.mark_done(town.tb, paolo.principal, ex.id, None)
    refused(caught, "exchange-lapsed")
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.expired == [ex.id]
    assert await town.balances(lucia) == {lucia.account: (0, 0)}
    assert f"xch-{ex.id}:void" in await town.entry_ids()


# -- declining, cancelling, disputes -----------------------------------------------------------


async def test_decline_and_cancel_release_the_hold(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    # Marco declines one proposal: nothing was ever held.
    first = await town.propose(giulia.principal, giulia, marco, 30, "Reading together")
    first = await exchanges.decline(town.tb, marco.principal, first.id, "not this week")
    assert (first.state, first.reason, first.ledger_due) == ("declined", "not this week", None)
    # He accepts another, then Giulia falls ill and cancels: the hold is voided.
    second = await town.propose(giulia.principal, giulia, marco, 90, "Homework help")
    await exchanges.accept(town.tb, marco.principal, second.id)
    assert await town.balances(marco) == {marco.account: (0, -90)}
    second = await exchanges.cancel(town.tb, giulia.principal, second.id, "I am ill")
    assert second.state == "cancelled" and second.settle_index is not None
    assert await town.balances(marco, giulia) == {marco.account: (0, 0), giulia.account: (0, 0)}
    # A proposal can be withdrawn by its proposer, not by the counterpart.
    third = await town.propose(giulia.principal, giulia, marco, 20, "Quick question")
    with pytest.raises(RuleViolation, match="cancel is not possible") as caught:
        await exchanges.cancel(town.tb, marco.principal, third.id)
    refused(caught, "invalid-transition")
    await exchanges.cancel(town.tb, giulia.principal, third.id)


async def test_a_dispute_resolved_in_part_by_a_manager(town: Community, clock: Clock) -> None:
    luigi = await town.join("Luigi")
    carla = await town.join("Carla")
    ex = await town.propose(carla.principal, luigi, carla, 120, "Fixing a bicycle")
    await exchanges.accept(town.tb, luigi.principal, ex.id)
    await exchanges.mark_done(town.tb, luigi.principal, ex.id, 120)
    # Carla says Luigi left after an hour; she disputes instead of confirming.
    with pytest.raises(RuleViolation, match="may not dispute") as caught:
        await exchanges.dispute(town.tb, MANAGER, ex.id, "x")
    refused(caught, "forbidden")
    ex = await exchanges.dispute(town.tb, carla.principal, ex.id, "he stayed an hour")
    assert ex.state == "disputed"
    # The confirmation deadline passes: a disputed exchange is not auto-confirmed.
    clock.advance(days=10)
    assert (await exchanges.auto_confirm_due(town.tb)).confirmed == []
    # Neither party can resolve it; Sara, the manager, posts 60 of the 120 minutes.
    with pytest.raises(RuleViolation, match="may not resolve") as caught:
        await exchanges.resolve(town.tb, carla.principal, ex.id, 120, "mine")
    refused(caught, "forbidden")
    with pytest.raises(RuleViolation, match="more than the 120 held") as caught:
        await exchanges.resolve(town.tb, MANAGER, ex.id, 121, "too many")
    refused(caught, "exceeds-agreed")
    ex = await exchanges.resolve(town.tb, MANAGER, ex.id, 60, "both agree it was an hour")
    assert (ex.state, ex.final_minutes) == ("resolved", 60)
    assert await town.balances(luigi, carla) == {luigi.account: (60, 0), carla.account: (-60, 0)}
    # The resolution is in the audit log; a repeat changes nothing; another amount is refused.
    async with town.ledger.read() as conn:
        actions = [
            r.action
            for r in await conn.execute(
                select(audit_log.c.action).where(audit_log.c.subject_id == ex.id)
            )
        ]
    assert actions == ["exchange.resolved"]
    assert (await exchanges.resolve(town.tb, MANAGER, ex.id, 60, "again")).version == ex.version
    with pytest.raises(RuleViolation, match="resolve is not possible"):
        await exchanges.resolve(town.tb, MANAGER, ex.id, 30, "changed my mind")


async def test_a_dispute_resolved_by_releasing_the_hold(town: Community) -> None:
    luigi = await town.join("Luigi")
    carla = await town.join("Carla")
    ex = await town.propose(carla.principal, luigi, carla, 50, "Painting")
    await exchanges.accept(town.tb, luigi.principal, ex.id)
    # Luigi disputes before doing anything: Carla was never home.
    await exchanges.dispute(town.tb, luigi.principal, ex.id, "nobody opened the door")
    ex = await exchanges.resolve(town.tb, MANAGER, ex.id, 0, "no exchange took place")
    assert (ex.state, ex.final_minutes) == ("resolved", 0)
    assert await town.balances(luigi, carla) == {luigi.account: (0, 0), carla.account: (0, 0)}
    assert f"xch-{ex.id}:void" in await town.entry_ids()


async def test_a_resolution_after_the_hold_expired_pays_by_transfer(
    town: Community, clock: Clock
) -> None:
    luigi = await town.join("Luigi")
    carla = await town.join("Carla")
    ex = await town.propose(carla.principal, luigi, carla, 50, "Painting")
    await exchanges.accept(town.tb, luigi.principal, ex.id)
    await exchanges.dispute(town.tb, carla.principal, ex.id, "unclear")
    # The dispute sits for longer than the hold lives, and the ledger's sweep voids it.
    clock.advance(seconds=ex.hold_expires_in + 1)
    assert len(await town.ledger.expire_holds()) == 1
    ex = await exchanges.resolve(town.tb, MANAGER, ex.id, 40, "agreed on 40")
    assert (ex.state, ex.ledger_due) == ("resolved", None)
    assert f"xch-{ex.id}.settle" in await town.entry_ids()
    assert await town.balances(luigi, carla) == {luigi.account: (40, 0), carla.account: (-40, 0)}


# -- races ---------------------------------------------------------------------------------------


async def _done(town: Community, minutes: int = 90) -> tuple[Person, Person, Exchange]:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    ex = await town.propose(giulia.principal, giulia, marco, minutes, "Homework")
    await exchanges.accept(town.tb, marco.principal, ex.id)
    ex = await exchanges.mark_done(town.tb, giulia.principal, ex.id, minutes)
    return giulia, marco, ex


async def test_two_confirmations_at_once_post_once(town: Community) -> None:
    giulia, marco, ex = await _done(town)
    first, second = await asyncio.gather(
        exchanges.confirm(town.tb, marco.principal, ex.id),
        exchanges.confirm(town.tb, MANAGER, ex.id),
    )
    assert first.state == second.state == "confirmed"
    assert first.settle_index == second.settle_index is not None
    assert (await town.entry_ids()).count(f"xch-{ex.id}:post") == 1
    assert await town.balances(marco, giulia) == {marco.account: (-90, 0), giulia.account: (90, 0)}
    # And a retry later (say, after a timeout) is answered with the exchange as it is.
    again = await exchanges.confirm(town.tb, marco.principal, ex.id)
    assert again.version == first.version == ex.version + 1


async def test_confirm_and_dispute_at_once_resolve_once(town: Community) -> None:
    giulia, marco, ex = await _done(town)
    results = await asyncio.gather(
        exchanges.confirm(town.tb, marco.principal, ex.id),
        exchanges.dispute(town.tb, giulia.principal, ex.id, "wait"),
        return_exceptions=True,
    )
    outcomes = [r.state if isinstance(r, Exchange) else r.code for r in results]  # type: ignore[union-attr]
    assert sorted(outcomes) in (
        ["confirmed", "invalid-transition"],
        ["disputed", "invalid-transition"],
    )
    posts = (await town.entry_ids()).count(f"xch-{ex.id}:post")
    assert posts == (1 if "confirmed" in outcomes else 0)


async def test_concurrent_accept_and_cancel_leave_no_hold_behind(town: Community) -> None:
    for _ in range(3):
        giulia = await town.join(f"G{uuid.uuid4().hex[:6]}")
        marco = await town.join(f"M{uuid.uuid4().hex[:6]}")
        ex = await town.propose(giulia.principal, giulia, marco, 30, "Race")
        results = await asyncio.gather(
            exchanges.accept(town.tb, marco.principal, ex.id),
            exchanges.cancel(town.tb, giulia.principal, ex.id),
            return_exceptions=True,
        )
        async with town.ledger.read() as conn:
            final = await exchanges.get(conn, ex.id)
        assert final is not None
        pending = (await town.balances(marco))[marco.account][1]
        if final.state == "accepted":
            assert pending == -30
            assert isinstance(results[1], RuleViolation)
            assert results[1].code == "invalid-transition"
        else:
            assert final.state == "cancelled"
            assert pending == 0, "a cancelled exchange must not keep a hold"


async def test_a_hold_left_by_a_crashed_accept_is_released_by_the_job(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    ex = await town.propose(giulia.principal, giulia, marco, 30, "Homework")
    # Giulia cancels the proposal (nothing is held yet, so her void finds nothing)...
    await exchanges.cancel(town.tb, giulia.principal, ex.id)
    # ...then an accept that had already started makes its hold and dies before it can
    # notice the cancellation and void it.
    hold = Transfer(ex.entry_id, marco.account, giulia.account, 30, rules.memo(ex.id), True, 3600)
    assert not isinstance(await town.ledger.transfer(hold), RuleViolation)
    assert await town.balances(marco) == {marco.account: (0, -30)}
    sweep = await exchanges.auto_confirm_due(town.tb)
    assert sweep.released == [ex.id]
    assert await town.balances(marco) == {marco.account: (0, 0)}
    assert (await exchanges.auto_confirm_due(town.tb)).released == []


async def test_two_accepts_at_once_hold_once(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    ex = await town.propose(giulia.principal, giulia, marco, 30, "Race")
    first, second = await asyncio.gather(
        exchanges.accept(town.tb, marco.principal, ex.id),
        exchanges.accept(town.tb, MANAGER, ex.id),
    )
    assert first.state == second.state == "accepted"
    assert (await town.entry_ids()).count(f"xch-{ex.id}") == 1
    assert await town.balances(marco) == {marco.account: (0, -30)}


async def test_confirm_after_cancel_is_refused(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    ex = await town.propose(giulia.principal, giulia, marco, 30, "Homework")
    await exchanges.accept(town.tb, marco.principal, ex.id)
    await exchanges.cancel(town.tb, marco.principal, ex.id)
    with pytest.raises(RuleViolation, match="is cancelled: confirm is not possible") as caught:
        await exchanges.confirm(town.tb, marco.principal, ex.id)
    assert refused(caught, "invalid-transition").fields["current_state"] == "cancelled"
    assert f"xch-{ex.id}:post" not in await town.entry_ids()


# -- who may do what -----------------------------------------------------------------------------


async def test_a_member_cannot_accept_or_confirm_someone_elses_exchange(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    bruno = await town.join("Bruno")
    ex = await town.propose(giulia.principal, giulia, marco, 30, "Homework")
    # To Bruno the exchange does not exist.
    for act in (exchanges.accept, exchanges.confirm):
        with pytest.raises(RuleViolation, match="does not exist") as caught:
            await act(town.tb, bruno.principal, ex.id)
        refused(caught, "exchange-not-found")
    # Bruno cannot propose that Marco pays Giulia either.
    proposal = Proposal(str(uuid.uuid4()), giulia.account, marco.account, 30, "Sneaky")
    with pytest.raises(RuleViolation, match="accounts you hold") as caught:
        await exchanges.propose(town.tb, bruno.principal, proposal)
    refused(caught, "forbidden")
    # Giulia, the provider, cannot confirm her own payment.
    await exchanges.accept(town.tb, marco.principal, ex.id)
    await exchanges.mark_done(town.tb, giulia.principal, ex.id, None)
    with pytest.raises(RuleViolation, match="may not confirm") as caught:
        await exchanges.confirm(town.tb, giulia.principal, ex.id)
    refused(caught, "forbidden")


async def test_spending_needs_the_transfer_scope(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco", scopes=frozenset({"read", "write"}))
    ex = await town.propose(giulia.principal, giulia, marco, 30, "Homework")
    with pytest.raises(RuleViolation, match="'transfer' scope") as caught:
        await exchanges.accept(town.tb, marco.principal, ex.id)
    refused(caught, "forbidden")
    # Declining spends nothing: a read/write token may.
    await exchanges.decline(town.tb, marco.principal, ex.id)


async def test_a_receiver_over_their_limit_cannot_accept(town: Community) -> None:
    giulia = await town.join("Giulia")
    amina = await town.join("Amina", min_balance=-60)
    ex = await town.propose(giulia.principal, giulia, amina, 90, "Italian lessons")
    with pytest.raises(RuleViolation, match="30 short") as caught:
        await exchanges.accept(town.tb, amina.principal, ex.id)
    refused(caught, "limit-exceeded")
    async with town.ledger.read() as conn:
        still = await exchanges.get(conn, ex.id)
    assert still is not None and still.state == "proposed"


async def test_an_organisation_offers_a_room_and_its_admin_acts_for_it(town: Community) -> None:
    paolo = await town.join("Paolo")
    giulia = await town.join("Giulia")
    acme = await orgs.create(
        town.tb, CLI, name="Acme", kind="company", zone=None, description="", admin_member_id=None
    )
    assert acme.account_id is not None
    await orgs.add_admin(town.tb, CLI, acme.id, paolo.id)
    paolo_for_acme = Principal(
        "tok-paolo",
        "Paolo",
        "member",
        paolo.id,
        SCOPES,
        paolo.account,
        frozenset({acme.id}),
        frozenset({acme.account_id}),
    )
    room = Person("Acme", acme.id, acme.account_id, paolo_for_acme)
    ex = await town.propose(paolo_for_acme, room, giulia, 120, "Meeting room for a lab")
    await exchanges.accept(town.tb, giulia.principal, ex.id)
    await exchanges.mark_done(town.tb, paolo_for_acme, ex.id, None)
    # Paolo himself (without his admin role) may not act for Acme.
    with pytest.raises(RuleViolation, match="does not exist"):
        await exchanges.cancel(town.tb, paolo.principal, ex.id)
    await exchanges.confirm(town.tb, giulia.principal, ex.id)
    assert await town.balances(acme.account_id) == {acme.account_id: (120, 0)}


# -- idempotent proposals ------------------------------------------------------------------------


async def test_a_proposal_retried_is_the_same_proposal(town: Community) -> None:
    giulia = await town.join("Giulia")
    marco = await town.join("Marco")
    proposal = exchanges.clean_proposal(
        exchange_id=str(uuid.uuid4()),
        provider=giulia.account,
        receiver=marco.account,
        minutes=90,
        title="  Homework   help ",
    )
    assert proposal.title == "Homework help"
    first, created = await exchanges.propose(town.tb, giulia.principal, proposal)
    again, created_again = await exchanges.propose(town.tb, giulia.principal, proposal)
    assert (created, created_again) == (True, False) and again == first
    other = Proposal(proposal.id, giulia.account, marco.account, 60, "Homework help")
    with pytest.raises(RuleViolation, match="minutes differs") as caught:
        await exchanges.propose(town.tb, giulia.principal, other)
    refused(caught, "idempotency-conflict")
    assert await town.count(exchanges_table) == 1


# -- a manager records for an offline member ------------------------------------------------------


async def test_sara_records_an_afternoon_of_company_for_signora_pina(town: Community) -> None:
    # Signora Pina, 88, has no email and no smartphone; Francesca keeps her company on
    # Thursdays. Sara, the community manager, records it from the paper form.
    pina = await town.join("Pina", email=False)
    francesca = await town.join("Francesca")
    proposal = exchanges.clean_proposal(
        exchange_id=str(uuid.uuid4()),
        provider=francesca.account,
        receiver=pina.account,
        minutes=120,
        title="Company and a walk",
        area="health_wellbeing",
    )
    ex, created = await exchanges.record(town.tb, MANAGER, proposal, "paper form, 3 March")
    assert created and ex.state == "confirmed"
    assert (ex.recorded_by, ex.recorded_reason) == (
        "token op-sara (manager: Sara (manager))",
        "paper form, 3 March",
    )
    assert await town.balances(pina, francesca) == {
        pina.account: (-120, 0),
        francesca.account: (120, 0),
    }
    async with town.ledger.read() as conn:
        stored = (
            await conn.execute(select(entries.c.canonical).where(entries.c.id == ex.entry_id))
        ).one()
        audit_rows = list(
            await conn.execute(
                select(audit_log.c.action, audit_log.c.reason).where(
                    audit_log.c.subject_id == ex.id
                )
            )
        )
    assert b"recorded by a manager" in bytes(stored.canonical)
    assert [tuple(r) for r in audit_rows] == [("exchange.recorded", "paper form, 3 March")]
    # Recording again with the same id is a harmless retry; a member may not record.
    again, created = await exchanges.record(town.tb, MANAGER, proposal, "paper form, 3 March")
    assert not created and again.id == ex.id
    with pytest.raises(RuleViolation, match="only a community manager") as caught:
        await exchanges.record(town.tb, francesca.principal, proposal, None)
    refused(caught, "forbidden")
    assert await town.balances(pina) == {pina.account: (-120, 0)}


# -- thanks ---------------------------------------------------------------------------------------


async def test_thanks_once_per_party_after_the_exchange(town: Community) -> None:
    giulia, marco, ex = await _done(town)
    with pytest.raises(RuleViolation, match="thank is not possible") as caught:
        await exchanges.thank(town.tb, marco.principal, ex.id, "Grazie!")
    refused(caught, "invalid-transition")
    await exchanges.confirm(town.tb, marco.principal, ex.id)
    note = await exchanges.thank(town.tb, marco.principal, ex.id, "  Grazie, Luca ha capito!  ")
    assert (note.from_account, note.to_account, note.message) == (
        marco.account,
        giulia.account,
        "Grazie, Luca ha capito!",
    )
    with pytest.raises(RuleViolation, match="already thanked") as caught:
        await exchanges.thank(town.tb, marco.principal, ex.id, "again")
    refused(caught, "already-thanked")
    await exchanges.thank(town.tb, giulia.principal, ex.id, "A pleasure")
    for bad, code in (("", "invalid-field"), ("x" * 501, "invalid-field")):
        with pytest.raises(RuleViolation, match="message") as caught:
            await exchanges.thank(town.tb, giulia.principal, ex.id, bad)
        refused(caught, code)
    with pytest.raises(RuleViolation, match="people in an exchange") as caught:
        await exchanges.thank(town.tb, MANAGER, ex.id, "well done")
    refused(caught, "forbidden")
    async with town.ledger.read() as conn:
        received = await exchanges.received_thanks(conn, giulia.account)
    assert [t.message for t in received] == ["Grazie, Luca ha capito!"]


# -- group exchanges -------------------------------------------------------------------------------


async def _lab(
    town: Community, paid_by: list[str], **limits: int
) -> tuple[list[Person], list[Person], exchanges.Group]:
    facilitators = [await town.join(f"Facilitator{n}") for n in range(2)]
    participants = [
        await town.join(f"Participant{n}", **(limits if n == 3 else {})) for n in range(8)
    ]
    plan = exchanges.clean_group(
        group_id=str(uuid.uuid4()),
        title="Urban lab: the Zone 6 courtyard",
        minutes=120,
        facilitators=[f.account for f in facilitators],
        participants=[(p.account, paid) for p, paid in zip(participants, paid_by, strict=True)],
        area="housing",
    )
    group, created = await exchanges.create_group(town.tb, MANAGER, plan)
    assert created and group.state == "planned"
    return facilitators, participants, group


async def test_an_urban_lab_paid_by_its_participants(town: Community) -> None:
    facilitators, participants, group = await _lab(town, ["self"] * 8)
    group = await exchanges.settle_group(town.tb, MANAGER, group.id, [])
    assert group.state == "settled" and all(t.entry_index is not None for t in group.transfers)
    balances = await town.balances(*facilitators, *participants)
    assert [balances[f.account] for f in facilitators] == [(120, 0), (120, 0)]
    assert {balances[p.account] for p in participants} == {(-30, 0)}
    ids = [i for i in await town.entry_ids() if i.startswith("grp-")]
    assert ids == [f"grp-{group.id}.{n}" for n in range(len(group.transfers))]
    # Settling again is answered with the settlement made.
    assert (await exchanges.settle_group(town.tb, MANAGER, group.id, [])).transfers == (
        group.transfers
    )


async def test_an_urban_lab_paid_by_the_community_pool(town: Community) -> None:
    facilitators, participants, group = await _lab(town, ["pool"] * 8)
    # The pool is opened on first use, empty: it cannot pay yet, and nothing moves.
    with pytest.raises(RuleViolation, match="the pool pool:community cannot pay") as caught:
        await exchanges.settle_group(town.tb, MANAGER, group.id, [])
    assert refused(caught, "group-settlement-failed").fields["participant"] == "pool:community"
    assert await town.balances("pool:community") == {"pool:community": (0, 0)}
    # A company donates 300 minutes to the pool; now the lab settles, nobody owes anything.
    sponsor_opened = await town.ledger.open_account("sponsor:acme", "sponsor")
    assert not isinstance(sponsor_opened, RuleViolation)
    donation = Transfer(str(uuid.uuid4()), "sponsor:acme", "pool:community", 300, "donation")
    assert not isinstance(await town.ledger.transfer(donation), RuleViolation)
    group = await exchanges.settle_group(town.tb, MANAGER, group.id, [])
    balances = await town.balances(*facilitators, *participants, "pool:community")
    assert balances["pool:community"] == (60, 0)
    assert [balances[f.account] for f in facilitators] == [(120, 0), (120, 0)]
    assert {balances[p.account] for p in participants} == {(0, 0)}


async def test_one_participant_over_their_limit_stops_the_whole_settlement(
    town: Community,
) -> None:
    _facilitators, participants, group = await _lab(town, ["self"] * 8, min_balance=-10)
    before = await town.entry_ids()
    with pytest.raises(RuleViolation, match="Participant3") as caught:
        await exchanges.settle_group(town.tb, MANAGER, group.id, [])
    problem = refused(caught, "group-settlement-failed")
    assert problem.fields["participant"] == participants[3].account
    assert problem.fields["member"] == participants[3].id
    assert (problem.fields["cause"], problem.fields["shortfall"]) == ("limit-exceeded", 20)
    assert await town.entry_ids() == before
    async with town.ledger.read() as conn:
        planned = await exchanges.get_group(conn, group.id)
    assert planned is not None and planned.state == "planned"
    assert planned.last_error is not None and "limit-exceeded" in planned.last_error
    # Sara marks Participant3 absent (they left early); the other seven share the cost.
    group = await exchanges.settle_group(town.tb, MANAGER, group.id, [participants[3].account])
    balances = await town.balances(*participants)
    assert balances[participants[3].account] == (0, 0)
    paid = sorted(-balances[p.account][0] for p in participants if p != participants[3])
    assert sum(paid) == 240 and paid[-1] - paid[0] <= 1
