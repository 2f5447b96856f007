"""Export for other tools: CSV tables and an hledger journal.

Both are read from one consistent snapshot (the ledger head and everything below it).

CSV (UTF-8, header row, one file each in a directory):

- `accounts.csv`: id, kind, min_balance, max_balance, posted, debits_pending,
  credits_pending, available (limits empty when unbounded);
- `transfers.csv`: every entry that moves or reserves minutes, in ledger order: index,
  id, kind, time, payer, payee, minutes, pending (true for a hold), memo, refs (JSON);
  a void has no postings and is listed with the hold it releases (`refs.hold`);
- `members.csv`: id, name, email, role, status, account_id, zone, created_at.

hledger journal (plain-text accounting, https://hledger.org): one transaction per entry
that moves minutes (`transfer`, `post`, `reversal`) dated by its UTC day, with the entry
index as the code and the id in a comment; amounts in the commodity `min`. Holds and voids
move nothing and are left out, so `hledger balance` gives every account's posted
balance. Accounts are named `<kind>:<account id>` (a `:` in an id becomes `_`, since
hledger reads `:` as a sub-account).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from scambio.ledger.entry import KIND_POST, KIND_REVERSAL, KIND_TRANSFER, decode_entry
from scambio.store import queries
from scambio.store.db import read_snapshot
from scambio.store.people_tables import members
from scambio.store.tables import accounts

_encoder: Final = msgspec.json.Encoder(order="sorted")
MOVING: Final = frozenset({KIND_TRANSFER, KIND_POST, KIND_REVERSAL})
COMMODITY: Final = "min"


def _limit(value: Any) -> str:
    return "" if value is None else str(int(value))


async def export_csv(engine: AsyncEngine, directory: Path) -> dict[str, int]:
    """Write accounts.csv, transfers.csv and members.csv into the (existing) directory;
    return the rows written per file."""
    counts: dict[str, int] = {}
    async with read_snapshot(engine) as conn:
        head = await queries.head(conn)
        with (directory / "accounts.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(
                (
                    "id",
                    "kind",
                    "min_balance",
                    "max_balance",
                    "posted",
                    "debits_pending",
                    "credits_pending",
                    "available",
                )
            )
            rows = await conn.execute(select(accounts).order_by(accounts.c.id))
            counts["accounts"] = 0
            for row in rows:
                posted, debits = int(row.posted), int(row.debits_pending)
                writer.writerow(
                    (
                        row.id,
                        row.kind,
                        _limit(row.min_balance),
                        _limit(row.max_balance),
                        posted,
                        debits,
                        int(row.credits_pending),
                        posted - debits,
                    )
                )
                counts["accounts"] += 1
        with (directory / "transfers.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(
                (
                    "index",
                    "id",
                    "kind",
                    "time",
                    "payer",
                    "payee",
                    "minutes",
                    "pending",
                    "memo",
                    "refs",
                )
            )
            counts["transfers"] = 0
            async for stored in queries.stream_entries(conn, 0, head.size):
                entry = decode_entry(stored.canonical)
                if entry.kind == "account":
                    continue
                payer = next((p.account for p in entry.postings if p.minutes < 0), "")
                payee = next((p.account for p in entry.postings if p.minutes > 0), "")
                minutes = sum(p.minutes for p in entry.postings if p.minutes > 0)
                writer.writerow(
                    (
                        entry.index,
                        entry.id,
                        entry.kind,
                        entry.time,
                        payer,
                        payee,
                        minutes,
                        "true" if entry.kind == "hold" else "false",
                        entry.memo,
                        _encoder.encode(entry.refs).decode(),
                    )
                )
                counts["transfers"] += 1
        with (directory / "members.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(
                ("id", "name", "email", "role", "status", "account_id", "zone", "created_at")
            )
            counts["members"] = 0
            for row in await conn.execute(
                select(members).order_by(members.c.created_at, members.c.id)
            ):
                writer.writerow(
                    (
                        row.id,
                        row.name,
                        row.email or "",
                        row.role,
                        row.status,
                        row.account_id or "",
                        row.zone or "",
                        row.created_at,
                    )
                )
                counts["members"] += 1
    return counts


def hledger_account(kind: str, account_id: str) -> str:
    return f"{kind}:{account_id.replace(':', '_')}"


def _text(value: str) -> str:
    """One line, no comment marker: safe as an hledger description or comment."""
    return " ".join(value.replace(";", ",").split())


async def export_hledger(engine: AsyncEngine, out: TextIO) -> int:
    """Write the journal; return the number of transactions."""
    written = 0
    async with read_snapshot(engine) as conn:
        head = await queries.head(conn)
        kinds = {
            str(row.id): str(row.kind)
            for row in await conn.execute(select(accounts.c.id, accounts.c.kind))
        }
        out.write(f"; Scambio ledger {head.origin}, tree size {head.size}\n")
        out.write(f"; minutes as the commodity {COMMODITY!r}; holds and voids move nothing\n\n")
        out.write(f"commodity 1. {COMMODITY}\n\n")
        for account_id in sorted(kinds):
            out.write(f"account {hledger_account(kinds[account_id], account_id)}\n")
        out.write("\n")
        async for stored in queries.stream_entries(conn, 0, head.size):
            entry = decode_entry(stored.canonical)
            if entry.kind not in MOVING:
                continue
            description = _text(entry.memo) or entry.kind
            out.write(
                f"{entry.time[:10]} ({entry.index}) {description}  ; id:{entry.id}, "
                f"kind:{entry.kind}\n"
            )
            for posting in entry.postings:
                name = hledger_account(kinds[posting.account], posting.account)
                out.write(f"    {name}  {posting.minutes} {COMMODITY}\n")
            out.write("\n")
            written += 1
    return written
