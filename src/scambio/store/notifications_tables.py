"""The schema of in-app notifications, notification settings and email changes.

Migration 0005 creates exactly these (and adds the foreign key from `exchanges.listing_id`
to `listings.id`, declared in `store.exchanges_tables`); keep the two in step (a test
compares them). Importing this module registers the tables on the shared `MetaData`.

- `notifications`: one row per member per event that concerns them (an exchange proposed
  to them, a listing about to lapse, an introduction...), written in the transaction of
  the event itself, so a notification never exists for a change that rolled back. `kind`
  is a stable string (`exchange.proposed`, `listing.expiring`...); the subject columns
  name what it is about (an exchange, a listing, an employee link, an organisation, an
  introduction) as plain references: none of those rows is ever deleted. `emailed` says
  whether the same event also went to the outbox, so a digest does not repeat it.
- `notification_settings`: a member's choices, one row, created on first change. `email`
  is a JSON object of kind -> bool overriding the defaults (kinds absent keep theirs).
  `digest_up_to` is the last notification id a digest covered.
- `email_changes`: pending requests to change a member's email: the one-time code (only
  its SHA-256 at rest) sent to the new address, valid until `expires_at`, used once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

notifications = Table(
    "notifications",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", String(500), nullable=False),
    Column("exchange_id", String(36), nullable=True),
    Column("listing_id", String(32), nullable=True),
    Column("link_id", String(32), nullable=True),
    Column("organisation_id", String(32), nullable=True),
    Column("introduction_id", String(32), nullable=True),
    Column("created_at", String(27), nullable=False),
    Column("read_at", String(27), nullable=True),
    Column("emailed", Boolean, nullable=False, server_default=text("false")),
)
#: A member's notifications, newest first; and the unread ones (count and filter).
Index("ix_notifications_member_id_id", notifications.c.member_id, notifications.c.id)
Index(
    "ix_notifications_member_id_read_at_id",
    notifications.c.member_id,
    notifications.c.read_at,
    notifications.c.id,
)

notification_settings = Table(
    "notification_settings",
    metadata,
    Column("member_id", String(32), ForeignKey("members.id"), primary_key=True),
    Column("email", Text, nullable=False, server_default=text("'{}'")),
    Column("digest", Boolean, nullable=False, server_default=text("true")),
    Column("digest_up_to", BigInteger, nullable=True),
    Column("updated_at", String(27), nullable=False),
)

email_changes = Table(
    "email_changes",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("new_email", String(254), nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("expires_at", String(27), nullable=False),
    Column("used_at", String(27), nullable=True),
)
Index("ix_email_changes_member_id", email_changes.c.member_id)
