"""The exchange flow and transfers over HTTP: `scambio serve` on PostgreSQL, 64 clients.

    python bench/http.py [--workers 1,2] [--clients 64] [--seconds 10] [--members 256]
                         [--phases exchanges,transfers] [--client auto|httpx|aiohttp]

For each number of workers it creates a fresh PostgreSQL database (`scambio_bench_*`,
dropped at the end), migrates it, registers `--members` members through the timebank's
services (accounts without limits, so that nothing is refused) with a member token each,
starts `scambio serve --workers N` on a free loopback port, and runs each phase for
`--seconds` (after a short warm-up that is not counted) with `--clients` concurrent
clients, each on its own keep-alive connection:

- exchanges: a client proposes an exchange as one member (the provider), accepts it as
  the other (the receiver: the minutes are held), marks it done as the provider and
  confirms it as the receiver (the hold is posted): four requests, one completed exchange;
- transfers: a client posts `POST /api/v1/transfers` as a member paying another.

Printed: completed exchanges/s and transfers/s, p50/p99 latency per request type, and
the CPU each side used per request (the server's processes, PostgreSQL's backends and
this load generator, which shares the machine's cores with them). After the run the
database is checked: exchanges confirmed as counted, balances summing to zero.

The load generator is this one Python process: with httpx it needs roughly as much CPU
per request as the server, which caps what one machine can show; aiohttp (if installed)
needs less. `--client auto` picks aiohttp when it is importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/http.py: with bench/ first on sys.path (as when run as a script) it
# would shadow the standard library's `http` package for every library that imports it.
# Look in bench/ last instead (for `common`).
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import msgspec  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from common import (  # noqa: E402
    Histogram,
    cpu_seconds,
    fresh_database,
    ms,
    parse_ints,
    postgres_cpu_seconds,
    print_facts,
)
from scambio.settings import Settings, load_settings  # noqa: E402
from scambio.store.db import make_engine  # noqa: E402
from scambio.store.exchanges_tables import exchanges  # noqa: E402
from scambio.store.keyfile import load_or_create_key  # noqa: E402
from scambio.store.ledger import LedgerService  # noqa: E402
from scambio.store.tables import accounts  # noqa: E402
from scambio.store.tokens import SCOPES, issue_member_token  # noqa: E402
from scambio.timebank import people  # noqa: E402
from scambio.timebank.audit import CLI  # noqa: E402
from scambio.timebank.context import Timebank  # noqa: E402
from scambio.timebank.db import writing  # noqa: E402

ORIGIN = "bench.scambio.local/http"
EXCHANGE_STEPS = ("propose", "accept", "done", "confirm")
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Member:
    id: str
    account: str
    token: str


# -- setting up: a database with members, and the server on it --------------------------------


def server_env(url: str, data_dir: Path) -> dict[str, str]:
    return {
        "SCAMBIO_DATABASE_URL": url,
        "SCAMBIO_DATA_DIR": str(data_dir),
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
        "SCAMBIO_DEFAULT_MIN_BALANCE": "none",
        "SCAMBIO_DEFAULT_MAX_BALANCE": "none",
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }


async def register_members(settings: Settings, count: int) -> list[Member]:
    """`count` active members (through `people.create`) and a member token for each."""
    engine = make_engine(settings.database_url)
    signer = load_or_create_key(settings.key_file, settings.ledger_origin)
    ledger = LedgerService(engine, signer, settings)
    tb = Timebank.create(ledger, settings)
    await ledger.start()
    try:
        created: list[people.Member] = []
        for start in range(0, count, 64):
            created += await asyncio.gather(
                *(
                    people.create(
                        tb, CLI, name=f"Bench {n}", email=f"bench{n}@example.org", password=None
                    )
                    for n in range(start, min(count, start + 64))
                )
            )
        found: list[Member] = []
        async with writing(engine) as conn:
            for member in created:
                token, _ = await issue_member_token(
                    conn, member.id, "bench", SCOPES, created_at=member.created_at, expires_at=None
                )
                assert member.account_id is not None
                found.append(Member(member.id, member.account_id, token))
        return found
    finally:
        await ledger.stop()
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def pids(self) -> list[int]:
        """The uvicorn process and its workers."""
        found = [self.process.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            found += [int(p) for p in children.read_text().split()]
        return found

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total


def spawn(env: dict[str, str], workers: int, log: Path) -> Server:
    """`scambio serve` in its own session (so that it stops with all its workers)."""
    port = free_port()
    command = [sys.executable, "-m", "scambio.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, port, log)


def tail(log: Path, size: int = 2000) -> str:
    return log.read_text(errors="replace")[-size:]


async def start_server(env: dict[str, str], workers: int, log: Path) -> Server:
    server = spawn(env, workers, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited: {tail(log)}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            answer = await reader.read(64)
            writer.close()
            if b" 200 " in answer:
                # Every worker must be up: give the others a moment after the first answers.
                await asyncio.sleep(1.0 * workers)
                return server
        await asyncio.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"the server did not answer within 60 s: {tail(log)}")


def stop_server(server: Server) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGINT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


# -- clients ---------------------------------------------------------------------------------

Post = Callable[[str, bytes, str], Awaitable[tuple[int, bytes]]]


class HttpxClient:
    name = "httpx"

    def __init__(self, port: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60,
        )

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        response = await self._client.post(
            path,
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpClient:
    name = "aiohttp"

    def __init__(self, port: int) -> None:
        import aiohttp  # type: ignore[import-not-found, unused-ignore]

        self._base = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=60)
        )

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        async with self._session.post(
            self._base + path,
            data=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        ) as response:
            return response.status, await response.read()

    async def aclose(self) -> None:
        await self._session.close()


def client_kind(choice: str) -> type[HttpxClient] | type[AiohttpClient]:
    if choice == "httpx":
        return HttpxClient
    if choice == "aiohttp":
        return AiohttpClient
    try:
        import aiohttp  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return HttpxClient
    return AiohttpClient


# -- the phases ------------------------------------------------------------------------------


@dataclass
class Tally:
    latency: dict[str, Histogram] = field(default_factory=dict)
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def hist(self, step: str) -> Histogram:
        return self.latency.setdefault(step, Histogram())

    def error(self, step: str, status: int, body: bytes) -> None:
        key = f"{step} {status}"
        if key not in self.errors:
            print(f"# first error: {key}: {body[:300]!r}", file=sys.stderr)
        self.errors[key] = self.errors.get(key, 0) + 1


async def timed(client: Any, tally: Tally, step: str, path: str, body: Any, token: str) -> bool:
    payload = _encode(body)
    t0 = time.perf_counter()
    try:
        status, answer = await client.post(path, payload, token)
    except Exception as exc:  # a dropped connection is an error to count, not a crash
        tally.error(step, 0, f"{type(exc).__name__}: {exc}".encode())
        return False
    tally.hist(step).add(time.perf_counter() - t0)
    if status not in (200, 201):
        tally.error(step, status, answer)
        return False
    return True


async def exchange_loop(
    client: Any, provider: Member, receiver: Member, deadline: float, tally: Tally
) -> None:
    while time.perf_counter() < deadline:
        exchange_id = str(uuid.uuid4())
        proposal = {
            "id": exchange_id,
            "provider": provider.account,
            "receiver": receiver.account,
            "minutes": 30,
            "title": "Bench exchange",
        }
        base = f"/api/v1/exchanges/{exchange_id}"
        ok = (
            await timed(client, tally, "propose", "/api/v1/exchanges", proposal, provider.token)
            and await timed(client, tally, "accept", f"{base}/accept", {}, receiver.token)
            and await timed(client, tally, "done", f"{base}/done", {}, provider.token)
            and await timed(client, tally, "confirm", f"{base}/confirm", {}, receiver.token)
        )
        if ok:
            tally.completed += 1


async def transfer_loop(
    client: Any, payer: Member, payee: Member, deadline: float, tally: Tally
) -> None:
    while time.perf_counter() < deadline:
        body = {"id": str(uuid.uuid4()), "payer": payer.account, "payee": payee.account}
        body["minutes"] = 1  # type: ignore[assignment]
        if await timed(client, tally, "transfer", "/api/v1/transfers", body, payer.token):
            tally.completed += 1


#: `--py-spy DIR`: record the server's processes with py-spy during each measured phase.
PY_SPY: dict[str, str] = {}


def profile(
    server: Server, phase: str, workers: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    if not PY_SPY:
        return None
    out = Path(PY_SPY["dir"]) / f"{phase}-w{workers}.txt"
    command = [PY_SPY["bin"], "record", "--pid", str(server.process.pid), "--subprocesses"]
    command += ["--duration", str(int(seconds)), "--rate", "200", "--format", "raw"]
    command += ["--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class PhaseResult:
    phase: str
    workers: int
    clients: int
    seconds: float
    tally: Tally
    cpu_server: float
    cpu_client: float
    cpu_pg: float
    requests: int

    @property
    def rate(self) -> float:
        return self.tally.completed / self.seconds


async def run_phase(
    phase: str,
    server: Server,
    url: str,
    members: list[Member],
    clients: int,
    seconds: float,
    kind: type[HttpxClient] | type[AiohttpClient],
    workers: int,
) -> PhaseResult:
    loop = exchange_loop if phase == "exchanges" else transfer_loop
    pool = [kind(server.port) for _ in range(clients)]
    pairs = [
        (members[2 * i % len(members)], members[(2 * i + 1) % len(members)]) for i in range(clients)
    ]
    try:
        warm = Tally()
        warm_until = time.perf_counter() + min(2.0, seconds / 3)
        await asyncio.gather(
            *(loop(c, a, b, warm_until, warm) for c, (a, b) in zip(pool, pairs, strict=True))
        )
        tally = Tally()
        spy = profile(server, phase, workers, seconds)
        server0, client0, pg0 = server.cpu_seconds(), cpu_seconds(), postgres_cpu_seconds(url)
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(
            *(loop(c, a, b, deadline, tally) for c, (a, b) in zip(pool, pairs, strict=True))
        )
        elapsed = time.perf_counter() - t0
        server1, client1, pg1 = server.cpu_seconds(), cpu_seconds(), postgres_cpu_seconds(url)
        if spy is not None:
            spy.wait()
    finally:
        for client in pool:
            await client.aclose()
    return PhaseResult(
        phase,
        workers,
        clients,
        elapsed,
        tally,
        server1 - server0,
        client1 - client0,
        pg1 - pg0,
        sum(h.n for h in tally.latency.values()),
    )


async def check_database(url: str, completed_exchanges: int) -> str:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            confirmed = (
                await conn.execute(
                    select(func.count())
                    .select_from(exchanges)
                    .where(exchanges.c.state == "confirmed")
                )
            ).scalar_one()
            total = (await conn.execute(select(func.sum(accounts.c.posted)))).scalar_one()
    finally:
        await engine.dispose()
    if confirmed < completed_exchanges or total != 0:
        raise RuntimeError(
            f"database check failed: {confirmed} confirmed exchanges for {completed_exchanges} "
            f"counted, balances sum to {total}"
        )
    return f"{confirmed} exchanges confirmed in the database, balances sum to {total}"


HEADER = (
    "| workers | phase | clients | seconds | completed/s | requests/s | request | p50 | p99 "
    "| errors | µs CPU/request server + PostgreSQL + client | machine CPU (cores) |"
)


def rows(r: PhaseResult) -> list[str]:
    """One row per request type; the phase's figures on its first row."""
    per = max(1, r.requests)
    busy = (r.cpu_server + r.cpu_pg + r.cpu_client) / r.seconds
    cpu = (
        f"{r.cpu_server / per * 1e6:.0f} + {r.cpu_pg / per * 1e6:.0f} + "
        f"{r.cpu_client / per * 1e6:.0f}"
    )
    phase = [
        f"{r.rate:,.0f}",
        f"{r.requests / r.seconds:,.0f}",
        str(sum(r.tally.errors.values())),
        cpu,
        f"{busy:.2f}",
    ]
    found: list[str] = []
    for step in (*EXCHANGE_STEPS, "transfer"):
        hist = r.tally.latency.get(step)
        if hist is None:
            continue
        rate, requests, errors, cpu_, busy_ = phase if not found else [""] * 5
        found.append(
            f"| {r.workers} | {r.phase} | {r.clients} | {r.seconds:.1f} | {rate} | {requests} "
            f"| {step} | {ms(hist.quantile(0.5))} | {ms(hist.quantile(0.99))} | {errors} "
            f"| {cpu_} | {busy_} |"
        )
    return found


async def run_workers(args: argparse.Namespace, workers: int) -> list[PhaseResult]:
    results: list[PhaseResult] = []
    kind = client_kind(args.client)
    with tempfile.TemporaryDirectory(prefix="scambio-http-") as tmp:
        async with fresh_database("postgres") as url:
            env = server_env(url, Path(tmp) / "var")
            settings = load_settings(env)
            members = await register_members(settings, args.members)
            server = await start_server(env, workers, Path(tmp) / "server.log")
            try:
                for phase in args.phases.split(","):
                    result = await run_phase(
                        phase, server, url, members, args.clients, args.seconds, kind, workers
                    )
                    results.append(result)
                    for line in rows(result):
                        print(line)
                    sys.stdout.flush()
            finally:
                stop_server(server)
                if any(r.tally.errors for r in results):
                    notable = [
                        line
                        for line in tail(server.log).splitlines()
                        if any(w in line for w in ("ERROR", "WARNING", "Traceback", "died"))
                    ]
                    print("# server log: " + " | ".join(notable[-8:]))
            exchanged = sum(r.tally.completed for r in results if r.phase == "exchanges")
            print(f"# check (workers={workers}): {await check_database(url, exchanged)}")
            for r in results:
                if r.tally.errors:
                    print(f"# errors ({r.phase}, workers={workers}): {r.tally.errors}")
    return results


async def main(args: argparse.Namespace) -> None:
    print_facts()
    print(
        f"# load generator: {client_kind(args.client).name}, {args.clients} clients, "
        f"one keep-alive connection each; {args.members} members"
    )
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    sys.stdout.flush()
    for workers in parse_ints(args.workers):
        await run_workers(args, workers)
    load = os.getloadavg()
    print(f"# load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="uvicorn workers, comma-separated")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--members", type=int, default=256)
    parser.add_argument("--phases", default="exchanges,transfers")
    parser.add_argument("--client", choices=["auto", "httpx", "aiohttp"], default="auto")
    parser.add_argument("--py-spy", default=None, help="record server profiles into this folder")
    parser.add_argument("--py-spy-bin", default="py-spy", help="the py-spy executable")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.py_spy:
        Path(arguments.py_spy).mkdir(parents=True, exist_ok=True)
        PY_SPY.update(dir=arguments.py_spy, bin=arguments.py_spy_bin)
    asyncio.run(main(arguments))
