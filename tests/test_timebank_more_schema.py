"""Migration 0005 creates exactly the tables `store.notifications_tables` describes and the
foreign key `store.exchanges_tables` declares from exchanges to listings, on SQLite and
PostgreSQL; its downgrade removes them; and an upgrade over existing exchanges keeps them
(and their thanks), clearing only references to listings that do not exist."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from scambio.store import exchanges_tables, migrate, notifications_tables
from scambio.store.db import make_engine
from scambio.store.tables import metadata

MINE = {"notifications", "notification_settings", "email_changes"}
CHECKED = MINE | {"exchanges"}


def _table_of(diff: Any) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        parent = getattr(part, "parent", None)
        if parent is not None and getattr(parent, "name", None):
            return str(parent.name)
        if isinstance(part, str) and part in CHECKED:
            return part
        if getattr(part, "name", None) in CHECKED:
            return str(part.name)
    return None


def _run(conn: Connection, action: str, revision: str) -> set[str]:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = conn
    getattr(command, action)(cfg, revision)
    return set(inspect(conn).get_table_names())


def _listing_fks(conn: Connection) -> list[str | None]:
    return [
        fk["name"]
        for fk in inspect(conn).get_foreign_keys("exchanges")
        if fk["referred_table"] == "listings"
    ]


async def test_the_migration_matches_the_tables(db_url: str) -> None:
    assert {t.name for t in metadata.sorted_tables} >= MINE
    assert notifications_tables.notifications.name == "notifications"
    assert exchanges_tables.exchanges.c.listing_id.foreign_keys
    engine = make_engine(db_url, null_pool=True)

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if _table_of(d) in CHECKED]

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            assert await conn.run_sync(_listing_fks) == ["fk_exchanges_listing_id_listings"]
    finally:
        await engine.dispose()


async def test_the_downgrade_removes_the_tables_and_the_key_and_the_upgrade_restores_them(
    db_url: str,
) -> None:
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.begin() as conn:
            tables = await conn.run_sync(_run, "downgrade", "0004")
            assert await conn.run_sync(_listing_fks) == []
        assert not (tables & MINE)
        assert "exchanges" in tables
        async with engine.begin() as conn:
            tables = await conn.run_sync(_run, "upgrade", "head")
            assert await conn.run_sync(_listing_fks) == ["fk_exchanges_listing_id_listings"]
        assert tables >= MINE
    finally:
        await engine.dispose()


EXCHANGE = (
    "INSERT INTO exchanges (id, state, version, provider_account, receiver_account, "
    "proposed_by, title, minutes, hold_expires_in, created_at, updated_at, listing_id) "
    "VALUES (:id, 'confirmed', 0, 'm-giulia', 'm-marco', 'cli', 'Homework', 90, 60, "
    "'2026-11-25T09:00:00.000000Z', '2026-11-25T09:00:00.000000Z', :listing)"
)
NOW = "'2026-11-25T09:00:00.000000Z'"


async def test_upgrading_keeps_exchanges_and_thanks_and_clears_unknown_listings(
    db_url: str,
) -> None:
    """A community on 0004 with exchanges, one of them thanked, one naming a listing that
    exists and one naming a listing that does not: after the upgrade all three exchanges
    and the thanks are there, the unknown reference is cleared, and the key holds."""
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run, "downgrade", "0004")
            await conn.execute(
                text(
                    "INSERT INTO members (id, name, status, created_at, updated_at) "
                    f"VALUES ('giulia', 'Giulia', 'active', {NOW}, {NOW})"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO listings (id, kind, owner_member_id, title, area, mode, "
                    "status, created_at, updated_at, expires_at) VALUES ('lst1', 'offer', "
                    f"'giulia', 'Homework help', 'housing', 'remote', 'active', {NOW}, "
                    f"{NOW}, {NOW})"
                )
            )
            for exchange_id, listing in (("x1", "lst1"), ("x2", "lst-gone"), ("x3", None)):
                await conn.execute(text(EXCHANGE), {"id": exchange_id, "listing": listing})
            await conn.execute(
                text(
                    "INSERT INTO exchange_thanks (exchange_id, from_account, to_account, "
                    f"author, message, created_at) VALUES ('x1', 'm-marco', 'm-giulia', "
                    f"'Marco', 'Grazie!', {NOW})"
                )
            )
        async with engine.begin() as conn:
            await conn.run_sync(_run, "upgrade", "head")
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(text("SELECT id, listing_id FROM exchanges ORDER BY id"))
            )
            assert [tuple(r) for r in rows] == [("x1", "lst1"), ("x2", None), ("x3", None)]
            thanks = list(
                await conn.execute(text("SELECT exchange_id, message FROM exchange_thanks"))
            )
            assert [tuple(t) for t in thanks] == [("x1", "Grazie!")]
            checks = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_check_constraints("exchanges")}
            )
            assert checks >= {
                "ck_exchanges_state_known",
                "ck_exchanges_minutes_positive",
                "ck_exchanges_two_parties",
            }
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text(EXCHANGE), {"id": "x4", "listing": "lst-nowhere"})
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM exchanges WHERE id = 'x1'"))
    finally:
        await engine.dispose()
