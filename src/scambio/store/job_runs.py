"""Reading the record of job runs (`job_runs`), for the API and the command line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.store.jobs_tables import job_runs

#: What a period filter may contain: digits, '-', 'T' and ':' (no LIKE wildcards).
PERIOD_FILTER_RE: Final = re.compile(r"[0-9T:-]{1,32}")
JOB_NAME_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,63}")

_encoder: Final = msgspec.json.Encoder(order="sorted")


def encode_summary(summary: dict[str, Any]) -> str:
    return _encoder.encode(summary).decode()


@dataclass(frozen=True, slots=True)
class RunRecord:
    seq: int
    job: str
    period: str
    status: str
    attempts: int
    started_at: str
    finished_at: str | None
    summary: dict[str, Any]
    error: str | None
    worker: str


def record_of(row: Any) -> RunRecord:
    return RunRecord(
        seq=int(row.seq),
        job=row.job,
        period=row.period,
        status=row.status,
        attempts=int(row.attempts),
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=msgspec.json.decode(row.summary),
        error=row.error,
        worker=row.worker,
    )


async def list_runs(
    conn: AsyncConnection,
    *,
    job: str | None = None,
    status: str | None = None,
    period: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Runs, newest first (by when their record was created), optionally filtered.

    `period` matches period keys that start with it (2026-11 finds the month's report and
    every day and hour of November); `before` is the `seq` of the last row of the previous
    page.
    """
    query = select(job_runs).order_by(job_runs.c.seq.desc()).limit(limit)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    if status is not None:
        query = query.where(job_runs.c.status == status)
    if period is not None:
        if not PERIOD_FILTER_RE.fullmatch(period):
            raise ValueError(f"period filter {period!r} may hold only digits, '-', 'T' and ':'")
        query = query.where(job_runs.c.period.startswith(period))
    if before is not None:
        query = query.where(job_runs.c.seq < before)
    return [record_of(row) for row in await conn.execute(query)]


async def get_run(conn: AsyncConnection, job: str, period: str) -> RunRecord | None:
    row = (
        await conn.execute(
            select(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)
        )
    ).one_or_none()
    return None if row is None else record_of(row)


async def last_runs(conn: AsyncConnection) -> dict[str, RunRecord]:
    """The latest run (by period) of every job that has run."""
    newest = (
        select(job_runs.c.job, func.max(job_runs.c.period).label("period"))
        .group_by(job_runs.c.job)
        .subquery()
    )
    rows = await conn.execute(
        select(job_runs).join(
            newest, and_(job_runs.c.job == newest.c.job, job_runs.c.period == newest.c.period)
        )
    )
    return {row.job: record_of(row) for row in rows}
