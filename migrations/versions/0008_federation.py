"""federation: peers, cross-timebank transfers, nonces, imports

Creates the tables `scambio.store.federation_tables` describes: peers, the per-transfer
state of the two-phase protocol on this side, the nonces of accepted signed requests,
the last checkpoint seen of each peer, reconciliation reports, and import runs with the
members they created. No triggers: these rows change state; the ledger entries they
produce are the append-only record.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TRANSFER_STATES = (
    "state IN ('preparing', 'held', 'prepared', 'committing', 'committed', 'aborting', "
    "'aborted', 'refused')"
)


def _stamp(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "federation_peers",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("vkey", sa.String(length=500), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.String(length=300), nullable=False),
        sa.Column("clearing_account", sa.String(length=64), nullable=False),
        sa.Column("rate_ours", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("rate_theirs", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("max_we_owe", sa.BigInteger(), nullable=False),
        sa.Column("max_they_owe", sa.BigInteger(), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'active'"), nullable=False
        ),
        _stamp("created_at", nullable=False),
        _stamp("updated_at", nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'suspended')", name=op.f("ck_federation_peers_status_known")
        ),
        sa.CheckConstraint(
            "rate_ours > 0 AND rate_theirs > 0", name=op.f("ck_federation_peers_rate_positive")
        ),
        sa.CheckConstraint(
            "max_we_owe >= 0 AND max_they_owe >= 0",
            name=op.f("ck_federation_peers_limits_nonneg"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_federation_peers")),
        sa.UniqueConstraint("origin", name=op.f("uq_federation_peers_origin")),
        sa.UniqueConstraint("key_id", name=op.f("uq_federation_peers_key_id")),
        sa.UniqueConstraint("clearing_account", name=op.f("uq_federation_peers_clearing_account")),
    )
    op.create_table(
        "federation_transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("peer", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("local_account", sa.String(length=64), nullable=False),
        sa.Column("remote_account", sa.String(length=64), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("peer_minutes", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("our_sig", sa.String(length=100), nullable=True),
        sa.Column("peer_sig", sa.String(length=100), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.Column("decision_sig", sa.String(length=100), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hold_index", sa.BigInteger(), nullable=True),
        sa.Column("commit_index", sa.BigInteger(), nullable=True),
        sa.Column("peer_acked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("prepare_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _stamp("created_at", nullable=False),
        _stamp("updated_at", nullable=False),
        _stamp("decided_at"),
        sa.CheckConstraint(
            "direction IN ('out', 'in')", name=op.f("ck_federation_transfers_direction_known")
        ),
        sa.CheckConstraint(TRANSFER_STATES, name=op.f("ck_federation_transfers_state_known")),
        sa.CheckConstraint(
            "minutes > 0 AND peer_minutes > 0",
            name=op.f("ck_federation_transfers_minutes_positive"),
        ),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('commit', 'abort')",
            name=op.f("ck_federation_transfers_decision_known"),
        ),
        sa.ForeignKeyConstraint(
            ["peer"],
            ["federation_peers.name"],
            name=op.f("fk_federation_transfers_peer_federation_peers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_federation_transfers")),
    )
    op.create_index(
        "ix_federation_transfers_state", "federation_transfers", ["state"], unique=False
    )
    op.create_index(
        "ix_federation_transfers_peer_created_at",
        "federation_transfers",
        ["peer", "created_at"],
        unique=False,
    )
    op.create_table(
        "federation_nonces",
        sa.Column("key_id", sa.String(length=300), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "nonce", name=op.f("pk_federation_nonces")),
    )
    op.create_index("ix_federation_nonces_created", "federation_nonces", ["created"], unique=False)
    op.create_table(
        "federation_checkpoints",
        sa.Column("peer", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        _stamp("seen_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["peer"],
            ["federation_peers.name"],
            name=op.f("fk_federation_checkpoints_peer_federation_peers"),
        ),
        sa.PrimaryKeyConstraint("peer", name=op.f("pk_federation_checkpoints")),
    )
    op.create_table(
        "federation_reconciliations",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("peer", sa.String(length=32), nullable=False),
        _stamp("at", nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["peer"],
            ["federation_peers.name"],
            name=op.f("fk_federation_reconciliations_peer_federation_peers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_federation_reconciliations")),
    )
    op.create_index(
        "ix_federation_reconciliations_peer_id",
        "federation_reconciliations",
        ["peer", "id"],
        unique=False,
    )
    op.create_table(
        "import_runs",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _stamp("at", nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "source IN ('timeoverflow', 'komunitin', 'ces')",
            name=op.f("ck_import_runs_source_known"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'done')", name=op.f("ck_import_runs_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
        sa.UniqueConstraint("digest", name=op.f("uq_import_runs_digest")),
    )
    op.create_table(
        "imported_members",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_imported_members_member_id_members")
        ),
        sa.PrimaryKeyConstraint("source", "external_id", name=op.f("pk_imported_members")),
    )


def downgrade() -> None:
    op.drop_table("imported_members")
    op.drop_table("import_runs")
    op.drop_index("ix_federation_reconciliations_peer_id", table_name="federation_reconciliations")
    op.drop_table("federation_reconciliations")
    op.drop_table("federation_checkpoints")
    op.drop_index("ix_federation_nonces_created", table_name="federation_nonces")
    op.drop_table("federation_nonces")
    op.drop_index("ix_federation_transfers_peer_created_at", table_name="federation_transfers")
    op.drop_index("ix_federation_transfers_state", table_name="federation_transfers")
    op.drop_table("federation_transfers")
    op.drop_table("federation_peers")
