"""A real `scambio serve` on a loopback port, a demo community seeded through the API, and
Debian's Chromium driven by Playwright: shared by the browser tests and the screenshot
script (`python -m tests.screenshots`).

Everything is bounded: the server must answer /health within 30 seconds, every HTTP call
has a timeout, the browser is started once and pages have default timeouts, and the
server is stopped (terminate, then kill) however the caller ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHROMIUM: str = "/usr/bin/chromium"
#: As in the machine notes: headless, no sandbox (root), and nothing that phones home.
CHROMIUM_ARGS: list[str] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}
START_TIMEOUT = 30.0


def _scambio() -> str:
    found = Path(sys.executable).with_name("scambio")
    return str(found) if found.exists() else (shutil.which("scambio") or "scambio")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    admin: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert response.status_code < 400, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [_scambio(), *args],
            env=self.env,
            input=stdin.encode() if stdin else None,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return done.stdout.decode()


@contextlib.contextmanager
def running_server(db_url: str, data_dir: Path) -> Iterator[Server]:
    """`scambio serve` on a free loopback port; the database must be migrated already."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_DATA_DIR": str(data_dir),
        "SCAMBIO_LEDGER_ORIGIN": "test.scambio.local/web",
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
        "SCAMBIO_HOLD_SWEEP_INTERVAL": "0",
        "SCAMBIO_WRITE_RATE": "0",
    }
    port = free_port()
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_scambio(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", env, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"scambio serve exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"scambio serve did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        server.admin = server.cli("token", "issue", "--role", "admin", "--name", "tests").strip()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def add_member(server: Server, key: str, name: str, **profile: Any) -> dict[str, Any]:
    """An active member (created by the admin) who logs in; their token kept under `key`."""
    email = f"{key}@example.org"
    member: dict[str, Any] = server.api(
        "POST",
        "/api/v1/members",
        json={"name": name, "email": email, "password": PASSWORD, **profile},
    )
    login = httpx.post(
        server.url + "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    server.tokens[key] = login.json()["token"]
    server.ids[key] = member
    return member


def listing(server: Server, key: str, **fields: Any) -> dict[str, Any]:
    body = {"kind": "offer", "area": "training_empowerment", "zone": "municipio-6", **fields}
    found: dict[str, Any] = server.api("POST", "/api/v1/listings", server.tokens[key], json=body)
    return found


def seed_community(server: Server) -> None:
    """A small community: a manager, an auditor, a company with its admin, neighbours with
    offers and requests, and an exchange that went all the way (so statements have lines)."""
    add_member(server, "sara", "Sara Bianchi", role="manager", zone="municipio-6")
    add_member(server, "anna", "Anna Conti", role="auditor", zone="municipio-4")
    add_member(server, "marco", "Marco Rossi", zone="municipio-6", areas=["childcare"])
    add_member(server, "lucia", "Lucia Ferrari", zone="municipio-6", areas=["training_empowerment"])
    add_member(
        server, "paolo", "Paolo Greco", zone="municipio-4", areas=["employment_flexible_work"]
    )
    org = server.api(
        "POST",
        "/api/v1/organisations",
        json={
            "name": "Officine Lambrate",
            "kind": "company",
            "admin_member_id": server.ids["paolo"]["id"],
        },
    )
    server.ids["org"] = org
    server.api(
        "POST",
        f"/api/v1/organisations/{org['id']}/employees",
        server.tokens["paolo"],
        json={"member_id": server.ids["lucia"]["id"], "title": "Volontaria"},
    )
    server.ids["lucia_offer"] = listing(
        server, "lucia", title="Ripetizioni di matematica", description="Scuola media, pomeriggio"
    )
    listing(server, "marco", title="Babysitting il sabato", area="childcare")
    listing(
        server,
        "paolo",
        title="Revisione del curriculum",
        area="employment_flexible_work",
        zone="municipio-4",
    )
    server.ids["marco_request"] = listing(
        server, "marco", kind="request", title="Aiuto con i compiti di matematica"
    )
    # One exchange through every step: Lucia helped Marco for an hour.
    import uuid

    ex = server.api(
        "POST",
        "/api/v1/exchanges",
        server.tokens["lucia"],
        json={
            "id": str(uuid.uuid4()),
            "provider": server.ids["lucia"]["account_id"],
            "receiver": server.ids["marco"]["account_id"],
            "minutes": 60,
            "title": "Ripetizioni di matematica",
        },
    )
    server.ids["exchange"] = ex
    for who, move in (("marco", "accept"), ("lucia", "done"), ("marco", "confirm")):
        server.api("POST", f"/api/v1/exchanges/{ex['id']}/{move}", server.tokens[who])


def launch(playwright: Any) -> Any:
    """Debian's Chromium, never a downloaded browser."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)


def log_in(page: Any, server: Server, key: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(f"{key}@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url("**/home**")
