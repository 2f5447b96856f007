"""Several worker processes, one database: every period runs exactly once, and a period
whose worker died runs again (SQLite and PostgreSQL).

Two OS processes (`jobs_worker.py`), each with its own ledger service and job runner, are
given the same periods of the same jobs: a probe job that records every execution in a
table without a unique constraint, and real jobs (verify-ledger, reconcile-balances,
expire-holds, co-production-report). They run them concurrently, in different orders.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from scambio.jobs.periods import Every, Period
from scambio.jobs.runner import JobRunner
from scambio.store.commands import Transfer
from scambio.store.jobs_tables import coproduction_reports, job_runs
from scambio.store.ledger import LedgerService, require
from scambio.timebank.context import Timebank

from .conftest import ORIGIN, SIGNER, Clock, new_id
from .jobs_worker import probe

WORKER = Path(__file__).with_name("jobs_worker.py")
TIMEOUT = 240.0

RUNS: dict[str, list[str]] = {
    "probe": [f"2025-01-01T{h:02d}" for h in range(24)],
    "verify-ledger": [f"2025-01-02T{h:02d}" for h in range(4)],
    "reconcile-balances": [f"2025-01-{d:02d}" for d in range(1, 5)],
    "expire-holds": [f"2025-01-01T00:{m:02d}" for m in range(6)],
    "co-production-report": ["2025-01", "2025-02", "2025-03"],
}


async def prepare(ledger: LedgerService) -> None:
    for name in ("ada", "bea"):
        require(await ledger.open_account(name, "member"))
    require(await ledger.transfer(Transfer(new_id(), "ada", "bea", 30, "help")))
    async with ledger.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE probe_runs (worker VARCHAR(40), period VARCHAR(32))"))


async def spawn(
    url: str, tmp_path: Path, worker: str, runs: dict[str, list[str]], **extra: Any
) -> Any:
    config = tmp_path / f"{worker}.json"
    config.write_text(
        json.dumps(
            {
                "url": url,
                "skey": SIGNER.to_string(),
                "origin": ORIGIN,
                "worker": worker,
                "runs": runs,
                "out": str(tmp_path / f"{worker}.out.json"),
                **extra,
            }
        )
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


async def probe_rows(ledger: LedgerService) -> list[tuple[str, str]]:
    async with ledger.read() as conn:
        return [
            (r[0], r[1]) for r in await conn.execute(text("SELECT worker, period FROM probe_runs"))
        ]


async def test_two_worker_processes_run_every_period_exactly_once(
    ledger: LedgerService, tmp_path: Path
) -> None:
    await prepare(ledger)
    url = str(ledger.engine.url.render_as_string(hide_password=False))
    procs = [await spawn(url, tmp_path, f"w{i}", RUNS) for i in range(2)]
    try:
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), timeout=TIMEOUT
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    for i, (p, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"worker {i} failed:\n{err.decode()[-3000:]}"
    results = [json.loads((tmp_path / f"w{i}.out.json").read_text()) for i in range(2)]
    assert [r["errors"] for r in results] == [[], []]

    # Each process saw every period: one ran it, the other found it taken or done.
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for result in results:
        for outcome in result["outcomes"]:
            seen[(outcome["job"], outcome["period"])].append(outcome["status"])
            if outcome["status"] == "succeeded":
                assert outcome["attempts"] == 1, outcome
            else:
                assert outcome["status"] in ("busy", "already-done"), outcome
    expected = {(job, period) for job, periods in RUNS.items() for period in periods}
    assert set(seen) == expected
    for key, statuses in seen.items():
        assert len(statuses) == 2 and statuses.count("succeeded") == 1, (key, statuses)

    # The probe's own table: each period executed exactly once, by one worker or the other.
    executed = Counter(period for _, period in await probe_rows(ledger))
    assert executed == Counter(RUNS["probe"])
    by_worker = Counter(worker for worker, _ in await probe_rows(ledger))
    assert sum(by_worker.values()) == 24

    async with ledger.read() as conn:
        rows = [
            (r.job, r.period, r.status, r.attempts)
            for r in await conn.execute(select(job_runs).order_by(job_runs.c.seq))
        ]
        reports = (
            await conn.execute(select(func.count()).select_from(coproduction_reports))
        ).scalar_one()
    assert sorted((job, period) for job, period, _, _ in rows) == sorted(expected)
    assert {(status, attempts) for _, _, status, attempts in rows} == {("succeeded", 1)}
    assert reports == 3


async def test_a_period_whose_worker_died_runs_again(
    ledger: LedgerService, tmp_path: Path, clock: Clock
) -> None:
    await prepare(ledger)
    url = str(ledger.engine.url.render_as_string(hide_password=False))
    period = "2025-01-01T05"
    proc = await spawn(url, tmp_path, "doomed", {"probe": [period]}, hang=[period])
    try:
        for _ in range(600):  # it records that it started, then hangs
            if await probe_rows(ledger):
                break
            assert proc.returncode is None
            await asyncio.sleep(0.1)
        assert await probe_rows(ledger) == [("doomed", period)]
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()

    tb = Timebank.create(ledger, ledger.settings)
    runner = JobRunner(tb, [probe("survivor", set())])
    job = runner.job("probe")
    # SQLite: the dead worker's claim holds until its lease (30 minutes) has passed.
    clock.now = datetime.now(UTC) + timedelta(minutes=5)
    if ledger.engine.dialect.name == "sqlite":
        busy = await runner.run_period(job, Period.parse(Every.HOUR, period))
        assert busy.status == "busy"
        clock.now = datetime.now(UTC) + timedelta(minutes=31)
    # PostgreSQL: the lock went with the dead worker's connection (the server may take a
    # moment to notice the connection is gone).
    for _ in range(100):
        outcome = await runner.run_period(job, Period.parse(Every.HOUR, period))
        if outcome.status != "busy":
            break
        await asyncio.sleep(0.1)
    await tb.mailer.aclose()
    assert outcome.status == "succeeded"
    # On SQLite the row was claimed once before (attempt 1, never finished).
    assert outcome.attempts == (2 if ledger.engine.dialect.name == "sqlite" else 1)
    assert sorted(await probe_rows(ledger)) == [("doomed", period), ("survivor", period)]
