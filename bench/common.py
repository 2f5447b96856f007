"""Shared pieces of the benchmarks: throwaway databases, a started service, and meters.

Benchmarks print figures; they are never part of the test run. Every database they touch
is created for the run and removed afterwards: a SQLite file in a temporary directory, or
a PostgreSQL database named `scambio_bench_<pid>_<n>` on the server at
SCAMBIO_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
dropped with FORCE when the run ends, even after an error.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from scambio.ledger.note import Signer
from scambio.settings import Settings
from scambio.store import migrate
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService

PG_ADMIN_URL = os.environ.get(
    "SCAMBIO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ORIGIN = "bench.scambio.local/ledger"
#: A fixed key: signing cost does not depend on which key it is.
SIGNER = Signer.from_seed(ORIGIN, bytes(range(32)))

_counter = itertools.count()


def libpq(url: str) -> str:
    """The psycopg (libpq) form of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def parse_ints(text: str) -> list[int]:
    """'1,10,1_000' -> [1, 10, 1000]; also accepts 1e6."""
    return [int(float(part)) for part in text.replace("_", "").split(",") if part.strip()]


def backends(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


@asynccontextmanager
async def fresh_database(kind: str, *, migrate_schema: bool = True) -> AsyncIterator[str]:
    """A migrated, empty database URL of `kind` ('sqlite' or 'postgres'), removed after."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="scambio-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}"
            if migrate_schema:
                await _migrate(url)
            yield url
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    name = f"scambio_bench_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(PG_ADMIN_URL, name)
    try:
        if migrate_schema:
            await _migrate(url)
        yield url
    finally:
        with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _migrate(url: str) -> None:
    engine = make_engine(url, null_pool=True)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def bench_settings(url: str, batch_size: int, data_dir: Path | None = None) -> Settings:
    data = data_dir or Path(tempfile.gettempdir()) / "scambio-bench-var"
    return Settings(
        data_dir=data,
        database_url=url,
        key_file=data / "node.key",
        ledger_origin=ORIGIN,
        default_min_balance=None,
        default_max_balance=None,
        batch_size=batch_size,
    )


#: Bench-only experiment: SQLite page cache per connection, in MiB (unset: store/db.py's
#: default, SQLite's 2 MB). Measures the proposed `PRAGMA cache_size` in docs/benchmarks.md.
SQLITE_CACHE_MIB = os.environ.get("SCAMBIO_BENCH_SQLITE_CACHE_MIB")


def _sqlite_cache(engine: Any) -> None:
    if not SQLITE_CACHE_MIB or engine.dialect.name != "sqlite":
        return
    kib = int(SQLITE_CACHE_MIB) * 1024

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA cache_size = -{kib}")
        cursor.close()


@asynccontextmanager
async def started_service(url: str, batch_size: int) -> AsyncIterator[LedgerService]:
    """A started LedgerService on `url` with a pooled engine, as `scambio serve` has."""
    engine = make_engine(url)
    _sqlite_cache(engine)
    service = LedgerService(engine, SIGNER, bench_settings(url, batch_size))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await engine.dispose()


# -- meters ----------------------------------------------------------------------------


class Histogram:
    """Latencies in logarithmic buckets (0.5% wide): constant memory however long the run.

    A list of every sample would grow by ~32 bytes per transfer and hide the appender's own
    memory behaviour, which is one of the things measured.
    """

    _BASE = math.log(1.005)
    _FLOOR = 1e-7

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        key = int(math.log(max(seconds, self._FLOOR) / self._FLOOR) / self._BASE)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.n += 1
        self.max = max(self.max, seconds)

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.n += other.n
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        if not self.n:
            return math.nan
        rank = q * (self.n - 1)
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > rank:
                return self._FLOOR * math.exp((key + 0.5) * self._BASE)
        return self.max


def quantiles(samples: Sequence[float], qs: Iterable[float] = (0.5, 0.99)) -> list[float]:
    """Exact quantiles of a (small) list of samples, by nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return [math.nan for _ in qs]
    return [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in qs]


def rss_bytes() -> int:
    """The process's current resident set size."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class RssTrack:
    """RSS sampled against the ledger's size, to tell a flat appender from a leaking one."""

    points: list[tuple[int, int]] = field(default_factory=list)

    def sample(self, entries: int) -> None:
        self.points.append((entries, rss_bytes()))

    def growth_per_100k(self) -> float:
        """Least-squares slope of RSS over entries in the second half of the run, per 100k.

        The first half holds the warm-up (pools, caches, allocator arenas filling).
        """
        pts = self.points[len(self.points) // 2 :]
        if len(pts) < 2 or pts[-1][0] == pts[0][0]:
            return math.nan
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        var = sum((x - mx) ** 2 for x, _ in pts)
        cov = sum((x - mx) * (y - my) for x, y in pts)
        return cov / var * 100_000 if var else math.nan


def mib(n: float) -> str:
    return f"{n / 1_048_576:.1f} MiB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def machine_facts() -> dict[str, str]:
    """nproc, memory, Python, and the PostgreSQL settings that bound commit rates."""
    facts = {
        "python": platform.python_version(),
        "nproc": str(os.cpu_count()),
        "memory": _meminfo(),
        "platform": platform.platform(),
    }
    try:
        with psycopg.connect(libpq(PG_ADMIN_URL), connect_timeout=3) as c:
            for setting in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
                "shared_buffers",
                "commit_delay",
            ):
                row = c.execute(f"SHOW {setting}").fetchone()
                facts[f"pg.{setting}"] = str(row[0]) if row else "?"
    except psycopg.Error as exc:
        facts["pg"] = f"unavailable: {exc}".strip()
    return facts


def _meminfo() -> str:
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1_048_576:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "?"


def print_facts() -> None:
    facts = machine_facts()
    print("# machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# started: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    load = os.getloadavg()
    print(f"# load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    sys.stdout.flush()


#: The zero-sum check as a correlated subquery: one index probe on postings' primary key
#: per new entry. The migration's form (a join of the new entries with postings, grouped)
#: lets the planner pick a hash or merge join over a sequential scan of all postings, so
#: every batch reads the whole table until it is large enough for the planner to switch.
#: Benchmarks apply this only when asked (`--fix-trigger`), to measure the proposed change;
#: the check it makes, and the error it raises, are the migration's.
ZERO_SUM_BY_PROBE = """
CREATE OR REPLACE FUNCTION scambio_entries_zero_sum() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad bigint;
BEGIN
    SELECT n.idx INTO bad FROM new_entries n
    WHERE coalesce((SELECT sum(p.minutes) FROM postings p WHERE p.entry_idx = n.idx), 0) <> 0
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'postings of entry % do not sum to zero', bad
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
"""


def fix_trigger(url: str) -> None:
    """Replace the zero-sum trigger's function in a throwaway PostgreSQL database."""
    if not url.startswith("postgresql"):
        return
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(ZERO_SUM_BY_PROBE)


def postgres_cpu_seconds(url: str) -> float:
    """CPU seconds used so far by the server processes serving `url`'s database.

    Read from /proc for the backends that pg_stat_activity lists for the database (the
    server runs on this machine), plus the WAL writer: with other work on the machine,
    CPU per transfer is a steadier figure than transfers per second.
    """
    if not url.startswith("postgresql"):
        return 0.0
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(libpq(PG_ADMIN_URL), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type = 'walwriter'",
            [name],
        ).fetchall()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for (pid,) in rows:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total
