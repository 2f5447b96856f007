"""What a scheduled job is, what it gets and what it returns.

A job is an `async def run(ctx) -> Result` and a schedule (`every` minute, hour, day or
month). The runner calls it once per period (see `scambio.jobs.runner`); the job must be
idempotent (a cancelled or crashed run is retried, and may have done part of its work)
and safe to cancel at any await. What must commit together with the record of the run
goes in `Result.write` (or `JobFailed.write`): the runner calls it inside the transaction
that records the run, so it is written if and only if the run is recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.jobs.periods import Every, Period
from scambio.timebank.context import Timebank

#: Writes that commit with the record of the run.
Write = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunContext:
    tb: Timebank
    job: Job
    period: Period
    #: When the run started (the timebank's clock).
    now: datetime
    #: Asked for explicitly (`scambio jobs run --force`), even though the period had run.
    forced: bool = False

    @property
    def engine(self) -> AsyncEngine:
        return self.tb.engine


@dataclass(frozen=True, slots=True)
class Result:
    """A run's outcome: `summary` is stored as JSON (counts, ids, figures: small)."""

    summary: dict[str, Any] = field(default_factory=dict)
    write: Write | None = None


class JobFailed(Exception):
    """The run failed for a reason the job understands (say, a ledger that does not verify).

    `summary` and `write` are recorded with the failed run, like a successful run's.
    """

    def __init__(
        self, message: str, summary: dict[str, Any] | None = None, write: Write | None = None
    ) -> None:
        self.message = message
        self.summary = summary or {}
        self.write = write
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: Every
    run: Callable[[RunContext], Awaitable[Result]]
    description: str
    #: How many of the latest complete periods a tick considers: 1 for jobs that act on
    #: "everything due by now" (a missed hour changes nothing the next run will not do);
    #: more for jobs whose periods are distinct pieces of work (monthly reports).
    catch_up: int = 1
    #: Attempts a failed period gets (one per tick) before it is left failed.
    max_attempts: int = 3
    #: Periods that ended before this moment are never due (e.g. months before the ledger's
    #: first entry); None from the callable means nothing is due yet.
    since: Callable[[Timebank], Awaitable[datetime | None]] | None = None
    #: Successful runs older than this are deleted (None: kept for ever). Must exceed the
    #: catch-up window, since the rows are what stop a period from running twice.
    keep: timedelta | None = None

    def __post_init__(self) -> None:
        if self.catch_up < 1 or self.max_attempts < 1:
            raise ValueError("catch_up and max_attempts must be at least 1")
