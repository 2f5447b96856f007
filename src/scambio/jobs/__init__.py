"""Scheduled jobs: what runs when, exactly once per period however many workers run.

`registry` lists the jobs, `runner` runs a job for a period (the exactly-once protocol),
`scheduler` wakes the runner on APScheduler cron triggers, `periods` names the periods.
`scambio serve` runs the scheduler in its lifespan unless `SCAMBIO_RUN_JOBS` says
otherwise; `scambio worker` runs only the jobs.
"""

from __future__ import annotations

from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner
from scambio.jobs.scheduler import JobScheduler
from scambio.timebank.context import Timebank


def scheduler_for(tb: Timebank) -> JobScheduler:
    """A scheduler for every registered job, on this process's timebank services."""
    return JobScheduler(JobRunner(tb, ALL_JOBS))
