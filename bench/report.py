"""The monthly co-production report and incremental verification on a large ledger.

    python bench/report.py [--db sqlite|postgres|both] [--entries 100000] [--months 12]
                           [--members 5000] [--new 10000] [--runs 3] [--seed 1]

Builds one ledger per database through the real append path (LedgerService, batch size
1000, a controllable clock that spreads the entries evenly over `--months` months) with
the mix a timebank produces: exchanges as a hold then its post (two entries), exchanges
recorded by a manager and group settlements (one transfer each), sponsorship entries
(grants, spends, expiries, matches, staff time, pool grants) and a few plain transfers;
every exchange annotated with its exchange and area. `--members` members (with zones, a
tenth employed by one of 20 organisations) are inserted into the people tables so that the
report's directory is realistic. Then it times:

- `ingest`: filling the pairs projection from scratch (a one-time cost, done by the first
  report job), and again for one month of entries (what each monthly job adds);
- `report`: `reports.live.compute_report` for the last complete month, with the projection
  up to date (what the monthly job does), signed; median of `--runs`;
- `verify full`: `store.audit.verify_database` from entry 0 with the job's settings
  (history forgotten every 100,000 entries, cached balances left out);
- `verify +N`: after appending `--new` entries more, the incremental verification of just
  those entries, resumed from the snapshot the full run left (what each hourly
  verify-ledger run does), median of `--runs` (each time from the same snapshot).

Like the jobs, the report and the verifications run with the cyclic garbage collector
paused (`jobs.collector`). Each step prints wall time and CPU time (this process plus the
database's PostgreSQL backends): on a busy machine the CPU figure is the steadier one.

The targets (issue 5): on 10^6 entries on PostgreSQL, the monthly report under 3 s and
the incremental verification of 10,000 new entries under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from common import (
    SIGNER,
    backends,
    bench_settings,
    cpu_seconds,
    fresh_database,
    ms,
    postgres_cpu_seconds,
    print_facts,
)
from scambio.jobs.collector import collector_paused
from scambio.ledger.entry import format_time
from scambio.ledger.verify import LogReplayer, ReplayerSnapshot
from scambio.reports.live import compute_report
from scambio.reports.pairs import ingest_pairs
from scambio.reports.signing import encode_document
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.commands import Transfer
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.people_tables import employee_links, members, organisations
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.zones import MILAN_MUNICIPI

BATCH = 1000
#: Operations submitted together (they share the appender's batches).
WAVE = 1000
AREAS = sorted(AREA_IDS)
ZONES = [zone.id for zone in MILAN_MUNICIPI]
RULES = ["grant", "spend", "expiry", "match", "staff-time", "pool-grant"]
START = datetime(2025, 1, 1, tzinfo=UTC)


class Meter:
    """Wall time and CPU (this process + the database's PostgreSQL backends) of a step:
    on a busy machine CPU is the steadier figure."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> Meter:
        self.wall = time.perf_counter()
        self.app = cpu_seconds()
        self.pg = postgres_cpu_seconds(self.url)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.app = cpu_seconds() - self.app
        self.pg = postgres_cpu_seconds(self.url) - self.pg

    @property
    def cpu(self) -> float:
        return self.app + self.pg

    def __str__(self) -> str:
        return f"{ms(self.wall)} wall, {ms(self.app)} + {ms(self.pg)} CPU"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def people(service: LedgerService, n: int, seed: int) -> list[str]:
    """Members with zones and accounts; 20 organisations employing a tenth of them."""
    rng = random.Random(seed)
    at = format_time(START)
    ids = [f"{i:016x}" for i in range(1, n + 1)]
    accounts = [f"m-{i}" for i in ids]
    await asyncio.gather(*(service.open_account(a, "member") for a in accounts))
    async with service.engine.begin() as conn:
        await conn.execute(
            insert(members),
            [
                {"id": i, "name": f"Member {i}", "status": "active", "role": "member",
                 "zone": rng.choice(ZONES), "account_id": f"m-{i}", "created_at": at,
                 "updated_at": at}
                for i in ids
            ],
        )  # fmt: skip
        orgs = [f"{0xA000 + k:016x}" for k in range(20)]
        await conn.execute(
            insert(organisations),
            [
                {"id": o, "name": f"Company {k}", "kind": "company", "zone": rng.choice(ZONES),
                 "created_at": at, "updated_at": at}
                for k, o in enumerate(orgs)
            ],
        )  # fmt: skip
        await conn.execute(
            insert(employee_links),
            [
                {"id": f"{0xB000 + k:016x}", "org_id": rng.choice(orgs), "member_id": i,
                 "status": "active", "proposed_at": at, "updated_at": at}
                for k, i in enumerate(rng.sample(ids, n // 10))
            ],
        )  # fmt: skip
    await service.open_account("sponsor.acme", "sponsor")
    return accounts


async def grow(
    service: LedgerService, clock: Clock, accounts: list[str], target: int, months: int, seed: int
) -> float:
    """Append the timebank's mix until `target` entries, spread over `months`; entries/s."""
    rng = random.Random(seed)
    async with service.read() as conn:
        start = (await queries.head(conn)).size
    span = (START + timedelta(days=30.5 * months)) - clock.now
    waves = max(1, (target - start) // int(WAVE * 1.3))
    step = span / waves
    counter = [0]
    t0 = time.perf_counter()
    size = start
    while size < target:
        ops: list[Transfer] = []
        holds: list[str] = []
        for _ in range(min(WAVE, target - size)):
            counter[0] += 1
            n = counter[0]
            a, b = rng.sample(accounts, 2)
            minutes = rng.randint(15, 180)
            roll = rng.random()
            notes = {"exchange": f"x{seed}.{n}", "area": rng.choice(AREAS)}
            if roll < 0.45:
                ops.append(Transfer(f"xch-{seed}.{n}", a, b, minutes, hold=True, refs=notes))
                holds.append(f"xch-{seed}.{n}")
            elif roll < 0.80:
                ops.append(Transfer(f"xch-{seed}.{n}", a, b, minutes, refs=notes))
            elif roll < 0.90:
                rule = rng.choice(RULES)
                refs = {"policy": "p1", "policy_version": "v1", "period": "2025-01", "rule": rule}
                if rule == "spend":
                    refs["area"] = rng.choice(AREAS)
                ops.append(Transfer(f"pol.{seed}.{n}", "sponsor.acme", a, minutes, refs=refs))
            else:
                ops.append(Transfer(f"t.{seed}.{n}", a, b, minutes))
        await asyncio.gather(*(service.transfer(op) for op in ops))
        clock.now += step / 2
        await asyncio.gather(*(service.post(h) for h in holds))
        clock.now += step / 2
        async with service.read() as conn:
            size = (await queries.head(conn)).size
    return (size - start) / (time.perf_counter() - t0)


async def bench(kind: str, args: argparse.Namespace) -> None:
    print(f"\n## {kind}: {args.entries:,} entries over {args.months} months", flush=True)
    async with fresh_database(kind) as url:
        clock = Clock()
        engine = make_engine(url)
        service = LedgerService(engine, SIGNER, bench_settings(url, BATCH), clock=clock)
        await service.start()
        try:
            accounts = await people(service, args.members, args.seed)
            rate = await grow(service, clock, accounts, args.entries, args.months, args.seed)
            print(f"built at {rate:,.0f} entries/s; ledger time now {clock.now:%Y-%m-%d}")

            with Meter(url) as first:
                await ingest_pairs(engine, upto=args.entries - args.entries // args.months)
            with Meter(url) as month:
                await ingest_pairs(engine)
            print(f"ingest (pairs projection): all but a month {first}; one month {month}")

            last = (clock.now.replace(day=1) - timedelta(days=1)).replace(day=1)
            following = (last + timedelta(days=32)).replace(day=1)
            date_from, date_to = last.date().isoformat(), following.date().isoformat()
            meters: list[Meter] = []
            computed: Any = None
            for _ in range(args.runs):
                with Meter(url) as meter, collector_paused():
                    computed = await compute_report(
                        engine,
                        service.origin,
                        date_from,
                        date_to,
                        generated_at=format_time(clock.now),
                    )
                    encode_document(computed.signed(SIGNER))
                meters.append(meter)
            total = computed.report["rows"][0]
            print(
                f"report {date_from}..{date_to}: {computed.scope.end - computed.scope.first:,} "
                f"entries, {len(computed.report['rows'])} rows, "
                f"{total['minutes_exchanged']:,} minutes, {total['exchanges']:,} exchanges; "
                f"median {median(meters)} (runs: " + "; ".join(map(str, meters)) + ")"
            )

            verifier = SIGNER.verifier()
            with Meter(url) as meter, collector_paused():
                full = await verify_database(
                    engine, verifier, service.origin, check_cache=False, forget_every=100_000
                )
            print(f"verify full: {full.size:,} entries, {meter} "
                  f"({full.size / meter.wall:,.0f} entries/s)")  # fmt: skip
            full.replayer.forget_history()
            snapshot = full.replayer.snapshot().encode()

            await grow(
                service, clock, accounts, full.size + args.new, args.months + 1, args.seed + 1
            )
            meters = []
            for _ in range(args.runs):
                with Meter(url) as meter, collector_paused():
                    resumed = LogReplayer.from_snapshot(ReplayerSnapshot.decode(snapshot), verifier)
                    report = await verify_database(
                        engine, verifier, service.origin, resume=resumed, check_cache=False,
                        forget_every=100_000,
                    )  # fmt: skip
                    resumed.forget_history()
                    resumed.snapshot().encode()
                meters.append(meter)
            print(
                f"verify +{report.entries:,} (incremental, from the stored snapshot of "
                f"{len(snapshot) / 1024:,.0f} KiB): median {median(meters)} (runs: "
                + "; ".join(map(str, meters))
                + ")"
            )
        finally:
            await service.stop()
            await engine.dispose()


def median(meters: list[Meter]) -> str:
    """Median wall time, and the median run's CPU: this process + PostgreSQL."""
    middle = sorted(meters, key=lambda m: m.wall)[len(meters) // 2]
    return str(middle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--entries", type=lambda s: int(float(s)), default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--new", type=lambda s: int(float(s)), default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print_facts()
    for kind in backends(args.db):
        asyncio.run(bench(kind, args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
