"""One migration history for SQLite and PostgreSQL: it creates exactly the tables the
`store/*_tables.py` modules describe, and every step down and up again works.

Full-text search lives outside the table metadata on purpose (SQLite's FTS5 tables,
PostgreSQL's generated tsvector column and its index, both made by migration 0003), so
those are the only differences allowed.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

# Every tables module, so that `metadata` knows every table.
from scambio.store import (  # noqa: F401
    exchanges_tables,
    federation_tables,
    jobs_tables,
    listings_tables,
    migrate,
    notifications_tables,
    people_tables,
    policy_tables,
)
from scambio.store.db import make_engine
from scambio.store.tables import metadata

#: The tables each migration adds (the earlier ones are checked by the later steps).
ADDED = {
    "0004": {"exchanges", "exchange_thanks", "group_exchanges", "group_members", "group_transfers"},
    "0005": {"notifications", "notification_settings", "email_changes"},
    "0006": {
        "policies",
        "policy_versions",
        "policy_files",
        "policy_enrolments",
        "policy_restricted_accounts",
        "policy_issues",
    },
    "0007": {
        "job_runs",
        "ledger_verification",
        "coproduction_reports",
        "report_pairs",
        "report_state",
    },
    "0008": {
        "federation_peers",
        "federation_transfers",
        "federation_nonces",
        "federation_checkpoints",
        "federation_reconciliations",
        "import_runs",
        "imported_members",
    },
}


def _search_object(diff: Any) -> bool:
    """Full-text search objects, made by migration 0003 outside the metadata."""
    text = repr(diff)
    return "listings_fts" in text or "ix_listings_search" in text or "'search'" in text


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(context, metadata) if not _search_object(d)]


def _migrate(conn: Connection, action: str, revision: str) -> set[str]:
    cfg = migrate.alembic_config()
    cfg.attributes["connection"] = conn
    getattr(command, action)(cfg, revision)
    return set(inspect(conn).get_table_names())


async def test_the_migrations_create_exactly_the_tables_the_store_describes(
    db_url: str,
) -> None:
    assert {t.name for t in metadata.sorted_tables} >= set().union(*ADDED.values())
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("revision", sorted(ADDED))
async def test_each_migration_goes_down_and_up_again(db_url: str, revision: str) -> None:
    previous = f"{int(revision) - 1:04d}"
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.begin() as conn:
            tables = await conn.run_sync(_migrate, "downgrade", previous)
        assert not (tables & ADDED[revision])
        async with engine.begin() as conn:
            tables = await conn.run_sync(_migrate, "upgrade", "head")
            assert await conn.run_sync(_differences) == []
        assert tables >= ADDED[revision]
    finally:
        await engine.dispose()


async def test_named_constraints_survive_sqlite_batch_mode(db_url: str) -> None:
    """SQLite's batch mode drops constraints that have no name: every one has one."""
    engine = make_engine(db_url, null_pool=True)

    def names(conn: Connection) -> set[str]:
        found = inspect(conn)
        got = {c["name"] for c in found.get_check_constraints("job_runs")}
        got |= {c["name"] for c in found.get_unique_constraints("job_runs")}
        got |= {fk["name"] for fk in found.get_foreign_keys("exchanges")}
        return {str(n) for n in got}

    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(names) >= {
                "ck_job_runs_status_known",
                "ck_job_runs_attempts_positive",
                "uq_job_runs_job_period",
                "fk_exchanges_listing_id_listings",
            }
    finally:
        await engine.dispose()
