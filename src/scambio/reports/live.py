"""Computing a co-production report from the live database.

Everything is read in one read-only snapshot: the ledger head (the checkpoint the report
is computed from), the entries of the range, the holds and reversed entries they refer
to, the account kinds, the directory and the pairs projection. Entries are read as their
stored canonical bytes and decoded, so the figures come from exactly the bytes an export
would carry (`scambio.reports.offline` recomputes them from one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import KIND_ACCOUNT, KIND_POST, KIND_REVERSAL, KIND_TRANSFER, Entry
from scambio.ledger.note import Signer
from scambio.reports import pairs as projection
from scambio.reports.coproduction import (
    Builder,
    Directory,
    Event,
    Pair,
    Scope,
    boundary,
    classify,
    hold_ref,
    opened_account,
    partition_point_async,
    report_body,
    reversal_of,
    reversal_ref,
)
from scambio.reports.directory import load_directory
from scambio.reports.signing import sign_document
from scambio.store import queries
from scambio.store.db import read_snapshot
from scambio.store.tables import accounts, entries

#: Entries decoded per page (between pages the event loop serves requests).
PAGE: Final = 5000


@dataclass(frozen=True, slots=True)
class Computed:
    report: dict[str, Any]
    directory: Directory
    scope: Scope

    def signed(self, signer: Signer) -> dict[str, Any]:
        return sign_document(self.report, signer)


async def compute_report(
    engine: AsyncEngine, origin: str, date_from: str, date_to: str, *, generated_at: str
) -> Computed:
    """The report for [date_from, date_to) at the current head (see `coproduction`)."""
    async with read_snapshot(engine) as conn:
        head = await queries.head(conn)
        if head.origin != origin:
            raise ValueError(f"the database holds ledger {head.origin!r}, not {origin!r}")

        async def time_at(index: int) -> str:
            return str(
                (
                    await conn.execute(select(entries.c.time).where(entries.c.idx == index))
                ).scalar_one()
            )

        first = await partition_point_async(head.size, boundary(date_from), time_at)
        end = await partition_point_async(head.size, boundary(date_to), time_at)
        end = max(first, end)
        directory = await load_directory(conn)
        kinds = {
            row.id: row.kind for row in await conn.execute(select(accounts.c.id, accounts.c.kind))
        }
        builder = Builder(directory, kinds)
        for start in range(first, end, PAGE):
            await _add_page(conn, builder, start, min(end, start + PAGE))
        new_pairs = await _new_pairs(conn, builder.pairs, first, end)
        scope = Scope(
            origin=origin,
            date_from=date_from,
            date_to=date_to,
            size=head.size,
            root=head.root,
            checkpoint=head.checkpoint,
            first=first,
            end=end,
        )
        rows = builder.finish(new_pairs)
    return Computed(report_body(scope, directory, rows, generated_at), directory, scope)


async def _add_page(conn: AsyncConnection, builder: Builder, first: int, end: int) -> None:
    batch = await projection.load_entries(conn, first, end)
    holds = await projection.holds_for(conn, batch)
    by_index = {e.index: e for e in batch}
    wanted = {t for e in batch if (t := reversal_ref(e)) is not None and t not in by_index}
    targets = await projection.load_by_index(conn, wanted)
    targets.update(by_index)
    target_holds = await projection.holds_for(
        conn, [targets[t] for e in batch if (t := reversal_ref(e)) is not None and t in targets]
    )
    for entry in batch:
        kind = entry.kind
        event: Event | None = None
        if kind == KIND_TRANSFER:
            event = classify(entry)
        elif kind == KIND_POST:
            event = classify(entry, _hold(entry, holds))
        elif kind == KIND_REVERSAL:
            target = targets.get(reversal_ref(entry) or -1)
            if target is not None:
                event = reversal_of(entry, classify(target, _hold(target, target_holds)))
        elif kind == KIND_ACCOUNT:
            opened = opened_account(entry)
            if opened is not None:
                builder.add_new_account(opened[0], opened[1], entry.time[:7])
        if event is not None:
            builder.add_event(event)


def _hold(entry: Entry, holds: dict[int, Entry]) -> Entry | None:
    ref = hold_ref(entry)
    return None if ref is None else holds.get(ref)


async def _new_pairs(conn: AsyncConnection, pairs: set[Pair], first: int, end: int) -> set[Pair]:
    """Which of the range's pairs first exchanged within [first, end).

    Fast path: the projection covers the whole range, and one index scan answers. When it
    is behind (the monthly job has not run lately), the entries it lacks are read too.
    """
    if not pairs:
        return set()
    covered = await projection.pairs_size(conn)
    if covered >= end:
        return pairs & await projection.pairs_first_within(conn, first, end)
    known = await projection.first_indexes(conn, pairs)
    seen_between: set[Pair] = set()
    for start in range(covered, first, PAGE):
        batch = await projection.load_entries(conn, start, min(first, start + PAGE))
        seen_between.update(projection.first_pairs(batch, await projection.holds_for(conn, batch)))
    return {
        pair
        for pair in pairs
        if (known[pair] >= first if pair in known else pair not in seen_between)
    }
