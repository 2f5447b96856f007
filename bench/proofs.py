"""Read latency as the ledger grows: Merkle proofs, account balances and statements.

    python bench/proofs.py [--db sqlite|postgres|both] [--sizes 1e4,1e5,1e6]
                           [--samples 1000] [--accounts 10000] [--fix-trigger]

Builds one ledger per database through the real append path (LedgerService, batch size
1000, 2000 concurrent producers, transfers between random accounts) and, each time it
reaches one of the sizes, times on one open read connection (inside `LedgerService.read`):

- `queries.inclusion_proof(index, size)` for random size <= n and index < size,
- `queries.consistency_proof(m, size)` for random 1 <= m <= size <= n,
- `queries.account(id)` and `queries.statement(id, after=..., limit=50)` for random ids.

It prints the median and p99 of each, the mean number of stored hashes a proof reads (which
grows like log2 n), and the append rate while building. A few proofs of every kind are
checked against the signed head with `merkle.verify_*`, so the timings are of right answers.
`--fix-trigger` builds with the proposed zero-sum trigger (see common.ZERO_SUM_BY_PROBE).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable

from append import open_accounts
from common import (
    SIGNER,
    backends,
    fix_trigger,
    fresh_database,
    mib,
    ms,
    parse_ints,
    peak_rss_bytes,
    print_facts,
    quantiles,
    rss_bytes,
    started_service,
)
from scambio.ledger import merkle
from scambio.ledger.note import open_checkpoint
from scambio.store import queries
from scambio.store.commands import Transfer
from scambio.store.ledger import LedgerService

BATCH = 1000


async def grow(service: LedgerService, ids: list[str], target: int, seed: int) -> float:
    """Append transfers until the ledger has `target` entries; return transfers/s."""
    async with service.read() as conn:
        start = (await queries.head(conn)).size
    need = target - start
    if need <= 0:
        return math.nan
    budget = [need]
    rng = random.Random(seed)

    async def producer(p: int) -> None:
        n = 0
        local = random.Random(rng.random())
        while budget[0] > 0:
            budget[0] -= 1
            n += 1
            a, b = local.sample(ids, 2)
            await service.transfer(Transfer(f"g{seed}-{p}-{n}", a, b, local.randint(1, 90)))

    t0 = time.perf_counter()
    await asyncio.gather(*(producer(p) for p in range(2 * BATCH)))
    return need / (time.perf_counter() - t0)


async def timed(samples: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def measure(
    service: LedgerService, ids: list[str], samples: int, seed: int
) -> dict[str, tuple[float, float, float]]:
    """name -> (median s, p99 s, mean stored hashes read)."""
    rng = random.Random(seed)
    results: dict[str, tuple[float, float, float]] = {}
    async with service.read() as conn:
        head = await queries.head(conn)
        n = head.size
        cp = open_checkpoint(head.checkpoint, SIGNER.verifier(), service.origin)

        # Correctness first: a few proofs against the signed head.
        for _ in range(5):
            i = rng.randrange(n)
            leaf, path = await queries.inclusion_proof(conn, i, n)
            merkle.verify_inclusion(leaf, i, n, path, cp.root)
            m = rng.randint(1, n)
            proof = await queries.consistency_proof(conn, m, n)
            merkle.verify_consistency(m, n, proof, await queries.root_at(conn, m), cp.root)

        incl_args = []
        for _ in range(samples):
            size = rng.randint(1, n)
            incl_args.append((rng.randrange(size), size))
        it = iter(incl_args)
        lat = await timed(samples, lambda: queries.inclusion_proof(conn, *next(it)))
        reads = (
            sum(len(merkle.nodes_for(merkle.inclusion_ranges(i, s))) + 1 for i, s in incl_args)
            / samples
        )
        results["inclusion_proof"] = (*quantiles(lat), reads)

        cons_args = []
        for _ in range(samples):
            size = rng.randint(1, n)
            cons_args.append((rng.randint(1, size), size))
        it2 = iter(cons_args)
        lat = await timed(samples, lambda: queries.consistency_proof(conn, *next(it2)))
        reads = (
            sum(len(merkle.nodes_for(merkle.consistency_ranges(m, s))) for m, s in cons_args)
            / samples
        )
        results["consistency_proof"] = (*quantiles(lat), reads)

        lat = await timed(samples, lambda: queries.account(conn, rng.choice(ids)))
        results["account"] = (*quantiles(lat), math.nan)

        async def statement() -> object:
            return await queries.statement(
                conn, rng.choice(ids), after=rng.choice([None, rng.randrange(n)]), limit=50
            )

        lat = await timed(samples, statement)
        results["statement (50 lines)"] = (*quantiles(lat), math.nan)

    # And once per request, as the API does it: a pooled connection and a transaction.
    async def per_request() -> object:
        async with service.read() as c:
            size = rng.randint(1, n)
            return await queries.inclusion_proof(c, rng.randrange(size), size)

    lat = await timed(samples, per_request)
    results["inclusion_proof incl. connection+transaction"] = (*quantiles(lat), math.nan)
    return results


async def run(db: str, sizes: list[int], samples: int, accounts: int, fix: bool) -> None:
    async with fresh_database(db) as url:
        if fix:
            fix_trigger(url)
        ids = await open_accounts(url, accounts)
        async with started_service(url, BATCH) as service:
            for k, size in enumerate(sorted(sizes)):
                rate = await grow(service, ids, size, seed=k)
                res = await measure(service, ids, samples, seed=100 + k)
                print(
                    f"| {db} | {size:,} | {rate:,.0f} | RSS now {mib(rss_bytes())}, "
                    f"peak {mib(peak_rss_bytes())} | | | |"
                )
                for name, (p50, p99, reads) in res.items():
                    hashes = "" if math.isnan(reads) else f"{reads:.1f}"
                    print(f"| {db} | {size:,} | | {name} | {ms(p50)} | {ms(p99)} | {hashes} |")
                sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    print_facts()
    print(f"# log2 of sizes: {', '.join(f'{math.log2(s):.1f}' for s in parse_ints(args.sizes))}")
    print(
        "| db | entries | append transfers/s (building) | read | median | p99 "
        "| stored hashes read |"
    )
    print("|---|---|---|---|---|---|---|")
    sys.stdout.flush()
    for db in backends(args.db):
        await run(db, parse_ints(args.sizes), args.samples, args.accounts, args.fix_trigger)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="1e4,1e5,1e6")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--fix-trigger",
        action="store_true",
        help="PostgreSQL: build with the proposed zero-sum trigger",
    )
    asyncio.run(main(parser.parse_args()))
