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
import sys
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


_admin_conn: dict[str, psycopg.Connection[object]] = {}
_admin_lock = threading.Lock()


def _admin(statement: str) -> None:
    """Run one statement on an admin connection of this thread, reconnecting once when
    the server went away (the bank workload restarts PostgreSQL in CI)."""
    key = threading.current_thread().name
    for attempt in (1, 2):
        conn = _admin_conn.get(key)
        if conn is None or conn.closed:
            with _admin_lock:
                conn = _admin_conn[key] = psycopg.connect(
                    _libpq(ADMIN_URL), autocommit=True, connect_timeout=10
                )
        try:
            conn.execute(statement)  # type: ignore[arg-type]
            return
        except psycopg.OperationalError:
            conn.close()
            if attempt == 2:
                raise


class Postgres:
    """Creates and drops throwaway databases cloned from a migrated template.

    Creating a database costs a few hundred milliseconds and dropping one forces a
    checkpoint, which can take seconds while the server is busy; so one background thread
    keeps two clones ready and another drops used ones, without either waiting for the
    other or for the tests.
    """

    AHEAD = 2

    def __init__(self) -> None:
        self.error: str | None = None
        self.template = f"scambio_tpl_{os.getpid()}"
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._creates: queue.Queue[bool] = queue.Queue()
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
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
        for target, name in ((self._create_loop, "pg-create"), (self._drop_loop, "pg-drop")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        for _ in range(self.AHEAD):
            self._creates.put(True)

    def _create_loop(self) -> None:
        while self._creates.get():
            name = f"scambio_t_{os.getpid()}_{next(_counter)}"
            try:
                _admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            except psycopg.Error as exc:
                self._ready.put(exc)
            else:
                self._ready.put(name)

    def _drop_loop(self) -> None:
        while (name := self._drops.get()) is not None:
            try:
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:  # a leftover database is not a test failure
                print(f"could not drop {name}: {exc}", file=sys.stderr)

    def create(self) -> str:
        self._creates.put(True)
        ready = self._ready.get(timeout=300)
        if isinstance(ready, BaseException):
            raise ready
        return _with_db(ADMIN_URL, ready)

    def drop(self, url: str) -> None:
        self._drops.put(url.rsplit("/", 1)[1])

    def close(self) -> None:
        if self.error is not None or not self._threads:
            return
        self._creates.put(False)
        self._drops.put(None)
        for thread in self._threads:
            thread.join(timeout=300)
        with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as c:
            while not self._ready.empty():
                ready = self._ready.get()
                if isinstance(ready, str):
                    c.execute(f'DROP DATABASE IF EXISTS "{ready}" WITH (FORCE)')
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
        # No policy files unless a test writes some: the repository's examples stay out.
        "SCAMBIO_POLICIES_DIR": str(tmp_path / "policies"),
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
