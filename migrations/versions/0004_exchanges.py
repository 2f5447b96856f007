"""exchanges, group exchanges and feedback

Creates the tables `scambio.store.exchanges_tables` describes: exchanges (the workflow
that turns an agreement into ledger entries), thanks, and group exchanges with their
members and planned transfers. No triggers: these rows change state; the ledger entries
they produce are the append-only record.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATES = (
    "state IN ('proposed', 'accepted', 'done', 'confirmed', 'declined', 'cancelled', "
    "'disputed', 'resolved', 'expired')"
)


def _stamp(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("provider_account", sa.String(length=64), nullable=False),
        sa.Column("receiver_account", sa.String(length=64), nullable=False),
        sa.Column("proposer_side", sa.String(length=8), nullable=True),
        sa.Column("proposed_by", sa.String(length=300), nullable=False),
        sa.Column("proposed_by_member", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("area", sa.String(length=32), nullable=True),
        sa.Column("listing_id", sa.String(length=64), nullable=True),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("actual_minutes", sa.BigInteger(), nullable=True),
        sa.Column("final_minutes", sa.BigInteger(), nullable=True),
        sa.Column("hold_expires_in", sa.BigInteger(), nullable=False),
        sa.Column("hold_index", sa.BigInteger(), nullable=True),
        sa.Column("settle_index", sa.BigInteger(), nullable=True),
        sa.Column("ledger_due", sa.String(length=8), nullable=True),
        sa.Column("ledger_error", sa.String(length=500), nullable=True),
        sa.Column("recorded_by", sa.String(length=300), nullable=True),
        sa.Column("recorded_reason", sa.Text(), nullable=True),
        _stamp("created_at", nullable=False),
        _stamp("updated_at", nullable=False),
        _stamp("accepted_at"),
        _stamp("done_at"),
        _stamp("done_due_at"),
        _stamp("confirm_due_at"),
        _stamp("closed_at"),
        sa.Column("closed_by", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("disputed_by", sa.String(length=300), nullable=True),
        sa.Column("dispute_reason", sa.Text(), nullable=True),
        sa.Column("resolution_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(STATES, name=op.f("ck_exchanges_state_known")),
        sa.CheckConstraint("minutes > 0", name=op.f("ck_exchanges_minutes_positive")),
        sa.CheckConstraint("version >= 0", name=op.f("ck_exchanges_version_nonneg")),
        sa.CheckConstraint(
            "provider_account <> receiver_account", name=op.f("ck_exchanges_two_parties")
        ),
        sa.CheckConstraint(
            "ledger_due IS NULL OR ledger_due IN ('post', 'void')",
            name=op.f("ck_exchanges_due_known"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_exchanges")),
        sa.UniqueConstraint("id", name=op.f("uq_exchanges_id")),
    )
    op.create_index(
        "ix_exchanges_provider_account_seq", "exchanges", ["provider_account", "seq"], unique=False
    )
    op.create_index(
        "ix_exchanges_receiver_account_seq", "exchanges", ["receiver_account", "seq"], unique=False
    )
    op.create_index(
        "ix_exchanges_state_confirm_due_at", "exchanges", ["state", "confirm_due_at"], unique=False
    )
    op.create_index(
        "ix_exchanges_state_done_due_at", "exchanges", ["state", "done_due_at"], unique=False
    )
    op.create_index("ix_exchanges_ledger_due", "exchanges", ["ledger_due"], unique=False)
    op.create_table(
        "exchange_thanks",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("from_account", sa.String(length=64), nullable=False),
        sa.Column("to_account", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=300), nullable=False),
        sa.Column("author_member", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        _stamp("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_id"], ["exchanges.id"], name=op.f("fk_exchange_thanks_exchange_id_exchanges")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_exchange_thanks")),
        sa.UniqueConstraint(
            "exchange_id", "from_account", name=op.f("uq_exchange_thanks_exchange_id_from_account")
        ),
    )
    op.create_index(
        "ix_exchange_thanks_to_account_seq",
        "exchange_thanks",
        ["to_account", "seq"],
        unique=False,
    )
    op.create_table(
        "group_exchanges",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("area", sa.String(length=32), nullable=True),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("pool_account", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        _stamp("created_at", nullable=False),
        _stamp("updated_at", nullable=False),
        _stamp("settled_at"),
        sa.Column("settled_by", sa.String(length=300), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('planned', 'settling', 'settled')",
            name=op.f("ck_group_exchanges_state_known"),
        ),
        sa.CheckConstraint("minutes > 0", name=op.f("ck_group_exchanges_minutes_positive")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_group_exchanges")),
        sa.UniqueConstraint("id", name=op.f("uq_group_exchanges_id")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("paid_by", sa.String(length=8), nullable=True),
        sa.Column("present", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint(
            "role IN ('facilitator', 'participant')", name=op.f("ck_group_members_role_known")
        ),
        sa.CheckConstraint(
            "paid_by IS NULL OR paid_by IN ('self', 'pool')",
            name=op.f("ck_group_members_paid_by_known"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["group_exchanges.id"],
            name=op.f("fk_group_members_group_id_group_exchanges"),
        ),
        sa.PrimaryKeyConstraint("group_id", "position", name=op.f("pk_group_members")),
        sa.UniqueConstraint(
            "group_id", "account_id", name=op.f("uq_group_members_group_id_account_id")
        ),
    )
    op.create_index("ix_group_members_account_id", "group_members", ["account_id"], unique=False)
    op.create_table(
        "group_transfers",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payer", sa.String(length=64), nullable=False),
        sa.Column("payee", sa.String(length=64), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("participant", sa.String(length=64), nullable=True),
        sa.Column("entry_index", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("minutes > 0", name=op.f("ck_group_transfers_minutes_positive")),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["group_exchanges.id"],
            name=op.f("fk_group_transfers_group_id_group_exchanges"),
        ),
        sa.PrimaryKeyConstraint("group_id", "seq", name=op.f("pk_group_transfers")),
    )


def downgrade() -> None:
    op.drop_table("group_transfers")
    op.drop_index("ix_group_members_account_id", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("group_exchanges")
    op.drop_index("ix_exchange_thanks_to_account_seq", table_name="exchange_thanks")
    op.drop_table("exchange_thanks")
    op.drop_index("ix_exchanges_ledger_due", table_name="exchanges")
    op.drop_index("ix_exchanges_state_done_due_at", table_name="exchanges")
    op.drop_index("ix_exchanges_state_confirm_due_at", table_name="exchanges")
    op.drop_index("ix_exchanges_receiver_account_seq", table_name="exchanges")
    op.drop_index("ix_exchanges_provider_account_seq", table_name="exchanges")
    op.drop_table("exchanges")
