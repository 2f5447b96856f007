"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL tests use a fresh database per test, cloned from a migrated template, on the
server named by SCAMBIO_TEST_POSTGRES_URL (default: the local `test` database). Outside CI
they skip with the reason when the server is unreachable; with SCAMBIO_REQUIRE_POSTGRES=1
(set by .ci/run) an unreachable server fails the run instead.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from scambio.ledger.note import Signer
from scambio.settings import Settings, load_settings
from scambio.store import migrate
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService

ADMIN_URL = os.environ.get(
    "SCAMBIO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SCAMBIO_REQUIRE_POSTGRES") == "1"
SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
ORIGIN = "test.scambio.local/ledger"
#: A fixed key, so that failures are reproducible.
SIGNER = Signer.from_seed(ORIGIN, bytes(range(32)))

_counter = itertools.count()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


class Postgres:
    """Creates and drops throwaway databases cloned from a migrated template.

    Creating and dropping a database costs a few hundred milliseconds, so a background
    thread keeps two clones ready and drops used ones while the next test runs.
    """

    AHEAD = 2

    def __init__(self) -> None:
        self.error: str | None = None
        self.template = f"scambio_tpl_{os.getpid()}"
        self._ready: queue.Queue[str] = queue.Queue()
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        try:
            with psycopg.connect(_libpq(ADMIN_URL), autocommit=True, connect_timeout=3) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
                c.execute(f'CREATE DATABASE "{self.template}"')
        except psycopg.Error as exc:
            self.error = f"PostgreSQL at {ADMIN_URL} is unavailable: {exc}".strip()
            return
        engine = make_engine(_with_db(ADMIN_URL, self.template), null_pool=True)

        async def _migrate() -> None:
            await migrate.upgrade(engine)
            await engine.dispose()

        asyncio.run(_migrate())
        self._thread = threading.Thread(target=self._work, name="pg-clones", daemon=True)
        self._thread.start()
        for _ in range(self.AHEAD):
            self._jobs.put(("create", ""))

    def _work(self) -> None:
        with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as c:
            while (job := self._jobs.get()) is not None:
                action, name = job
                if action == "create":
                    name = f"scambio_t_{os.getpid()}_{next(_counter)}"
                    c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                    self._ready.put(name)
                else:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self) -> str:
        self._jobs.put(("create", ""))
        return _with_db(ADMIN_URL, self._ready.get(timeout=120))

    def drop(self, url: str) -> None:
        self._jobs.put(("drop", url.rsplit("/", 1)[1]))

    def close(self) -> None:
        if self.error is not None or self._thread is None:
            return
        self._jobs.put(None)
        self._thread.join(timeout=120)
        with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as c:
            while not self._ready.empty():
                c.execute(f'DROP DATABASE IF EXISTS "{self._ready.get()}" WITH (FORCE)')
            c.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    yield pg
    pg.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", null_pool=True)

    async def _migrate() -> None:
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A freshly migrated, empty database URL: one SQLite file, one PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    pg: Postgres = request.getfixturevalue("postgres")
    if pg.error:
        if REQUIRE_POSTGRES:
            pytest.fail(pg.error + " (SCAMBIO_REQUIRE_POSTGRES=1)")
        pytest.skip(pg.error)
    url = pg.create()
    yield url
    pg.drop(url)


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """A fresh PostgreSQL database, for tests that only make sense there."""
    if postgres.error:
        if REQUIRE_POSTGRES:
            pytest.fail(postgres.error + " (SCAMBIO_REQUIRE_POSTGRES=1)")
        pytest.skip(postgres.error)
    url = postgres.create()
    yield url
    postgres.drop(url)


@dataclass
class Clock:
    """A controllable clock for the appender: tests move time explicitly."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def make_settings(db_url: str, tmp_path: Path, **env: str) -> Settings:
    base = {
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ledger(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[LedgerService]:
    """A started ledger service on a fresh database, with a controllable clock."""
    settings = make_settings(db_url, tmp_path)
    engine = make_engine(db_url, null_pool=True)
    service = LedgerService(engine, SIGNER, settings, clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await engine.dispose()


def new_id() -> str:
    return str(uuid.uuid4())
