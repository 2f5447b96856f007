"""The schema of offers and requests (listings) and of the managers' introductions.

Migration 0003 creates exactly these, plus what each database needs for full-text search
and that SQLAlchemy does not describe: on PostgreSQL a generated `search` tsvector column
(title, tags and description, Italian and English stemming, weighted) with a GIN index;
on SQLite an FTS5 table `listings_fts` over the same three columns, an external-content
index kept in step by triggers. Importing this module registers the tables on
`scambio.store.tables.metadata`.

- `listings`: an offer or a request, owned by exactly one member or one organisation (a
  check constraint says so). `seq` is an integer key in the order of posting that never
  changes: FTS5 uses it as its rowid (SQLite may renumber an implicit rowid on VACUUM),
  and search orders and pages by it ("newest first" is "last posted first"); `id` is the
  public id. `slot_days` is a bit mask of the weekdays in `availability_slots` (bit 0 = Monday),
  so a weekday filter is one integer test. `reminded_for` is the `expires_at` for which an
  expiry reminder went out: a renewal moves `expires_at`, so the next period reminds again,
  and each period reminds once.
- `introductions`: a manager introduced a helper (a member or an organisation) to the
  owner of a request. One per request and helper.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

LISTING_KINDS: Final = ("offer", "request")
LISTING_RESOURCES: Final = ("service", "space", "equipment", "skill")
LISTING_MODES: Final = ("in_person", "remote", "either")
LISTING_STATUSES: Final = ("active", "paused", "expired", "closed")
HELPER_TYPES: Final = ("member", "organisation")
#: Stored lengths; the exact bounds people may type are checked in `timebank.listings`.
TITLE_COLUMN: Final = 200


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


ONE_OWNER: Final = (
    "(owner_member_id IS NOT NULL AND owner_org_id IS NULL) OR "
    "(owner_member_id IS NULL AND owner_org_id IS NOT NULL)"
)

listings = Table(
    "listings",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("resource", String(16), nullable=False, server_default=text("'service'")),
    Column("owner_member_id", String(32), ForeignKey("members.id"), nullable=True),
    Column("owner_org_id", String(32), ForeignKey("organisations.id"), nullable=True),
    #: The member who posted it (an org admin for an organisation's listing, a manager for
    #: an offline member); NULL when an operator token posted it.
    Column("posted_by", String(32), nullable=True),
    Column("title", String(TITLE_COLUMN), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("area", String(32), nullable=False),
    Column("tags", Text, nullable=False, server_default=text("'[]'")),
    Column("zone", String(64), nullable=True),
    Column("mode", String(16), nullable=False),
    Column("availability", Text, nullable=False, server_default=text("''")),
    Column("availability_slots", Text, nullable=False, server_default=text("'[]'")),
    Column("slot_days", SmallInteger, nullable=False, server_default=text("0")),
    Column("status", String(16), nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    Column("expires_at", String(27), nullable=False),
    Column("renewed_at", String(27), nullable=True),
    Column("closed_at", String(27), nullable=True),
    Column("reminded_for", String(27), nullable=True),
    CheckConstraint(_in("kind", LISTING_KINDS), name="kind_known"),
    CheckConstraint(_in("resource", LISTING_RESOURCES), name="resource_known"),
    CheckConstraint(_in("mode", LISTING_MODES), name="mode_known"),
    CheckConstraint(_in("status", LISTING_STATUSES), name="status_known"),
    CheckConstraint(ONE_OWNER, name="one_owner"),
)
#: Search, newest (last posted) first, over the listings of one status, and the queue.
Index("ix_listings_status_seq", listings.c.status, listings.c.seq)
#: Expiry and reminders: the listings of one status by expiry.
Index("ix_listings_status_expires_at", listings.c.status, listings.c.expires_at)
#: The area and zone filters, newest first (and the text search's window within them).
Index(
    "ix_listings_area_kind_status_seq",
    listings.c.area,
    listings.c.kind,
    listings.c.status,
    listings.c.seq,
)
Index("ix_listings_zone_status_seq", listings.c.zone, listings.c.status, listings.c.seq)
Index("ix_listings_owner_member_id_seq", listings.c.owner_member_id, listings.c.seq)
Index("ix_listings_owner_org_id_seq", listings.c.owner_org_id, listings.c.seq)

introductions = Table(
    "introductions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("request_id", String(32), ForeignKey("listings.id"), nullable=False),
    #: member or organisation, and its id.
    Column("helper_type", String(16), nullable=False),
    Column("helper_id", String(32), nullable=False),
    #: The helper's offer the introduction is about, if any.
    Column("offer_id", String(32), ForeignKey("listings.id"), nullable=True),
    Column("note", Text, nullable=False, server_default=text("''")),
    Column("created_at", String(27), nullable=False),
    Column("created_by", String(300), nullable=False),
    Column("created_by_member_id", String(32), nullable=True),
    CheckConstraint(_in("helper_type", HELPER_TYPES), name="helper_type_known"),
    UniqueConstraint("request_id", "helper_type", "helper_id", name="uq_introductions_pair"),
)
Index("ix_introductions_created_at_id", introductions.c.created_at, introductions.c.id)
