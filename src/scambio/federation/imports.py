"""Import a timebank's history from TimeOverflow, Komunitin or CES CSV exports.

An import is a migration: every person becomes a member (with an account), every
transfer between two of them a ledger transfer marked as imported (annotations `import`
= the run id, `source`, `source_id`, `source_date`), and where a person's replayed
history does not give the balance the source reports (a welcome credit, transfers with
the timebank's own account, history cut off before the export), one opening-balance
transfer from the source's import account (`import.<source>`, kind `system`) makes it
equal. So every imported balance equals the source's, and the report says why.

The files are read and checked completely before anything is written: a malformed file
gives every error with its file and line, and nothing is imported. Rows that are well
formed but cannot become ledger entries (a transfer with someone not in the export, to
oneself, not committed at the source) are skipped and reported with the reason. The same
files are imported once (by their digest); an import interrupted halfway resumes where it
stopped when run again (every row it writes has an id derived from the run and the row).

Formats (UTF-8, comma-separated, header row; amounts in hours: `1:30`, `1.5`, `-0:45`;
dates `YYYY-MM-DD`, optionally with a time, or `DD/MM/YYYY`):

- TimeOverflow: members `N, username, email, phone, alt_phone, created_at,
  last_sign_in_at, locale, balance`; transfers `date, from, to, post, quantity` (from and
  to are usernames; post is the offer or request).
- Komunitin: `accounts.csv` `code, name, email, balance, status, created`;
  `transfers.csv` `id, created, state, payer, payee, amount, meta` (payer and payee are
  account codes; only `committed` transfers are history).
- CES: `users.csv` `uid, name, email, balance, created`; `trades.csv` `id, date, buyer,
  seller, amount, description` (the buyer pays the seller).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlalchemy import insert, select, update

from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.commands import Appended, Transfer
from scambio.store.federation_tables import import_runs, imported_members
from scambio.store.people_tables import members
from scambio.timebank import people
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.text import normalise_email

SOURCES: Final = ("timeoverflow", "komunitin", "ces")
#: Which files each source needs, in order, and their columns.
FILES: Final = {
    "timeoverflow": (
        (
            "members",
            (
                "N",
                "username",
                "email",
                "phone",
                "alt_phone",
                "created_at",
                "last_sign_in_at",
                "locale",
                "balance",
            ),
        ),
        ("transfers", ("date", "from", "to", "post", "quantity")),
    ),
    "komunitin": (
        ("accounts", ("code", "name", "email", "balance", "status", "created")),
        ("transfers", ("id", "created", "state", "payer", "payee", "amount", "meta")),
    ),
    "ces": (
        ("users", ("uid", "name", "email", "balance", "created")),
        ("trades", ("id", "date", "buyer", "seller", "amount", "description")),
    ),
}
_HOURS_RE: Final = re.compile(r"(-?)(\d{1,7}):([0-5]\d)")
_DECIMAL_RE: Final = re.compile(r"-?\d{1,7}(\.\d{1,9})?")
_encoder: Final = msgspec.json.Encoder(order="sorted")
_CHUNK: Final = 500


class ImportFailed(Exception):
    """The files cannot be imported; `errors` are `file:line: message` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:20]))
        self.errors = errors


@dataclass
class Person:
    external_id: str
    name: str
    email: str | None
    balance: int
    active: bool
    where: str


@dataclass
class Move:
    external_id: str
    when: str
    payer: str
    payee: str
    minutes: int
    memo: str
    where: str


@dataclass
class Skipped:
    where: str
    reason: str


@dataclass
class Parsed:
    source: str
    digest: str
    people: list[Person] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class ImportReport:
    run: str
    source: str
    members_created: int = 0
    members_without_email: list[str] = field(default_factory=list)
    transfers_imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    opening_balances: list[dict[str, Any]] = field(default_factory=list)
    limits_widened: list[dict[str, Any]] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    #: Balance of the import account afterwards: minus what the source's own (unexported)
    #: accounts held, 0 when the export covers everyone.
    import_account_balance: int = 0
    resumed: bool = False
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.source} import {self.run}: {self.members_created} members, "
            f"{self.transfers_imported} transfers, {len(self.opening_balances)} opening "
            f"balances, {len(self.skipped)} rows skipped"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )


# -- reading -----------------------------------------------------------------------------


def hours_to_minutes(text: str) -> int:
    """`1:30`, `-0:45`, `1.5`, `2` hours -> minutes; ValueError unless a whole minute."""
    text = text.strip()
    match = _HOURS_RE.fullmatch(text)
    if match:
        sign = -1 if match.group(1) else 1
        return sign * (int(match.group(2)) * 60 + int(match.group(3)))
    if not _DECIMAL_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not an amount of hours (1:30 or 1.5)")
    value = Decimal(text) * 60
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} hours is not a whole number of minutes")
    return int(value)


def parse_date(text: str) -> str:
    """An ISO date (with an optional time) or DD/MM/YYYY -> YYYY-MM-DD[THH:MM:SS]."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text):
            day, month, year = (int(p) for p in text.split("/"))
            return date(year, month, day).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.replace(tzinfo=None).isoformat(timespec="seconds")
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)") from None


def _rows(
    name: str, data: bytes, columns: Sequence[str], errors: list[str]
) -> list[tuple[str, dict[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errors.append(f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})")
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        errors.append(f"{name}:1: the file is empty")
        return []
    except csv.Error as exc:
        errors.append(f"{name}:1: {exc}")
        return []
    missing = [c for c in columns if c not in header]
    if missing:
        errors.append(
            f"{name}:1: missing columns {', '.join(missing)} (expected {', '.join(columns)})"
        )
        return []
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                errors.append(f"{name}:{line}: {len(values)} fields, the header has {len(header)}")
                continue
            rows.append(
                (f"{name}:{line}", dict(zip(header, (v.strip() for v in values), strict=True)))
            )
    except csv.Error as exc:
        errors.append(f"{name}:{reader.line_num}: {exc}")
    return rows


def parse(source: str, files: Sequence[tuple[str, bytes]]) -> Parsed:
    """Read and check an export completely (raises ImportFailed with every error)."""
    if source not in SOURCES:
        raise ImportFailed([f"unknown source {source!r}; one of {', '.join(SOURCES)}"])
    spec = FILES[source]
    if len(files) != len(spec):
        raise ImportFailed([f"{source} needs {len(spec)} files: {', '.join(n for n, _ in spec)}"])
    digest = hashlib.sha256()
    digest.update(source.encode())
    for _name, data in files:
        digest.update(hashlib.sha256(data).digest())
    parsed = Parsed(source, digest.hexdigest())
    errors: list[str] = []
    (people_name, people_cols), (moves_name, moves_cols) = spec
    people_rows = _rows(files[0][0] or people_name, files[0][1], people_cols, errors)
    move_rows = _rows(files[1][0] or moves_name, files[1][1], moves_cols, errors)
    by_key: dict[str, Person] = {}
    for where, row in people_rows:
        person = _person(source, where, row, errors)
        if person is None:
            continue
        key = person.external_id if source != "timeoverflow" else row["username"]
        if key in by_key:
            errors.append(f"{where}: {key!r} appears twice (first at {by_key[key].where})")
            continue
        by_key[key] = person
        parsed.people.append(person)
    for where, row in move_rows:
        _move(source, where, row, by_key=by_key, parsed=parsed, errors=errors)
    if errors:
        order = {name: i for i, (name, _data) in enumerate(files)}

        def position(error: str) -> tuple[int, int]:
            name, _, rest = error.partition(":")
            line = rest.split(":", 1)[0]
            return order.get(name, -1), int(line) if line.isdigit() else 0

        raise ImportFailed(sorted(errors, key=position))
    return parsed


def _amount(where: str, text: str, errors: list[str], what: str = "amount") -> int | None:
    try:
        return hours_to_minutes(text)
    except ValueError as exc:
        errors.append(f"{where}: {what}: {exc}")
        return None


def _person(source: str, where: str, row: dict[str, str], errors: list[str]) -> Person | None:
    if source == "timeoverflow":
        ext, name, status = row["N"], row["username"], "active"
    elif source == "komunitin":
        ext, name, status = row["code"], row["name"], row["status"] or "active"
    else:
        ext, name, status = row["uid"], row["name"], "active"
    balance = _amount(where, row["balance"], errors, "balance")
    email = row["email"] or None
    if email is not None:
        try:
            email = normalise_email(email)
        except RuleViolation as exc:
            errors.append(f"{where}: email: {exc.detail}")
    if not ext or not name:
        errors.append(f"{where}: a person needs an id and a name")
        return None
    if len(name) > 200 or len(ext) > 200:
        errors.append(f"{where}: id or name longer than 200 characters")
        return None
    if status not in ("active", "disabled", "suspended", "deleted"):
        errors.append(f"{where}: status {status!r} is not active, disabled or suspended")
    if balance is None:
        return None
    return Person(ext, name, email, balance, status == "active", where)


def _move(
    source: str,
    where: str,
    row: dict[str, str],
    *,
    by_key: dict[str, Person],
    parsed: Parsed,
    errors: list[str],
) -> None:
    if source == "timeoverflow":
        ext, when, payer, payee = "", row["date"], row["from"], row["to"]
        amount, memo, state = row["quantity"], row["post"], "committed"
    elif source == "komunitin":
        ext, when, payer, payee = row["id"], row["created"], row["payer"], row["payee"]
        amount, memo, state = row["amount"], row["meta"], row["state"]
    else:
        ext, when, payer, payee = row["id"], row["date"], row["buyer"], row["seller"]
        amount, memo, state = row["amount"], row["description"], "committed"
    minutes = _amount(where, amount, errors)
    try:
        day = parse_date(when)
    except ValueError as exc:
        errors.append(f"{where}: date: {exc}")
        return
    if minutes is None:
        return
    if minutes <= 0:
        errors.append(f"{where}: amount must be positive, got {amount!r}")
        return
    if minutes > 10**9:
        errors.append(f"{where}: amount too large")
        return
    ext = ext or where.rsplit(":", 1)[1]
    if state != "committed":
        parsed.skipped.append(Skipped(where, f"state {state!r} at the source: not history"))
        return
    for party in (payer, payee):
        if party not in by_key:
            parsed.skipped.append(
                Skipped(where, f"{party!r} is not in the export's people (the timebank itself?)")
            )
            return
    if payer == payee:
        parsed.skipped.append(Skipped(where, "payer and payee are the same person"))
        return
    parsed.moves.append(
        Move(
            ext[:200],
            day,
            by_key[payer].external_id,
            by_key[payee].external_id,
            minutes,
            memo[:1000],
            where,
        )
    )


def read_files(paths: Sequence[Path]) -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in paths]


# -- writing -----------------------------------------------------------------------------


def import_account(source: str) -> str:
    return f"import.{source}"


async def run_import(
    tb: Timebank, actor: Actor, parsed: Parsed, *, dry_run: bool = False
) -> ImportReport:
    """Write a parsed export into this timebank (see the module docstring)."""
    run = parsed.digest[:16]
    report = ImportReport(run=run, source=parsed.source, skipped=list(parsed.skipped))
    async with reading(tb.engine) as conn:
        existing = (
            await conn.execute(select(import_runs).where(import_runs.c.digest == parsed.digest))
        ).one_or_none()
        known = {
            row.external_id: row.member_id
            for row in await conn.execute(
                select(imported_members).where(imported_members.c.source == parsed.source)
            )
        }
        taken = {
            row.email
            for row in await conn.execute(
                select(members.c.email).where(
                    members.c.email.in_([p.email for p in parsed.people if p.email])
                )
            )
        }
    if existing is not None and existing.status == "done":
        raise RuleViolation(
            "already-imported",
            f"these files were imported on {existing.at} (run {existing.id})",
            run=existing.id,
        )
    report.resumed = existing is not None
    if dry_run:
        report.dry_run = True
        report.members_created = len([p for p in parsed.people if p.external_id not in known])
        report.transfers_imported = len(parsed.moves)
        return report
    now = stamp(tb.clock)
    if existing is None:
        async with writing(tb.engine) as conn:
            await conn.execute(
                insert(import_runs).values(
                    id=run,
                    source=parsed.source,
                    digest=parsed.digest,
                    at=now,
                    actor=actor.label[:300],
                    status="running",
                    report="{}",
                )
            )
    account = import_account(parsed.source)
    opened = await tb.ledger.open_account(account, "system")
    if isinstance(opened, RuleViolation) and opened.code != "account-exists":
        raise opened
    accounts: dict[str, str] = {}
    member_ids: dict[str, str] = {}
    for person in parsed.people:
        member_id = known.get(person.external_id)
        if member_id is None:
            email = person.email
            if email is not None and email in taken:
                report.members_without_email.append(person.external_id)
                email = None
            created = await people.create(
                tb,
                actor,
                name=person.name,
                email=email,
                password=None,
                profile=None,
                limits={"min_balance": None},
                reason=f"imported from {parsed.source} ({person.where}), run {run}",
            )
            member_id = created.id
            async with writing(tb.engine) as conn:
                await conn.execute(
                    insert(imported_members).values(
                        source=parsed.source,
                        external_id=person.external_id,
                        member_id=member_id,
                        run_id=run,
                    )
                )
            report.members_created += 1
        member_ids[person.external_id] = member_id
        accounts[person.external_id] = people.member_account_id(member_id)
    refs = {"import": run, "source": parsed.source}
    commands = [
        Transfer(
            f"imp.{run}.{n}",
            accounts[move.payer],
            accounts[move.payee],
            move.minutes,
            move.memo,
            refs={**refs, "source_id": move.external_id, "source_date": move.when},
        )
        for n, move in enumerate(parsed.moves, 1)
    ]
    await _submit(tb, commands)
    report.transfers_imported = len(commands)
    await _open_balances(tb, parsed, accounts, refs, report)
    await _limits(tb, parsed, accounts, run, report)
    for person in parsed.people:
        if not person.active:
            await _suspend(tb, actor, member_ids[person.external_id], report=report, person=person)
    async with reading(tb.engine) as conn:
        report.import_account_balance = (await queries.account(conn, account)).posted
    async with writing(tb.engine) as conn:
        await conn.execute(
            update(import_runs)
            .where(import_runs.c.id == run)
            .values(status="done", report=_encoder.encode(report.to_json()).decode())
        )
    return report


async def _submit(tb: Timebank, commands: list[Transfer]) -> None:
    for start in range(0, len(commands), _CHUNK):
        chunk = commands[start : start + _CHUNK]
        outcomes = await asyncio.gather(*(tb.ledger.appender.submit(c) for c in chunk))
        for command, outcome in zip(chunk, outcomes, strict=True):
            if not isinstance(outcome, Appended):
                raise ImportFailed([f"{command.id}: {outcome.detail}"])


async def _open_balances(
    tb: Timebank,
    parsed: Parsed,
    accounts: dict[str, str],
    refs: dict[str, str],
    report: ImportReport,
) -> None:
    replayed: dict[str, int] = {p.external_id: 0 for p in parsed.people}
    for move in parsed.moves:
        replayed[move.payer] -= move.minutes
        replayed[move.payee] += move.minutes
    commands = []
    for n, person in enumerate(parsed.people, 1):
        diff = person.balance - replayed[person.external_id]
        if diff == 0:
            continue
        source_account = import_account(parsed.source)
        payer, payee = (
            (source_account, accounts[person.external_id])
            if diff > 0
            else (accounts[person.external_id], source_account)
        )
        commands.append(
            Transfer(
                f"imp.{report.run}.open.{n}",
                payer,
                payee,
                abs(diff),
                f"opening balance from {parsed.source}",
                refs={**refs, "source_id": person.external_id, "import_kind": "opening-balance"},
            )
        )
        report.opening_balances.append(
            {
                "person": person.external_id,
                "account": accounts[person.external_id],
                "source_balance": person.balance,
                "from_history": replayed[person.external_id],
                "adjustment": diff,
            }
        )
    await _submit(tb, commands)


async def _limits(
    tb: Timebank, parsed: Parsed, accounts: dict[str, str], run: str, report: ImportReport
) -> None:
    """Replay ran without a lower limit; now give each account the usual one, or its
    balance where that is already lower (an imported debt is not refused afterwards)."""
    default = tb.settings.default_min_balance
    for n, person in enumerate(parsed.people, 1):
        account = accounts[person.external_id]
        low = None if default is None else min(default, person.balance)
        outcome = await tb.ledger.set_limits(
            f"imp.{run}.limits.{n}",
            account,
            low,
            tb.settings.default_max_balance,
            f"limits after importing history from {parsed.source}",
        )
        if isinstance(outcome, RuleViolation):
            raise ImportFailed([f"{account}: {outcome.detail}"])
        if default is not None and low is not None and low < default:
            report.limits_widened.append({"account": account, "min_balance": low})


async def _suspend(
    tb: Timebank, actor: Actor, member_id: str, *, report: ImportReport, person: Person
) -> None:
    async with reading(tb.engine) as conn:
        member = await people.get(conn, member_id)
    if member is None or member.status != "active":
        return
    await people.suspend(
        tb, actor, member_id, reason=f"not active at the source ({report.source}, {person.where})"
    )
    report.suspended.append(person.external_id)
