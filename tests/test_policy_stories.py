"""Sponsorship policies as worked examples, with the numbers checked by hand.

Acme (a company in Zone 6) sponsors its staff's work-life balance and donates their
time. Each story runs on SQLite and PostgreSQL with the test clock (25 November 2026).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from scambio.ledger.entry import decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import annotations_of
from scambio.policy import runner
from scambio.policy.funding import restricted_account, sponsor_account
from scambio.store.ledger import LedgerService
from scambio.store.tables import entries
from scambio.timebank import authz, exchanges
from scambio.timebank.context import Timebank

from .conftest import Clock
from .policy_helpers import MANAGER, Person, Town, policy_text

CARE = ["childcare", "health_wellbeing"]
ZONES = ["municipio-4", "municipio-6"]


@pytest.fixture
async def town(ledger: LedgerService, tmp_path: Path) -> AsyncIterator[Town]:
    tb = Timebank.create(ledger, ledger.settings)
    try:
        yield Town(tb, tmp_path / "policies")
    finally:
        await tb.mailer.aclose()


async def acme_with_staff(town: Town, n: int) -> tuple[str, list[Person]]:
    acme = await town.company("Acme Servizi")
    staff = []
    for i in range(n):
        person = await town.join(f"Staff{i}")
        await town.employ(acme, person)
        staff.append(person)
    return acme.id, staff


async def refs_of(town: Town, entry_id: str) -> dict[str, str]:
    """The entry's annotations (a hold's expiry left out)."""
    async with town.ledger.read() as conn:
        row = (
            await conn.execute(select(entries.c.canonical).where(entries.c.id == entry_id))
        ).one()
    return annotations_of(decode_entry(bytes(row.canonical)))


# -- grant ---------------------------------------------------------------------------------------


async def test_acme_grants_four_hours_three_spend_on_childcare_the_rest_returns(
    town: Town, clock: Clock
) -> None:
    acme, staff = await acme_with_staff(town, 10)
    nanny = await town.join("Lucia")  # a neighbour who looks after children
    town.write(
        "acme-care.toml",
        policy_text(
            "acme-care",
            "grant",
            acme,
            {"minutes": 240, "areas": CARE, "zones": ZONES, "expire_after_days": 90},
            start="2026-11",
            end="2026-11",
            budget=2400,
        ),
    )
    assert (await town.apply()).ok

    # 1 November's grant: 10 employees x 240 minutes, within the 2400 budget.
    run = await town.run("acme-care", "2026-11")
    assert (run.issued, run.minutes, run.not_issued, run.budget_used) == (10, 2400, 0, 2400)
    assert await town.balance(sponsor_account(acme)) == -2400
    for person in staff:
        assert await town.balance(restricted_account(acme, person.id)) == 240
        assert await town.balance(person.account) == 0
    grant_id = f"pol.acme-care.2026-11.grant.{staff[0].account}"
    assert await refs_of(town, grant_id) == {
        "policy": "acme-care",
        "policy_version": run.version,
        "period": "2026-11",
        "rule": "grant",
    }

    # Three of them pay Lucia for childcare: 90, 150 and 300 minutes. Sponsored credit
    # pays first; the third pays 240 sponsored and 60 of her own.
    await town.exchange(nanny, staff[0], 90, "childcare")
    await town.exchange(nanny, staff[1], 150, "childcare")
    third = await town.exchange(nanny, staff[2], 300, "childcare")
    assert await town.balance(nanny.account) == 540
    assert [await town.balance(restricted_account(acme, p.id)) for p in staff[:3]] == [150, 90, 0]
    assert [await town.balance(p.account) for p in staff[:3]] == [0, 0, -60]
    legs = await town.entry_ids(f"xch-{third.id}")
    assert legs == [
        f"xch-{third.id}",
        f"xch-{third.id}.1",
        f"xch-{third.id}:post",
        f"xch-{third.id}.1:post",
    ]
    spend = await refs_of(town, f"xch-{third.id}")
    assert spend == {
        "exchange": third.id,
        "area": "childcare",
        "zone": "municipio-6",
        "policy": "acme-care",
        "policy_version": run.version,
        "period": "2026-11",
        "rule": "spend",
    }
    assert await refs_of(town, f"xch-{third.id}.1") == {"exchange": third.id, "area": "childcare"}

    # Housing is not what Acme sponsors: the first employee pays that with her own hours.
    await town.exchange(nanny, staff[0], 30, "housing")
    assert await town.balance(restricted_account(acme, staff[0].id)) == 150
    assert await town.balance(staff[0].account) == -30

    # December has not started: nothing is granted for it yet.
    early = await town.run("acme-care", "2026-12")
    assert early.skipped is not None and "has not started" in early.skipped
    # Re-running November changes nothing.
    size = await town.size()
    again = await town.run("acme-care", "2026-11")
    assert (again.issued, again.already) == (0, 10)
    assert await town.size() == size

    # 90 days later (23 February 2027) the credit expires and goes back to Acme:
    # 150 + 90 + 0 + 7 x 240 = 1920 minutes.
    clock.advance(days=91)
    summary = await town.run_due()
    (expiry,) = summary.runs
    assert expiry.returned == 1920
    assert expiry.issued == 9  # the third employee had nothing left: no entry for her
    assert await town.balance(sponsor_account(acme)) == -2400 + 1920
    for person in staff:
        assert await town.balance(restricted_account(acme, person.id)) == 0
    assert await refs_of(town, f"pol.acme-care.2026-11.expiry.{staff[0].account}") == {
        "policy": "acme-care",
        "policy_version": run.version,
        "period": "2026-11",
        "rule": "expiry",
    }
    assert await town.total() == (0, 0, 0)
    size = await town.size()
    assert (await town.run_due()).runs[0].issued == 0
    assert await town.size() == size


async def test_expired_credit_can_go_to_the_pool_and_held_minutes_stay(
    town: Town, clock: Clock
) -> None:
    acme, staff = await acme_with_staff(town, 1)
    nanny = await town.join("Lucia")
    town.write(
        "care.toml",
        policy_text(
            "acme-care",
            "grant",
            acme,
            {"minutes": 240, "areas": CARE, "expire_after_days": 30, "expire_to": "pool"},
            start="2026-11",
            end="2026-11",
        ),
    )
    assert (await town.apply()).ok
    await town.run("acme-care", "2026-11")
    # An exchange accepted (100 held) but not yet confirmed when the credit expires.
    held = await town.exchange(nanny, staff[0], 100, "childcare", confirm=False)
    clock.advance(days=31)
    summary = await town.run_due()
    assert summary.runs[0].returned == 140
    assert await town.balance("pool:community") == 140
    assert await town.available(restricted_account(acme, staff[0].id)) == 0
    # The held 100 are still the member's sponsored credit, spent when confirmed.
    await exchanges.mark_done(town.tb, MANAGER, held.id)
    await exchanges.confirm(town.tb, staff[0].principal, held.id)
    assert await town.balance(restricted_account(acme, staff[0].id)) == 0
    assert await town.balance(nanny.account) == 100
    assert await town.balance(staff[0].account) == 0


async def test_a_partly_used_hold_releases_sponsored_credit_last(town: Town) -> None:
    acme, staff = await acme_with_staff(town, 1)
    nanny = await town.join("Lucia")
    town.write(
        "care.toml",
        policy_text("acme-care", "grant", acme, {"minutes": 60, "areas": CARE}, start="2026-11"),
    )
    assert (await town.apply()).ok
    await town.run("acme-care", "2026-11")
    # 90 agreed: 60 sponsored, 30 own held. Only 45 happened: all sponsored.
    ex = await town.exchange(nanny, staff[0], 90, "childcare", confirm=False)
    assert await town.available(staff[0].account) == -30
    await exchanges.mark_done(town.tb, MANAGER, ex.id, 45)
    await exchanges.confirm(town.tb, staff[0].principal, ex.id)
    assert await town.balance(restricted_account(acme, staff[0].id)) == 15
    assert await town.balance(staff[0].account) == 0
    assert await town.available(staff[0].account) == 0
    assert await town.balance(nanny.account) == 45
    assert f"xch-{ex.id}.1:void" in await town.entry_ids()


async def test_cancelling_releases_every_leg(town: Town) -> None:
    acme, staff = await acme_with_staff(town, 1)
    nanny = await town.join("Lucia")
    town.write(
        "care.toml",
        policy_text("acme-care", "grant", acme, {"minutes": 60, "areas": CARE}, start="2026-11"),
    )
    assert (await town.apply()).ok
    await town.run("acme-care", "2026-11")
    ex = await town.exchange(nanny, staff[0], 90, "childcare", confirm=False)
    await exchanges.cancel(town.tb, staff[0].principal, ex.id)
    assert await town.available(restricted_account(acme, staff[0].id)) == 60
    assert await town.available(staff[0].account) == 0
    assert await town.total() == (0, 0, 0)


async def test_a_recorded_exchange_and_a_workshop_spend_sponsored_credit_too(
    town: Town,
) -> None:
    acme, staff = await acme_with_staff(town, 2)
    nanny = await town.join("Lucia")
    town.write(
        "care.toml",
        policy_text("acme-care", "grant", acme, {"minutes": 60, "areas": CARE}, start="2026-11"),
    )
    assert (await town.apply()).ok
    await town.run("acme-care", "2026-11")
    proposal = exchanges.clean_proposal(
        exchange_id="00000000-0000-4000-8000-000000000001",
        provider=nanny.account,
        receiver=staff[0].account,
        minutes=45,
        title="An afternoon",
        area="health_wellbeing",
    )
    recorded, created = await exchanges.record(town.tb, MANAGER, proposal, "offline")
    assert created
    again, created = await exchanges.record(town.tb, MANAGER, proposal, "offline")
    assert not created and again.settle_index == recorded.settle_index
    assert await town.balance(restricted_account(acme, staff[0].id)) == 15
    assert await town.balance(staff[0].account) == 0
    plan = exchanges.clean_group(
        group_id="00000000-0000-4000-8000-000000000002",
        title="Parenting lab",
        minutes=60,
        facilitators=[nanny.account],
        participants=[(staff[0].account, "self"), (staff[1].account, "self")],
        area="childcare",
        zone="municipio-6",
    )
    group, _ = await exchanges.create_group(town.tb, MANAGER, plan)
    settled = await exchanges.settle_group(town.tb, MANAGER, group.id, [])
    assert settled.state == "settled"
    # 30 each: the first has 15 sponsored left (then 15 own), the second 60 sponsored.
    assert await town.balance(restricted_account(acme, staff[0].id)) == 0
    assert await town.balance(staff[0].account) == -15
    assert await town.balance(restricted_account(acme, staff[1].id)) == 30
    assert await town.balance(staff[1].account) == 0
    assert await town.balance(nanny.account) == 45 + 60
    assert await town.total() == (0, 0, 0)


async def test_the_budget_caps_issuance_and_reports_the_rest(town: Town) -> None:
    acme, staff = await acme_with_staff(town, 10)
    town.write(
        "care.toml",
        policy_text(
            "acme-care",
            "grant",
            acme,
            {"minutes": 240, "areas": CARE},
            start="2026-11",
            budget=1000,
        ),
    )
    assert (await town.apply()).ok
    run = await town.run("acme-care", "2026-11")
    # Four whole grants (960), 40 minutes to the fifth, nothing for the other five (in
    # the order of their member ids).
    assert (run.minutes, run.not_issued, run.budget_used) == (1000, 1400, 1000)
    in_order = sorted(staff, key=lambda p: p.id)
    granted = [await town.balance(restricted_account(acme, p.id)) for p in in_order]
    assert granted == [240, 240, 240, 240, 40, 0, 0, 0, 0, 0]
    assert [p.status for p in run.postings].count(runner.SHORT) == 5
    assert await town.balance(sponsor_account(acme)) == -1000


# -- match ---------------------------------------------------------------------------------------


async def test_an_employee_tutors_five_hours_and_the_match_credits_the_pool(
    town: Town, clock: Clock
) -> None:
    acme, (anna, bruno) = await acme_with_staff(town, 2)
    pupil, other, third = await town.join("Marco"), await town.join("Sara"), await town.join("Pina")
    town.write(
        "match.toml",
        policy_text(
            "acme-match",
            "match",
            acme,
            {"ratio": "1:1", "cap_minutes": 480},
            start="2026-11",
        ),
    )
    assert (await town.apply()).ok
    await town.exchange(anna, pupil, 300, "training_empowerment")  # five hours of tutoring
    await town.exchange(bruno, other, 360, "training_empowerment")
    await town.exchange(bruno, third, 240, "housing")  # ten hours in all: capped at 8
    early = await town.run("acme-match", "2026-11")
    assert early.skipped is not None and "has not ended" in early.skipped
    clock.advance(days=6)  # 1 December 2026
    summary = await town.run_due()
    (match,) = summary.runs
    assert match.period == "2026-11"
    assert await town.balance("pool:community") == 300 + 480
    assert await town.balance(sponsor_account(acme)) == -780
    capped = next(p for p in match.postings if p.subject == bruno.account)
    assert capped.minutes == 480 and "capped at 480" in capped.why
    assert await refs_of(town, f"pol.acme-match.2026-11.match.{anna.account}") == {
        "policy": "acme-match",
        "policy_version": match.version,
        "period": "2026-11",
        "rule": "match",
    }
    size = await town.size()
    assert (await town.run_due()).runs[0].issued == 0
    assert await town.size() == size


# -- staff time ----------------------------------------------------------------------------------


async def test_staff_time_on_company_time_is_donated_up_to_the_pledge(
    town: Town, clock: Clock
) -> None:
    acme, _staff = await acme_with_staff(town, 1)
    learner = await town.join("Pina")
    town.write(
        "staff.toml",
        policy_text(
            "acme-staff",
            "staff_time",
            acme,
            {"pledge_minutes": 2400},
            every="quarter",
            start="2026-Q4",
        ),
    )
    assert (await town.apply()).ok
    # Acme's staff run two digital-skills sessions for the community (Acme provides).
    await town.exchange(f"o-{acme}", learner, 120, "training_empowerment")
    await town.exchange(f"o-{acme}", learner, 60, "employment_flexible_work")
    clock.advance(days=37)  # 1 January 2027: Q4 2026 is over
    (run,) = (await town.run_due()).runs
    assert run.period == "2026-Q4"
    (donation,) = run.postings
    assert donation.minutes == 180 and "short by 2220" in donation.why
    assert await town.balance("pool:community") == 180
    assert await town.balance(f"o-{acme}") == 0


# -- the pool ------------------------------------------------------------------------------------


async def test_managers_grant_pool_minutes_within_the_caps(town: Town) -> None:
    pina = await town.join("Pina")
    nino = await town.join("Nino")
    await town.ledger.open_account("pool:community", "pool")
    await town.ledger.open_account("sponsor:fund", "sponsor")
    from scambio.store.commands import Transfer

    await town.ledger.transfer(Transfer("fund-1", "sponsor:fund", "pool:community", 1000))
    town.write(
        "pool.toml",
        policy_text("solidarity", "pool", None, {"member_cap_minutes": 120}, budget=200),
    )
    assert (await town.apply()).ok

    async def grant(who: Person, minutes: int, request: str) -> runner.PoolGrant:
        return await runner.grant_from_pool(
            town.tb,
            authz.actor(MANAGER),
            "solidarity",
            request_id=request,
            member_id=who.id,
            minutes=minutes,
            reason="cannot reciprocate yet",
        )

    first = await grant(pina, 90, "00000000-0000-4000-8000-00000000000a")
    assert (first.minutes, first.not_issued, first.created) == (90, 0, True)
    second = await grant(pina, 60, "00000000-0000-4000-8000-00000000000b")
    assert (second.minutes, second.not_issued) == (30, 30)  # her cap is 120 a month
    third = await grant(nino, 120, "00000000-0000-4000-8000-00000000000c")
    assert (third.minutes, third.not_issued) == (80, 40)  # 200 a month in all
    with pytest.raises(RuleViolation) as refused:
        await grant(nino, 10, "00000000-0000-4000-8000-00000000000d")
    assert refused.value.code == "pool-cap-reached"
    retry = await grant(pina, 90, "00000000-0000-4000-8000-00000000000a")
    assert (retry.created, retry.entry_index) == (False, first.entry_index)
    with pytest.raises(RuleViolation) as conflict:
        await grant(pina, 91, "00000000-0000-4000-8000-00000000000a")
    assert conflict.value.code == "idempotency-conflict"
    assert await town.balance(pina.account) == 120
    assert await town.balance(nino.account) == 80
    assert await town.balance("pool:community") == 1000 - 200
    async with town.ledger.read() as conn:
        row = (
            await conn.execute(
                select(entries.c.canonical).where(entries.c.idx == first.entry_index)
            )
        ).one()
    entry = decode_entry(bytes(row.canonical))
    assert entry.memo == "cannot reciprocate yet"
    assert entry.refs["rule"] == "pool-grant"


async def test_a_new_month_brings_a_new_grant_and_old_entries_keep_their_version(
    town: Town, clock: Clock
) -> None:
    acme, staff = await acme_with_staff(town, 1)
    town.write(
        "care.toml",
        policy_text("acme-care", "grant", acme, {"minutes": 60, "areas": CARE}, start="2026-11"),
    )
    assert (await town.apply()).ok
    first = (await town.run_due()).runs[0]
    town.write(
        "care.toml",
        policy_text("acme-care", "grant", acme, {"minutes": 90, "areas": CARE}, start="2026-11"),
    )
    report = await town.apply()
    assert report.files[0].changed
    clock.now += timedelta(days=6)  # December
    second = (await town.run_due()).runs[0]
    assert second.version != first.version
    assert await town.balance(restricted_account(acme, staff[0].id)) == 150
    nov = await refs_of(town, f"pol.acme-care.2026-11.grant.{staff[0].account}")
    dec = await refs_of(town, f"pol.acme-care.2026-12.grant.{staff[0].account}")
    assert (nov["policy_version"], dec["policy_version"]) == (first.version, second.version)
