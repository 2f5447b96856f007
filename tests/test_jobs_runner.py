"""The job runner: each period runs once, failures are recorded and retried, a cancelled run
rolls back and runs again, missed periods are caught up in order (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.jobs.base import Job, JobFailed, Result, RunContext
from scambio.jobs.periods import Every, Period, PeriodError, last_complete
from scambio.jobs.runner import (
    ALREADY_DONE,
    BUSY,
    GAVE_UP,
    JobRunner,
    UnknownJob,
    lock_key,
)
from scambio.jobs.scheduler import JobScheduler
from scambio.store.job_runs import get_run, list_runs
from scambio.store.jobs_tables import job_runs
from scambio.store.ledger import LedgerService
from scambio.timebank.context import Timebank

from .conftest import Clock


@pytest.fixture
async def tb(ledger: LedgerService) -> AsyncIterator[Timebank]:
    timebank = Timebank.create(ledger, ledger.settings)
    try:
        yield timebank
    finally:
        await timebank.mailer.aclose()


class Probe:
    """A job body that counts its runs, and can be told to fail or to wait."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, ctx: RunContext) -> Result:
        self.calls.append(ctx.period.key)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return Result({"period": ctx.period.key, "forced": ctx.forced})


def probe_job(probe: Probe, every: Every = Every.HOUR, **options: Any) -> Job:
    return Job("probe", every, probe, "counts its runs", **options)


# -- periods ---------------------------------------------------------------------------------


def test_period_keys_boundaries_and_arithmetic() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert Period.containing(Every.MINUTE, moment).key == "2026-12-31T23:59"
    assert Period.containing(Every.HOUR, moment).key == "2026-12-31T23"
    assert Period.containing(Every.DAY, moment).key == "2026-12-31"
    month = Period.containing(Every.MONTH, moment)
    assert (month.key, month.end) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    assert month.shift(-12).key == "2025-12" and month.shift(2).key == "2027-02"
    assert last_complete(Every.HOUR, moment).key == "2026-12-31T22"
    assert last_complete(Every.MONTH, datetime(2027, 1, 1, tzinfo=UTC)).key == "2026-12"
    assert Period.parse(Every.DAY, "2026-02-28").shift(1).key == "2026-03-01"
    with pytest.raises(PeriodError, match=r"period '2026-11' is not a day \(expected the form"):
        Period.parse(Every.DAY, "2026-11")
    with pytest.raises(PeriodError, match="period '2026-13' is not a valid month"):
        Period.parse(Every.MONTH, "2026-13")


# -- once per period -------------------------------------------------------------------------


async def test_a_period_runs_once_then_only_when_forced(tb: Timebank, clock: Clock) -> None:
    probe = Probe()
    runner = JobRunner(tb, [probe_job(probe)])
    outcomes = await runner.run_due("probe")
    assert [(o.period, o.status) for o in outcomes] == [("2026-11-25T08", "succeeded")]
    assert await runner.run_due("probe") == []  # nothing more is due this hour
    period = Period.parse(Every.HOUR, "2026-11-25T08")
    again = await runner.run_period(runner.job("probe"), period)
    assert (again.status, again.attempts) == (ALREADY_DONE, 1)
    assert probe.calls == ["2026-11-25T08"]

    forced = await runner.run_period(runner.job("probe"), period, force=True)
    assert (forced.status, forced.attempts, forced.summary["forced"]) == ("succeeded", 2, True)
    async with tb.ledger.read() as conn:
        record = await get_run(conn, "probe", "2026-11-25T08")
    assert record is not None
    assert (record.status, record.attempts, record.summary) == (
        "succeeded",
        2,
        {"period": "2026-11-25T08", "forced": True},
    )
    assert record.worker == runner.worker and record.finished_at is not None

    clock.advance(hours=1)
    assert [o.period for o in await runner.run_due("probe")] == ["2026-11-25T09"]


async def test_periods_not_ended_and_unknown_jobs_are_refused(tb: Timebank) -> None:
    runner = JobRunner(tb, [probe_job(Probe())])
    with pytest.raises(PeriodError, match="period 2026-11-25T09 has not ended yet"):
        await runner.run_period(runner.job("probe"), Period.parse(Every.HOUR, "2026-11-25T09"))
    with pytest.raises(PeriodError, match="probe runs every hour, not every day"):
        await runner.run_period(runner.job("probe"), Period.parse(Every.DAY, "2026-11-24"))
    with pytest.raises(UnknownJob, match="no job named 'nope'; jobs are: probe"):
        await runner.run_due("nope")


async def test_missed_periods_are_caught_up_in_order_within_the_window(
    tb: Timebank, clock: Clock
) -> None:
    probe = Probe()
    since = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)

    async def started(_tb: Timebank) -> datetime:
        return since

    runner = JobRunner(tb, [probe_job(probe, catch_up=4, since=started)])
    # 09:00: the window is 05..08; nothing before `since` (03:30) is cut off yet.
    assert [o.period[-2:] for o in await runner.run_due("probe")] == ["05", "06", "07", "08"]
    # Nothing ran for 10 hours: only the last four hours are caught up, oldest first.
    clock.advance(hours=10)
    assert [o.period[-2:] for o in await runner.run_due("probe")] == ["15", "16", "17", "18"]
    # A window reaching back before `since` is cut there: the hour ending before it is out.
    since = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    clock.advance(hours=10)
    assert [o.period for o in await runner.run_due("probe")] == [
        "2026-11-26T02",
        "2026-11-26T03",
        "2026-11-26T04",
    ]


# -- failures ---------------------------------------------------------------------------------


async def test_failures_are_recorded_and_retried_up_to_max_attempts(
    tb: Timebank, clock: Clock
) -> None:
    probe = Probe()
    probe.fail = OSError("the disk is full")
    runner = JobRunner(tb, [probe_job(probe, max_attempts=2)])
    (first,) = await runner.run_due("probe")
    assert (first.status, first.error, first.attempts) == (
        "failed",
        "OSError: the disk is full",
        1,
    )
    (second,) = await runner.run_due("probe")  # the next tick retries it
    assert (second.status, second.attempts) == ("failed", 2)
    assert await runner.run_due("probe") == []  # given up
    gave_up = await runner.run_period(runner.job("probe"), Period.parse(Every.HOUR, first.period))
    assert gave_up.status == GAVE_UP
    async with tb.ledger.read() as conn:
        (record,) = await list_runs(conn, job="probe", status="failed")
    assert (record.error, record.attempts) == ("OSError: the disk is full", 2)

    # It worked the next hour; forcing the failed period runs it again.
    probe.fail = None
    clock.advance(hours=1)
    assert [o.status for o in await runner.run_due("probe")] == ["succeeded"]
    forced = await runner.run_period(
        runner.job("probe"), Period.parse(Every.HOUR, first.period), force=True
    )
    assert (forced.status, forced.attempts) == ("succeeded", 3)


async def test_a_job_failure_commits_its_records_and_a_failed_write_fails_the_run(
    tb: Timebank,
) -> None:
    await _make_scratch(tb)

    async def job(ctx: RunContext) -> Result:
        async def note(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO scratch (period) VALUES (:p)"), {"p": "failed"})

        raise JobFailed("the ledger does not verify", {"index": 7}, note)

    async def bad_write(ctx: RunContext) -> Result:
        async def write(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO scratch (period) VALUES ('x')"))
            await conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

        return Result({"done": True}, write)

    runner = JobRunner(
        tb,
        [
            Job("loud", Every.HOUR, job, "fails"),
            Job("bad-write", Every.HOUR, bad_write, "cannot record"),
        ],
    )
    (failed,) = await runner.run_due("loud")
    assert (failed.status, failed.error, failed.summary) == (
        "failed",
        "the ledger does not verify",
        {"index": 7},
    )
    (unrecorded,) = await runner.run_due("bad-write")
    assert unrecorded.status == "failed"
    assert unrecorded.error is not None
    assert unrecorded.error.startswith("recording the results failed:")
    # The failure's own record committed; the failed write's first insert rolled back.
    assert await _scratch(tb) == ["failed"]


# -- cancellation -----------------------------------------------------------------------------


async def test_a_cancelled_run_rolls_back_and_runs_again(tb: Timebank) -> None:
    await _make_scratch(tb)
    probe = Probe()
    probe.gate = asyncio.Event()

    async def job(ctx: RunContext) -> Result:
        result = await probe(ctx)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(text("INSERT INTO scratch (period) VALUES (:p)"), {"p": "done"})

        return Result(result.summary, write)

    runner = JobRunner(tb, [Job("probe", Every.HOUR, job, "waits")])
    task = asyncio.create_task(runner.run_due("probe"))
    await asyncio.wait_for(probe.started.wait(), 10)
    async with tb.ledger.read() as conn:
        during = await get_run(conn, "probe", "2026-11-25T08")
    if tb.ledger.engine.dialect.name == "sqlite":  # the claim row, visible while it runs
        assert during is not None and during.status == "running"
    else:  # the run's transaction holds the lock; its row is written at the end
        assert during is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with tb.ledger.read() as conn:
        assert await get_run(conn, "probe", "2026-11-25T08") is None
    assert await _scratch(tb) == []

    probe.gate.set()
    (again,) = await runner.run_due("probe")
    assert (again.status, again.attempts) == ("succeeded", 1)
    assert probe.calls == ["2026-11-25T08", "2026-11-25T08"]
    assert await _scratch(tb) == ["done"]


async def test_cancelling_a_retry_restores_the_failed_record(tb: Timebank) -> None:
    probe = Probe()
    probe.fail = ValueError("first try")
    runner = JobRunner(tb, [probe_job(probe)])
    (failed,) = await runner.run_due("probe")
    assert failed.status == "failed"
    probe.fail, probe.gate, probe.started = None, asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.run_due("probe"))
    await asyncio.wait_for(probe.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with tb.ledger.read() as conn:
        record = await get_run(conn, "probe", failed.period)
    assert record is not None
    assert (record.status, record.attempts, record.error) == ("failed", 1, "ValueError: first try")


async def test_stopping_the_scheduler_cancels_runs_in_progress(tb: Timebank) -> None:
    probe = Probe()
    probe.gate = asyncio.Event()
    scheduler = JobScheduler(JobRunner(tb, [probe_job(probe)]))
    scheduler.start()
    assert scheduler.running
    await asyncio.wait_for(probe.started.wait(), 10)  # the catch-up run at start
    await scheduler.stop()
    assert not scheduler.running
    async with tb.ledger.read() as conn:
        assert await get_run(conn, "probe", "2026-11-25T08") is None
    with pytest.raises(RuntimeError, match="not running"):
        scheduler.wake("probe")


async def test_the_scheduler_runs_each_job_at_start_and_when_woken(
    tb: Timebank, clock: Clock
) -> None:
    probe = Probe()
    scheduler = JobScheduler(JobRunner(tb, [probe_job(probe, Every.MINUTE)]))
    scheduler.start()
    try:
        await _until(lambda: scheduler.ticks.get("probe", 0) >= 1)
        clock.advance(minutes=1)
        scheduler.wake("probe")
        await _until(lambda: scheduler.ticks.get("probe", 0) >= 2)
    finally:
        await scheduler.stop()
    assert probe.calls == ["2026-11-25T08:59", "2026-11-25T09:00"]


# -- claims held by others --------------------------------------------------------------------


async def test_a_period_another_worker_holds_is_skipped(tb: Timebank) -> None:
    probe = Probe()
    runner = JobRunner(tb, [probe_job(probe)])
    period = Period.parse(Every.HOUR, "2026-11-25T08")
    engine = tb.ledger.engine
    if engine.dialect.name == "postgresql":
        async with engine.connect() as other, other.begin():
            await other.execute(
                select(text("pg_advisory_xact_lock(:k)")), {"k": lock_key("probe", period.key)}
            )
            outcome = await runner.run_period(runner.job("probe"), period)
    else:
        await _claim(tb, "probe", period.key, lease=timedelta(minutes=5))
        outcome = await runner.run_period(runner.job("probe"), period)
    assert outcome.status == BUSY
    assert probe.calls == []


async def test_sqlite_claims_of_dead_workers_are_taken_over_after_their_lease(
    tb: Timebank, clock: Clock
) -> None:
    if tb.ledger.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL claims are locks, released when a worker dies")
    probe = Probe()
    runner = JobRunner(tb, [probe_job(probe)])
    await _claim(tb, "probe", "2026-11-25T08", lease=timedelta(minutes=30))
    assert await runner.run_due("probe") == []
    clock.advance(minutes=31)  # still 09:xx: the same period is the latest complete one
    (outcome,) = await runner.run_due("probe")
    assert (outcome.period, outcome.status, outcome.attempts) == ("2026-11-25T08", "succeeded", 2)


async def test_old_successful_runs_are_pruned(tb: Timebank, clock: Clock) -> None:
    probe = Probe()
    runner = JobRunner(tb, [probe_job(probe, Every.MINUTE, catch_up=3, keep=timedelta(minutes=2))])
    await runner.run_due("probe")
    clock.advance(minutes=5)
    await runner.run_due("probe")
    assert await runner.prune(runner.job("probe")) == 4  # 08:57-08:59 and 09:02
    async with tb.ledger.read() as conn:
        kept = [r.period[-5:] for r in await list_runs(conn, job="probe")]
    assert kept == ["09:04", "09:03"]


# -- helpers ----------------------------------------------------------------------------------


async def _make_scratch(tb: Timebank) -> None:
    async with tb.ledger.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (period VARCHAR(40))"))


async def _scratch(tb: Timebank) -> list[str]:
    async with tb.ledger.read() as conn:
        return [r[0] for r in await conn.execute(text("SELECT period FROM scratch"))]


async def _claim(tb: Timebank, job: str, period: str, *, lease: timedelta) -> None:
    now = tb.clock()
    async with tb.ledger.engine.begin() as conn:
        await conn.execute(
            insert(job_runs).values(
                job=job,
                period=period,
                status="running",
                attempts=1,
                started_at=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                worker="elsewhere:1:dead",
                lease_until=(now + lease).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            )
        )


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")
