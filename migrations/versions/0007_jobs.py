"""scheduled jobs: runs and reports

Creates the tables `scambio.store.jobs_tables` describes: the record of every job run
(unique per job and period), the ledger verification state, the signed monthly
co-production reports and the report's projection of first exchanges between pairs.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _stamp("started_at", nullable=False),
        _stamp("finished_at"),
        sa.Column("summary", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=False),
        _stamp("lease_until"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_job_runs_status_known")
        ),
        sa.CheckConstraint("attempts >= 1", name=op.f("ck_job_runs_attempts_positive")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "period", name=op.f("uq_job_runs_job_period")),
    )
    op.create_index("ix_job_runs_job_seq", "job_runs", ["job", "seq"], unique=False)
    op.create_index("ix_job_runs_status_seq", "job_runs", ["status", "seq"], unique=False)
    op.create_table(
        "ledger_verification",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verified_size", sa.BigInteger(), nullable=True),
        sa.Column("verified_root", sa.LargeBinary(length=32), nullable=True),
        sa.Column("verified_checkpoint", sa.Text(), nullable=True),
        _stamp("verified_at"),
        sa.Column("state", sa.LargeBinary(), nullable=True),
        _stamp("failed_at"),
        sa.Column("failed_index", sa.BigInteger(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        _stamp("updated_at", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_verification_single_row")),
        sa.CheckConstraint(
            "status IN ('verified', 'compromised')",
            name=op.f("ck_ledger_verification_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_verification")),
    )
    op.create_table(
        "coproduction_reports",
        sa.Column("period", sa.String(length=7), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        _stamp("created_at", nullable=False),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_coproduction_reports")),
    )
    op.create_table(
        "report_pairs",
        sa.Column("account_a", sa.String(length=64), nullable=False),
        sa.Column("account_b", sa.String(length=64), nullable=False),
        sa.Column("first_idx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_a", "account_b", name=op.f("pk_report_pairs")),
    )
    op.create_index("ix_report_pairs_first_idx", "report_pairs", ["first_idx"], unique=False)
    op.create_table(
        "report_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pairs_size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_report_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_state")),
    )


def downgrade() -> None:
    op.drop_table("report_state")
    op.drop_index("ix_report_pairs_first_idx", table_name="report_pairs")
    op.drop_table("report_pairs")
    op.drop_table("coproduction_reports")
    op.drop_table("ledger_verification")
    op.drop_index("ix_job_runs_status_seq", table_name="job_runs")
    op.drop_index("ix_job_runs_job_seq", table_name="job_runs")
    op.drop_table("job_runs")
