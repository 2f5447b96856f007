"""The APScheduler side: when each job's due periods are looked at.

One `AsyncIOScheduler` per process (started inside the app's lifespan, or by `scambio
worker`), in UTC, with one cron trigger per job just after each of its period boundaries
and one immediate run at start, which catches up the periods missed while nothing ran.
Each trigger calls `JobRunner.run_due`, which decides what is due from the `job_runs`
records and the timebank's clock, so the scheduler holds no state of its own: its
in-memory job store is rebuilt at every start (APScheduler's SQLAlchemy job store is
synchronous and unsafe with several processes; the records are the shared state).

Stopping cancels the runs in progress and waits for them, so that each rolls back (and is
run again later) before the engine is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from scambio.jobs.base import Job
from scambio.jobs.periods import Every
from scambio.jobs.runner import JobRunner

log = logging.getLogger(__name__)

#: Seconds after a period boundary at which its job looks for due periods: late enough for
#: clocks that disagree a little, staggered so that jobs do not all start at once.
_OFFSETS: Final = {Every.MINUTE: 2, Every.HOUR: 20, Every.DAY: 40, Every.MONTH: 50}
#: Pruning old records runs at most this often per job.
_PRUNE_EVERY: Final = timedelta(hours=1)


def trigger_for(every: Every) -> CronTrigger:
    second = _OFFSETS[every]
    if every is Every.MINUTE:
        return CronTrigger(second=second, timezone=UTC)
    if every is Every.HOUR:
        return CronTrigger(minute=0, second=second, timezone=UTC)
    if every is Every.DAY:
        return CronTrigger(hour=0, minute=1, second=second, timezone=UTC)
    return CronTrigger(day=1, hour=0, minute=2, second=second, timezone=UTC)


class JobScheduler:
    """Schedules every job of a runner; `start` and `stop` inside a running event loop."""

    def __init__(self, runner: JobRunner, jobs: Sequence[Job] | None = None) -> None:
        self.runner = runner
        self.jobs = list(jobs if jobs is not None else runner.jobs.values())
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._pruned: dict[str, datetime] = {}
        #: Ticks finished per job (for tests and for `scambio worker`'s log).
        self.ticks: dict[str, int] = {}

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        for job in self.jobs:
            scheduler.add_job(
                self._tick,
                trigger=trigger_for(job.every),
                args=[job.name],
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=now,  # catch up at start
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("jobs scheduled: %s", ", ".join(job.name for job in self.jobs))

    def wake(self, name: str) -> None:
        """Look for due periods of job `name` now instead of at its next boundary."""
        if self._scheduler is None:
            raise RuntimeError("the job scheduler is not running")
        self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    async def _tick(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            for outcome in await self.runner.run_due(name):
                log.info(
                    "job %s for %s: %s%s",
                    outcome.job,
                    outcome.period,
                    outcome.status,
                    f" ({outcome.error})" if outcome.error else "",
                )
            await self._maybe_prune(name)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The records are untouched (or rolled back): the next tick tries again.
            log.exception("job %s: tick failed", name)
        finally:
            self.ticks[name] = self.ticks.get(name, 0) + 1
            self._running.discard(task)

    async def _maybe_prune(self, name: str) -> None:
        job = self.runner.job(name)
        if job.keep is None:
            return
        now = self.runner.now()
        last = self._pruned.get(name)
        if last is not None and now - last < _PRUNE_EVERY:
            return
        self._pruned[name] = now
        await self.runner.prune(job, now)

    async def stop(self) -> None:
        """Stop scheduling, cancel the runs in progress and wait until they rolled back."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
