"""The schema of sponsorship policies, on the shared `MetaData`.

Migration 0006 creates exactly these (plus append-only triggers on `policy_versions`);
keep the two in step (a test compares them).

- `policies`: one row per policy id: the version in force, its kind and sponsor, and
  whether it is active or retired (its file is gone). Runs of one policy lock its row.
- `policy_versions`: every version ever applied, keyed by its hash, with the file's text
  and the canonical content the hash covers. Append-only, like the ledger.
- `policy_files`: the last load of each file in the policies directory: ok, or the
  error that kept it out (what `/health` reports).
- `policy_enrolments`: employees an org admin enrolled in a policy (`enrolment =
  "by-admin"`).
- `policy_restricted_accounts`: the restricted accounts (sponsored credit of one member
  from one sponsor) opened so far, found by member when an exchange is paid.
- `policy_issues`: every posting a policy decided to issue, written before the ledger
  call (`due`) and completed after it (`done` with the entry's index, or `failed`, or
  `short` when the budget left nothing). Unique per (policy, period, rule, subject): the
  same issuance is decided once, and its entry id is derived from those four, so the
  ledger moves the minutes once however often a run is repeated.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

POLICY_STATUSES: Final = ("active", "retired")
FILE_STATUSES: Final = ("ok", "error")
ISSUE_STATES: Final = ("due", "done", "failed", "short")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


policies = Table(
    "policies",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("sponsor_org", String(32), nullable=True),
    Column("title", String(200), nullable=False),
    #: The version in force (a `policy_versions` hash).
    Column("version", String(64), nullable=False),
    Column("file", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_applied_at", String(27), nullable=False),
    Column("applied_at", String(27), nullable=False),
    CheckConstraint(_in("status", POLICY_STATUSES), name="status_known"),
)
Index("ix_policies_sponsor_org", policies.c.sponsor_org)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("policy_id", String(48), nullable=False),
    Column("kind", String(32), nullable=False),
    #: The file's text as applied (the first text that produced this version).
    Column("source", Text, nullable=False),
    #: The canonical content (RFC 8785 JSON) whose SHA-256 is `version`.
    Column("canonical", Text, nullable=False),
    Column("file", String(255), nullable=False),
    Column("applied_at", String(27), nullable=False),
)
Index("ix_policy_versions_policy_id", policy_versions.c.policy_id)

policy_files = Table(
    "policy_files",
    metadata,
    Column("file", String(255), primary_key=True),
    Column("policy_id", String(48), nullable=True),
    Column("version", String(64), nullable=True),
    Column("status", String(8), nullable=False),
    Column("error", Text, nullable=True),
    Column("checked_at", String(27), nullable=False),
    CheckConstraint(_in("status", FILE_STATUSES), name="status_known"),
)

policy_enrolments = Table(
    "policy_enrolments",
    metadata,
    Column("policy_id", String(48), primary_key=True),
    Column("member_id", String(32), primary_key=True),
    Column("enrolled_at", String(27), nullable=False),
    Column("enrolled_by", String(300), nullable=False),
)
Index("ix_policy_enrolments_member_id", policy_enrolments.c.member_id)

policy_restricted_accounts = Table(
    "policy_restricted_accounts",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("org_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("member_account", String(64), nullable=False),
    Column("opened_at", String(27), nullable=False),
)
Index("ix_policy_restricted_accounts_member_account", policy_restricted_accounts.c.member_account)
Index("ix_policy_restricted_accounts_org_id", policy_restricted_accounts.c.org_id)

policy_issues = Table(
    "policy_issues",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("policy_id", String(48), nullable=False),
    Column("period", String(16), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("entry_id", String(128), nullable=False, unique=True),
    Column("version", String(64), nullable=False),
    Column("payer", String(64), nullable=False),
    Column("payee", String(64), nullable=False),
    #: What the kind proposed, and what was (or is being) issued: less when the budget
    #: ran out, 0 when nothing was left.
    Column("wanted", BigInteger, nullable=False),
    Column("minutes", BigInteger, nullable=False),
    #: Whether it counts against the budget (expiries, which return credit, do not).
    Column("counts", Boolean, nullable=False),
    Column("state", String(8), nullable=False),
    Column("memo", Text, nullable=False),
    Column("why", Text, nullable=False),
    Column("entry_index", BigInteger, nullable=True),
    Column("entry_time", String(27), nullable=True),
    #: For grants: when the credit expires (the grant's time plus the policy's days).
    Column("expires_at", String(27), nullable=True),
    #: For grants: days until expiry, fixed when decided (the version may change later).
    Column("expire_days", BigInteger, nullable=True),
    Column("error", String(500), nullable=True),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    CheckConstraint(_in("state", ISSUE_STATES), name="state_known"),
    CheckConstraint("minutes >= 0 AND wanted >= minutes", name="minutes_valid"),
    UniqueConstraint("policy_id", "period", "rule", "subject"),
)
Index("ix_policy_issues_payee", policy_issues.c.payee)
Index("ix_policy_issues_rule_state_expires_at", policy_issues.c.rule, policy_issues.c.expires_at)
