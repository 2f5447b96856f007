"""The schema of federation (peers, cross-timebank transfers, replay protection,
reconciliation) and of imports, on the shared `MetaData`.

Migration 0008 creates exactly these; keep the two in step (a test compares them).

- `federation_peers`: another timebank we exchange hours with: its name (our local
  alias, the `peer` in `member@peer`), base URL, verifier key (C2SP vkey; its name is the
  peer's ledger origin, `key_id` is `name+hash` as sent in request signatures), our
  clearing account for it, the exchange rate and the net-position limits.
- `federation_transfers`: one row per cross-timebank transfer on this side, keyed by the
  global transfer id. `direction` is `out` (our member pays) or `in` (our member is paid);
  `state` follows the protocol of docs/federation.md, every change a compare-and-set on
  `state`. The signatures are the peer's and ours over the transfer statement.
- `federation_nonces`: (key id, nonce) of every signed request accepted within the
  freshness window: a replayed request finds its nonce here.
- `federation_checkpoints`: the last signed checkpoint of each peer we checked, so that
  the next one must be consistent with it.
- `federation_reconciliations`: what each reconciliation with a peer found.
- `import_runs`, `imported_members`: each import (by the digest of its files, so one
  export is imported once; a run interrupted halfway resumes) and which member each
  source person became.
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

from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

PEER_STATUSES: Final = ("active", "suspended")
DIRECTIONS: Final = ("out", "in")
TRANSFER_STATES: Final = (
    "preparing",
    "held",
    "prepared",
    "committing",
    "committed",
    "aborting",
    "aborted",
    "refused",
)
IMPORT_SOURCES: Final = ("timeoverflow", "komunitin", "ces")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


federation_peers = Table(
    "federation_peers",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("base_url", String(500), nullable=False),
    Column("vkey", String(500), nullable=False),
    Column("origin", String(255), nullable=False, unique=True),
    Column("key_id", String(300), nullable=False, unique=True),
    Column("clearing_account", String(64), nullable=False, unique=True),
    #: `rate_ours` of our minutes are worth `rate_theirs` of theirs (1:1 by default).
    Column("rate_ours", BigInteger, nullable=False, server_default=text("1")),
    Column("rate_theirs", BigInteger, nullable=False, server_default=text("1")),
    #: Net-position limits in our minutes: what we may owe them, what they may owe us.
    Column("max_we_owe", BigInteger, nullable=False),
    Column("max_they_owe", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'active'")),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    CheckConstraint(_in("status", PEER_STATUSES), name="status_known"),
    CheckConstraint("rate_ours > 0 AND rate_theirs > 0", name="rate_positive"),
    CheckConstraint("max_we_owe >= 0 AND max_they_owe >= 0", name="limits_nonneg"),
)

federation_transfers = Table(
    "federation_transfers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("peer", String(32), ForeignKey("federation_peers.name"), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    #: Our member's account and the peer member's account (on the peer's ledger).
    Column("local_account", String(64), nullable=False),
    Column("remote_account", String(64), nullable=False),
    #: Minutes in our units and in the peer's.
    Column("minutes", BigInteger, nullable=False),
    Column("peer_minutes", BigInteger, nullable=False),
    Column("memo", Text, nullable=False, server_default=text("''")),
    #: The transfer statement's canonical bytes (what both nodes sign).
    Column("statement", Text, nullable=False),
    #: Our signature sent with the prepare (out) or the accept (in).
    Column("our_sig", String(100), nullable=True),
    #: The peer's signature: its accept (out) or its prepare (in).
    Column("peer_sig", String(100), nullable=True),
    #: The payer side's decision, signed by the payer side's node: commit or abort.
    Column("decision", String(8), nullable=True),
    Column("decision_sig", String(100), nullable=True),
    Column("reason_code", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("hold_index", BigInteger, nullable=True),
    Column("commit_index", BigInteger, nullable=True),
    #: Out: the peer confirmed our decision (nothing left to send).
    Column("peer_acked", Boolean, nullable=False, server_default=text("false")),
    #: Out: a prepare may have reached the peer (so an abort must be told to it).
    Column("prepare_sent", Boolean, nullable=False, server_default=text("false")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", String(500), nullable=True),
    Column("created_at", String(27), nullable=False),
    Column("updated_at", String(27), nullable=False),
    Column("decided_at", String(27), nullable=True),
    CheckConstraint(_in("direction", DIRECTIONS), name="direction_known"),
    CheckConstraint(_in("state", TRANSFER_STATES), name="state_known"),
    CheckConstraint("minutes > 0 AND peer_minutes > 0", name="minutes_positive"),
    CheckConstraint("decision IS NULL OR decision IN ('commit', 'abort')", name="decision_known"),
)
Index("ix_federation_transfers_state", federation_transfers.c.state)
Index(
    "ix_federation_transfers_peer_created_at",
    federation_transfers.c.peer,
    federation_transfers.c.created_at,
)

federation_nonces = Table(
    "federation_nonces",
    metadata,
    Column("key_id", String(300), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    #: The request's `created` (Unix seconds): rows older than the window are dropped.
    Column("created", BigInteger, nullable=False),
)
Index("ix_federation_nonces_created", federation_nonces.c.created)

federation_checkpoints = Table(
    "federation_checkpoints",
    metadata,
    Column("peer", String(32), ForeignKey("federation_peers.name"), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("seen_at", String(27), nullable=False),
)

federation_reconciliations = Table(
    "federation_reconciliations",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("peer", String(32), ForeignKey("federation_peers.name"), nullable=False),
    Column("at", String(27), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("checkpoint_size", BigInteger, nullable=True),
    #: JSON: the report (findings, positions, counts).
    Column("report", Text, nullable=False),
)
Index(
    "ix_federation_reconciliations_peer_id",
    federation_reconciliations.c.peer,
    federation_reconciliations.c.id,
)

import_runs = Table(
    "import_runs",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("source", String(16), nullable=False),
    #: SHA-256 of the imported files: the same export is imported once.
    Column("digest", String(64), nullable=False, unique=True),
    Column("at", String(27), nullable=False),
    Column("actor", String(300), nullable=False),
    #: `running` until every row and entry is written; a re-run of the same files resumes.
    Column("status", String(16), nullable=False),
    #: JSON: what was imported and skipped, and why.
    Column("report", Text, nullable=False),
    CheckConstraint(_in("source", IMPORT_SOURCES), name="source_known"),
    CheckConstraint("status IN ('running', 'done')", name="status_known"),
)

imported_members = Table(
    "imported_members",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("external_id", String(200), primary_key=True),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("run_id", String(16), nullable=False),
)
