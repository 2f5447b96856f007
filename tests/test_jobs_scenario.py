"""Three simulated months of a neighbourhood timebank, driven by a controllable clock, with
the scheduled jobs doing their part: auto-confirmations, expiries, reminders, verification,
reconciliation and the monthly co-production reports, whose figures are checked by hand
(and recomputed from an offline export).

The cast (zones from the Milan default: Municipio 6 and Municipio 4):

- Giulia and Marco live in Municipio 6; Anna and Luca in Municipio 4.
- Acme, a company in Municipio 4, employs Luca and sponsors him (care hours); its sponsor
  account `sponsor.acme` also donates staff time to the community pool.

October: Giulia helps Marco with homework (60 min, training); Anna babysits for Giulia
(90 min, childcare; Giulia never confirms, the job does after 7 days); Luca helps Anna
(30 min, health). Acme grants Luca 240 sponsored minutes and donates 120 staff minutes to
the pool. Anna's listing is reminded about, then expires on 1 November.

November: Marco helps Giulia with housing (45), Giulia helps Marco again (30); Luca
spends 60 sponsored minutes on childcare from Anna; the pool grants Marco 50; 100 of
Luca's sponsored minutes expire; Acme matches Luca's volunteering with 30 for the pool. A
plain hold expires and is voided; an exchange accepted on 20 November is never marked done
and expires on 1 December.

December: an urban lab led by Anna for Giulia (who pays her share) and Marco (whose share
the pool pays), 60 minutes, parenting, Municipio 4; November's housing exchange is reversed.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner, RunOutcome
from scambio.reports import stored
from scambio.reports.coproduction import decode_directory
from scambio.reports.offline import check_report
from scambio.store import queries
from scambio.store.commands import Transfer
from scambio.store.db import make_engine
from scambio.store.export import export_ledger
from scambio.store.ledger import LedgerService, require
from scambio.store.tokens import SCOPES, Principal
from scambio.timebank import exchanges, listings, orgs, people
from scambio.timebank.audit import CLI, Actor
from scambio.timebank.context import Timebank

from .conftest import SIGNER, Clock, make_settings

MANAGER = Principal("op-sara", "Sara (manager)", "manager")
M4, M6 = "municipio-4", "municipio-6"


class Person:
    def __init__(self, name: str, member: people.Member) -> None:
        assert member.account_id is not None
        self.name = name
        self.id = member.id
        self.account = member.account_id
        self.principal = Principal(f"tok-{name}", name, "member", member.id, SCOPES, self.account)


@pytest.fixture
async def tb(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Timebank]:
    clock.now = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    settings = make_settings(
        db_url,
        tmp_path,
        SCAMBIO_EXCHANGE_DONE_DAYS="10",
        SCAMBIO_EXCHANGE_CONFIRM_DAYS="7",
        SCAMBIO_LISTING_TTL_DAYS="30",
        SCAMBIO_LISTING_REMINDER_DAYS="7",
        SCAMBIO_PASSWORD_HASH_COST="minimal",
    )
    engine = make_engine(db_url, null_pool=True)
    ledger = LedgerService(engine, SIGNER, settings, clock=clock)
    await ledger.start()
    timebank = Timebank.create(ledger, settings)
    try:
        yield timebank
    finally:
        await timebank.mailer.aclose()
        await ledger.stop()
        await engine.dispose()


class Town:
    def __init__(self, tb: Timebank, clock: Clock) -> None:
        self.tb = tb
        self.clock = clock
        self.runner = JobRunner(tb, ALL_JOBS)
        self.runs: dict[str, list[RunOutcome]] = {}

    def at(self, month: int, day: int, hour: int = 9) -> None:
        year = 2027 if month == 1 else 2026
        moment = datetime(year, month, day, hour, 0, tzinfo=UTC)
        assert moment >= self.clock.now, "time only moves forward"
        self.clock.now = moment

    async def tick(self, month: int, day: int, hour: int = 10) -> dict[str, list[RunOutcome]]:
        """Time passes; every job runs what is due, as the scheduler would."""
        self.at(month, day, hour)
        done: dict[str, list[RunOutcome]] = {}
        for job in ALL_JOBS:
            outcomes = await self.runner.run_due(job.name)
            for outcome in outcomes:
                assert outcome.status == "succeeded", (outcome.job, outcome.error)
            done[job.name] = outcomes
            self.runs.setdefault(job.name, []).extend(outcomes)
        return done

    async def join(self, name: str, zone: str) -> Person:
        member = await people.create(
            self.tb,
            CLI,
            name=name,
            email=f"{name.lower()}@example.org",
            password=None,
            profile=people.clean_profile(self.tb.zones, {"zone": zone}),
        )
        return Person(name, member)

    async def exchange(
        self,
        provider: Person,
        receiver: Person,
        minutes: int,
        area: str,
        *,
        confirm: bool = True,
        done: bool = True,
    ) -> exchanges.Exchange:
        proposal = exchanges.clean_proposal(
            exchange_id=str(uuid.uuid4()),
            provider=provider.account,
            receiver=receiver.account,
            minutes=minutes,
            title=f"{area} help",
            area=area,
        )
        ex, _ = await exchanges.propose(self.tb, provider.principal, proposal)
        ex = await exchanges.accept(self.tb, receiver.principal, ex.id)
        if done:
            ex = await exchanges.mark_done(self.tb, provider.principal, ex.id, minutes)
        if confirm:
            ex = await exchanges.confirm(self.tb, receiver.principal, ex.id)
        return ex

    async def policy(
        self, payer: str, payee: str, minutes: int, rule: str, policy: str, **refs: str
    ) -> None:
        period = self.clock.now.strftime("%Y-%m")
        notes = {"policy": policy, "policy_version": "v1", "period": period, "rule": rule}
        require(
            await self.tb.ledger.transfer(
                Transfer(
                    f"pol.{policy}.{rule}.{period}.{payee.replace(':', '.')}",
                    payer,
                    payee,
                    minutes,
                    refs={**notes, **refs},
                )
            )
        )

    async def report(self, month: str) -> dict[str, Any]:
        async with self.tb.ledger.read() as conn:
            found = await stored.load(conn, month)
        assert found is not None, f"no report for {month}"
        report: dict[str, Any] = msgspec.json.decode(found.document)["report"]
        return report


def row(dimension: str, key: str = "", **figures: Any) -> dict[str, Any]:
    """A report row: every figure zero (reciprocity null) unless given."""
    base: dict[str, Any] = {
        "dimension": dimension,
        "key": key,
        "minutes_exchanged": 0,
        "exchanges": 0,
        "reversed_minutes": 0,
        "active_members": 0,
        "new_members": None if dimension == "area" else 0,
        "reciprocal_members": 0,
        "reciprocity_pct": None,
        "distinct_pairs": 0,
        "new_connections": 0,
        "cross_zone_exchanges": 0,
        "staff_time_minutes": 0,
        "sponsored_granted_minutes": 0,
        "sponsored_spent_minutes": 0,
        "sponsored_expired_minutes": 0,
        "matched_minutes": 0,
        "pool_granted_minutes": 0,
    }
    unknown = set(figures) - set(base)
    assert not unknown, unknown
    return base | figures


async def test_three_months_of_a_timebank_with_its_jobs(
    tb: Timebank, clock: Clock, tmp_path: Path
) -> None:
    town = Town(tb, clock)
    ledger = tb.ledger

    # -- 1 October: people, a company, a sponsor and the pool --------------------------------
    giulia, marco = await town.join("Giulia", M6), await town.join("Marco", M6)
    anna, luca = await town.join("Anna", M4), await town.join("Luca", M4)
    acme = await orgs.create(
        tb, CLI, name="Acme", kind="company", zone=M4, description="a company in Zone 4"
    )
    link = await orgs.propose_link(tb, CLI, acme.id, luca.id, title="nurse")
    await orgs.move_link(tb, Actor("luca", member_id=luca.id), link.id, "accept")
    require(await ledger.open_account("sponsor.acme", "sponsor"))
    require(await ledger.open_account("pool:community", "pool"))

    # -- October -----------------------------------------------------------------------------
    town.at(10, 2, 8)
    listing = await listings.create(
        tb,
        CLI,
        owner=listings.Owner("member", anna.id),
        values=listings.clean_fields(
            tb.zones, {"kind": "offer", "title": "Babysitting", "area": "childcare"}
        ),
    )
    assert listing.expires_at == "2026-11-01T08:00:00.000000Z"
    town.at(10, 5)
    e1 = await town.exchange(giulia, marco, 60, "training_empowerment")
    town.at(10, 6)
    await town.policy("sponsor.acme", luca.account, 240, "grant", "acme-care")
    await town.policy("sponsor.acme", "pool:community", 120, "staff-time", "acme-staff")
    town.at(10, 10)
    e2 = await town.exchange(anna, giulia, 90, "childcare", confirm=False)
    assert e2.confirm_due_at == "2026-10-17T09:00:00.000000Z"
    town.at(10, 12)
    await town.exchange(luca, anna, 30, "health_wellbeing")

    first = await town.tick(10, 16)
    assert first["auto-confirm-exchanges"][0].summary["confirmed"] == 0
    assert first["co-production-report"] == []  # September ended before the ledger began
    # Giulia never confirmed: a week after Anna marked it done, the job does.
    ticked = await town.tick(10, 18)
    (confirming,) = ticked["auto-confirm-exchanges"]
    assert confirming.summary["confirmed_ids"] == [e2.id]
    ticked = await town.tick(10, 26)
    assert ticked["listing-reminders"][0].summary == {"reminded": 1}

    # -- 1 November: the listing expires, October's report is made -------------------------
    ticked = await town.tick(11, 1)
    assert ticked["expire-listings"][0].summary == {"expired": 1}
    (october,) = ticked["co-production-report"]
    assert (october.period, october.summary["minutes_exchanged"]) == ("2026-10", 180)

    # -- November ----------------------------------------------------------------------------
    town.at(11, 3)
    e4 = await town.exchange(marco, giulia, 45, "housing")
    town.at(11, 4)
    await town.exchange(giulia, marco, 30, "training_empowerment")
    town.at(11, 5)
    await town.policy(luca.account, anna.account, 60, "spend", "acme-care", area="childcare")
    town.at(11, 6)
    await town.policy("pool:community", marco.account, 50, "pool-grant", "community-pool")
    town.at(11, 7)
    plain_hold = Transfer(str(uuid.uuid4()), marco.account, anna.account, 15, "", True, 3600)
    require(await ledger.transfer(plain_hold))
    ticked = await town.tick(11, 7, 11)
    assert ticked["expire-holds"][0].summary == {"voided": 1}
    town.at(11, 20)
    e6 = await town.exchange(marco, anna, 20, "parenting", done=False, confirm=False)
    assert e6.done_due_at == "2026-11-30T09:00:00.000000Z"
    town.at(11, 25)
    await town.policy(luca.account, "sponsor.acme", 100, "expiry", "acme-care")
    await town.policy("sponsor.acme", "pool:community", 30, "match", "acme-match")

    # -- 1 December: the exchange never done expires; November's report -------------------
    ticked = await town.tick(12, 1)
    assert ticked["auto-confirm-exchanges"][0].summary["expired_ids"] == [e6.id]
    assert [o.period for o in ticked["co-production-report"]] == ["2026-11"]

    # -- December ----------------------------------------------------------------------------
    town.at(12, 3)
    plan = exchanges.clean_group(
        group_id=str(uuid.uuid4()),
        title="Urban lab: parents of Zone 4",
        minutes=60,
        facilitators=[anna.account],
        participants=[(giulia.account, "self"), (marco.account, "pool")],
        area="parenting",
        zone=M4,
    )
    group, _ = await exchanges.create_group(tb, MANAGER, plan)
    settled = await exchanges.settle_group(tb, MANAGER, group.id, [])
    assert [(t.payer, t.payee, t.minutes) for t in settled.transfers] == [
        (giulia.account, anna.account, 30),
        ("pool:community", anna.account, 30),
    ]
    town.at(12, 4)
    assert e4.settle_index is not None
    require(await ledger.reverse(str(uuid.uuid4()), e4.settle_index, "recorded by mistake"))
    ticked = await town.tick(1, 1)
    assert [o.period for o in ticked["co-production-report"]] == ["2026-12"]

    # -- what the ledger holds now -----------------------------------------------------------
    async with ledger.read() as conn:
        balances = {
            p.name: (await queries.account(conn, p.account)).posted
            for p in (giulia, marco, anna, luca)
        }
        pool = await queries.account(conn, "pool:community")
    assert balances == {"Giulia": -30, "Marco": -40, "Anna": 180, "Luca": 110}
    assert (pool.posted, pool.pending) == (70, 0)
    assert e1.settle_index is not None
    for name in ("verify-ledger", "reconcile-balances"):
        assert {o.status for o in town.runs[name]} == {"succeeded"}, name

    # -- October, by hand ----------------------------------------------------------------------
    report = await town.report("2026-10")
    assert (report["from"], report["to"]) == ("2026-10-01", "2026-11-01")
    assert report["organisations"] == {acme.id: "Acme"}
    exchanged = {"distinct_pairs": 1, "new_connections": 1}
    assert report["rows"] == [
        row("total", minutes_exchanged=180, exchanges=3, active_members=4, new_members=5,
            reciprocal_members=2, reciprocity_pct="50.0", distinct_pairs=3, new_connections=3,
            cross_zone_exchanges=1, staff_time_minutes=120, sponsored_granted_minutes=240),
        row("month", "2026-10", minutes_exchanged=180, exchanges=3, active_members=4,
            new_members=5, reciprocal_members=2, reciprocity_pct="50.0", distinct_pairs=3,
            new_connections=3, cross_zone_exchanges=1, staff_time_minutes=120,
            sponsored_granted_minutes=240),
        row("area", "childcare", minutes_exchanged=90, exchanges=1, active_members=2,
            reciprocity_pct="0.0", cross_zone_exchanges=1, **exchanged),
        row("area", "health_wellbeing", minutes_exchanged=30, exchanges=1, active_members=2,
            reciprocity_pct="0.0", **exchanged),
        row("area", "training_empowerment", minutes_exchanged=60, exchanges=1,
            active_members=2, reciprocity_pct="0.0", **exchanged),
        row("zone", M4, minutes_exchanged=120, exchanges=2, active_members=2, new_members=3,
            reciprocal_members=1, reciprocity_pct="50.0", distinct_pairs=2, new_connections=2,
            cross_zone_exchanges=1, sponsored_granted_minutes=240),
        row("zone", M6, minutes_exchanged=150, exchanges=2, active_members=2, new_members=2,
            reciprocal_members=1, reciprocity_pct="50.0", distinct_pairs=2, new_connections=2,
            cross_zone_exchanges=1),
        row("organisation", acme.id, minutes_exchanged=30, exchanges=1, active_members=1,
            new_members=2, reciprocity_pct="0.0", sponsored_granted_minutes=240, **exchanged),
    ]  # fmt: skip

    # -- November ------------------------------------------------------------------------------
    report = await town.report("2026-11")
    assert report["rows"] == [
        row("total", minutes_exchanged=75, exchanges=2, active_members=2, reciprocal_members=2,
            reciprocity_pct="100.0", distinct_pairs=1, sponsored_spent_minutes=60,
            sponsored_expired_minutes=100, matched_minutes=30, pool_granted_minutes=50),
        row("month", "2026-11", minutes_exchanged=75, exchanges=2, active_members=2,
            reciprocal_members=2, reciprocity_pct="100.0", distinct_pairs=1,
            sponsored_spent_minutes=60, sponsored_expired_minutes=100, matched_minutes=30,
            pool_granted_minutes=50),
        row("area", "childcare", sponsored_spent_minutes=60),
        row("area", "housing", minutes_exchanged=45, exchanges=1, active_members=2,
            reciprocity_pct="0.0", distinct_pairs=1),
        row("area", "training_empowerment", minutes_exchanged=30, exchanges=1,
            active_members=2, reciprocity_pct="0.0", distinct_pairs=1),
        row("zone", M4, sponsored_spent_minutes=60, sponsored_expired_minutes=100),
        row("zone", M6, minutes_exchanged=75, exchanges=2, active_members=2,
            reciprocal_members=2, reciprocity_pct="100.0", distinct_pairs=1,
            pool_granted_minutes=50),
        row("organisation", acme.id, sponsored_spent_minutes=60, sponsored_expired_minutes=100),
    ]  # fmt: skip

    # -- December ------------------------------------------------------------------------------
    report = await town.report("2026-12")
    assert report["rows"] == [
        row("total", minutes_exchanged=15, exchanges=1, reversed_minutes=45, active_members=2,
            reciprocity_pct="0.0", distinct_pairs=1, cross_zone_exchanges=1),
        row("month", "2026-12", minutes_exchanged=15, exchanges=1, reversed_minutes=45,
            active_members=2, reciprocity_pct="0.0", distinct_pairs=1, cross_zone_exchanges=1),
        row("area", "housing", minutes_exchanged=-45, reversed_minutes=45),
        row("area", "parenting", minutes_exchanged=60, exchanges=1, active_members=2,
            reciprocity_pct="0.0", distinct_pairs=1, cross_zone_exchanges=1),
        row("zone", M4, minutes_exchanged=60, exchanges=1, active_members=1,
            reciprocity_pct="0.0", distinct_pairs=1, cross_zone_exchanges=1),
        row("zone", M6, minutes_exchanged=-15, exchanges=1, reversed_minutes=45,
            active_members=1, reciprocity_pct="0.0", distinct_pairs=1, cross_zone_exchanges=1),
    ]  # fmt: skip

    # -- anyone with an export and the directory gets the same three reports --------------------
    out = io.BytesIO()
    await export_ledger(ledger.engine, out, SIGNER.verifier())
    export = tmp_path / "ledger.jsonl"
    export.write_bytes(out.getvalue())
    for month in ("2026-10", "2026-11", "2026-12"):
        async with ledger.read() as conn:
            found = await stored.load(conn, month)
        assert found is not None
        check = check_report(
            found.document.encode(),
            export,
            decode_directory(found.directory),
            trusted_vkey=SIGNER.verifier().to_string(),
        )
        assert check.ok, check.problems
