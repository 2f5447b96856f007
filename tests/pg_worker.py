"""One of several processes appending to the same PostgreSQL ledger at once.

Used by test_concurrency_pg.py. The process runs its own LedgerService (its own appender),
and many asyncio tasks make transfers and holds -- each hold then posted whole, posted in
part or voided -- among a few hot accounts with finite limits, so that the head lock, the
running balances and the limit checks are all contended. Every acknowledged result is
recorded, and written as JSON at the end:

    {"acks": [{"id", "index", "kind", "created"}...], "refused": {code: count},
     "errors": [repr...], "batches": n}

A few "shared" transfers (from the sponsor "acme" to the pool "fund", which no limit stops)
are submitted by every worker with identical ids and fields: exactly one process may create
each, the others must get the original back.

usage: pg_worker.py CONFIG_JSON   (keys: url, skey, origin, accounts, operations, tasks,
                                    worker, shared, out)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer
from scambio.settings import load_settings
from scambio.store.commands import Appended, Outcome, Transfer
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService


class Recorder:
    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self.refused: dict[str, int] = {}
        self.errors: list[str] = []

    def note(self, outcome: Outcome) -> Appended | None:
        if isinstance(outcome, Appended):
            self.acks.append(
                {
                    "id": outcome.entry.id,
                    "index": outcome.index,
                    "kind": outcome.entry.kind,
                    "created": outcome.created,
                }
            )
            return outcome
        assert isinstance(outcome, RuleViolation)
        self.refused[outcome.code] = self.refused.get(outcome.code, 0) + 1
        return None


def shared_transfer(k: int) -> Transfer:
    """The k-th transfer every worker submits; between unbounded accounts, so never refused."""
    return Transfer(f"shared-{k}", "acme", "fund", 1 + k % 5, "submitted by every worker")


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    accounts: list[str] = cfg["accounts"]
    worker: int = cfg["worker"]
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            {
                "SCAMBIO_DATABASE_URL": cfg["url"],
                "SCAMBIO_DATA_DIR": data_dir,
                "SCAMBIO_LEDGER_ORIGIN": cfg["origin"],
                "SCAMBIO_BATCH_SIZE": "64",
            }
        )
        engine = make_engine(cfg["url"], pool_size=4)
        service = LedgerService(engine, Signer.from_string(cfg["skey"]), settings)
        await service.start()
        record = Recorder()
        rng = random.Random(1000 + worker)
        numbers = iter(range(cfg["operations"]))
        shared = list(range(cfg["shared"]))
        rng.shuffle(shared)

        async def operation(n: int) -> None:
            if shared and n % 10 == 0:
                record.note(await service.transfer(shared_transfer(shared.pop())))
                return
            payer, payee = rng.sample(accounts, 2)
            minutes = rng.randint(1, 90)
            entry_id = f"w{worker}-{n}"
            if rng.random() < 0.6:
                record.note(await service.transfer(Transfer(entry_id, payer, payee, minutes)))
                return
            hold = record.note(
                await service.transfer(Transfer(entry_id, payer, payee, minutes, hold=True))
            )
            if hold is None:
                return
            await asyncio.sleep(rng.random() / 100)  # let other tasks' requests interleave
            choice = rng.random()
            if choice < 0.4:
                record.note(await service.post(entry_id))
            elif choice < 0.7:
                record.note(await service.post(entry_id, rng.randint(1, minutes)))
            else:
                record.note(await service.void(entry_id))

        async def task() -> None:
            for n in numbers:  # the tasks share one iterator: each number is done once
                try:
                    await operation(n)
                except Exception as exc:
                    record.errors.append(f"operation {n}: {exc!r}")

        try:
            await asyncio.gather(*(task() for _ in range(cfg["tasks"])))
        finally:
            await service.stop()
            await engine.dispose()
        return {
            "acks": record.acks,
            "refused": record.refused,
            "errors": record.errors,
            "batches": service.appender.batches,
            "built_ahead": service.appender.built_ahead,
            "rebuilt": service.appender.rebuilt,
        }


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    result = asyncio.run(run(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
