"""A member's statement: their ledger postings, with running balance, named by exchange.

The ledger's statement (`store.queries.statement`) lists postings; this one joins each to
the exchange or group exchange that produced it, through the entry id (`xch-<id>...`,
`grp-<id>.<n>`, see `exchange_rules.entry_id`), adds who was on the other side, and a
link to the entry's Merkle inclusion proof, so a member can check any line against a
signed checkpoint without trusting the operator.

`to_csv` writes the statement as RFC 4180 CSV (CRLF, fields quoted when they need it,
quotes doubled). A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return
is prefixed with `'` so a spreadsheet does not run it as a formula (CSV injection); cells
that are plain integers (minutes, balances, indexes) are left alone, since `-75` is a
number to a spreadsheet, never a formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import decode_entry
from scambio.store.exchanges_tables import exchanges, group_exchanges
from scambio.store.tables import entries, postings
from scambio.timebank import exchange_rules as rules
from scambio.timebank.exchanges import parties

PROOF_PATH: Final = "/api/v1/ledger/proof/inclusion"
_INTEGER: Final = re.compile(r"-?[0-9]+")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def proof_link(index: int) -> str:
    return f"{PROOF_PATH}?index={index}"


@dataclass(frozen=True, slots=True)
class Line:
    """One posting to the member's account. `balance` is the posted balance after it
    (a hold's line is pending and leaves it unchanged)."""

    index: int
    entry_id: str
    kind: str
    time: str
    minutes: int
    pending: bool
    balance: int
    memo: str
    counterpart: str | None
    counterpart_name: str | None
    exchange_id: str | None
    group_id: str | None
    title: str | None
    state: str | None
    recorded_by: str | None
    proof: str


COLUMNS: Final = tuple(f.name for f in fields(Line))


async def lines(
    conn: AsyncConnection, account: str, *, after: int | None = None, limit: int = 100
) -> list[Line]:
    """Postings to `account` in ledger order after entry `after` (O(page) reads)."""
    query = (
        select(
            postings.c.entry_idx,
            postings.c.minutes,
            postings.c.pending,
            postings.c.balance_after,
            entries.c.id,
            entries.c.kind,
            entries.c.time,
            entries.c.canonical,
        )
        .join(entries, entries.c.idx == postings.c.entry_idx)
        .where(postings.c.account_id == account)
        .order_by(postings.c.entry_idx)
        .limit(limit)
    )
    if after is not None:
        query = query.where(postings.c.entry_idx > after)
    rows = list(await conn.execute(query))
    decoded = [decode_entry(bytes(row.canonical)) for row in rows]
    others = [
        next((p.account for p in entry.postings if p.account != account), None) for entry in decoded
    ]
    refs = [rules.parse_entry_id(row.id) for row in rows]
    exchange_ids = sorted({ref[1] for ref in refs if ref and ref[0] == "exchange"})
    group_ids = sorted({ref[1] for ref in refs if ref and ref[0] == "group"})
    found: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    if exchange_ids:
        for ex in await conn.execute(
            select(
                exchanges.c.id, exchanges.c.title, exchanges.c.state, exchanges.c.recorded_by
            ).where(exchanges.c.id.in_(exchange_ids))
        ):
            found[("exchange", ex.id)] = (ex.title, ex.state, ex.recorded_by)
    if group_ids:
        for group in await conn.execute(
            select(group_exchanges.c.id, group_exchanges.c.title, group_exchanges.c.state).where(
                group_exchanges.c.id.in_(group_ids)
            )
        ):
            found[("group", group.id)] = (group.title, group.state, None)
    names = await parties(conn, [o for o in others if o is not None])
    result: list[Line] = []
    for row, entry, other, ref in zip(rows, decoded, others, refs, strict=True):
        title: str | None = None
        state: str | None = None
        recorded_by: str | None = None
        if ref is not None and ref in found:
            title, state, recorded_by = found[ref]
        party = names.get(other) if other is not None else None
        result.append(
            Line(
                index=int(row.entry_idx),
                entry_id=row.id,
                kind=row.kind,
                time=row.time,
                minutes=int(row.minutes),
                pending=bool(row.pending),
                balance=int(row.balance_after),
                memo=entry.memo,
                counterpart=other,
                counterpart_name=party.name if party is not None else None,
                exchange_id=ref[1] if ref and ref[0] == "exchange" else None,
                group_id=ref[1] if ref and ref[0] == "group" else None,
                title=title,
                state=state,
                recorded_by=recorded_by,
                proof=proof_link(int(row.entry_idx)),
            )
        )
    return result


async def all_lines(conn: AsyncConnection, account: str, *, chunk: int = 1000) -> list[Line]:
    """The whole statement, read page by page in one snapshot (the caller's transaction)."""
    found: list[Line] = []
    after: int | None = None
    while True:
        page = await lines(conn, account, after=after, limit=chunk)
        found += page
        if len(page) < chunk:
            return found
        after = page[-1].index


def safe_cell(value: object) -> str:
    """A cell's text, defused if a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, int) or _INTEGER.fullmatch(text):
        return text
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def to_csv(found: Iterable[Line]) -> str:
    """RFC 4180 CSV with a header row naming every column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for line in found:
        writer.writerow([safe_cell(value) for value in astuple(line)])
    return out.getvalue()
