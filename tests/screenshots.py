"""Screenshots of the main pages on a phone, for the README: `make screenshots` (or
`python -m tests.screenshots docs/screenshots`). Not part of the test run.

It migrates a fresh SQLite database in a temporary folder, starts `scambio serve` on a
loopback port, seeds the small demo community of the browser tests, and takes each page
in Debian's Chromium at a phone's size (390 x 844, the full page).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .web_server import PHONE, Server, _scambio, launch, log_in, running_server, seed_community

#: (file name, who is logged in, path)
SHOTS: list[tuple[str, str, str]] = [
    ("01-public.png", "", "/"),
    ("02-signup.png", "", "/signup"),
    ("03-home.png", "marco", "/home"),
    ("04-listings.png", "marco", "/listings?q=matematica"),
    ("05-listing.png", "marco", "/listings/{offer}"),
    ("06-exchange.png", "lucia", "/exchanges/{exchange}"),
    ("07-statement.png", "marco", "/statement"),
    ("08-verify.png", "marco", "/verify/{index}"),
    ("09-manager-queue.png", "sara", "/manage/queue"),
    ("10-approvals.png", "sara", "/manage/approvals"),
    ("11-organisation.png", "paolo", "/organisations/{org}"),
    ("12-ledger.png", "anna", "/ledger?lang=en"),
]


def take(server: Server, folder: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    marco_statement = server.api("GET", f"/api/v1/members/{server.ids['marco']['id']}/statement")
    values = {
        "offer": server.ids["lucia_offer"]["id"],
        "exchange": server.ids["exchange"]["id"],
        "org": server.ids["org"]["id"],
        "index": str(marco_statement["lines"][-1]["index"]),
    }
    # A registration waiting for approval, so the approvals page has something to show.
    import httpx

    httpx.post(
        server.url + "/api/v1/members/register",
        json={
            "email": "elena@example.org",
            "password": "a long enough password",
            "name": "Elena Galli",
            "zone": "municipio-6",
        },
        timeout=30,
    ).raise_for_status()
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            for name, who, path in SHOTS:
                context = browser.new_context(viewport=PHONE, device_scale_factor=1)
                context.set_default_timeout(15_000)
                page = context.new_page()
                if who:
                    log_in(page, server, who)
                page.goto(server.url + path.format(**values))
                target = folder / name
                page.screenshot(path=str(target), full_page=True)
                saved.append(target)
                context.close()
        finally:
            browser.close()
    return saved


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else "docs/screenshots")
    with tempfile.TemporaryDirectory(prefix="scambio-shots-") as tmp:
        data = Path(tmp) / "var"
        url = f"sqlite+aiosqlite:///{tmp}/demo.db"
        env = {"SCAMBIO_DATABASE_URL": url, "SCAMBIO_DATA_DIR": str(data)}
        import os

        subprocess.run(
            [_scambio(), "db", "upgrade"], env={**os.environ, **env}, check=True, timeout=120
        )
        with running_server(url, data) as server:
            seed_community(server)
            for path in take(server, folder):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
