"""Two real Scambio nodes for the federation tests, and a faulty network between them.

Each node is a `scambio serve` process on a loopback port with its own database, key and
ledger origin. Each node reaches the other through a `Proxy` in the test process, which
forwards HTTP requests and can, one request at a time: drop it (the peer is down), lose
the answer after the peer acted (a timeout after commit), delay it past the client's
timeout, deliver it twice, keep it to deliver later (reordering), or alter the answer.
It records every request's raw bytes, so a test can replay one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scambio.ledger.note import Verifier
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.keyfile import load_or_create_key
from scambio.store.tokens import issue_token

PASSWORD = "correct horse battery staple"
#: Seconds a node waits for its peer (kept short so that faults resolve quickly).
TIMEOUT = "2"
#: Seconds a held transfer waits for the peer before its node aborts it (the minimum).
DEADLINE = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the proxy ---------------------------------------------------------------------------


@dataclass
class Captured:
    path: str
    raw: bytes


@dataclass
class Proxy:
    """A one-request-per-connection HTTP forwarder with planned faults."""

    upstream_port: int
    port: int = field(default_factory=free_port)
    captured: list[Captured] = field(default_factory=list)
    kept: list[Captured] = field(default_factory=list)
    _plans: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socket.socket | None = None
    _stop: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, path_part: str, action: str, times: int = 1) -> None:
        """The next `times` requests whose path contains `path_part` suffer `action`:
        drop, lose-answer, delay, twice, keep, tamper-accept."""
        with self._lock:
            self._plans.extend([(path_part, action)] * times)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def _action(self, path: str) -> str:
        with self._lock:
            for i, (part, action) in enumerate(self._plans):
                if part in path:
                    del self._plans[i]
                    return action
        return "pass"

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._serve, name=f"proxy-{self.port}", daemon=True).start()

    def stop(self) -> None:
        self._stop = True
        if self._server is not None:
            self._server.close()

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stop:
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                raw = read_request(conn)
            except OSError:
                return
            if raw is None:
                return
            path = raw.split(b" ", 2)[1].decode("latin-1")
            self.captured.append(Captured(path, raw))
            action = self._action(path)
            if action == "drop":
                return
            if action == "keep":
                self.kept.append(Captured(path, raw))
                return
            response = self.deliver(raw)
            if action == "twice":
                self.deliver(raw)
            elif action == "lose-answer":
                return
            elif action == "delay":
                time.sleep(float(TIMEOUT) + 1.5)
            elif action == "tamper-accept":
                response = re.sub(
                    rb'"accept":"[^"]+"', b'"accept":"' + b"A" * 86 + b'=="', response
                )
            with contextlib.suppress(OSError):
                conn.sendall(response)

    def deliver(self, raw: bytes) -> bytes:
        """Send raw request bytes to the upstream node; its whole response."""
        return send_raw(self.upstream_port, raw)


def read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    # One request per connection: the upstream closes after answering.
    head = re.sub(rb"(?im)^connection:[^\r\n]*\r\n?", b"", head)
    return head + b"\r\nConnection: close\r\n\r\n" + body


def send_raw(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# -- nodes -------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    origin: str
    db_url: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    vkey: str = ""
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SCAMBIO_DATABASE_URL": self.db_url,
            "SCAMBIO_DATA_DIR": str(self.data_dir),
            "SCAMBIO_LEDGER_ORIGIN": self.origin,
            "SCAMBIO_HOLD_SWEEP_INTERVAL": "0",
            "SCAMBIO_PASSWORD_HASH_COST": "minimal",
            "SCAMBIO_FEDERATION_TIMEOUT": TIMEOUT,
            "SCAMBIO_FEDERATION_PREPARE_DEADLINE": str(DEADLINE),
        }

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "scambio.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"scambio {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def prepare(self) -> None:
        """The node key and an admin token, made in-process (as `scambio key` and `scambio
        token issue` would, without two more interpreters starting)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        signer = load_or_create_key(self.data_dir / "node.key", self.origin)
        self.vkey = signer.verifier().to_string()

        async def issue() -> str:
            engine = make_engine(self.db_url, null_pool=True)
            try:
                return await issue_token(engine, "admin", "federation tests")
            finally:
                await engine.dispose()

        self.token = asyncio.run(issue())

    def verify(self) -> str:
        """Verify the node's ledger in its database, as `scambio ledger verify` does."""

        async def run() -> str:
            engine = make_engine(self.db_url, null_pool=True)
            try:
                report = await verify_database(engine, Verifier.from_string(self.vkey), self.origin)
                return report.describe()
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def start(self) -> None:
        self.log = self.data_dir / f"serve-{self.port}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scambio.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"node {self.name} did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    # -- API -------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return httpx.request(
            method,
            self.url + path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.request("GET", path, **params)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.request("POST", path, body)

    def add_member(self, key: str) -> str:
        body = {
            "name": key.capitalize(),
            "email": f"{key}-{uuid.uuid4().hex[:6]}@example.org",
            "password": PASSWORD,
        }
        response = self.post("/api/v1/members", body)
        assert response.status_code == 201, response.text
        return str(response.json()["account_id"])

    def balance(self, account: str) -> tuple[int, int]:
        response = self.get(f"/api/v1/accounts/{account}")
        assert response.status_code == 200, response.text
        body = response.json()
        return int(body["posted"]), int(body["pending"])

    def pay(self, payer: str, payee: str, minutes: int, memo: str = "") -> httpx.Response:
        body = {
            "id": str(uuid.uuid4()),
            "payer": payer,
            "payee": payee,
            "minutes": minutes,
            "memo": memo,
        }
        return self.post("/api/v1/federation/transfers", body)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/federation/transfers/{transfer_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def recover(self) -> dict[str, Any]:
        response = self.post("/api/v1/federation/recover")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def reconcile(self, peer: str) -> dict[str, Any]:
        response = self.post(f"/api/v1/federation/peers/{peer}/reconcile")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@dataclass
class Pair:
    """Node `a` (peer name `alfa` at b) and node `b` (peer name `beta` at a)."""

    a: Node
    b: Node
    to_b: Proxy
    to_a: Proxy

    def settle(self, rounds: int = 6) -> None:
        """Run recovery on both nodes until nothing is pending (bounded)."""
        for _ in range(rounds):
            pending = self.a.recover()["pending"] + self.b.recover()["pending"]
            if not pending:
                return
            time.sleep(0.5)
        raise AssertionError(f"still pending after {rounds} recovery rounds: {pending}")


def start_pair(tmp: Path, urls: tuple[str, str], tag: str) -> Iterator[Pair]:
    a = Node("a", f"a-{tag}.scambio.test/ledger", urls[0], tmp / "a")
    b = Node("b", f"b-{tag}.scambio.test/ledger", urls[1], tmp / "b")
    for node in (a, b):
        node.prepare()
    to_b, to_a = Proxy(b.port), Proxy(a.port)
    to_b.start()
    to_a.start()
    try:
        for node in (a, b):
            node.start()
        for node, other, name, proxy in ((a, b, "beta", to_b), (b, a, "alfa", to_a)):
            response = node.post(
                "/api/v1/federation/peers",
                {"name": name, "base_url": proxy.url, "vkey": other.vkey, "reason": "partners"},
            )
            assert response.status_code == 201, response.text
        yield Pair(a, b, to_b, to_a)
    finally:
        for node in (a, b):
            node.stop()
        to_b.stop()
        to_a.stop()


def copy_sqlite(src: str, dst: Path) -> str:
    shutil.copyfile(src.removeprefix("sqlite+aiosqlite:///"), dst)
    return f"sqlite+aiosqlite:///{dst}"
