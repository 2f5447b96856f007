"""The database schema. The Alembic migrations create exactly this (plus triggers).

`entries`, `postings`, `tree_nodes` and `checkpoints` are append-only: triggers refuse
UPDATE and DELETE on both SQLite and PostgreSQL. `accounts` (kind, limits and cached
balances) and `ledger_head` are projections of the log, updated in the same transaction
as the entries that change them, and re-derivable from the log at any time.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("checkpoint", Text, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("min_balance", BigInteger, nullable=True),
    Column("max_balance", BigInteger, nullable=True),
    Column("posted", BigInteger, nullable=False, server_default=text("0")),
    Column("debits_pending", BigInteger, nullable=False, server_default=text("0")),
    Column("credits_pending", BigInteger, nullable=False, server_default=text("0")),
    Column("opened_idx", BigInteger, nullable=False),
    Column("updated_idx", BigInteger, nullable=False),
    CheckConstraint("debits_pending >= 0 AND credits_pending >= 0", name="pending_nonneg"),
    CheckConstraint(
        "min_balance IS NULL OR posted - debits_pending >= min_balance", name="within_min"
    ),
    CheckConstraint(
        "max_balance IS NULL OR posted + credits_pending <= max_balance", name="within_max"
    ),
)

entries = Table(
    "entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("time", String(27), nullable=False),
    Column("canonical", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    #: Tree size of the checkpoint signed in the entry's batch (returned to retries).
    Column("tree_size", BigInteger, nullable=False),
    #: For post and void entries: the hold they resolve. Unique: a hold resolves once.
    Column("hold_idx", BigInteger, nullable=True, unique=True),
    #: For reversals: the entry they compensate. Unique: an entry is reversed once.
    Column("reverses_idx", BigInteger, nullable=True, unique=True),
    #: For holds: when they expire (same fixed-width format as `time`).
    Column("expires", String(27), nullable=True),
    CheckConstraint("idx >= 0", name="idx_nonneg"),
    CheckConstraint("tree_size > idx", name="covered"),
)
Index(
    "ix_entries_open_holds",
    entries.c.expires,
    postgresql_where=entries.c.kind == "hold",
    sqlite_where=entries.c.kind == "hold",
)

postings = Table(
    "postings",
    metadata,
    Column("entry_idx", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", SmallInteger, primary_key=True, autoincrement=False),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("minutes", BigInteger, nullable=False),
    #: True for a hold's legs: reserved, not posted.
    Column("pending", Boolean, nullable=False),
    #: The account's posted balance after this posting: statements page in O(page).
    Column("balance_after", BigInteger, nullable=False),
    CheckConstraint("minutes <> 0", name="nonzero"),
)
Index("ix_postings_account_entry", postings.c.account_id, postings.c.entry_idx)

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("level >= 1", name="level_positive"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(27), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", String(27), nullable=False),
    Column("revoked_at", String(27), nullable=True),
)
