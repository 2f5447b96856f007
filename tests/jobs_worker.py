"""One of several worker processes running the same job periods on one database.

Used by test_jobs_workers.py. The process starts its own ledger service and job runner
(as `scambio worker` does) and runs every period it is given, many at once and in its own
shuffled order, so that it contends with the other process for each one. Besides real jobs
it runs `probe`, whose body records each execution in the table `probe_runs` (which has no
unique constraint) and sleeps a little, so that a period run twice would show there.

    {"outcomes": [{"job", "period", "status", "attempts"}...], "errors": [repr...]}

With "hang": [period...] the probe sleeps for ever in those periods after recording that it
started (the test then kills the process, as a crash would).

usage: jobs_worker.py CONFIG_JSON   (keys: url, skey, origin, worker, out, runs: {job:
                                     [period...]}, hang)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import text

from scambio.jobs.base import Job, Result, RunContext
from scambio.jobs.periods import Every, Period
from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner
from scambio.ledger.note import Signer
from scambio.settings import load_settings
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.timebank.context import Timebank


def probe(worker: str, hang: set[str]) -> Job:
    async def run(ctx: RunContext) -> Result:
        async with ctx.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO probe_runs (worker, period) VALUES (:w, :p)"),
                {"w": worker, "p": ctx.period.key},
            )
        if ctx.period.key in hang:
            await asyncio.sleep(3600)
        await asyncio.sleep(0.02)
        return Result({"worker": worker})

    return Job("probe", Every.HOUR, run, "records each execution")


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    worker: str = cfg["worker"]
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            {
                "SCAMBIO_DATABASE_URL": cfg["url"],
                "SCAMBIO_DATA_DIR": data_dir,
                "SCAMBIO_LEDGER_ORIGIN": cfg["origin"],
                "SCAMBIO_PASSWORD_HASH_COST": "minimal",
            }
        )
        engine = make_engine(cfg["url"], pool_size=8)
        ledger = LedgerService(engine, Signer.from_string(cfg["skey"]), settings)
        await ledger.start()
        tb = Timebank.create(ledger, settings)
        runner = JobRunner(tb, [*ALL_JOBS, probe(worker, set(cfg.get("hang", [])))])
        work = [(job, period) for job, periods in cfg["runs"].items() for period in periods]
        random.Random(worker).shuffle(work)
        outcomes: list[dict[str, Any]] = []
        errors: list[str] = []
        gate = asyncio.Semaphore(6)

        async def one(name: str, key: str) -> None:
            job = runner.job(name)
            async with gate:
                try:
                    outcome = await runner.run_period(job, Period.parse(job.every, key))
                except Exception as exc:
                    errors.append(f"{name} {key}: {exc!r}")
                    return
            outcomes.append(
                {
                    "job": name,
                    "period": key,
                    "status": outcome.status,
                    "attempts": outcome.attempts,
                    "error": outcome.error,
                }
            )

        try:
            await asyncio.gather(*(one(name, key) for name, key in work))
        finally:
            await tb.mailer.aclose()
            await ledger.stop()
            await engine.dispose()
        return {"outcomes": outcomes, "errors": errors}


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    result = asyncio.run(run(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
