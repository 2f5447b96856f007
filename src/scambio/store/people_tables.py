"""The schema of people and organisations, on the same `MetaData` as the ledger tables.

Migration 0002 creates exactly these (plus the audit log's append-only triggers); keep the
two in step. Importing this module registers the tables on `scambio.store.tables.metadata`.

- `members`: citizens, workers and staff. `role` is the community-wide role (member,
  manager, auditor, admin); being an organisation's admin is a row in `org_admins`.
  `status` moves pending -> active (or rejected), active <-> suspended. The ledger account
  (`account_id`) exists from approval on. Profile lists are JSON text, encoded by one
  encoder in `timebank.people`, so both databases store the same bytes.
- `organisations`, `org_admins`, `employee_links`: a worker's link to an employer is
  proposed by the organisation and accepted by the worker; at most one open (proposed or
  active) link per pair, enforced by a partial unique index.
- `audit_log`: who did what to whom and why. Append-only by trigger, like the ledger.
- `outbox`: email waiting to be delivered (SMTP, or the log in development).
- `password_resets`: one-time reset tokens, stored as SHA-256 hashes only.
- `login_failures`: recent failed logins, keyed by a hash of the email or client address.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from scambio.store.tables import api_tokens, metadata

#: An autoincrementing 64-bit key; SQLite only autoincrements an INTEGER PRIMARY KEY.
AutoId: Final = BigInteger().with_variant(Integer(), "sqlite")

MEMBER_ROLES: Final = ("member", "manager", "auditor", "admin")
MEMBER_STATUSES: Final = ("pending", "active", "suspended", "rejected")
ORG_KINDS: Final = ("company", "nonprofit", "public_body")
ORG_STATUSES: Final = ("active", "suspended")
LINK_STATUSES: Final = ("proposed", "active", "declined", "withdrawn", "ended")
#: Link statuses that block proposing another link for the same pair.
OPEN_LINK_STATUSES: Final = ("proposed", "active")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


members = Table(
    "members",
    metadata,
    Column("id", String(32), primary_key=True),
    #: Normalised (trimmed, lower-case); NULL for members a manager registered offline.
    Column("email", String(254), nullable=True, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False, server_default=text("'member'")),
    Column("status", String(16), nullable=False),
    #: Argon2id PHC string; NULL until the member sets a password.
    Column("password_hash", String(255), nullable=True),
    Column("account_id", String(64), nullable=True, unique=True),
    Column("zone", String(64), nullable=True),
    Column("areas", Text, nullable=False, server_default=text("'[]'")),
    Column("tags", Text, nullable=False, server_default=text("'[]'")),
    Column("languages", Text, nullable=False, server_default=text("'[]'")),
    Column("about", Text, nullable=False, server_default=text("''")),
    Column("availability", Text, nullable=False, server_default=text("''")),
    Column("availability_slots", Text, nullable=False, server_default=text("'[]'")),
    Column("contact", Text, nullable=False, server_default=text("'{}'")),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    Column("approved_at", String(27), nullable=True),
    Column("approved_by", String(200), nullable=True),
    CheckConstraint(_in("role", MEMBER_ROLES), name="role_known"),
    CheckConstraint(_in("status", MEMBER_STATUSES), name="status_known"),
)
Index("ix_members_status_id", members.c.status, members.c.id)

organisations = Table(
    "organisations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'active'")),
    Column("zone", String(64), nullable=True),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("account_id", String(64), nullable=True, unique=True),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    CheckConstraint(_in("kind", ORG_KINDS), name="kind_known"),
    CheckConstraint(_in("status", ORG_STATUSES), name="status_known"),
)

org_admins = Table(
    "org_admins",
    metadata,
    Column("org_id", String(32), ForeignKey("organisations.id"), primary_key=True),
    Column("member_id", String(32), ForeignKey("members.id"), primary_key=True),
    Column("created_at", String(27), nullable=False),
)
Index("ix_org_admins_member_id", org_admins.c.member_id)

employee_links = Table(
    "employee_links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", String(200), nullable=False, server_default=text("''")),
    Column("proposed_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    CheckConstraint(_in("status", LINK_STATUSES), name="status_known"),
)
Index(
    "ix_employee_links_open_pair",
    employee_links.c.org_id,
    employee_links.c.member_id,
    unique=True,
    postgresql_where=text(_in("status", OPEN_LINK_STATUSES)),
    sqlite_where=text(_in("status", OPEN_LINK_STATUSES)),
)
Index("ix_employee_links_member_id", employee_links.c.member_id)

audit_log = Table(
    "audit_log",
    metadata,
    Column("idx", AutoId, primary_key=True, autoincrement=True),
    Column("at", String(27), nullable=False),
    #: The member who acted (NULL for operator tokens and the command line).
    Column("actor_member_id", String(32), nullable=True),
    #: The bearer token used (NULL for the command line).
    Column("actor_token_id", String(32), nullable=True),
    #: A readable label: "member <id> (<name>)", "token <id> (<name>)", "cli".
    Column("actor", String(300), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("reason", Text, nullable=True),
    #: JSON object with what changed.
    Column("details", Text, nullable=False, server_default=text("'{}'")),
)
Index("ix_audit_log_subject", audit_log.c.subject_type, audit_log.c.subject_id, audit_log.c.idx)

outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("created_at", String(27), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    #: The body carries a secret (a reset token): it is blanked once delivered.
    Column("sensitive", Boolean, nullable=False, server_default=text("false")),
    #: pending -> sending -> sent, or back to pending (retry) or failed.
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", String(27), nullable=False),
    Column("sent_at", String(27), nullable=True),
    Column("last_error", String(500), nullable=True),
)
Index("ix_outbox_status_next", outbox.c.status, outbox.c.next_attempt_at)

password_resets = Table(
    "password_resets",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("expires_at", String(27), nullable=False),
    Column("used_at", String(27), nullable=True),
)
Index("ix_password_resets_member_id", password_resets.c.member_id)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    #: SHA-256 of "email:<address>" or "ip:<address>": no raw addresses at rest.
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("at", String(27), nullable=False),
)
Index("ix_login_failures_key_at", login_failures.c.key_hash, login_failures.c.at)
Index("ix_login_failures_at", login_failures.c.at)

# Columns migration 0002 adds to `api_tokens` (defined in `tables.py`): a member's own
# tokens name the member, carry their scopes (space-separated) and may expire. Operator
# tokens (issued by `scambio token issue`) leave all three NULL.
for _column in (
    Column("member_id", String(32), ForeignKey("members.id"), nullable=True),
    Column("scopes", String(100), nullable=True),
    Column("expires_at", String(27), nullable=True),
):
    api_tokens.append_column(_column, replace_existing=True)
Index("ix_api_tokens_member_id", api_tokens.c.member_id)
