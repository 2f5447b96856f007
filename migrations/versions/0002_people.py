"""people: members, organisations, employee links, audit log, outbox, login throttling

Adds the timebank's people to the ledger schema (`scambio.store.people_tables` describes
the same tables) and extends `api_tokens` with the member a token belongs to, its scopes
and its expiry. The audit log is append-only on both databases, like the ledger's tables:
PostgreSQL reuses 0001's `scambio_append_only()` function; SQLite gets its own triggers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_LINKS = "status IN ('proposed', 'active')"


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), server_default=sa.text("'member'"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("areas", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("tags", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("languages", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("about", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("availability", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("availability_slots", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("contact", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("updated_at", sa.String(length=27), nullable=False),
        sa.Column("approved_at", sa.String(length=27), nullable=True),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "role IN ('member', 'manager', 'auditor', 'admin')",
            name=op.f("ck_members_role_known"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended', 'rejected')",
            name=op.f("ck_members_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("email", name=op.f("uq_members_email")),
        sa.UniqueConstraint("account_id", name=op.f("uq_members_account_id")),
    )
    op.create_index("ix_members_status_id", "members", ["status", "id"], unique=False)
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'active'"), nullable=False
        ),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("updated_at", sa.String(length=27), nullable=False),
        sa.CheckConstraint(
            "kind IN ('company', 'nonprofit', 'public_body')",
            name=op.f("ck_organisations_kind_known"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'suspended')", name=op.f("ck_organisations_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("account_id", name=op.f("uq_organisations_account_id")),
    )
    op.create_table(
        "org_admins",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_org_admins_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_org_admins_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "member_id", name=op.f("pk_org_admins")),
    )
    op.create_index("ix_org_admins_member_id", "org_admins", ["member_id"], unique=False)
    op.create_table(
        "employee_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("proposed_at", sa.String(length=27), nullable=False),
        sa.Column("updated_at", sa.String(length=27), nullable=False),
        sa.CheckConstraint(
            "status IN ('proposed', 'active', 'declined', 'withdrawn', 'ended')",
            name=op.f("ck_employee_links_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_employee_links_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_employee_links_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employee_links")),
    )
    op.create_index(
        "ix_employee_links_open_pair",
        "employee_links",
        ["org_id", "member_id"],
        unique=True,
        postgresql_where=sa.text(OPEN_LINKS),
        sqlite_where=sa.text(OPEN_LINKS),
    )
    op.create_index("ix_employee_links_member_id", "employee_links", ["member_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("idx", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.Column("actor_member_id", sa.String(length=32), nullable=True),
        sa.Column("actor_token_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_subject", "audit_log", ["subject_type", "subject_id", "idx"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.String(length=27), nullable=False),
        sa.Column("sent_at", sa.String(length=27), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_status_next", "outbox", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "password_resets",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=27), nullable=False),
        sa.Column("expires_at", sa.String(length=27), nullable=False),
        sa.Column("used_at", sa.String(length=27), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_password_resets_member_id_members")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_password_resets")),
    )
    op.create_index("ix_password_resets_member_id", "password_resets", ["member_id"], unique=False)
    op.create_table(
        "login_failures",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("at", sa.String(length=27), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key_hash", "at"], unique=False)
    op.create_index("ix_login_failures_at", "login_failures", ["at"], unique=False)
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("member_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("scopes", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.String(length=27), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_tokens_member_id_members"), "members", ["member_id"], ["id"]
        )
        batch.create_index("ix_api_tokens_member_id", ["member_id"], unique=False)
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_member_id")
        batch.drop_constraint(op.f("fk_api_tokens_member_id_members"), type_="foreignkey")
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
        batch.drop_column("member_id")
    op.drop_index("ix_login_failures_at", table_name="login_failures")
    op.drop_index("ix_login_failures_key_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_password_resets_member_id", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_index("ix_outbox_status_next", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_employee_links_member_id", table_name="employee_links")
    op.drop_index(
        "ix_employee_links_open_pair",
        table_name="employee_links",
        postgresql_where=sa.text(OPEN_LINKS),
        sqlite_where=sa.text(OPEN_LINKS),
    )
    op.drop_table("employee_links")
    op.drop_index("ix_org_admins_member_id", table_name="org_admins")
    op.drop_table("org_admins")
    op.drop_table("organisations")
    op.drop_index("ix_members_status_id", table_name="members")
    op.drop_table("members")


POSTGRES_TRIGGERS = [
    # scambio_append_only() comes from 0001.
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION scambio_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION scambio_append_only()",
]

SQLITE_TRIGGER_NAMES = ["audit_log_no_update", "audit_log_no_delete"]

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_log_no_{op_.lower()} BEFORE {op_} ON audit_log BEGIN "
    f"SELECT RAISE(ABORT, 'audit_log is append-only: {op_} refused'); END"
    for op_ in ("UPDATE", "DELETE")
]
