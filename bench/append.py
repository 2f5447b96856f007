"""Append throughput, latency and memory of the real append path (LedgerService.transfer).

    python bench/append.py [--db sqlite|postgres|both] [--batch-sizes 1,10,100,1000]
                           [--transfers N] [--producers P|auto] [--accounts K[,K2...]]

For every (database, accounts, batch size) it creates a fresh migrated database, opens K
accounts with no limits (so that nothing is rejected; rejections are counted anyway),
starts a LedgerService with `Settings.batch_size` = the batch size, and runs P concurrent
producers (asyncio tasks in this process, as the API's request handlers would be), each
submitting one transfer at a time and waiting for its answer. "One transfer per commit" is
batch size 1. `--accounts 4` (or 2-4) is the hot-accounts case: every batch updates the
same few balance rows.

Printed per run: transfers/s, p50/p99 submit latency, batches committed (and how many of
them were built ahead, while the previous batch committed) and mean batch
size, CPU used by this process and by the whole machine, peak RSS, and RSS growth per
100k entries (least-squares slope over the second half of the run: flat means ~0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass

from common import (
    Histogram,
    RssTrack,
    backends,
    cpu_seconds,
    fresh_database,
    mib,
    ms,
    parse_ints,
    peak_rss_bytes,
    postgres_cpu_seconds,
    print_facts,
    started_service,
)
from scambio.ledger.errors import RuleViolation
from scambio.store.commands import Appended, Transfer
from scambio.store.ledger import LedgerService


@dataclass
class Result:
    db: str
    accounts: int
    batch_size: int
    producers: int
    ok: int
    rejected: int
    seconds: float
    batches: int
    built_ahead: int
    latency: Histogram
    cpu_process: float
    cpu_machine: float
    cpu_per_transfer: float
    pg_cpu_per_transfer: float
    peak_rss: int
    rss_growth: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


async def open_accounts(url: str, count: int) -> list[str]:
    """Open `count` unbounded member accounts through a batching service."""
    ids = [f"acct{i:06d}" for i in range(count)]
    async with started_service(url, 1000) as service:
        for start in range(0, count, 2000):
            chunk = ids[start : start + 2000]
            outcomes = await asyncio.gather(
                *(service.open_account(i, "member", None, None) for i in chunk)
            )
            bad = [o for o in outcomes if not isinstance(o, Appended)]
            if bad:
                raise RuntimeError(f"could not open bench accounts: {bad[0]}")
    return ids


async def produce(
    service: LedgerService,
    ids: list[str],
    seed: int,
    budget: list[int],
    deadline: float,
    hist: Histogram,
    counts: list[int],
) -> None:
    rng = random.Random(seed)
    n = 0
    while budget[0] > 0 and time.perf_counter() < deadline:
        budget[0] -= 1
        payer, payee = rng.sample(ids, 2)
        n += 1
        command = Transfer(f"t{seed}-{n}", payer, payee, rng.randint(1, 120), "bench")
        t0 = time.perf_counter()
        outcome = await service.transfer(command)
        hist.add(time.perf_counter() - t0)
        if isinstance(outcome, RuleViolation):
            counts[1] += 1
        else:
            counts[0] += 1


async def run_one(
    db: str,
    url: str,
    batch_size: int,
    transfers: int,
    producers: int,
    ids: list[str],
    max_seconds: float,
) -> Result:
    async with started_service(url, batch_size) as service:
        # Warm-up: pools, caches, the appender's frontier; not counted.
        warm = Histogram()
        await asyncio.gather(
            *(
                produce(
                    service,
                    ids,
                    10_000_000 + p,
                    [min(200, transfers // 20)],
                    time.perf_counter() + 10,
                    warm,
                    [0, 0],
                )
                for p in range(min(producers, 50))
            )
        )
        hist = Histogram()
        counts = [0, 0]
        budget = [transfers]
        track = RssTrack()
        batches0 = service.appender.batches
        ahead0 = service.appender.built_ahead
        pg0 = postgres_cpu_seconds(url)
        cpu0, (busy0, total0) = cpu_seconds(), machine_busy()
        t0 = time.perf_counter()
        deadline = t0 + max_seconds
        done = asyncio.Event()

        async def sampler() -> None:
            while not done.is_set():
                track.sample(counts[0] + counts[1])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.25)
            track.sample(counts[0] + counts[1])

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(
            *(produce(service, ids, p, budget, deadline, hist, counts) for p in range(producers))
        )
        seconds = time.perf_counter() - t0
        done.set()
        await sampling
        cpu1, (busy1, total1) = cpu_seconds(), machine_busy()
        pg1 = postgres_cpu_seconds(url)
        n = max(1, counts[0] + counts[1])
        return Result(
            db=db,
            accounts=len(ids),
            batch_size=batch_size,
            producers=producers,
            ok=counts[0],
            rejected=counts[1],
            seconds=seconds,
            batches=service.appender.batches - batches0,
            built_ahead=service.appender.built_ahead - ahead0,
            latency=hist,
            cpu_process=(cpu1 - cpu0) / seconds,
            cpu_machine=(busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1),
            cpu_per_transfer=(cpu1 - cpu0) / n,
            pg_cpu_per_transfer=(pg1 - pg0) / n,
            peak_rss=peak_rss_bytes(),
            rss_growth=track.growth_per_100k(),
        )


HEADER = (
    "| db | accounts | batch | producers | transfers | rejected | seconds | transfers/s "
    "| p50 | p99 | batches | built ahead | mean batch | CPU proc | CPU machine "
    "| µs CPU/transfer (app+pg) | peak RSS | RSS/100k |"
)


def row(r: Result) -> str:
    mean = (r.ok + r.rejected) / r.batches if r.batches else 0.0
    return (
        f"| {r.db} | {r.accounts} | {r.batch_size} | {r.producers} | {r.ok} | {r.rejected} "
        f"| {r.seconds:.1f} | {r.rate:,.0f} | {ms(r.latency.quantile(0.5))} "
        f"| {ms(r.latency.quantile(0.99))} | {r.batches} | {r.built_ahead} | {mean:.1f} "
        f"| {r.cpu_process:.2f} | {r.cpu_machine:.2f} "
        f"| {r.cpu_per_transfer * 1e6:.0f}+{r.pg_cpu_per_transfer * 1e6:.0f} | {mib(r.peak_rss)} "
        f"| {r.rss_growth / 1_048_576:+.2f} MiB |"
    )


async def main(args: argparse.Namespace) -> None:
    print_facts()
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    sys.stdout.flush()
    for db in backends(args.db):
        for accounts in parse_ints(args.accounts):
            for batch_size in parse_ints(args.batch_sizes):
                producers = (
                    max(4, 2 * batch_size) if args.producers == "auto" else int(args.producers)
                )
                async with fresh_database(db) as url:
                    ids = await open_accounts(url, accounts)
                    result = await run_one(
                        db, url, batch_size, args.transfers, producers, ids, args.max_seconds
                    )
                print(row(result))
                sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--batch-sizes", default="1,10,100,1000")
    parser.add_argument(
        "--transfers",
        type=lambda s: parse_ints(s)[0],
        default=50_000,
        help="transfers per run (after a short warm-up)",
    )
    parser.add_argument(
        "--producers", default="auto", help="concurrent producers; auto = max(4, 2 x batch size)"
    )
    parser.add_argument(
        "--accounts",
        default="10000,4",
        help="accounts per run, comma-separated (2-4 = hot accounts)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="stop a run after this long even if transfers remain",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
