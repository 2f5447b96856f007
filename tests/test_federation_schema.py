"""Migration 0008 creates exactly the tables `store.federation_tables` describes, on SQLite
and PostgreSQL, and its downgrade removes them again."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from scambio.store import federation_tables, migrate
from scambio.store.db import make_engine
from scambio.store.tables import metadata

MINE = {
    "federation_peers",
    "federation_transfers",
    "federation_nonces",
    "federation_checkpoints",
    "federation_reconciliations",
    "import_runs",
    "imported_members",
}


def _table_of(diff: Any) -> str | None:
    """The table a compare_metadata difference concerns."""
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if isinstance(part, str) and part in MINE:
            return part
        if name in MINE:
            return str(name)
    return None


async def test_the_migration_matches_the_tables(db_url: str) -> None:
    assert {t.name for t in metadata.sorted_tables} >= MINE
    assert federation_tables.federation_peers.name == "federation_peers"
    engine = make_engine(db_url, null_pool=True)

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if _table_of(d) in MINE]

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_the_downgrade_removes_the_tables_and_the_upgrade_restores_them(
    db_url: str,
) -> None:
    engine = make_engine(db_url, null_pool=True)

    def run(conn: Connection, action: str, revision: str) -> set[str]:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        return set(inspect(conn).get_table_names())

    try:
        async with engine.begin() as conn:
            tables = await conn.run_sync(run, "downgrade", "0007")
        assert not (tables & MINE)
        async with engine.begin() as conn:
            tables = await conn.run_sync(run, "upgrade", "head")
        assert tables >= MINE
    finally:
        await engine.dispose()
