"""Running a job for a period exactly once, however many workers try.

Each run is recorded in `job_runs`, unique per (job, period). How a period is claimed
depends on the database:

- **PostgreSQL.** The run opens its own transaction and takes a transaction-level advisory
  lock on (job, period) with `pg_try_advisory_xact_lock`: a worker that does not get it
  skips the period (another one is running it). Holding the lock, it reads the period's
  row; if the period already succeeded it stops. Otherwise it runs the job, then writes
  the job's own records (`Result.write`) and the run's row in that same transaction, and
  commits, which releases the lock. A run that is cancelled or whose process dies rolls
  back: nothing is recorded, the lock is released, and the period is still due, so the
  next tick (here or on another worker) runs it again. The unique (job, period) row is
  the second guard: a run that somehow got past the lock could not record the period
  twice.
- **SQLite.** The database has one write lock and no advisory locks, and holding its write
  lock while a job appends to the ledger would deadlock with the appender. So the claim is
  the unique row itself, written under the write lock (`BEGIN IMMEDIATE`) with status
  `running`, this worker's id and a lease; other workers see it and skip the period. When
  the job ends, the row is updated (with the job's records) if this worker still owns it.
  A cancelled run puts the row back as it was (removing it if it was new), so the period
  is due again; a worker that died leaves a `running` row, which another worker takes over
  once its lease has passed.

Jobs are idempotent, so a run that was cancelled halfway and run again does no harm; what
must happen once (a report stored, a verification state) goes in `Result.write`.

A failed run is recorded as `failed` with its error and retried on the job's next ticks,
up to `Job.max_attempts`; `force` runs a period again whatever its record says (except
while another worker holds it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.jobs.base import Job, JobFailed, RunContext, Write
from scambio.jobs.periods import Period, PeriodError, last_complete
from scambio.ledger.entry import format_time
from scambio.store.db import is_postgres
from scambio.store.job_runs import encode_summary
from scambio.store.jobs_tables import FAILED, RUNNING, SUCCEEDED, job_runs
from scambio.timebank.context import Timebank
from scambio.timebank.db import writing

log = logging.getLogger(__name__)

#: How long a SQLite claim stays valid without its worker finishing.
LEASE: Final = timedelta(minutes=30)

#: Outcomes of `run_period` besides the run statuses (succeeded, failed).
ALREADY_DONE: Final = "already-done"
BUSY: Final = "busy"
GAVE_UP: Final = "gave-up"
LOST: Final = "lost"


class UnknownJob(LookupError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        super().__init__(f"no job named {name!r}; jobs are: {', '.join(known)}")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    job: str
    period: str
    #: succeeded, failed, already-done, busy (another worker holds it), gave-up (failed
    #: max_attempts times), lost (SQLite: the claim was taken over while running).
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0

    @property
    def ran(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)


def _attempts(row: Any) -> int:
    return 0 if row is None else int(row.attempts)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def lock_key(job: str, period: str) -> int:
    """A signed 64-bit advisory lock key for (job, period)."""
    digest = hashlib.sha256(f"scambio.job\x00{job}\x00{period}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(slots=True)
class _Executed:
    status: str
    summary: dict[str, Any]
    error: str | None
    write: Write | None


class JobRunner:
    """Runs the registered jobs for their periods; one per process."""

    def __init__(
        self,
        tb: Timebank,
        jobs: Sequence[Job],
        *,
        worker: str | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.tb = tb
        self.jobs = {job.name: job for job in jobs}
        self.worker = worker or default_worker_id()
        self.lease = lease
        self._postgres = is_postgres(tb.engine)

    def job(self, name: str) -> Job:
        try:
            return self.jobs[name]
        except KeyError:
            raise UnknownJob(name, sorted(self.jobs)) from None

    def now(self) -> datetime:
        return self.tb.clock()

    # -- which periods are due -----------------------------------------------------------

    async def due(self, job: Job, now: datetime | None = None) -> list[Period]:
        """The periods a tick at `now` should run, oldest first."""
        now = now or self.now()
        last = last_complete(job.every, now)
        candidates = [last.shift(-k) for k in range(job.catch_up - 1, -1, -1)]
        if job.since is not None:
            since = await job.since(self.tb)
            if since is None:
                return []
            candidates = [p for p in candidates if p.end > since]
        if not candidates:
            return []
        async with self.tb.engine.connect() as conn:
            rows = {
                row.period: row
                for row in await conn.execute(
                    select(job_runs).where(
                        job_runs.c.job == job.name,
                        job_runs.c.period.in_([p.key for p in candidates]),
                    )
                )
            }
        stamp = format_time(now)
        return [p for p in candidates if self._skip(job, rows.get(p.key), False, stamp) is None]

    async def run_due(self, name: str, now: datetime | None = None) -> list[RunOutcome]:
        """Run every due period of job `name`, oldest first."""
        job = self.job(name)
        outcomes = []
        for period in await self.due(job, now):
            outcomes.append(await self.run_period(job, period))
        return outcomes

    # -- one period ----------------------------------------------------------------------

    async def run_period(self, job: Job, period: Period, *, force: bool = False) -> RunOutcome:
        """Run `job` for `period` unless it already ran (or `force`); see the module text."""
        if period.every is not job.every:
            raise PeriodError(
                f"{job.name} runs every {job.every.value}, not every {period.every.value}"
            )
        if not period.ended_by(self.now()):
            raise PeriodError(f"period {period.key} has not ended yet")
        if self._postgres:
            return await self._run_locked(job, period, force)
        return await self._run_claimed(job, period, force)

    def _skip(self, job: Job, row: Any, force: bool, now: str) -> str | None:
        """Why a period with this record must not run now, or None."""
        if row is None:
            return None
        if row.status == RUNNING and (row.lease_until is None or row.lease_until > now):
            return BUSY
        if force:
            return None
        if row.status == SUCCEEDED:
            return ALREADY_DONE
        if row.status == FAILED and int(row.attempts) >= job.max_attempts:
            return GAVE_UP
        return None

    async def _execute(self, job: Job, ctx: RunContext) -> _Executed:
        try:
            result = await job.run(ctx)
        except JobFailed as failed:
            log.error("job %s for %s failed: %s", job.name, ctx.period, failed.message)
            return _Executed(FAILED, failed.summary, failed.message, failed.write)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s for %s failed", job.name, ctx.period)
            return _Executed(FAILED, {}, f"{type(exc).__name__}: {exc}"[:2000], None)
        return _Executed(SUCCEEDED, result.summary, None, result.write)

    async def _apply(self, conn: AsyncConnection, job: Job, done: _Executed) -> _Executed:
        """The job's own writes, in a savepoint: if they fail, the run is recorded failed."""
        if done.write is None:
            return done
        try:
            async with conn.begin_nested():
                await done.write(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s: recording its results failed", job.name)
            error = f"recording the results failed: {type(exc).__name__}: {exc}"[:2000]
            if done.error:
                error = f"{done.error}; {error}"
            return _Executed(FAILED, done.summary, error, None)
        return done

    def _context(self, job: Job, period: Period, force: bool) -> RunContext:
        return RunContext(self.tb, job, period, self.now(), forced=force)

    async def _run_locked(self, job: Job, period: Period, force: bool) -> RunOutcome:
        """PostgreSQL: an advisory lock held by the run's own transaction."""
        async with self.tb.engine.connect() as conn, conn.begin():
            locked = await conn.scalar(
                select(func.pg_try_advisory_xact_lock(lock_key(job.name, period.key)))
            )
            if not locked:
                return RunOutcome(job.name, period.key, BUSY)
            row = (
                await conn.execute(
                    select(job_runs).where(
                        job_runs.c.job == job.name, job_runs.c.period == period.key
                    )
                )
            ).one_or_none()
            ctx = self._context(job, period, force)
            skip = self._skip(job, row, force, format_time(ctx.now))
            if skip is not None:
                return RunOutcome(job.name, period.key, skip, attempts=_attempts(row))
            started = format_time(ctx.now)
            done = await self._apply(conn, job, await self._execute(job, ctx))
            attempts = 1 if row is None else int(row.attempts) + 1
            values = self._values(done, started, attempts)
            if row is None:
                await conn.execute(
                    insert(job_runs).values(job=job.name, period=period.key, **values)
                )
            else:
                await conn.execute(update(job_runs).where(job_runs.c.seq == row.seq).values(values))
        return RunOutcome(job.name, period.key, done.status, done.summary, done.error, attempts)

    def _values(self, done: _Executed, started: str, attempts: int) -> dict[str, Any]:
        return {
            "status": done.status,
            "attempts": attempts,
            "started_at": started,
            "finished_at": format_time(self.now()),
            "summary": encode_summary(done.summary),
            "error": done.error,
            "worker": self.worker[:200],
            "lease_until": None,
        }

    async def _run_claimed(self, job: Job, period: Period, force: bool) -> RunOutcome:
        """SQLite: a `running` row, claimed under the write lock, then finished."""
        ctx = self._context(job, period, force)
        started = format_time(ctx.now)
        async with writing(self.tb.engine) as conn:
            row = (
                await conn.execute(
                    select(job_runs).where(
                        job_runs.c.job == job.name, job_runs.c.period == period.key
                    )
                )
            ).one_or_none()
            skip = self._skip(job, row, force, started)
            if skip is not None:
                return RunOutcome(job.name, period.key, skip, attempts=_attempts(row))
            previous = None if row is None else dict(row._mapping)
            attempts = 1 if row is None else int(row.attempts) + 1
            claim = {
                "status": RUNNING,
                "attempts": attempts,
                "started_at": started,
                "finished_at": None,
                "error": None,
                "worker": self.worker[:200],
                "lease_until": format_time(ctx.now + self.lease),
            }
            if row is None:
                await conn.execute(
                    insert(job_runs).values(job=job.name, period=period.key, **claim)
                )
            else:
                await conn.execute(update(job_runs).where(job_runs.c.seq == row.seq).values(claim))
        try:
            done = await self._execute(job, ctx)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job, period, previous))
            raise
        async with writing(self.tb.engine) as conn:
            mine = job_runs.c.job == job.name, job_runs.c.period == period.key
            owner = (
                await conn.execute(
                    select(job_runs.c.seq).where(
                        *mine, job_runs.c.status == RUNNING, job_runs.c.worker == self.worker[:200]
                    )
                )
            ).one_or_none()
            if owner is None:
                log.warning(
                    "job %s for %s: another worker took the period over; result dropped",
                    job.name,
                    period.key,
                )
                return RunOutcome(job.name, period.key, LOST, done.summary, done.error, attempts)
            done = await self._apply(conn, job, done)
            await conn.execute(
                update(job_runs)
                .where(job_runs.c.seq == owner.seq)
                .values(self._values(done, started, attempts))
            )
        return RunOutcome(job.name, period.key, done.status, done.summary, done.error, attempts)

    async def _release(self, job: Job, period: Period, previous: dict[str, Any] | None) -> None:
        """Undo a SQLite claim after a cancelled run, so the period is due again."""
        try:
            async with writing(self.tb.engine) as conn:
                mine = (
                    job_runs.c.job == job.name,
                    job_runs.c.period == period.key,
                    job_runs.c.status == RUNNING,
                    job_runs.c.worker == self.worker[:200],
                )
                if previous is None:
                    await conn.execute(delete(job_runs).where(*mine))
                else:
                    restore = {k: v for k, v in previous.items() if k != "seq"}
                    await conn.execute(update(job_runs).where(*mine).values(restore))
        except Exception as exc:  # the lease will free the period anyway
            log.warning("job %s for %s: releasing the claim failed: %s", job.name, period, exc)

    # -- housekeeping --------------------------------------------------------------------

    async def prune(self, job: Job, now: datetime | None = None) -> int:
        """Delete successful runs older than `job.keep` (beyond any catch-up window)."""
        if job.keep is None:
            return 0
        cutoff = Period.containing(job.every, (now or self.now()) - job.keep).key
        async with writing(self.tb.engine) as conn:
            result = await conn.execute(
                delete(job_runs).where(
                    job_runs.c.job == job.name,
                    job_runs.c.status == SUCCEEDED,
                    job_runs.c.period < cutoff,
                )
            )
        return int(result.rowcount)
