"""Migration 0005 over existing data: an upgrade keeps exchanges (and their thanks, which
SQLite's batch mode would otherwise lose with the table copy), clearing only references
to listings that do not exist. (Tables and steps for every migration: test_migrations.)"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from scambio.store import migrate
from scambio.store.db import make_engine


def _run(conn: Connection, action: str, revision: str) -> set[str]:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = conn
    getattr(command, action)(cfg, revision)
    return set(inspect(conn).get_table_names())


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
