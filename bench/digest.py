"""A deterministic digest of the append path's behaviour, to check a performance change.

    python bench/digest.py [--db sqlite|postgres|both] [--seed 1] [--rounds 60]

It replays a seeded, mixed workload through LedgerService with a fixed clock: accounts of
every kind (and invalid ones), transfers within and beyond limits, holds with and without
expiry, whole, partial and refused posts, voids, expiries (after a round, alone),
reversals (valid, repeated, of the wrong kind), linked lists that commit and that fail,
identical retries and conflicting reuses of ids, duplicates inside one batch, at batch
sizes 1, 7 and 1000. Commands of a
round are submitted together, so they are queued before the appender wakes and the batch
boundaries are the same on every run.

It prints one SHA-256 over every outcome (entry bytes, leaf hash, tree size and `created`,
or the violation's code, detail and fields) and one over every table's rows (except the
creation time of the empty checkpoint, the only wall-clock value). Run it before and after
changing `store/appender.py` or `store/queries.py`: the digests must not change.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from common import SIGNER, backends, bench_settings, fresh_database
from scambio.ledger.errors import RuleViolation
from scambio.store.commands import Appended, LinkedOutcome, Outcome, Transfer
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.tables import metadata

KINDS = ["member", "member", "member", "organisation", "sponsor", "pool", "clearing"]


class FixedClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def describe(outcome: Outcome | LinkedOutcome | list[Outcome] | BaseException) -> str:
    if isinstance(outcome, list):
        return "list[" + ";".join(describe(o) for o in outcome) + "]"
    if isinstance(outcome, LinkedOutcome):
        return "linked[" + ";".join(describe(o) for o in outcome.items) + "]"
    if isinstance(outcome, Appended):
        return (
            f"ok {outcome.entry.index} {outcome.leaf_hash.hex()} {outcome.tree_size} "
            f"{outcome.created}"
        )
    if isinstance(outcome, RuleViolation):
        return f"no {outcome.code} {outcome.detail} {sorted(outcome.fields.items())}"
    return f"error {type(outcome).__name__} {outcome}"


class Workload:
    def __init__(self, service: LedgerService, clock: FixedClock, seed: int) -> None:
        self.service = service
        self.clock = clock
        self.rng = random.Random(seed)
        self.accounts: list[str] = []
        self.holds: list[str] = []
        self.moved: list[int] = []
        self.sent: list[Transfer] = []
        self.log = hashlib.sha256()
        self.counter = 0
        self.size_hint = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    async def round(self, n: int) -> None:
        calls = [self.command() for _ in range(n)]
        results: list[Any] = list(await asyncio.gather(*calls, return_exceptions=True))
        if self.rng.random() < 0.15:
            # Alone: it reads before it submits, so racing it would make batches vary.
            results.append(await self.service.expire_holds())
        for r in results:
            line = describe(r)
            self.log.update(line.encode() + b"\n")
            if isinstance(r, Appended) and r.created:
                self.size_hint = max(self.size_hint, r.entry.index + 1)
                if r.entry.kind == "hold":
                    self.holds.append(r.entry.id)
                if r.entry.kind in ("transfer", "post"):
                    self.moved.append(r.entry.index)
                if r.entry.kind == "account" and r.entry.account is not None:
                    self.accounts.append(r.entry.account.id)
        self.clock.now += timedelta(seconds=self.rng.choice([1, 30, 600]))

    def pick(self) -> str:
        rng = self.rng
        if not self.accounts or rng.random() < 0.03:
            return rng.choice(["nobody", "Bad Id", self.fresh("ghost")])
        return rng.choice(self.accounts)

    def transfer(self, hold: bool = False) -> Transfer:
        rng = self.rng
        payer, payee = self.pick(), self.pick()
        minutes = rng.choice([1, 15, 60, 120, 300, 700, rng.randint(1, 2000)])
        if rng.random() < 0.02:
            minutes = rng.choice([0, -5, 10**9 + 1])
        expires = rng.choice([None, 60, 3600]) if hold else None
        ident = self.fresh("t") if rng.random() > 0.01 else "bad id!"
        command = Transfer(
            ident, payer, payee, minutes, rng.choice(["", "help", "città"]), hold, expires
        )
        self.sent.append(command)
        return command

    def command(self) -> Any:
        rng = self.rng
        svc = self.service
        roll = rng.random()
        if roll < 0.12 or len(self.accounts) < 3:
            name = self.fresh("acc")
            if rng.random() < 0.05:
                name = rng.choice(["Upper", "", self.accounts[0] if self.accounts else "x"])
            kind = rng.choice([*KINDS, "alien"]) if rng.random() < 0.05 else rng.choice(KINDS)
            if rng.random() < 0.5:
                return svc.open_account(name, kind)
            low = rng.choice([None, 0, -100, -600, 5])
            high = rng.choice([None, 500, 5000, -1])
            return svc.open_account(name, kind, low, high)
        if roll < 0.50:
            return svc.transfer(self.transfer())
        if roll < 0.62:
            return svc.transfer(self.transfer(hold=True))
        if roll < 0.70 and self.holds:
            hold = rng.choice(self.holds)
            minutes = rng.choice([None, None, 1, 30, 10_000])
            return svc.post(hold, minutes)
        if roll < 0.75 and self.holds:
            return svc.void(rng.choice([*self.holds, "no-such-hold"]))
        if roll < 0.80 and self.moved:
            target = rng.choice([*self.moved, 0, self.size_hint + 5])
            return svc.reverse(
                self.fresh("r") if rng.random() > 0.1 else "r-1",
                target,
                rng.choice(["", "mistake"]),
            )
        if roll < 0.87:
            return svc.linked([self.transfer() for _ in range(rng.randint(1, 4))])
        if roll < 0.95 and self.sent:
            # A retry: identical, or the same id with one field changed.
            old = rng.choice(self.sent)
            if rng.random() < 0.5:
                return svc.transfer(old)
            return svc.transfer(
                Transfer(
                    old.id,
                    old.payer,
                    old.payee,
                    old.minutes + 1,
                    old.memo,
                    old.hold,
                    old.expires_in,
                )
            )
        return svc.transfer(self.transfer())


async def table_digest(service: LedgerService) -> str:
    h = hashlib.sha256()
    async with service.read() as conn:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            query = select(table).order_by(*table.primary_key.columns)
            for row in await conn.execute(query):
                values: Sequence[Any] = tuple(row)
                if table.name == "checkpoints" and row.size == 0:
                    values = tuple(v for k, v in row._mapping.items() if k != "created_at")
                h.update(f"{table.name} {values!r}\n".encode())
        # The database's own count, in case a row escaped the ordered dumps above.
        count = (await conn.execute(text("SELECT count(*) FROM postings"))).scalar_one()
        h.update(f"postings {count}\n".encode())
    return h.hexdigest()


async def run(db: str, seed: int, rounds: int) -> None:
    for batch_size in (1, 7, 1000):
        async with fresh_database(db) as url:
            clock = FixedClock()
            engine = make_engine(url)
            service = LedgerService(engine, SIGNER, bench_settings(url, batch_size), clock=clock)
            await service.start()
            work = Workload(service, clock, seed)
            try:
                for i in range(rounds):
                    await work.round(1 + (i * 7) % 40)
                tables = await table_digest(service)
                async with service.read() as conn:
                    size = (await conn.execute(text("SELECT size FROM ledger_head"))).scalar_one()
            finally:
                await service.stop()
                await engine.dispose()
            print(
                f"{db:8} batch={batch_size:<5} entries={size:<6} "
                f"outcomes={work.log.hexdigest()[:24]} tables={tables[:24]}",
                flush=True,
            )


async def main(args: argparse.Namespace) -> None:
    for db in backends(args.db):
        await run(db, args.seed, args.rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=60)
    asyncio.run(main(parser.parse_args()))
