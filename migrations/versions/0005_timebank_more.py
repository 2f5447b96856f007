"""notifications, notification settings, email changes, organisation suspension

Creates the tables `scambio.store.notifications_tables` describes (in-app notifications,
members' notification settings, pending email changes) and adds the foreign key from
`exchanges.listing_id` to `listings.id` (with an index: the manager's queue asks which
requests have a live exchange). Organisation suspension needs no schema change: the
`organisations.status` column and its check exist since 0002.

The foreign key: an exchange may have named a listing that does not exist (the column was
free text until now); such references cannot be kept under a foreign key, so they are
cleared first.

SQLite cannot add a foreign key to a table: batch mode copies `exchanges` into a new
table and drops the old one. `exchange_thanks` references `exchanges`, and with
`PRAGMA foreign_keys=ON` (which cannot be switched off inside the migration's
transaction) dropping a parent that still has children fails; so its rows are set aside
in a temporary table and put back once `exchanges` is whole again. Every constraint on
`exchanges` is named, so the copy keeps them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FK_NAME = "fk_exchanges_listing_id_listings"
#: Thanks are set aside and put back, column for column (SQLite only).
THANKS_ASIDE = (
    "CREATE TEMPORARY TABLE scambio_thanks_aside AS SELECT seq, exchange_id, from_account, "
    "to_account, author, author_member, message, created_at FROM exchange_thanks"
)
THANKS_BACK = (
    "INSERT INTO exchange_thanks (seq, exchange_id, from_account, to_account, author, "
    "author_member, message, created_at) SELECT seq, exchange_id, from_account, to_account, "
    "author, author_member, message, created_at FROM scambio_thanks_aside"
)


def _stamp(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _set_thanks_aside() -> None:
    op.execute(THANKS_ASIDE)
    op.execute("DELETE FROM exchange_thanks")


def _put_thanks_back() -> None:
    op.execute(THANKS_BACK)
    op.execute("DROP TABLE scambio_thanks_aside")


def _alter_exchanges(add: bool) -> None:
    """Add (or drop) the listing foreign key; on SQLite by copying the table."""
    sqlite = _sqlite()
    if sqlite:
        _set_thanks_aside()
    with op.batch_alter_table("exchanges") as batch:
        if add:
            batch.create_foreign_key(FK_NAME, "listings", ["listing_id"], ["id"])
        else:
            batch.drop_constraint(FK_NAME, type_="foreignkey")
    if sqlite:
        _put_thanks_back()


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=True),
        sa.Column("listing_id", sa.String(length=32), nullable=True),
        sa.Column("link_id", sa.String(length=32), nullable=True),
        sa.Column("organisation_id", sa.String(length=32), nullable=True),
        sa.Column("introduction_id", sa.String(length=32), nullable=True),
        _stamp("created_at", nullable=False),
        _stamp("read_at"),
        sa.Column("emailed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_notifications_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index("ix_notifications_member_id_id", "notifications", ["member_id", "id"])
    op.create_index(
        "ix_notifications_member_id_read_at_id", "notifications", ["member_id", "read_at", "id"]
    )
    op.create_table(
        "notification_settings",
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("digest", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("digest_up_to", sa.BigInteger(), nullable=True),
        _stamp("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_notification_settings_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "email_changes",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("new_email", sa.String(length=254), nullable=False),
        _stamp("created_at", nullable=False),
        _stamp("expires_at", nullable=False),
        _stamp("used_at"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_email_changes_member_id_members")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_email_changes")),
    )
    op.create_index("ix_email_changes_member_id", "email_changes", ["member_id"])

    # Exchanges that named a listing that does not exist lose the reference.
    op.execute(
        "UPDATE exchanges SET listing_id = NULL WHERE listing_id IS NOT NULL "
        "AND listing_id NOT IN (SELECT id FROM listings)"
    )
    _alter_exchanges(add=True)
    op.create_index("ix_exchanges_listing_id", "exchanges", ["listing_id"])


def downgrade() -> None:
    op.drop_index("ix_exchanges_listing_id", table_name="exchanges")
    _alter_exchanges(add=False)
    op.drop_index("ix_email_changes_member_id", table_name="email_changes")
    op.drop_table("email_changes")
    op.drop_table("notification_settings")
    op.drop_index("ix_notifications_member_id_read_at_id", table_name="notifications")
    op.drop_index("ix_notifications_member_id_id", table_name="notifications")
    op.drop_table("notifications")
