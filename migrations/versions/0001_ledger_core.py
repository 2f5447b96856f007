"""ledger core: accounts, entries, postings, tree, checkpoints, tokens

Append-only triggers (both databases) refuse UPDATE and DELETE on entries, postings,
tree_nodes and checkpoints; a seal trigger makes every entry's postings sum to zero and
forbids adding postings to an entry once it is written (postings are inserted first).

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:17:42.595258
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("min_balance", sa.BigInteger(), nullable=True),
        sa.Column("max_balance", sa.BigInteger(), nullable=True),
        sa.Column("posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened_idx", sa.BigInteger(), nullable=False),
        sa.Column("updated_idx", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "debits_pending >= 0 AND credits_pending >= 0", name=op.f("ck_accounts_pending_nonneg")
        ),
        sa.CheckConstraint(
            "max_balance IS NULL OR posted + credits_pending <= max_balance",
            name=op.f("ck_accounts_within_max"),
        ),
        sa.CheckConstraint(
            "min_balance IS NULL OR posted - debits_pending >= min_balance",
            name=op.f("ck_accounts_within_min"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("revoked_at", sa.String(length=27), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("time", sa.String(length=27), nullable=False),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("hold_idx", sa.BigInteger(), nullable=True),
        sa.Column("reverses_idx", sa.BigInteger(), nullable=True),
        sa.Column("expires", sa.String(length=27), nullable=True),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_entries_idx_nonneg")),
        sa.CheckConstraint("tree_size > idx", name=op.f("ck_entries_covered")),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_entries")),
        sa.UniqueConstraint("hold_idx", name=op.f("uq_entries_hold_idx")),
        sa.UniqueConstraint("id", name=op.f("uq_entries_id")),
        sa.UniqueConstraint("reverses_idx", name=op.f("uq_entries_reverses_idx")),
    )
    op.create_index(
        "ix_entries_open_holds",
        "entries",
        ["expires"],
        unique=False,
        postgresql_where=sa.text("kind = 'hold'"),
        sqlite_where=sa.text("kind = 'hold'"),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    op.create_table(
        "tree_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("level >= 1", name=op.f("ck_tree_nodes_level_positive")),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_tree_nodes")),
    )
    op.create_table(
        "postings",
        sa.Column("entry_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("minutes <> 0", name=op.f("ck_postings_nonzero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_postings_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("entry_idx", "seq", name=op.f("pk_postings")),
    )
    op.create_index(
        "ix_postings_account_entry", "postings", ["account_id", "entry_idx"], unique=False
    )
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS scambio_append_only() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS scambio_entries_zero_sum() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS scambio_postings_sealed() CASCADE")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_postings_account_entry", table_name="postings")
    op.drop_table("postings")
    op.drop_table("tree_nodes")
    op.drop_table("ledger_head")
    op.drop_index(
        "ix_entries_open_holds",
        table_name="entries",
        postgresql_where=sa.text("kind = 'hold'"),
        sqlite_where=sa.text("kind = 'hold'"),
    )
    op.drop_table("entries")
    op.drop_table("checkpoints")
    op.drop_table("api_tokens")
    op.drop_table("accounts")


APPEND_ONLY_TABLES = ("entries", "postings", "tree_nodes", "checkpoints")

POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION scambio_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION scambio_append_only()"
        for table in APPEND_ONLY_TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION scambio_append_only()"
        for table in APPEND_ONLY_TABLES
    ),
    """
    CREATE FUNCTION scambio_entries_zero_sum() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad bigint;
    BEGIN
        -- One index probe per new entry: a join against all of postings would scan the
        -- whole table on every batch and slow appends as the ledger grows.
        SELECT n.idx INTO bad FROM new_entries n
        WHERE coalesce((SELECT sum(p.minutes) FROM postings p WHERE p.entry_idx = n.idx), 0)
            <> 0
        LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'postings of entry % do not sum to zero', bad
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER entries_zero_sum AFTER INSERT ON entries REFERENCING NEW TABLE AS "
    "new_entries FOR EACH STATEMENT EXECUTE FUNCTION scambio_entries_zero_sum()",
    """
    CREATE FUNCTION scambio_postings_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad bigint;
    BEGIN
        SELECT n.entry_idx INTO bad FROM new_postings n JOIN entries e ON e.idx = n.entry_idx
        LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'entry % is already written: its postings cannot change', bad
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER postings_sealed AFTER INSERT ON postings REFERENCING NEW TABLE AS "
    "new_postings FOR EACH STATEMENT EXECUTE FUNCTION scambio_postings_sealed()",
]

SQLITE_TRIGGER_NAMES = [
    *(f"{table}_no_{op_}" for table in APPEND_ONLY_TABLES for op_ in ("update", "delete")),
    "entries_zero_sum",
    "postings_sealed",
]

SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER {table}_no_{op_.lower()} BEFORE {op_} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, '{table} is append-only: {op_} refused'); END"
        for table in APPEND_ONLY_TABLES
        for op_ in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER entries_zero_sum AFTER INSERT ON entries "
    "WHEN (SELECT coalesce(sum(minutes), 0) FROM postings WHERE entry_idx = NEW.idx) <> 0 "
    "BEGIN SELECT RAISE(ABORT, 'postings of an entry do not sum to zero'); END",
    "CREATE TRIGGER postings_sealed BEFORE INSERT ON postings "
    "WHEN EXISTS (SELECT 1 FROM entries WHERE idx = NEW.entry_idx) "
    "BEGIN SELECT RAISE(ABORT, 'entry is already written: its postings cannot change'); END",
]
