"""The demo community: `scambio demo seed` on an empty database, on SQLite and PostgreSQL.

One seed per database: the command line seeds it (and refuses a second time), then the
database is checked (counts, zero-sum balances, the ledger's own audit and the offline
verifier, times that never go backwards) and a demo member logs in over HTTP and goes on
where the history stopped.
"""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from scambio.cli import main
from scambio.ledger.entry import parse_time
from scambio.ledger.verify import verify_export_file
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.exchanges_tables import exchange_thanks, exchanges, group_exchanges
from scambio.store.export import export_ledger
from scambio.store.keyfile import load_key
from scambio.store.listings_tables import introductions, listings
from scambio.store.people_tables import audit_log, employee_links, members, organisations, outbox
from scambio.store.tables import accounts, api_tokens, entries, ledger_head
from scambio.timebank import demo
from scambio.timebank import demo_data as data
from scambio.timebank.areas import AREA_IDS

from .api_helpers import assert_problem, running_api
from .conftest import ORIGIN


def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment `running_api(db_url, tmp_path)` uses too: same key, same origin."""
    return {
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }


async def scalar(db_url: str, query: Any) -> Any:
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(query)).scalar_one()
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_the_demo_is_seeded_once_then_verifies_and_lets_people_log_in(
    db_url: str, tmp_path: Path
) -> None:
    env = cli_env(db_url, tmp_path)
    runner = CliRunner()
    before = datetime.now(UTC)
    seeded = runner.invoke(main, ["demo", "seed", "--if-empty"], env=env)
    assert seeded.exit_code == 0, seeded.output
    out = seeded.output
    assert f"password (all of them): {demo.DEMO_PASSWORD}" in out
    assert "DEMO LOGINS, for trying Scambio only" in out
    assert re.search(rf"{demo.MANAGER_EMAIL} +Sara Colombo: community manager", out)
    assert "paolo.ferri@example.org" in out and "giulia.bianchi@example.org" in out
    assert "scambio token issue --role admin" in out
    assert "balances sum to 0" in out
    size = asyncio.run(scalar(db_url, select(ledger_head.c.size)))

    again = runner.invoke(main, ["demo", "seed", "--if-empty"], env=env)
    assert again.exit_code == 0, again.output
    assert "the demo community is already seeded here: nothing to do" in again.output
    refused = runner.invoke(main, ["demo", "seed"], env=env)
    assert refused.exit_code == 1
    assert "already seeded" in refused.output
    assert asyncio.run(scalar(db_url, select(ledger_head.c.size))) == size
    assert asyncio.run(scalar(db_url, select(func.count()).select_from(members))) == 42

    asyncio.run(check_community(db_url, before))
    asyncio.run(check_ledger(db_url, tmp_path, before))
    asyncio.run(check_live_use(db_url, tmp_path))


async def check_community(db_url: str, before: datetime) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as conn:

            async def counts(column: Any, *where: Any) -> dict[str, int]:
                query = select(column, func.count()).group_by(column)
                rows = await conn.execute(query.where(*where) if where else query)
                return {str(key): int(n) for key, n in rows}

            async def count(table: Any, *where: Any) -> int:
                query = select(func.count()).select_from(table)
                return int(
                    (await conn.execute(query.where(*where) if where else query)).scalar_one()
                )

            assert await counts(members.c.status) == {"active": 40, "pending": 2}
            assert await counts(members.c.role) == {"member": 40, "manager": 1, "auditor": 1}
            assert await counts(organisations.c.kind) == {"company": 3, "nonprofit": 2}
            # Zones 4 and 6 only.
            assert set(await counts(members.c.zone)) == {data.ZONE_4, data.ZONE_6}
            offline = await count(members, members.c.email.is_(None))
            assert offline == 1
            # Every company has employees, linked by its admin and accepted by the worker.
            companies = [
                row.id
                for row in await conn.execute(
                    select(organisations.c.id).where(organisations.c.kind == "company")
                )
            ]
            for org_id in companies:
                linked = await count(
                    employee_links,
                    employee_links.c.org_id == org_id,
                    employee_links.c.status == "active",
                )
                assert linked >= 3
            assert await counts(employee_links.c.status) == {"active": 11, "proposed": 1}
            proposed_by = await counts(
                audit_log.c.actor_member_id, audit_log.c.action == "employee-link.proposed"
            )
            assert len(proposed_by) == 4  # the admins of the three companies and the coop
            # Offers and requests in all six areas; organisations offer a room and a skill.
            for kind in ("offer", "request"):
                areas = await counts(listings.c.area, listings.c.kind == kind)
                assert set(areas) == set(AREA_IDS), kind
            org_resources = await counts(listings.c.resource, listings.c.owner_org_id.is_not(None))
            assert {"space", "skill", "equipment"} <= set(org_resources)
            # Exchanges in every state; a recorded one; group exchanges; thanks.
            states = await counts(exchanges.c.state)
            for state in (
                "proposed",
                "accepted",
                "done",
                "confirmed",
                "declined",
                "cancelled",
                "disputed",
                "resolved",
                "expired",
            ):
                assert states.get(state, 0) >= 1, (state, states)
            assert states["confirmed"] >= 40
            assert await count(exchanges, exchanges.c.recorded_by.is_not(None)) == 3
            assert await counts(group_exchanges.c.state) == {"settled": 2, "planned": 1}
            assert await count(exchange_thanks) >= 20
            assert await count(introductions) >= 2
            # The history spans about four months and ends before the seed started.
            first, last = (
                await conn.execute(
                    select(func.min(exchanges.c.created_at), func.max(exchanges.c.updated_at))
                )
            ).one()
            assert parse_time(first) < before - timedelta(days=90)
            assert parse_time(last) < before
            # The seed's tokens are revoked; all demo mail went out (to the log).
            seed_tokens = (api_tokens.c.name == demo.TOKEN_NAME,)
            assert await count(api_tokens, *seed_tokens) >= 30
            assert await count(api_tokens, *seed_tokens, api_tokens.c.revoked_at.is_(None)) == 0
            assert await counts(outbox.c.status) == {"sent": await count(outbox)}
    finally:
        await engine.dispose()


async def check_ledger(db_url: str, tmp_path: Path, before: datetime) -> None:
    engine = make_engine(db_url, null_pool=True)
    verifier = load_key(tmp_path / "var" / "node.key").verifier()
    try:
        async with engine.connect() as conn:
            posted, debits, credits = (
                await conn.execute(
                    select(
                        func.sum(accounts.c.posted),
                        func.sum(accounts.c.debits_pending),
                        func.sum(accounts.c.credits_pending),
                    )
                )
            ).one()
            assert posted == 0 and debits == credits
            times = [
                row.time
                for row in await conn.execute(select(entries.c.time).order_by(entries.c.idx))
            ]
        assert times == sorted(times), "entry times went backwards"
        assert parse_time(times[0]) < before - timedelta(days=110)
        assert parse_time(times[-1]) < before
        audit = await verify_database(engine, verifier, ORIGIN)
        assert audit.entries == len(times)
        path = tmp_path / "demo.jsonl"
        with path.open("wb") as out:
            assert await export_ledger(engine, out, verifier) == len(times)
    finally:
        await engine.dispose()
    report = verify_export_file(path, trusted_vkey=verifier.to_string())
    assert report.entries == len(times)
    assert report.key_pinned


async def check_live_use(db_url: str, tmp_path: Path) -> None:
    """A demo member logs in and confirms the exchange the history left for them."""
    async with running_api(db_url, tmp_path) as api:
        wrong = await api.login("marco.rossi@example.org", "not the demo password")
        assert_problem(wrong, 401, "invalid-credentials")
        for key in ("giulia", "marco", "sara"):
            email = {"giulia": "giulia.bianchi", "marco": "marco.rossi", "sara": "sara.colombo"}
            response = await api.login(f"{email[key]}@example.org", demo.DEMO_PASSWORD, as_=key)
            assert response.status_code == 200, response.text
        waiting = await api.get("/api/v1/exchanges", role="marco", state="done")
        assert waiting.status_code == 200, waiting.text
        (item,) = [x for x in waiting.json()["items"] if x["provider"]["name"] == "Giulia Bianchi"]
        assert "confirm" in item["actions"]
        tree = await api.tree_size()
        confirmed = await api.post(f"/api/v1/exchanges/{item['id']}/confirm", role="marco")
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["state"] == "confirmed"
        assert await api.tree_size() == tree + 1
        audit = await api.get("/api/v1/audit", role="sara", action="member.approved")
        assert audit.status_code == 200 and len(audit.json()["items"]) == 37
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as conn:
            times = [
                row.time
                for row in await conn.execute(
                    select(entries.c.time).order_by(entries.c.idx.desc()).limit(2)
                )
            ]
    finally:
        await engine.dispose()
    assert times[0] >= times[1], "live use continues after the seeded history"


def test_a_database_in_use_is_left_alone(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    runner = CliRunner()
    added = runner.invoke(
        main, ["member", "add", "--email", "ada@example.org", "--name", "Ada"], env=env
    )
    assert added.exit_code == 0, added.output
    skipped = runner.invoke(main, ["demo", "seed", "--if-empty"], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert "the database is not empty (1 members, 0 organisations, 1 ledger entries)" in (
        skipped.output
    )
    refused = runner.invoke(main, ["demo", "seed"], env=env)
    assert refused.exit_code == 1 and "nothing was changed" in refused.output
    assert asyncio.run(scalar(db_url, select(func.count()).select_from(members))) == 1
    assert asyncio.run(scalar(db_url, select(func.count()).select_from(organisations))) == 0


def test_the_seed_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    env = cli_env(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path)
    result = CliRunner().invoke(main, ["demo", "seed", "--if-empty"], env=env)
    assert result.exit_code == 1 and "run `scambio db upgrade`" in result.output


# -- the plan and the clock (pure) -------------------------------------------------------------


def test_the_plan_is_the_same_every_time() -> None:
    first, second = (demo.plan(random.Random(demo.SEED)) for _ in range(2))
    assert [p.name for p in first.people] == [p.name for p in second.people]
    assert [(s.minutes, s.title) for s in first.stories] == [
        (s.minutes, s.title) for s in second.stories
    ]
    assert [(when, act) for when, _, act, _ in first.acts] == [
        (when, act) for when, _, act, _ in second.acts
    ]
    names = [p.name for p in first.people]
    assert len(names) == len(set(names)) == 42
    assert len({p.email for p in first.people if p.email}) == 41
    assert all(0 <= when <= demo.LAST for when, *_ in first.acts)


def test_the_seed_clock_never_goes_backwards_nor_past_its_cap() -> None:
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)
    clock = demo.SeedClock(start, start + timedelta(days=10))
    assert clock() == start
    clock.move_to(start + timedelta(days=2))
    clock.move_to(start + timedelta(days=1))
    assert clock() == start + timedelta(days=2)
    clock.move_to(start + timedelta(days=30))
    assert clock() == start + timedelta(days=10)
    assert demo.history_start(datetime(2026, 5, 1, 5, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 8, tzinfo=UTC
    )


def test_demo_limits_follow_the_settings_unless_the_stories_need_more() -> None:
    from scambio.settings import load_settings

    base = {"SCAMBIO_DATA_DIR": "var"}
    assert demo.demo_limits(load_settings(base)) == {}
    strict = load_settings({**base, "SCAMBIO_DEFAULT_MIN_BALANCE": "0"})
    assert demo.demo_limits(strict) == {"min_balance": -600, "max_balance": None}
    capped = load_settings({**base, "SCAMBIO_DEFAULT_MAX_BALANCE": "1200"})
    assert demo.demo_limits(capped) == {"min_balance": -600, "max_balance": None}


@pytest.mark.parametrize("name", ["Niccolò D'Angelo", "Maria Luz Santos"])
def test_email_keys_are_ascii(name: str) -> None:
    key = demo.email_key(name)
    assert key.isascii() and key.count(".") == 1 and " " not in key
