"""The schema of exchanges, group exchanges and thanks, on the shared `MetaData`.

Migration 0004 creates exactly these; keep the two in step (a test compares them).

- `exchanges`: one row per exchange between two accounts (a member's or an
  organisation's). `state` moves as `timebank.exchange_rules` allows; every change is a
  compare-and-set on (`state`, `version`), so two concurrent acts change it once.
  `ledger_due` names a ledger effect (post, void) decided but not yet confirmed written:
  the effect is idempotent (its entry id derives from the exchange id) and is retried
  until done, by the next request or by the scheduled job. The ledger entries themselves
  are found by id (`xch-<id>`, `xch-<id>:post`, `:void`, `xch-<id>.settle`); `hold_index` and
  `settle_index` cache their positions. `listing_id` names the listing an exchange came
  from (a foreign key since migration 0005, indexed: the manager's queue asks which
  requests already have a live exchange).
- `exchange_thanks`: one thank-you note per party per exchange.
- `group_exchanges`, `group_members`, `group_transfers`: a workshop or urban lab with
  facilitators and participants, and, once settling starts, the exact transfers decided
  (so a retried settlement repeats the same linked transfers, ids `grp-<id>.<seq>`).
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
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from scambio.store import listings_tables as _listings  # noqa: F401 - `listings.id`, for the FK
from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

EXCHANGE_STATES: Final = (
    "proposed",
    "accepted",
    "done",
    "confirmed",
    "declined",
    "cancelled",
    "disputed",
    "resolved",
    "expired",
)
GROUP_STATES: Final = ("planned", "settling", "settled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


exchanges = Table(
    "exchanges",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("0")),
    Column("provider_account", String(64), nullable=False),
    Column("receiver_account", String(64), nullable=False),
    #: provider, receiver, or NULL when a manager proposed (introduced) the exchange.
    Column("proposer_side", String(8), nullable=True),
    Column("proposed_by", String(300), nullable=False),
    Column("proposed_by_member", String(32), nullable=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("area", String(32), nullable=True),
    Column("listing_id", String(64), ForeignKey("listings.id"), nullable=True),
    #: Agreed (and held) minutes; what the provider reported; what was finally posted.
    Column("minutes", BigInteger, nullable=False),
    Column("actual_minutes", BigInteger, nullable=True),
    Column("final_minutes", BigInteger, nullable=True),
    #: Seconds the hold lives, fixed at proposal so that a retried hold is identical.
    Column("hold_expires_in", BigInteger, nullable=False),
    Column("hold_index", BigInteger, nullable=True),
    Column("settle_index", BigInteger, nullable=True),
    Column("ledger_due", String(8), nullable=True),
    Column("ledger_error", String(500), nullable=True),
    #: Set when a manager recorded the exchange for an offline member.
    Column("recorded_by", String(300), nullable=True),
    Column("recorded_reason", Text, nullable=True),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    Column("accepted_at", String(27), nullable=True),
    Column("done_at", String(27), nullable=True),
    Column("done_due_at", String(27), nullable=True),
    Column("confirm_due_at", String(27), nullable=True),
    Column("closed_at", String(27), nullable=True),
    Column("closed_by", String(300), nullable=True),
    Column("reason", Text, nullable=True),
    Column("disputed_by", String(300), nullable=True),
    Column("dispute_reason", Text, nullable=True),
    Column("resolution_reason", Text, nullable=True),
    CheckConstraint(_in("state", EXCHANGE_STATES), name="state_known"),
    CheckConstraint("minutes > 0", name="minutes_positive"),
    CheckConstraint("version >= 0", name="version_nonneg"),
    CheckConstraint("provider_account <> receiver_account", name="two_parties"),
    CheckConstraint("ledger_due IS NULL OR ledger_due IN ('post', 'void')", name="due_known"),
)
Index("ix_exchanges_provider_account_seq", exchanges.c.provider_account, exchanges.c.seq)
Index("ix_exchanges_receiver_account_seq", exchanges.c.receiver_account, exchanges.c.seq)
Index("ix_exchanges_state_confirm_due_at", exchanges.c.state, exchanges.c.confirm_due_at)
Index("ix_exchanges_state_done_due_at", exchanges.c.state, exchanges.c.done_due_at)
Index("ix_exchanges_ledger_due", exchanges.c.ledger_due)
Index("ix_exchanges_listing_id", exchanges.c.listing_id)

exchange_thanks = Table(
    "exchange_thanks",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("exchange_id", String(36), ForeignKey("exchanges.id"), nullable=False),
    Column("from_account", String(64), nullable=False),
    Column("to_account", String(64), nullable=False),
    Column("author", String(300), nullable=False),
    Column("author_member", String(32), nullable=True),
    Column("message", Text, nullable=False),
    Column("created_at", String(27), nullable=False),
    UniqueConstraint("exchange_id", "from_account"),
)
Index("ix_exchange_thanks_to_account_seq", exchange_thanks.c.to_account, exchange_thanks.c.seq)

group_exchanges = Table(
    "group_exchanges",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False, server_default=text("0")),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("area", String(32), nullable=True),
    Column("zone", String(64), nullable=True),
    #: Minutes each facilitator gave (the session's length, preparation included).
    Column("minutes", BigInteger, nullable=False),
    Column("pool_account", String(64), nullable=False),
    Column("created_by", String(300), nullable=False),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    Column("settled_at", String(27), nullable=True),
    Column("settled_by", String(300), nullable=True),
    Column("last_error", Text, nullable=True),
    CheckConstraint(_in("state", GROUP_STATES), name="state_known"),
    CheckConstraint("minutes > 0", name="minutes_positive"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(36), ForeignKey("group_exchanges.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("account_id", String(64), nullable=False),
    #: facilitator or participant.
    Column("role", String(16), nullable=False),
    #: For participants: self or pool (who pays their share).
    Column("paid_by", String(8), nullable=True),
    #: Participants marked absent at settlement pay nothing.
    Column("present", Boolean, nullable=False, server_default=text("true")),
    CheckConstraint("role IN ('facilitator', 'participant')", name="role_known"),
    CheckConstraint("paid_by IS NULL OR paid_by IN ('self', 'pool')", name="paid_by_known"),
    UniqueConstraint("group_id", "account_id"),
)
Index("ix_group_members_account_id", group_members.c.account_id)

group_transfers = Table(
    "group_transfers",
    metadata,
    Column("group_id", String(36), ForeignKey("group_exchanges.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("payer", String(64), nullable=False),
    Column("payee", String(64), nullable=False),
    Column("minutes", BigInteger, nullable=False),
    #: The participant whose share this pays (NULL: the pool's combined share).
    Column("participant", String(64), nullable=True),
    Column("entry_index", BigInteger, nullable=True),
    CheckConstraint("minutes > 0", name="minutes_positive"),
)
