"""Properties of sponsorship policies, checked with hypothesis.

Pure parts (fast, many examples): issuance never exceeds the budget; the same inputs give
the same postings; a period decided once issues nothing more; a payment never spends
sponsored credit on an area or zone its policy does not name, and pays exactly what it
should; the lot replay conserves minutes.

End to end (a fresh database per example, SQLite and PostgreSQL): random companies,
grants, budgets and exchanges in random areas, run at random times. After each scenario
every debit of a restricted account is an expiry or a payment for an eligible area and
zone, no period issued more than its budget, all balances sum to zero, and running again
changes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from scambio.ledger.entry import KIND_POST, decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import annotations_of
from scambio.policy import lots
from scambio.policy.builtin import GrantKind, GrantParams, MatchKind, MatchParams
from scambio.policy.funding import Credit, allocate, split
from scambio.policy.kinds import Context, Given, Member, PolicyInfo, load_kinds
from scambio.policy.model import parse_policy
from scambio.policy.runner import decide
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.policy_tables import policy_issues
from scambio.store.tables import entries, postings
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.context import Timebank

from .conftest import REQUIRE_POSTGRES, SIGNER, Clock, Postgres, make_settings
from .policy_helpers import Town, policy_text

AREAS = sorted(AREA_IDS)
ZONES = ["municipio-4", "municipio-6", "municipio-1"]
SPONSOR = "0123456789abcdef"

# -- pure properties ---------------------------------------------------------------------------


def members_of(n: int) -> tuple[Member, ...]:
    return tuple(
        Member(
            member_id=f"{i:016x}",
            account=f"m-{i:016x}",
            restricted=f"restricted:{SPONSOR}:{i:016x}",
            zone="municipio-6",
        )
        for i in range(n)
    )


def context(n: int, given: tuple[Given, ...] = (), budget: int | None = None) -> Context:
    return Context(
        policy=PolicyInfo(
            id="p",
            kind="grant",
            version="v" * 64,
            sponsor=SPONSOR,
            sponsor_account=f"sponsor:{SPONSOR}",
            org_account=f"o-{SPONSOR}",
            budget_minutes=budget,
        ),
        period="2026-11",
        period_start="2026-11-01T00:00:00.000000Z",
        period_end="2026-12-01T00:00:00.000000Z",
        now="2026-11-02T00:00:00.000000Z",
        members=members_of(n),
        given=given,
    )


def a_policy(budget: int | None) -> Any:
    return SimpleNamespace(id="p", version="v" * 64, budget_minutes=budget, sponsor=SPONSOR)


def done_rows(decisions: list[Any]) -> dict[tuple[str, str, str], Any]:
    return {
        (d.period, d.proposed.rule, d.proposed.subject): SimpleNamespace(
            state="done" if d.action == "issue" else "short",
            entry_id=d.entry_id,
            minutes=d.minutes,
            payer=d.payer,
            payee=d.payee,
            memo=d.memo,
            version=d.version,
            entry_index=None,
        )
        for d in decisions
        if d.action in ("issue", "short")
    }


@settings(max_examples=300, deadline=None)
@given(
    minutes=st.integers(1, 600),
    n=st.integers(0, 30),
    budget=st.none() | st.integers(1, 10_000),
    used=st.integers(0, 10_000),
)
def test_grants_never_exceed_the_budget_and_a_rerun_issues_nothing(
    minutes: int, n: int, budget: int | None, used: int
) -> None:
    params = GrantParams(minutes=minutes, areas=("childcare",))
    ctx = context(n, budget=budget)
    proposals = GrantKind().propose(params, ctx)
    assert proposals == GrantKind().propose(params, ctx)  # same inputs, same postings
    if budget is not None:
        used = min(used, budget)
    decisions = decide(a_policy(budget), "2026-11", proposals, {}, used)
    assert decisions == decide(a_policy(budget), "2026-11", proposals, {}, used)
    issued = sum(d.minutes for d in decisions if d.action == "issue")
    wanted = minutes * n
    if budget is None:
        assert issued == wanted
    else:
        assert issued == min(wanted, budget - used) <= budget - used
    assert len({d.entry_id for d in decisions}) == len(decisions)
    again = decide(a_policy(budget), "2026-11", proposals, done_rows(decisions), used + issued)
    assert not [d for d in again if d.action == "issue" and d.proposed.counts]
    assert sum(d.minutes for d in again if d.action == "issue") == 0 or budget is None


GIFTS = st.lists(
    st.builds(
        lambda who, minutes, area, zone: Given(
            account=f"m-{who:016x}",
            source="exchange",
            id=str(uuid.UUID(int=minutes * 7 + who)),
            minutes=minutes,
            area=area,
            zone=zone,
            at="2026-11-10T00:00:00.000000Z",
        ),
        st.integers(0, 4),
        st.integers(1, 900),
        st.sampled_from([*AREAS, None]),
        st.sampled_from([*ZONES, None]),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(
    gifts=GIFTS,
    num=st.integers(1, 3),
    den=st.integers(1, 3),
    cap=st.integers(1, 900),
    areas=st.lists(st.sampled_from(AREAS), unique=True, max_size=3),
    budget=st.none() | st.integers(1, 3000),
)
def test_matches_respect_the_ratio_the_cap_and_the_budget(
    gifts: list[Given], num: int, den: int, cap: int, areas: list[str], budget: int | None
) -> None:
    params = MatchParams(cap_minutes=cap, ratio=f"{num}:{den}", areas=tuple(areas))
    ctx = context(5, tuple(gifts), budget)
    proposals = MatchKind().propose(params, ctx)
    for p in proposals:
        given = sum(
            g.minutes for g in gifts if g.account == p.subject and (not areas or g.area in areas)
        )
        assert p.minutes == min(given * num // den, cap) > 0
        assert p.payee == "pool:community"
    decisions = decide(a_policy(budget), "2026-11", proposals, {}, 0)
    issued = sum(d.minutes for d in decisions if d.action == "issue")
    assert issued == min(sum(p.minutes for p in proposals), budget or 10**9)


CREDITS = st.lists(
    st.builds(
        lambda i, available, areas, zones: Credit(
            account=f"restricted:{i:016x}:{0:016x}",
            org_id=f"{i:016x}",
            available=available,
            policy_id=f"p{i}",
            version="v" * 64,
            period="2026-11",
            areas=tuple(areas),
            zones=tuple(zones),
        ),
        st.integers(0, 5),
        st.integers(0, 500),
        st.lists(st.sampled_from(AREAS), unique=True, min_size=1, max_size=3),
        st.lists(st.sampled_from(ZONES), unique=True, max_size=2),
    ),
    max_size=5,
    unique_by=lambda c: c.account,
)


@settings(max_examples=500, deadline=None)
@given(
    minutes=st.integers(1, 6000),
    credits=CREDITS,
    area=st.sampled_from([*AREAS, None]),
    zone=st.sampled_from([*ZONES, None]),
    final=st.integers(0, 6000),
)
def test_a_payment_spends_sponsored_credit_only_where_it_may_and_first(
    minutes: int, credits: list[Credit], area: str | None, zone: str | None, final: int
) -> None:
    legs = split(minutes, "m-me", credits, area, zone)
    assert sum(leg.minutes for leg in legs) == minutes
    assert all(leg.minutes > 0 for leg in legs)
    by_account = {c.account: c for c in credits}
    sponsored = [leg for leg in legs if leg.sponsored]
    for leg in sponsored:
        credit = by_account[leg.payer]
        assert credit.covers(area, zone)
        assert area in credit.areas and (not credit.zones or zone in credit.zones)
        assert leg.minutes <= credit.available
        assert leg.refs["rule"] == "spend"
    assert legs[-1].payer == "m-me" or not [leg for leg in legs if not leg.sponsored]
    assert [leg.sponsored for leg in legs] == sorted((leg.sponsored for leg in legs), reverse=True)
    usable = sum(c.available for c in credits if c.covers(area, zone))
    if len(sponsored) < 3:
        assert sum(leg.minutes for leg in sponsored) == min(minutes, usable)
    paid = min(final, minutes)
    amounts = allocate(paid, [leg.minutes for leg in legs])
    assert sum(amounts) == paid
    assert all(0 <= a <= leg.minutes for a, leg in zip(amounts, legs, strict=True))
    # Sponsored legs are paid in full before the member's own hours pay anything.
    for i, leg in enumerate(legs):
        if not leg.sponsored and amounts[i] > 0:
            assert all(amounts[j] == legs[j].minutes for j in range(i))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["grant", "spend", "expire", "refund"]), st.integers(1, 300)),
        max_size=30,
    )
)
def test_the_lot_replay_conserves_minutes(steps: list[tuple[str, int]]) -> None:
    moves: list[lots.Movement] = []
    balance = 0
    granted = 0
    expired = 0
    for index, (what, minutes) in enumerate(steps):
        if what == "grant":
            key = ("p", f"2026-{index:02d}")
            moves.append(lots.Movement(index, lots.GRANTED, minutes, key, f"2027-01-{index:02d}"))
            balance += minutes
            granted += minutes
        elif what == "spend" and balance:
            take = min(minutes, balance)
            moves.append(lots.Movement(index, lots.SPENT, take))
            balance -= take
        elif what == "refund":
            moves.append(lots.Movement(index, lots.REFUNDED, minutes))
            balance += minutes
        elif what == "expire":
            replayed = lots.replay(moves)
            open_lots = [lot for lot in replayed.fifo() if not lot.expired]
            if open_lots:
                lot = open_lots[0]
                amount = max(0, min(lot.remaining, balance))
                if amount:
                    moves.append(lots.Movement(index, lots.EXPIRED, amount, lot.key))
                    balance -= amount
                    expired += amount
    state = lots.replay(moves)
    assert sum(lot.remaining for lot in state.lots.values()) + state.residue == balance
    assert all(lot.remaining >= 0 for lot in state.lots.values())
    assert all(lot.remaining <= lot.granted for lot in state.lots.values())


# -- end to end ----------------------------------------------------------------------------------


@dataclass
class Scenario:
    employees: int
    minutes: int
    budget: int | None
    areas: list[str]
    zones: list[str]
    expire_after_days: int
    exchanges: list[tuple[int, int, str, str, str]]  # employee, minutes, area, zone, ending
    days: list[int]


SCENARIOS = st.builds(
    Scenario,
    employees=st.integers(1, 3),
    minutes=st.integers(30, 300),
    budget=st.none() | st.integers(30, 600),
    areas=st.lists(st.sampled_from(AREAS), unique=True, min_size=1, max_size=3),
    zones=st.lists(st.sampled_from(ZONES[:2]), unique=True, max_size=2),
    expire_after_days=st.integers(5, 60),
    exchanges=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(1, 200),
            st.sampled_from(AREAS),
            st.sampled_from(ZONES),
            st.sampled_from(["confirm", "partial", "cancel", "open", "record"]),
        ),
        max_size=5,
    ),
    days=st.lists(st.integers(1, 40), min_size=1, max_size=3),
)


async def play(town: Town, clock: Clock, s: Scenario) -> None:
    from scambio.timebank import exchanges

    from .policy_helpers import MANAGER

    acme = await town.company("Acme")
    staff = []
    for i in range(s.employees):
        person = await town.join(f"E{i}", zone=ZONES[i % 3])
        await town.employ(acme, person)
        staff.append(person)
    helper = await town.join("Helper")
    params: dict[str, Any] = {
        "minutes": s.minutes,
        "areas": s.areas,
        "expire_after_days": s.expire_after_days,
    }
    if s.zones:
        params["zones"] = s.zones
    town.write("g.toml", policy_text("grant-p", "grant", acme.id, params, budget=s.budget))
    assert (await town.apply()).ok
    await town.run_due()
    days = iter(s.days)
    for n, (who, minutes, area, _zone, ending) in enumerate(s.exchanges):
        receiver = staff[who % len(staff)]
        try:
            if ending == "record":
                proposal = exchanges.clean_proposal(
                    exchange_id=str(uuid.UUID(int=n + 1)),
                    provider=helper.account,
                    receiver=receiver.account,
                    minutes=minutes,
                    title="Help",
                    area=area,
                )
                await exchanges.record(town.tb, MANAGER, proposal, None)
                continue
            ex = await town.exchange(helper, receiver, minutes, area, confirm=False)
            if ending == "cancel":
                await exchanges.cancel(town.tb, receiver.principal, ex.id)
            elif ending in ("confirm", "partial"):
                done = max(1, minutes // 2) if ending == "partial" else minutes
                await exchanges.mark_done(town.tb, MANAGER, ex.id, done)
                await exchanges.confirm(town.tb, receiver.principal, ex.id)
        except RuleViolation as exc:
            assert exc.code == "limit-exceeded"
        step = next(days, None)
        if step is not None:
            clock.advance(days=step)
            await town.run_due()
    clock.advance(days=s.expire_after_days + 1)
    await town.run_due()


async def check(town: Town, s: Scenario) -> None:
    posted, debits, credits = await town.total()
    assert posted == 0 and debits == credits
    async with town.ledger.read() as conn:
        # Issuance per period never exceeds the budget.
        per_period: dict[str, int] = {}
        for row in await conn.execute(
            select(policy_issues.c.period, policy_issues.c.minutes).where(
                policy_issues.c.rule == "grant", policy_issues.c.state.in_(("due", "done"))
            )
        ):
            per_period[row.period] = per_period.get(row.period, 0) + int(row.minutes)
        if s.budget is not None:
            assert all(total <= s.budget for total in per_period.values()), per_period
        # Every debit of a restricted account is an expiry or an eligible payment.
        rows = await conn.execute(
            select(postings.c.account_id, entries.c.kind, entries.c.canonical, entries.c.hold_idx)
            .join(entries, entries.c.idx == postings.c.entry_idx)
            .where(postings.c.account_id.like("restricted:%"), postings.c.minutes < 0)
        )
        for row in rows:
            entry = decode_entry(bytes(row.canonical))
            if row.kind == KIND_POST:
                hold = (
                    await conn.execute(
                        select(entries.c.canonical).where(entries.c.idx == row.hold_idx)
                    )
                ).scalar_one()
                refs = annotations_of(decode_entry(bytes(hold)))
            else:
                refs = annotations_of(entry)
            if refs.get("rule") == "expiry":
                continue
            assert refs.get("rule") == "spend", refs
            assert refs.get("area") in s.areas, refs
            if s.zones:
                assert refs.get("zone") in s.zones, refs


async def rerun_changes_nothing(town: Town) -> None:
    size = await town.size()
    await town.run_due()
    assert await town.size() == size


@dataclass
class Databases:
    backend: str
    tmp_path: Path
    template: Path
    postgres: Postgres | None
    counter: itertools.count[int]

    def create(self) -> str:
        if self.postgres is not None:
            return self.postgres.create()
        path = self.tmp_path / f"scenario-{next(self.counter)}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"

    def drop(self, url: str) -> None:
        if self.postgres is not None:
            self.postgres.drop(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_random_scenarios_keep_the_invariants(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> None:
    pg: Postgres | None = None
    if backend == "postgres":
        pg = request.getfixturevalue("postgres")
        assert pg is not None
        if pg.error:
            if REQUIRE_POSTGRES:
                pytest.fail(pg.error + " (SCAMBIO_REQUIRE_POSTGRES=1)")
            pytest.skip(pg.error)
    databases = Databases(backend, tmp_path, sqlite_template, pg, itertools.count())

    @settings(
        max_examples=10,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(s=SCENARIOS)
    def scenario(s: Scenario) -> None:
        url = databases.create()
        try:
            asyncio.run(run(url, s))
        finally:
            databases.drop(url)

    async def run(url: str, s: Scenario) -> None:
        clock = Clock()
        engine = make_engine(url, null_pool=True)
        settings_ = make_settings(url, tmp_path)
        service = LedgerService(engine, SIGNER, settings_, clock=clock)
        await service.start()
        tb = Timebank.create(service, settings_)
        try:
            town = Town(tb, tmp_path / f"policies-{uuid.uuid4().hex[:8]}")
            await play(town, clock, s)
            await check(town, s)
            await rerun_changes_nothing(town)
        finally:
            await tb.mailer.aclose()
            await service.stop()
            await engine.dispose()

    scenario()


def test_the_example_policies_are_valid() -> None:
    """The files shipped in policies/ parse (and `scambio policy check` says so)."""
    folder = Path(__file__).resolve().parents[1] / "policies"
    found = sorted(folder.glob("*.toml"))
    assert len(found) == 4
    kinds = load_kinds()
    parsed = [parse_policy(p.read_bytes(), p.name, kinds) for p in found]
    assert sorted(p.kind for p in parsed) == ["grant", "match", "pool", "staff_time"]
