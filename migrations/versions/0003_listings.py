"""listings, search and matching

Offers and requests (`listings`) and the managers' `introductions`, as
`scambio.store.listings_tables` describes them, plus full-text search:

- PostgreSQL: a generated, stored `search` tsvector over title (weight A), tags (B) and
  description (C), each parsed with both the Italian and the English configuration (the
  community writes in both; a query is parsed with both too), and a GIN index on it.
- SQLite: an FTS5 table `listings_fts` with external content (`listings`, rowid `seq`),
  Unicode tokens with diacritics folded, kept in step by three triggers. Only changes to
  the indexed columns touch the index, so status changes (pause, expiry) cost nothing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ONE_OWNER = (
    "(owner_member_id IS NOT NULL AND owner_org_id IS NULL) OR "
    "(owner_member_id IS NULL AND owner_org_id IS NOT NULL)"
)

#: Newest first by status, area, zone and owner; expiry by status.
LISTING_INDEXES = [
    ("ix_listings_status_seq", ["status", "seq"]),
    ("ix_listings_status_expires_at", ["status", "expires_at"]),
    ("ix_listings_area_kind_status_seq", ["area", "kind", "status", "seq"]),
    ("ix_listings_zone_status_seq", ["zone", "status", "seq"]),
    ("ix_listings_owner_member_id_seq", ["owner_member_id", "seq"]),
    ("ix_listings_owner_org_id_seq", ["owner_org_id", "seq"]),
]


def upgrade() -> None:
    op.create_table(
        "listings",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column(
            "resource", sa.String(length=16), server_default=sa.text("'service'"), nullable=False
        ),
        sa.Column("owner_member_id", sa.String(length=32), nullable=True),
        sa.Column("owner_org_id", sa.String(length=32), nullable=True),
        sa.Column("posted_by", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("area", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("availability", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("availability_slots", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("slot_days", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("updated_at", sa.String(length=27), nullable=False),
        sa.Column("expires_at", sa.String(length=27), nullable=False),
        sa.Column("renewed_at", sa.String(length=27), nullable=True),
        sa.Column("closed_at", sa.String(length=27), nullable=True),
        sa.Column("reminded_for", sa.String(length=27), nullable=True),
        sa.CheckConstraint("kind IN ('offer', 'request')", name=op.f("ck_listings_kind_known")),
        sa.CheckConstraint(
            "resource IN ('service', 'space', 'equipment', 'skill')",
            name=op.f("ck_listings_resource_known"),
        ),
        sa.CheckConstraint(
            "mode IN ('in_person', 'remote', 'either')", name=op.f("ck_listings_mode_known")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'expired', 'closed')",
            name=op.f("ck_listings_status_known"),
        ),
        sa.CheckConstraint(ONE_OWNER, name=op.f("ck_listings_one_owner")),
        sa.ForeignKeyConstraint(
            ["owner_member_id"], ["members.id"], name=op.f("fk_listings_owner_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["owner_org_id"],
            ["organisations.id"],
            name=op.f("fk_listings_owner_org_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_listings")),
        sa.UniqueConstraint("id", name=op.f("uq_listings_id")),
    )
    for name, columns in LISTING_INDEXES:
        op.create_index(name, "listings", columns)
    op.create_table(
        "introductions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("helper_type", sa.String(length=16), nullable=False),
        sa.Column("helper_id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("created_by_member_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "helper_type IN ('member', 'organisation')",
            name=op.f("ck_introductions_helper_type_known"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["listings.id"], name=op.f("fk_introductions_request_id_listings")
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["listings.id"], name=op.f("fk_introductions_offer_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_introductions")),
        sa.UniqueConstraint(
            "request_id", "helper_type", "helper_id", name=op.f("uq_introductions_pair")
        ),
    )
    op.create_index("ix_introductions_created_at_id", "introductions", ["created_at", "id"])
    statements = POSTGRES_SEARCH if op.get_context().dialect.name == "postgresql" else SQLITE_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_listings_search")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS listings_fts")
    op.drop_index("ix_introductions_created_at_id", table_name="introductions")
    op.drop_table("introductions")
    for name, _columns in reversed(LISTING_INDEXES):
        op.drop_index(name, table_name="listings")
    op.drop_table("listings")


def _weighted(column: str, weight: str) -> str:
    return (
        f"setweight(to_tsvector('italian'::regconfig, {column}) || "
        f"to_tsvector('english'::regconfig, {column}), '{weight}')"
    )


POSTGRES_SEARCH = [
    "ALTER TABLE listings ADD COLUMN search tsvector GENERATED ALWAYS AS ("
    f"{_weighted('title', 'A')} || {_weighted('tags', 'B')} || "
    f"{_weighted('description', 'C')}) STORED",
    "CREATE INDEX ix_listings_search ON listings USING gin (search)",
]

SQLITE_TRIGGER_NAMES = ["listings_fts_insert", "listings_fts_delete", "listings_fts_update"]

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE listings_fts USING fts5(title, description, tags, "
    "content='listings', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER listings_fts_insert AFTER INSERT ON listings BEGIN "
    "INSERT INTO listings_fts(rowid, title, description, tags) "
    "VALUES (new.seq, new.title, new.description, new.tags); END",
    "CREATE TRIGGER listings_fts_delete AFTER DELETE ON listings BEGIN "
    "INSERT INTO listings_fts(listings_fts, rowid, title, description, tags) "
    "VALUES ('delete', old.seq, old.title, old.description, old.tags); END",
    "CREATE TRIGGER listings_fts_update AFTER UPDATE OF title, description, tags ON listings "
    "BEGIN INSERT INTO listings_fts(listings_fts, rowid, title, description, tags) "
    "VALUES ('delete', old.seq, old.title, old.description, old.tags); "
    "INSERT INTO listings_fts(rowid, title, description, tags) "
    "VALUES (new.seq, new.title, new.description, new.tags); END",
]
