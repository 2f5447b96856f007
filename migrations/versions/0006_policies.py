"""sponsorship policies: versions, enrolments, issuance

Creates the tables `scambio.store.policy_tables` describes: policies and every version
ever applied (append-only, by trigger, as the ledger and the audit log are), the last
load of each policy file, enrolments, restricted accounts, and what policies issued.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=27), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sponsor_org", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _stamp("first_applied_at", nullable=False),
        _stamp("applied_at", nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'retired')", name=op.f("ck_policies_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
    )
    op.create_index("ix_policies_sponsor_org", "policies", ["sponsor_org"], unique=False)
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("policy_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        _stamp("applied_at", nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
    )
    op.create_index("ix_policy_versions_policy_id", "policy_versions", ["policy_id"], unique=False)
    op.create_table(
        "policy_files",
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("policy_id", sa.String(length=48), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _stamp("checked_at", nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_policy_files_status_known")),
        sa.PrimaryKeyConstraint("file", name=op.f("pk_policy_files")),
    )
    op.create_table(
        "policy_enrolments",
        sa.Column("policy_id", sa.String(length=48), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        _stamp("enrolled_at", nullable=False),
        sa.Column("enrolled_by", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", "member_id", name=op.f("pk_policy_enrolments")),
    )
    op.create_index(
        "ix_policy_enrolments_member_id", "policy_enrolments", ["member_id"], unique=False
    )
    op.create_table(
        "policy_restricted_accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("member_account", sa.String(length=64), nullable=False),
        _stamp("opened_at", nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_policy_restricted_accounts")),
    )
    op.create_index(
        "ix_policy_restricted_accounts_member_account",
        "policy_restricted_accounts",
        ["member_account"],
        unique=False,
    )
    op.create_index(
        "ix_policy_restricted_accounts_org_id",
        "policy_restricted_accounts",
        ["org_id"],
        unique=False,
    )
    op.create_table(
        "policy_issues",
        sa.Column("seq", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("policy_id", sa.String(length=48), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("payer", sa.String(length=64), nullable=False),
        sa.Column("payee", sa.String(length=64), nullable=False),
        sa.Column("wanted", sa.BigInteger(), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), nullable=True),
        _stamp("entry_time"),
        _stamp("expires_at"),
        sa.Column("expire_days", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        _stamp("created_at", nullable=False),
        _stamp("updated_at", nullable=False),
        sa.CheckConstraint(
            "state IN ('due', 'done', 'failed', 'short')",
            name=op.f("ck_policy_issues_state_known"),
        ),
        sa.CheckConstraint(
            "minutes >= 0 AND wanted >= minutes", name=op.f("ck_policy_issues_minutes_valid")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_policy_issues")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_policy_issues_entry_id")),
        sa.UniqueConstraint(
            "policy_id",
            "period",
            "rule",
            "subject",
            name=op.f("uq_policy_issues_policy_id_period_rule_subject"),
        ),
    )
    op.create_index("ix_policy_issues_payee", "policy_issues", ["payee"], unique=False)
    op.create_index(
        "ix_policy_issues_rule_state_expires_at",
        "policy_issues",
        ["rule", "expires_at"],
        unique=False,
    )
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS policy_versions_append_only ON policy_versions")
        op.execute("DROP TRIGGER IF EXISTS policy_versions_no_truncate ON policy_versions")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_policy_issues_rule_state_expires_at", table_name="policy_issues")
    op.drop_index("ix_policy_issues_payee", table_name="policy_issues")
    op.drop_table("policy_issues")
    op.drop_index("ix_policy_restricted_accounts_org_id", table_name="policy_restricted_accounts")
    op.drop_index(
        "ix_policy_restricted_accounts_member_account", table_name="policy_restricted_accounts"
    )
    op.drop_table("policy_restricted_accounts")
    op.drop_index("ix_policy_enrolments_member_id", table_name="policy_enrolments")
    op.drop_table("policy_enrolments")
    op.drop_table("policy_files")
    op.drop_index("ix_policy_versions_policy_id", table_name="policy_versions")
    op.drop_table("policy_versions")
    op.drop_index("ix_policies_sponsor_org", table_name="policies")
    op.drop_table("policies")


POSTGRES_TRIGGERS = [
    # scambio_append_only() comes from 0001.
    "CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions "
    "FOR EACH ROW EXECUTE FUNCTION scambio_append_only()",
    "CREATE TRIGGER policy_versions_no_truncate BEFORE TRUNCATE ON policy_versions "
    "FOR EACH STATEMENT EXECUTE FUNCTION scambio_append_only()",
]

SQLITE_TRIGGER_NAMES = ["policy_versions_no_update", "policy_versions_no_delete"]

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER policy_versions_no_{op_.lower()} BEFORE {op_} ON policy_versions BEGIN "
    f"SELECT RAISE(ABORT, 'policy_versions is append-only: {op_} refused'); END"
    for op_ in ("UPDATE", "DELETE")
]
