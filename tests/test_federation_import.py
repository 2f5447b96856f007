"""Import from TimeOverflow, Komunitin and CES exports (the sample files in tests/data),
malformed files, and the exports for other tools: CSV tables and an hledger journal
checked by the real `hledger` program."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scambio.federation import imports
from scambio.federation.export import export_csv, export_hledger, hledger_account
from scambio.ledger.entry import decode_entry
from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.people_tables import members
from scambio.store.tables import entries
from scambio.timebank import people
from scambio.timebank.audit import CLI
from scambio.timebank.context import Timebank

from .conftest import ORIGIN, SIGNER, Clock, make_settings

DATA = Path(__file__).parent / "data"
SAMPLES = {
    "timeoverflow": ("timeoverflow/members.csv", "timeoverflow/transfers.csv"),
    "komunitin": ("komunitin/accounts.csv", "komunitin/transfers.csv"),
    "ces": ("ces/users.csv", "ces/trades.csv"),
}
#: The balances each export reports, in minutes (hours in the files).
EXPECTED = {
    "timeoverflow": {"1": 150, "2": -60, "3": 75, "4": -135, "5": 60},
    "komunitin": {"NET20001": 210, "NET20002": -120, "NET20003": -60, "NET20004": -30},
    "ces": {"ZA01-0001": 255, "ZA01-0002": -180, "ZA01-0003": -75, "ZA01-0004": 0},
}
REQUIRE_HLEDGER = os.environ.get("SCAMBIO_REQUIRE_HLEDGER") == "1"


@pytest.fixture
async def tb(db_url: str, tmp_path: Path) -> AsyncIterator[Timebank]:
    settings = make_settings(db_url, tmp_path, SCAMBIO_PASSWORD_HASH_COST="minimal")
    engine = make_engine(db_url, null_pool=True)
    ledger = LedgerService(engine, SIGNER, settings, clock=Clock())
    timebank = Timebank.create(ledger, settings)
    await ledger.start()
    try:
        yield timebank
    finally:
        await ledger.stop()
        await engine.dispose()


def _files(source: str) -> list[tuple[str, bytes]]:
    return imports.read_files([DATA / name for name in SAMPLES[source]])


async def _balances(tb: Timebank, source: str) -> dict[str, int]:
    """Imported person -> posted balance of their account."""
    from scambio.store.federation_tables import imported_members

    async with tb.ledger.read() as conn:
        rows = (
            await conn.execute(select(imported_members).where(imported_members.c.source == source))
        ).all()
        return {
            row.external_id: (
                await queries.account(conn, people.member_account_id(row.member_id))
            ).posted
            for row in rows
        }


def test_amounts_and_dates() -> None:
    assert imports.hours_to_minutes("1:30") == 90
    assert imports.hours_to_minutes("-0:45") == -45
    assert imports.hours_to_minutes("1.5") == 90
    assert imports.hours_to_minutes("2") == 120
    for bad in ("1:75", "tre ore", "0.01", "1e400", "NaN"):
        with pytest.raises(ValueError):
            imports.hours_to_minutes(bad)
    assert imports.parse_date("05/04/2023") == "2023-04-05"
    assert imports.parse_date("2022-03-01T17:00:00Z") == "2022-03-01T17:00:00"
    with pytest.raises(ValueError):
        imports.parse_date("2023-02-30")


@pytest.mark.parametrize("source", sorted(SAMPLES))
async def test_import_reconciles_to_the_source_balances(tb: Timebank, source: str) -> None:
    parsed = imports.parse(source, _files(source))
    dry = await imports.run_import(tb, CLI, parsed, dry_run=True)
    assert dry.dry_run and dry.members_created == len(EXPECTED[source])
    async with tb.ledger.read() as conn:
        assert (await queries.head(conn)).size == 0
    report = await imports.run_import(tb, CLI, parsed)
    assert report.members_created == len(EXPECTED[source])
    assert await _balances(tb, source) == EXPECTED[source]
    # Every imported entry says where it came from.
    async with tb.ledger.read() as conn:
        stored = [
            e
            for e in [
                decode_entry(bytes(r.canonical))
                for r in await conn.execute(select(entries.c.canonical))
            ]
            if e.id.startswith("imp.") and e.kind == "transfer"
        ]
    assert stored and all(e.refs["import"] == report.run for e in stored)
    assert all(e.refs["source"] == source for e in stored)
    history = [e for e in stored if "source_date" in e.refs]
    assert len(history) == report.transfers_imported
    # The import account holds what the source's own unexported accounts held.
    assert report.import_account_balance == -sum(EXPECTED[source].values())
    # The same files again: refused, nothing new.
    with pytest.raises(RuleViolation) as again:
        await imports.run_import(tb, CLI, parsed)
    assert again.value.code == "already-imported"
    verified = await verify_database(tb.engine, SIGNER.verifier(), ORIGIN)
    assert verified.size > 0


async def test_the_report_says_what_was_skipped_and_why(tb: Timebank) -> None:
    report = await imports.run_import(
        tb, CLI, imports.parse("timeoverflow", _files("timeoverflow"))
    )
    reasons = {s.where: s.reason for s in report.skipped}
    assert reasons == {
        "transfers.csv:7": "'Banca del Tempo Zona 6' is not in the export's people (the "
        "timebank itself?)",
        "transfers.csv:8": "payer and payee are the same person",
    }
    openings = {o["person"]: o["adjustment"] for o in report.opening_balances}
    # Giulia's welcome credit, Marco's older debt, Chiara's welcome from the bank.
    assert openings == {"1": 45, "2": -15, "5": 60}
    assert report.transfers_imported == 5
    # Luca has no email; nobody else lost theirs.
    assert report.members_without_email == []
    komunitin = await imports.run_import(tb, CLI, imports.parse("komunitin", _files("komunitin")))
    assert {s.where: s.reason for s in komunitin.skipped} == {
        "transfers.csv:4": "state 'rejected' at the source: not history",
        "transfers.csv:7": "state 'submitted' at the source: not history",
    }
    # Marta was disabled at the source: imported, then suspended.
    assert komunitin.suspended == ["NET20004"]
    # No imported debt is beyond the usual limit, so no limit had to be widened.
    assert komunitin.limits_widened == []


async def test_an_email_already_in_use_is_imported_without_it(tb: Timebank) -> None:
    await people.create(
        tb, CLI, name="Giulia B.", email="giulia.bianchi@example.org", password=None
    )
    report = await imports.run_import(
        tb, CLI, imports.parse("timeoverflow", _files("timeoverflow"))
    )
    assert report.members_without_email == ["1"]
    async with tb.ledger.read() as conn:
        count = (
            await conn.execute(
                select(func.count()).where(members.c.email == "giulia.bianchi@example.org")
            )
        ).scalar_one()
    assert count == 1
    assert (await _balances(tb, "timeoverflow")) == EXPECTED["timeoverflow"]


@pytest.mark.parametrize(
    ("source", "files", "errors"),
    [
        (
            "timeoverflow",
            ("timeoverflow/members.csv", "malformed/timeoverflow_transfers.csv"),
            [
                "timeoverflow_transfers.csv:3: date: '2023-02-30' is not a date "
                "(YYYY-MM-DD or DD/MM/YYYY)",
                "timeoverflow_transfers.csv:4: amount: 'tre ore' is not an amount of hours "
                "(1:30 or 1.5)",
                "timeoverflow_transfers.csv:5: 4 fields, the header has 5",
            ],
        ),
        (
            "komunitin",
            ("malformed/komunitin_accounts.csv", "komunitin/transfers.csv"),
            [
                "komunitin_accounts.csv:3: 'NET20001' appears twice (first at "
                "komunitin_accounts.csv:2)"
            ],
        ),
        (
            "ces",
            ("malformed/ces_users_wrong_header.csv", "ces/trades.csv"),
            [
                "ces_users_wrong_header.csv:1: missing columns uid, name, email, balance, "
                "created (expected uid, name, email, balance, created)"
            ],
        ),
    ],
)
async def test_malformed_files_give_line_numbered_errors_and_import_nothing(
    tb: Timebank, source: str, files: tuple[str, str], errors: list[str]
) -> None:
    with pytest.raises(imports.ImportFailed) as failed:
        imports.parse(source, imports.read_files([DATA / f for f in files]))
    assert failed.value.errors == errors
    async with tb.ledger.read() as conn:
        assert (await queries.head(conn)).size == 0
        assert (await conn.execute(select(func.count()).select_from(members))).scalar_one() == 0


def test_the_cli_refuses_a_malformed_file_with_its_lines(tmp_path: Path) -> None:
    env = {**os.environ, "SCAMBIO_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scambio.cli",
            "import",
            "timeoverflow",
            str(DATA / "timeoverflow/members.csv"),
            str(DATA / "malformed/timeoverflow_transfers.csv"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "error: timeoverflow_transfers.csv:4: amount" in result.stderr
    assert not (tmp_path / "scambio.db").exists()


# -- export --------------------------------------------------------------------------------


async def _imported_and_moved(tb: Timebank) -> None:
    """History from all three sources, plus a hold (pending: not in hledger)."""
    for source in sorted(SAMPLES):
        await imports.run_import(tb, CLI, imports.parse(source, _files(source)))


async def test_csv_export_round_trip(tb: Timebank, tmp_path: Path) -> None:
    await _imported_and_moved(tb)
    counts = await export_csv(tb.engine, tmp_path)
    with (tmp_path / "accounts.csv").open(newline="") as f:
        accounts = {row["id"]: row for row in csv.DictReader(f)}
    with (tmp_path / "members.csv").open(newline="") as f:
        exported_members = list(csv.DictReader(f))
    with (tmp_path / "transfers.csv").open(newline="") as f:
        transfers = list(csv.DictReader(f))
    assert counts == {
        "accounts": len(accounts),
        "transfers": len(transfers),
        "members": len(exported_members),
    }
    assert len(exported_members) == 13
    for source, expected in EXPECTED.items():
        balances = await _balances(tb, source)
        assert balances == expected
    by_account = {m["account_id"]: m for m in exported_members}
    for account_id, row in accounts.items():
        if account_id in by_account:
            assert int(row["posted"]) == int(row["available"])
    assert sum(int(row["posted"]) for row in accounts.values()) == 0
    imported = [t for t in transfers if '"source_date"' in t["refs"]]
    assert len(imported) == 5 + 4 + 3
    assert {t["kind"] for t in transfers} == {"transfer"}


async def test_hledger_confirms_the_balances(tb: Timebank, tmp_path: Path) -> None:
    hledger = shutil.which("hledger")
    if hledger is None:
        if REQUIRE_HLEDGER:
            pytest.fail("hledger is not installed (SCAMBIO_REQUIRE_HLEDGER=1)")
        pytest.skip("hledger is not installed")
    await _imported_and_moved(tb)
    # A hold is pending: hledger must not count it.
    from scambio.store.commands import Transfer

    async with tb.ledger.read() as conn:
        some = [
            str(r.account_id) for r in await conn.execute(select(members.c.account_id).limit(2))
        ]
    held = await tb.ledger.transfer(Transfer("a-hold", some[0], some[1], 7, hold=True))
    assert not isinstance(held, RuleViolation)
    journal = tmp_path / "scambio.journal"
    with journal.open("w", encoding="utf-8") as out:
        transactions = await export_hledger(tb.engine, out)
    assert transactions > 0
    result = subprocess.run(
        [hledger, "-f", str(journal), "balance", "--flat", "--no-total", "-O", "csv"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["account", "balance"]
    reported = {name: int(amount.split()[0]) for name, amount in rows[1:]}
    async with tb.ledger.read() as conn:
        expected = {}
        from scambio.store.tables import accounts

        for row in await conn.execute(select(accounts)):
            if int(row.posted) != 0:
                expected[hledger_account(row.kind, row.id)] = int(row.posted)
    assert reported == expected
    assert len(expected) >= 10


def test_hledger_account_names() -> None:
    assert hledger_account("member", "m-1a2b") == "member:m-1a2b"
    assert hledger_account("system", "odd:id") == "system:odd_id"
