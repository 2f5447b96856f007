"""Export the ledger as JSON Lines that anyone can verify offline (`scambio.ledger.verify`).

Format (version 1), UTF-8, one JSON value per line, every line ending in ``\\n``:

1. A header object (keys in RFC 8785 order)::

       {"checkpoint": <note>, "format": "scambio-ledger-export", "origin": <ledger origin>,
        "size": <N>, "version": 1, "vkey": <verifier key>}

   ``vkey`` is the node's C2SP verifier key (``name+hash+base64``) that signed every
   checkpoint; ``checkpoint`` is the latest signed checkpoint note (a C2SP tlog-checkpoint
   signed note), exactly as stored, and ``size`` its tree size: the number of entries that
   follow. A verifier should pin ``vkey`` to a key it obtained some other way; without that,
   an export only proves itself consistent with the key it carries.

2. Then, in index order, every entry ``0 .. N-1`` as its exact stored canonical bytes
   (RFC 8785 JSON, which never contains a raw newline): the Merkle leaf of entry ``i`` is
   ``SHA-256(0x00 || line i without its newline)``.

3. Interleaved with the entries, one line ``{"checkpoint": <note>}`` per stored checkpoint,
   each right after the entry that completes its tree size (the empty tree's checkpoint,
   size 0, right after the header). The ledger signs one checkpoint per committed batch,
   so a verifier can tell which batch an altered entry belongs to.

Checkpoint lines start with ``{"checkpoint":``; entry lines never do. A reader must reject
anything else: a blank line, unknown header fields, another format or version.

The export is a consistent snapshot: the head and everything after it are read in one
read-only transaction (REPEATABLE READ on PostgreSQL; a single read transaction, hence one
WAL snapshot, on SQLite), and only entries below the head's size are written, so appends
that commit meanwhile are simply not included. Entries are streamed in pages, so memory
stays flat however long the ledger is.
"""

from __future__ import annotations

from collections import deque
from typing import BinaryIO, Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.note import Verifier
from scambio.ledger.verify import EXPORT_FORMAT, EXPORT_VERSION, CheckpointLine, ExportHeader
from scambio.store import queries
from scambio.store.db import read_snapshot
from scambio.store.tables import checkpoints, entries

__all__ = ["export_ledger"]

#: Entries per database page.
PAGE: Final = 5000

_encoder = msgspec.json.Encoder(order="sorted")


async def export_ledger(
    engine: AsyncEngine, out: BinaryIO, verifier: Verifier, *, page: int = PAGE
) -> int:
    """Write the ledger to `out` in the format above; return the number of entries written.

    `verifier` is the public key written to the header: the node's own key (a mismatch
    with the stored checkpoints shows up when the export is verified, not here).
    """
    async with read_snapshot(engine) as conn:
        head = await queries.head(conn)
        header = ExportHeader(
            format=EXPORT_FORMAT,
            version=EXPORT_VERSION,
            origin=head.origin,
            vkey=verifier.to_string(),
            size=head.size,
            checkpoint=head.checkpoint,
        )
        out.write(_encoder.encode(header) + b"\n")
        notes: deque[tuple[int, str]] = deque(await _checkpoints(conn, -1, 0))
        _write_checkpoints(out, notes, 0)
        written = 0
        position = 0
        while position < head.size:
            rows = (
                await conn.execute(
                    select(entries.c.idx, entries.c.canonical)
                    .where(entries.c.idx >= position, entries.c.idx < head.size)
                    .order_by(entries.c.idx)
                    .limit(page)
                )
            ).all()
            if not rows:
                break
            last = int(rows[-1].idx)
            notes.extend(await _checkpoints(conn, position, last + 1))
            chunk: list[bytes] = []
            for row in rows:
                index = int(row.idx)
                # Checkpoints whose completing entry is missing still come before the next.
                while notes and notes[0][0] <= index:
                    chunk.append(_checkpoint_line(notes.popleft()[1]))
                chunk.append(bytes(row.canonical))
                chunk.append(b"\n")
                while notes and notes[0][0] == index + 1:
                    chunk.append(_checkpoint_line(notes.popleft()[1]))
            out.write(b"".join(chunk))
            written += len(rows)
            position = last + 1
        notes.extend(await _checkpoints(conn, position, head.size))
        _write_checkpoints(out, notes, head.size)
    return written


async def _checkpoints(conn: AsyncConnection, above: int, upto: int) -> list[tuple[int, str]]:
    """Stored checkpoints with `above` < size <= `upto`, in size order."""
    rows = await conn.execute(
        select(checkpoints.c.size, checkpoints.c.note)
        .where(checkpoints.c.size > above, checkpoints.c.size <= upto)
        .order_by(checkpoints.c.size)
    )
    return [(int(r.size), str(r.note)) for r in rows]


def _checkpoint_line(note: str) -> bytes:
    return _encoder.encode(CheckpointLine(note)) + b"\n"


def _write_checkpoints(out: BinaryIO, notes: deque[tuple[int, str]], upto: int) -> None:
    while notes and notes[0][0] <= upto:
        out.write(_checkpoint_line(notes.popleft()[1]))
