"""A bank workload in the style of Jepsen's, against a real `scambio serve` process.

Many concurrent clients make transfers and holds (later posted, partly posted or voided;
some left to expire) among a few accounts with tight limits, and read balances, over
HTTP. A nemesis kills the server with SIGKILL several times and restarts it, and takes
the database away once (PostgreSQL: a real restart of the server when
SCAMBIO_TEST_RESTART_POSTGRES=1, as in CI; otherwise this database's connections are cut
and refused for a few seconds, which leaves other users of the server alone).

Clients behave as careful real ones do: a request whose outcome is unknown (timeout,
connection refused, 5xx) is retried with the same id until it gets a definite answer,
or, for a share of them, abandoned (its outcome stays unknown).

The checker then replays the whole log with the pure rules and asserts:

- every acknowledged request is in the log exactly once, at the index it was
  acknowledged with; every definitely refused one is not;
- every balance read equals the replay of the log up to the ledger size the read says
  it is as of (so every read saw one consistent snapshot), and was within its limits;
- the replay never breaks a rule (zero-sum entries, limits, holds resolved once), so
  balances always sum to zero and no account ever crossed its limits;
- the cached balances, postings rows, tree nodes and signed checkpoints agree with the
  log (`verify_database`), and an offline export verifies.

`run_workload` is bounded in time and stops by itself. The test suite runs a short form;
`make soak` a long one (SCAMBIO_BANK_SECONDS, SCAMBIO_BANK_CLIENTS).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from scambio.ledger.entry import decode_entry
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.ledger.verify import verify_export
from scambio.settings import load_settings
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.export import export_ledger
from scambio.store.keyfile import load_key
from scambio.store.tokens import issue_token

ORIGIN = "bank.scambio.local/test"
#: Accounts and their limits: tight, so that many requests are refused on limits.
ACCOUNTS: dict[str, tuple[int | None, int | None]] = {
    "ada": (-200, 200),
    "bea": (-200, 200),
    "cai": (-100, 150),
    "dan": (0, 400),
    "eva": (-300, 100),
}


@dataclass
class Attempt:
    """One request a client made, and what it finally knew of it."""

    kind: str  # transfer, hold, post, void
    entry_id: str  # the id of the entry the request writes
    outcome: str = "unknown"  # ack, refused, unknown
    index: int | None = None
    code: str | None = None
    tries: int = 0


@dataclass
class Read:
    account: str
    tree_size: int
    posted: int
    pending: int
    available: int


@dataclass
class History:
    attempts: list[Attempt] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    outages: int = 0
    acks: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`scambio serve` on a loopback port; killed and restarted on the same database."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"
        self.env = {
            **os.environ,
            "SCAMBIO_DATABASE_URL": url,
            "SCAMBIO_DATA_DIR": str(data_dir),
            "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
            "SCAMBIO_WRITE_RATE": "0",
            "SCAMBIO_HOLD_SWEEP_INTERVAL": "1",
            "SCAMBIO_PASSWORD_HASH_COST": "minimal",
            "SCAMBIO_BATCH_SIZE": "200",
        }

    def start(self) -> None:
        assert self.proc is None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from scambio.cli import main; main()",
                    "serve",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the server did not become healthy: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self.proc = None


class Outage:
    """Takes the database away for a while and brings it back."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def run(self, seconds: float) -> None:
        if not self.url.startswith("postgresql"):
            return
        if os.environ.get("SCAMBIO_TEST_RESTART_POSTGRES") == "1":
            # A real restart of the server (CI: nothing else uses it meanwhile).
            version = sorted(os.listdir("/etc/postgresql"))[0]
            await asyncio.to_thread(
                subprocess.run,
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                check=True,
                capture_output=True,
            )
            return
        name = self.url.rsplit("/", 1)[1]
        admin = self.url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
        async with await psycopg.AsyncConnection.connect(
            admin + "/postgres", autocommit=True
        ) as conn:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            await asyncio.sleep(seconds)
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


class Client:
    def __init__(self, n: int, base: str, token: str, history: History, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.history = history
        self.http = httpx.AsyncClient(
            base_url=base, timeout=3.0, headers={"Authorization": f"Bearer {token}"}
        )
        self.holds: list[str] = []
        self.stop = asyncio.Event()

    async def close(self) -> None:
        await self.http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        self.stop = stop
        while not stop.is_set():
            roll = self.rng.random()
            if roll < 0.15:
                await self.read()
            elif roll < 0.30 and self.holds:
                await self.resolve()
            else:
                await self.create(hold=roll > 0.75)

    async def read(self) -> None:
        account = self.rng.choice(list(ACCOUNTS))
        try:
            response = await self.http.get(f"/api/v1/accounts/{account}")
        except httpx.HTTPError as exc:
            self.history.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            return
        self.history.statuses[response.status_code] += 1
        if response.status_code == 200:
            body = response.json()
            self.history.reads.append(
                Read(account, body["tree_size"], body["posted"], body["pending"], body["available"])
            )
        else:
            await asyncio.sleep(0.05)

    async def create(self, *, hold: bool) -> None:
        payer, payee = self.rng.sample(list(ACCOUNTS), 2)
        transfer_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            "id": transfer_id,
            "payer": payer,
            "payee": payee,
            "minutes": self.rng.randint(1, 60),
        }
        if hold:
            body.update(hold=True, hold_expires_in=self.rng.randint(2, 20))
        attempt = Attempt("hold" if hold else "transfer", transfer_id)
        await self.send(attempt, "/api/v1/transfers", body)
        if hold and attempt.outcome == "ack":
            self.holds.append(transfer_id)

    async def resolve(self) -> None:
        hold_id = self.holds.pop(self.rng.randrange(len(self.holds)))
        if self.rng.random() < 0.6:
            body = {"minutes": self.rng.randint(1, 5)} if self.rng.random() < 0.5 else None
            attempt = Attempt("post", f"{hold_id}:post")
            await self.send(attempt, f"/api/v1/transfers/{hold_id}/post", body)
        else:
            attempt = Attempt("void", f"{hold_id}:void")
            await self.send(attempt, f"/api/v1/transfers/{hold_id}/void", None)

    async def send(self, attempt: Attempt, path: str, body: Any) -> None:
        """Until a definite answer, or until the client gives up on this one request (some
        give up at once; the others once the run is over and the server stays down)."""
        self.history.attempts.append(attempt)
        keep_trying = self.rng.random() < 0.85
        while True:
            attempt.tries += 1
            try:
                response = await self.http.post(path, json=body)
            except httpx.HTTPError as exc:
                self.history.errors[type(exc).__name__] += 1
            else:
                self.history.statuses[response.status_code] += 1
                if response.status_code in (200, 201):
                    attempt.outcome, attempt.index = "ack", int(response.json()["index"])
                    self.history.acks += 1
                    return
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    attempt.outcome = "refused"
                    attempt.code = response.json()["type"].rsplit(":", 1)[-1]
                    return
            if not keep_trying or (self.stop.is_set() and attempt.tries > 20):
                return  # unknown, for good
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))


@dataclass
class Result:
    history: History
    size: int
    acks: int
    refused: int
    unknown: int


async def run_workload(
    url: str, data_dir: Path, *, seconds: float, clients: int, kills: int, seed: int = 1
) -> Result:
    """Run the workload with its nemesis; check everything; return what happened.

    The nemesis strikes `kills` times (and takes the database away once), each time only
    after the server has acknowledged new work since it last came up, so that every kill
    lands on a busy server however slow the machine; `seconds` spreads the strikes out.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, null_pool=True)
    try:
        token = await issue_token(engine, "admin", "bank workload")
    finally:
        await engine.dispose()
    server = Server(url, data_dir)
    server.start()
    history = History()
    try:
        await server.ready()
        async with httpx.AsyncClient(
            base_url=server.base, timeout=10.0, headers={"Authorization": f"Bearer {token}"}
        ) as admin:
            for name, (low, high) in ACCOUNTS.items():
                response = await admin.post(
                    "/api/v1/accounts",
                    json={"id": name, "kind": "member", "min_balance": low, "max_balance": high},
                )
                assert response.status_code == 201, response.text
        stop = asyncio.Event()
        workers = [Client(n, server.base, token, history, seed * 1000 + n) for n in range(clients)]
        load = asyncio.gather(*(w.run(stop) for w in workers))
        try:
            await _nemesis(server, Outage(url), history, seconds, kills)
            # A last stretch of work on a healthy server, then the clients wind down:
            # requests still in doubt are retried until answered, or given up.
            await _progress(history, server, seconds / (kills + 2))
        finally:
            stop.set()
            await load
        for w in workers:
            await w.close()
    finally:
        server.stop()
    size = await check(url, data_dir, history)
    outcomes = Counter(a.outcome for a in history.attempts)
    return Result(history, size, outcomes["ack"], outcomes["refused"], outcomes["unknown"])


#: Acknowledgements the server must give between two strikes of the nemesis.
PROGRESS = 20
#: Longest wait for that progress before the run is declared stuck.
STUCK = 120.0


async def _progress(history: History, server: Server, seconds: float) -> None:
    """Wait `seconds`, and at least until PROGRESS more requests were acknowledged."""
    start, acks = time.monotonic(), history.acks
    while time.monotonic() - start < seconds or history.acks - acks < PROGRESS:
        if time.monotonic() - start > STUCK:
            raise AssertionError(
                f"no progress: {history.acks - acks} acks in {STUCK:.0f} s; "
                f"statuses {dict(history.statuses)}; errors {dict(history.errors)}; "
                f"server log: {server.log.read_text()[-2000:]}"
            )
        await asyncio.sleep(0.1)


async def _nemesis(
    server: Server, outage: Outage, history: History, seconds: float, kills: int
) -> None:
    """SIGKILL the server `kills` times, and take the database away once, in between."""
    plan = ["kill"] * kills
    plan.insert(max(0, kills - 1), "outage")
    gap = seconds / (kills + 2)
    for action in plan:
        await _progress(history, server, gap)
        if action == "kill":
            server.kill()
            history.kills += 1
            await asyncio.sleep(0.5)
            server.start()
            await server.ready()
        elif server.url.startswith("postgresql"):
            await outage.run(3.0)
            history.outages += 1


async def check(url: str, data_dir: Path, history: History) -> int:
    """The checker (see the module docstring). Returns the ledger size."""
    settings = load_settings(
        {
            "SCAMBIO_DATABASE_URL": url,
            "SCAMBIO_DATA_DIR": str(data_dir),
            "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
        }
    )
    signer = load_key(settings.key_file)
    engine = make_engine(url, null_pool=True)
    try:
        # The store's own audit: cached balances, postings rows, tree nodes, checkpoints.
        report = await verify_database(engine, signer.verifier(), ORIGIN)
        out = io.BytesIO()
        await export_ledger(engine, out, signer.verifier())
        offline = verify_export(
            out.getvalue().splitlines(), trusted_vkey=signer.verifier().to_string()
        )
        assert offline.size == report.size
        async with engine.connect() as conn:
            stored = [e async for e in queries.stream_entries(conn)]
    finally:
        await engine.dispose()

    # Replay with the pure rules (raises on any broken rule), keeping each account's
    # balances after every entry that changed them.
    state = LedgerState()
    ids: dict[str, int] = {}
    changes: dict[str, list[tuple[int, int, int, int]]] = {a: [] for a in ACCOUNTS}
    for item in stored:
        entry = decode_entry(item.canonical)
        assert entry.index == len(ids), "indexes are not contiguous"
        assert entry.id not in ids, f"{entry.id} is in the log twice"
        ids[entry.id] = entry.index
        apply_entry(state, entry)
        for name, account in state.accounts.items():
            if name in changes:
                row = (entry.index, account.posted, account.debits_pending, account.credits_pending)
                if not changes[name] or changes[name][-1][1:] != row[1:]:
                    changes[name].append(row)
        assert sum(a.posted for a in state.accounts.values()) == 0
    assert len(ids) == report.size

    for attempt in history.attempts:
        if attempt.outcome == "ack":
            assert ids.get(attempt.entry_id) == attempt.index, attempt
        elif attempt.outcome == "refused":
            assert attempt.entry_id not in ids, attempt

    for read in history.reads:
        rows = changes[read.account]
        at = bisect.bisect_left([r[0] for r in rows], read.tree_size) - 1
        posted, debits, credits = rows[at][1:] if at >= 0 else (0, 0, 0)
        assert (read.posted, read.pending, read.available) == (
            posted,
            credits - debits,
            posted - debits,
        ), (read, rows[max(0, at - 1) : at + 2])
        low, high = ACCOUNTS[read.account]
        assert low is None or posted - debits >= low, read
        assert high is None or posted + credits <= high, read
    return report.size
