"""The schema of scheduled jobs and what they keep, on the shared `MetaData`.

Migration 0007 creates exactly these; keep the two in step (a test compares them).

- `job_runs`: one row per (job, period): the record that a period ran (or failed, or, on
  SQLite only, is being run). The unique (job, period) pair is what makes a period run
  once however many workers there are (see `scambio.jobs.runner`). A failed period is
  retried on the job's next ticks and its row updated in place (`attempts` counts).
- `ledger_verification`: a single row: what `verify-ledger` last proved (tree size, root,
  signed checkpoint, and the replay state it needs to resume: balances, open holds and
  the Merkle frontier) and, when verification failed, the first bad index and why.
- `coproduction_reports`: each month's signed co-production report, with the directory
  (account -> zone and organisations) it was computed with.
- `report_pairs`, `report_state`: a projection of the ledger for the report's "new
  connections": for every pair of accounts that ever exchanged, the index of their first
  exchange entry, filled in index order up to `report_state.pairs_size`. Re-derivable
  from the log at any time, like the cached balances.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from scambio.store.people_tables import AutoId
from scambio.store.tables import metadata

RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
RUN_STATUSES: Final = (RUNNING, SUCCEEDED, FAILED)

VERIFIED: Final = "verified"
COMPROMISED: Final = "compromised"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


job_runs = Table(
    "job_runs",
    metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    #: The period's key: 2026-11-25T09:05 (minute), 2026-11-25T09 (hour), 2026-11-25
    #: (day), 2026-11 (month); UTC.
    Column("period", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("started_at", String(27), nullable=False),
    Column("finished_at", String(27), nullable=True),
    #: JSON object: what the run did (counts, ids, figures), encoded with sorted keys.
    Column("summary", Text, nullable=False, server_default=text("'{}'")),
    Column("error", Text, nullable=True),
    #: Which process ran it: host:pid:random.
    Column("worker", String(200), nullable=False),
    #: SQLite only: a running claim older than this may be taken over (a crashed worker).
    Column("lease_until", String(27), nullable=True),
    CheckConstraint(_in("status", RUN_STATUSES), name="status_known"),
    CheckConstraint("attempts >= 1", name="attempts_positive"),
    UniqueConstraint("job", "period"),
)
Index("ix_job_runs_job_seq", job_runs.c.job, job_runs.c.seq)
Index("ix_job_runs_status_seq", job_runs.c.status, job_runs.c.seq)

ledger_verification = Table(
    "ledger_verification",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("verified_size", BigInteger, nullable=True),
    Column("verified_root", LargeBinary(32), nullable=True),
    Column("verified_checkpoint", Text, nullable=True),
    Column("verified_at", String(27), nullable=True),
    #: The replay state at `verified_size` (`ledger.verify.ReplayerSnapshot`, JSON).
    Column("state", LargeBinary, nullable=True),
    Column("failed_at", String(27), nullable=True),
    Column("failed_index", BigInteger, nullable=True),
    Column("failure", Text, nullable=True),
    Column("updated_at", String(27), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
    CheckConstraint(_in("status", (VERIFIED, COMPROMISED)), name="status_known"),
)

coproduction_reports = Table(
    "coproduction_reports",
    metadata,
    #: The month the report covers, e.g. 2026-11.
    Column("period", String(7), primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    #: The signed report document (JSON), exactly as served.
    Column("document", Text, nullable=False),
    #: The directory (JSON) the report was computed with; its digest is in the report.
    Column("directory", Text, nullable=False),
    Column("created_at", String(27), nullable=False),
)

report_pairs = Table(
    "report_pairs",
    metadata,
    #: The two accounts, in code-point order.
    Column("account_a", String(64), primary_key=True),
    Column("account_b", String(64), primary_key=True),
    #: Index of the first exchange entry between them.
    Column("first_idx", BigInteger, nullable=False),
)
Index("ix_report_pairs_first_idx", report_pairs.c.first_idx)

report_state = Table(
    "report_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    #: `report_pairs` holds every pair first met in entries below this index.
    Column("pairs_size", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)
