"""Tampering with the stored ledger: refused by the database, caught by the verifiers.

First, the append-only triggers must refuse UPDATE and DELETE outright. Then, with the
triggers dropped (as an attacker with database access could), each kind of tamper must be
caught by the database audit at the exact entry with a clear reason, and, where the
tampered data is part of an export, by verifying a fresh export.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from scambio.ledger import merkle
from scambio.ledger.entry import Entry, Posting, encode_entry
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Checkpoint, sign_checkpoint
from scambio.ledger.verify import VerifyReport, verify_export
from scambio.store import queries
from scambio.store.appender import load_nodes
from scambio.store.audit import AuditReport, verify_database
from scambio.store.ledger import LedgerService

from .conftest import ORIGIN, SIGNER, Clock
from .test_verify import OTHER, VKEY, Scenario, export_lines, populate

APPEND_ONLY = ("entries", "postings", "tree_nodes", "checkpoints")


async def sql(ledger: LedgerService, statement: str, **params: object) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(text(statement), params)


async def fetch(ledger: LedgerService, statement: str, **params: object) -> list[tuple[Any, ...]]:
    async with ledger.read() as conn:
        return [tuple(row) for row in await conn.execute(text(statement), params)]


async def drop_append_only(ledger: LedgerService) -> None:
    """What an attacker with database access would do first (names from migration 0001)."""
    postgres = ledger.engine.dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if postgres:
            await sql(ledger, f"DROP TRIGGER {table}_append_only ON {table}")
        else:
            for op in ("update", "delete"):
                await sql(ledger, f"DROP TRIGGER {table}_no_{op}")


async def audit(ledger: LedgerService) -> AuditReport:
    return await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN)


async def verify_fresh_export(ledger: LedgerService) -> VerifyReport:
    return verify_export(await export_lines(ledger), trusted_vkey=VKEY)


async def audit_fails(ledger: LedgerService, message: str, index: int | None) -> None:
    with pytest.raises(VerificationError, match=message) as caught:
        await audit(ledger)
    assert caught.value.index == index


async def export_fails(ledger: LedgerService, message: str, index: int | None) -> None:
    with pytest.raises(VerificationError, match=message) as caught:
        await verify_fresh_export(ledger)
    assert caught.value.index == index


async def canonical(ledger: LedgerService, index: int) -> Entry:
    rows = await fetch(ledger, "SELECT canonical FROM entries WHERE idx = :i", i=index)
    return msgspec.json.decode(bytes(rows[0][0]), type=Entry)


async def batch_of(ledger: LedgerService, index: int) -> tuple[int, int]:
    """[begin, end) of the batch that wrote entry `index`."""
    (end,) = (await fetch(ledger, "SELECT tree_size FROM entries WHERE idx = :i", i=index))[0]
    (begin,) = (await fetch(ledger, "SELECT max(size) FROM checkpoints WHERE size <= :i", i=index))[
        0
    ]
    return int(begin), int(end)


@pytest.fixture
async def scenario(ledger: LedgerService, clock: Clock) -> Scenario:
    return await populate(ledger, clock)


# ---------------------------------------------------------------------------------------
# The database refuses


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("UPDATE entries SET kind = 'transfer' WHERE idx = 7", "entries"),
        ("UPDATE entries SET canonical = canonical WHERE idx = 7", "entries"),
        ("DELETE FROM entries WHERE idx = 7", "entries"),
        ("UPDATE postings SET minutes = 1 WHERE entry_idx = 7", "postings"),
        ("DELETE FROM postings WHERE entry_idx = 7", "postings"),
        ("UPDATE checkpoints SET note = 'forged' WHERE size = 7", "checkpoints"),
        ("DELETE FROM checkpoints WHERE size = 7", "checkpoints"),
        ("UPDATE tree_nodes SET hash = hash", "tree_nodes"),
        ("DELETE FROM tree_nodes", "tree_nodes"),
    ],
)
async def test_updates_and_deletes_are_refused(
    ledger: LedgerService, scenario: Scenario, statement: str, table: str
) -> None:
    with pytest.raises(DBAPIError, match=f"{table} is append-only"):
        await sql(ledger, statement)
    await audit(ledger)  # nothing changed


# ---------------------------------------------------------------------------------------
# With the triggers dropped, the verifiers catch


def _more(entry: Entry, extra: int) -> bytes:
    """The entry with `extra` more minutes on both legs: still zero-sum and canonical."""
    legs = tuple(
        Posting(account=p.account, minutes=p.minutes + (extra if p.minutes > 0 else -extra))
        for p in entry.postings
    )
    return encode_entry(msgspec.structs.replace(entry, postings=legs))


async def test_an_altered_amount_is_caught_exactly_or_by_batch(
    ledger: LedgerService, scenario: Scenario
) -> None:
    begin, end = scenario.batch
    target = begin + 2
    assert end - begin >= 4
    original = await canonical(ledger, target)
    await drop_append_only(ledger)
    await sql(
        ledger, "UPDATE entries SET canonical = :c WHERE idx = :i", c=_more(original, 1), i=target
    )

    # The stored leaf hash was left alone: the audit names the entry.
    await audit_fails(ledger, f"entry {target}: leaf hash differs from the stored one", target)
    # The export carries only the bytes: the signed checkpoint names the batch.
    await export_fails(
        ledger,
        rf"entry {begin}: checkpoint at size {end} has root [0-9a-f]{{64}} but the entries give "
        rf"[0-9a-f]{{64}} \(an entry in \[{begin}, {end}\) was altered",
        begin,
    )


async def test_an_amount_altered_with_its_leaf_hash_is_caught_by_the_postings(
    ledger: LedgerService, scenario: Scenario
) -> None:
    target = scenario.transfer
    original = await canonical(ledger, target)
    forged = _more(original, 5)
    await drop_append_only(ledger)
    await sql(
        ledger,
        "UPDATE entries SET canonical = :c, leaf_hash = :h WHERE idx = :i",
        c=forged,
        h=merkle.leaf_hash(forged),
        i=target,
    )
    await audit_fails(
        ledger, f"entry {target}: postings row 0 moves -90 minutes, the entry says -95", target
    )

    # Fix the postings rows too: their running balances now disagree with the replay.
    await sql(
        ledger,
        "UPDATE postings SET minutes = minutes * 95 / 90 WHERE entry_idx = :i",
        i=target,
    )
    await audit_fails(
        ledger,
        f"entry {target}: postings row 0 records balance_after -90 for 'marco', replay gives -95",
        target,
    )
    begin, end = await batch_of(ledger, target)
    await export_fails(ledger, rf"an entry in \[{begin}, {end}\) was altered", begin)


async def test_an_altered_leaf_hash_alone_is_caught_by_the_audit(
    ledger: LedgerService, scenario: Scenario
) -> None:
    target = scenario.transfer
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE entries SET leaf_hash = :h WHERE idx = :i", h=bytes(32), i=target)
    await audit_fails(ledger, f"entry {target}: leaf hash differs from the stored one", target)
    assert (await verify_fresh_export(ledger)).entries > target  # not part of an export


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("account_id", "luca", "postings row 1 is for account 'luca', the entry says 'giulia'"),
        ("minutes", 91, "postings row 1 moves 91 minutes, the entry says 90"),
        ("pending", True, "postings row 1 has pending=True, expected False for a transfer"),
        (
            "balance_after",
            1,
            "postings row 1 records balance_after 1 for 'giulia', replay gives 90",
        ),
    ],
)
async def test_an_altered_postings_row_is_caught(
    ledger: LedgerService, scenario: Scenario, column: str, value: object, message: str
) -> None:
    target = scenario.transfer
    await drop_append_only(ledger)
    await sql(
        ledger,
        f"UPDATE postings SET {column} = :v WHERE entry_idx = :i AND seq = 1",
        v=value,
        i=target,
    )
    await audit_fails(ledger, f"entry {target}: {message}", target)
    # Posting rows are a projection, not part of the signed log.
    assert (await verify_fresh_export(ledger)).entries > target


async def test_a_deleted_posting_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    target = scenario.transfer
    await drop_append_only(ledger)
    await sql(ledger, "DELETE FROM postings WHERE entry_idx = :i AND seq = 1", i=target)
    await audit_fails(ledger, f"entry {target}: has 2 postings but 1 rows", target)


async def test_an_altered_projected_column_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    rows = await fetch(ledger, "SELECT idx, expires FROM entries WHERE expires IS NOT NULL")
    (index, expires), *_ = rows
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE entries SET expires = NULL WHERE idx = :i", i=index)
    await audit_fails(
        ledger, f"entry {index}: stored expires column is None, the entry says '{expires}'", index
    )


async def test_a_deleted_entry_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    target = scenario.transfer
    await drop_append_only(ledger)
    await sql(ledger, "DELETE FROM entries WHERE idx = :i", i=target)
    await audit_fails(
        ledger,
        f"entry {target}: missing from the entries table \\(the next stored entry is "
        f"{target + 1}\\)",
        target,
    )
    # It was alone in its batch, so the export has its checkpoint with no entry before it.
    await export_fails(
        ledger,
        rf"entry {target}: checkpoint at size {target + 1} follows only {target} entries "
        rf"\(entries \[{target}, {target + 1}\) are missing\)",
        target,
    )


async def test_swapped_entries_are_caught(ledger: LedgerService, scenario: Scenario) -> None:
    a, b = scenario.batch[0], scenario.batch[0] + 1
    rows = await fetch(
        ledger, "SELECT idx, canonical, leaf_hash FROM entries WHERE idx IN (:a, :b)", a=a, b=b
    )
    stored = {int(r[0]): (bytes(r[1]), bytes(r[2])) for r in rows}
    await drop_append_only(ledger)
    for here, there in ((a, b), (b, a)):
        await sql(
            ledger,
            "UPDATE entries SET canonical = :c, leaf_hash = :h WHERE idx = :i",
            c=stored[there][0],
            h=stored[there][1],
            i=here,
        )
    await audit_fails(ledger, f"entry {a}: index field is {b}, expected {a}", a)
    await export_fails(ledger, f"entry {a}: index field is {b}, expected {a}", a)


async def _forge_entry(
    ledger: LedgerService, *transfers: tuple[str, int], sign: bool = False
) -> int:
    """Append one batch of transfers to marco the way the appender would: postings,
    entries, tree nodes and, with `sign`, a checkpoint signed with the node's own key and
    the moved head. Returns the first forged index.

    Inserts are allowed by the append-only triggers, so this needs no trigger dropped.
    """
    transfers = transfers or (("comune", 500),)
    async with ledger.read() as conn:
        size = (await queries.head(conn)).size
        balances = {
            name: (await queries.account(conn, name)).posted
            for name in {payer for payer, _ in transfers} | {"marco"}
        }
        ids = merkle.range_nodes(0, size)
        stored = await load_nodes(conn, ids)
    tree = merkle.CompactRange(size, [stored[i] for i in ids])
    end = size + len(transfers)
    time = "2026-11-25T12:00:00.000000Z"
    async with ledger.engine.begin() as conn:
        for index, (payer, minutes) in enumerate(transfers, size):
            forged = Entry(
                v=1,
                ledger=ORIGIN,
                index=index,
                id=f"forged-{index}",
                kind="transfer",
                time=time,
                postings=(
                    Posting(account=payer, minutes=-minutes),
                    Posting(account="marco", minutes=minutes),
                ),
                memo="",
                refs={},
            )
            data = encode_entry(forged)
            leaf = merkle.leaf_hash(data)
            for seq, posting in enumerate(forged.postings):
                balances[posting.account] += posting.minutes
                await conn.execute(
                    text(
                        "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, "
                        "balance_after) VALUES (:i, :s, :a, :m, :p, :b)"
                    ),
                    {
                        "i": index,
                        "s": seq,
                        "a": posting.account,
                        "m": posting.minutes,
                        "p": False,
                        "b": balances[posting.account],
                    },
                )
            await conn.execute(
                text(
                    "INSERT INTO entries (idx, id, kind, time, canonical, leaf_hash, tree_size) "
                    "VALUES (:i, :d, 'transfer', :t, :c, :h, :n)"
                ),
                {"i": index, "d": forged.id, "t": time, "c": data, "h": leaf, "n": end},
            )
            for (level, position), value in tree.append(leaf):
                if level:
                    await conn.execute(
                        text("INSERT INTO tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                        {"l": level, "i": position, "h": value},
                    )
        if sign:
            note = sign_checkpoint(Checkpoint(ORIGIN, end, tree.root()), SIGNER)
            await conn.execute(
                text(
                    "INSERT INTO checkpoints (size, root, note, created_at) VALUES (:s, :r, :n, :t)"
                ),
                {"s": end, "r": tree.root(), "n": note, "t": time},
            )
            await conn.execute(
                text("UPDATE ledger_head SET size = :s, root = :r, checkpoint = :n"),
                {"s": end, "r": tree.root(), "n": note},
            )
    return size


async def test_a_signed_entry_that_breaks_the_rules_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    # The operator's own key signs an overdraft: signatures alone cannot catch that.
    forged = await _forge_entry(ledger, ("comune", 5), ("giulia", 5000), ("anna", 5), sign=True)
    message = f"entry {forged + 1}: breaks rule limit-exceeded: account 'giulia' has"
    await audit_fails(ledger, message, forged + 1)
    await export_fails(ledger, message, forged + 1)
    # A later problem in the same batch does not hide the first bad entry.
    await drop_append_only(ledger)
    await sql(ledger, "DELETE FROM postings WHERE entry_idx = :i", i=forged + 2)
    await audit_fails(ledger, message, forged + 1)


async def test_a_signed_valid_forgery_shows_in_the_cached_balances(
    ledger: LedgerService, scenario: Scenario
) -> None:
    # A valid entry signed with the node's key is, to any verifier, part of the ledger;
    # the audit still notices that the cached balances were not moved with it.
    forged = await _forge_entry(ledger, sign=True)
    assert (await verify_fresh_export(ledger)).entries == forged + 1
    await audit_fails(ledger, "cached posted balance of 'comune' is", None)


async def test_a_forged_entry_without_a_checkpoint_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    forged = await _forge_entry(ledger)
    await audit_fails(ledger, f"entry {forged}: not covered by a signed checkpoint", forged)
    # The head was not moved: the export is the signed ledger, without the forgery.
    assert (await verify_fresh_export(ledger)).entries == forged

    # Moving the head to include it cannot produce a signature for it.
    await sql(ledger, "UPDATE ledger_head SET size = :n", n=forged + 1)
    await export_fails(ledger, f"entry {forged}: not covered by a signed checkpoint", forged)
    await audit_fails(ledger, f"entry {forged}: not covered by a signed checkpoint", forged)


async def test_a_moved_head_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    async with ledger.read() as conn:
        size = (await queries.head(conn)).size
    await sql(ledger, "UPDATE ledger_head SET size = :n", n=size - 1)
    await audit_fails(
        ledger, f"the ledger head \\(size {size - 1}, checkpoint at size {size}\\)", None
    )


async def test_an_altered_checkpoint_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    end = scenario.batch[1]
    (note,) = (await fetch(ledger, "SELECT note FROM checkpoints WHERE size = :s", s=end))[0]
    assert isinstance(note, str)
    forged = note.replace(f"\n{end}\n", f"\n{end - 1}\n")
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE checkpoints SET note = :n WHERE size = :s", n=forged, s=end)
    message = f"checkpoint after {end} entries does not verify: invalid signature by {ORIGIN}"
    await audit_fails(ledger, message, None)
    await export_fails(ledger, message, None)


async def test_a_checkpoint_signed_by_another_key_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    end = scenario.batch[1]
    (root,) = (await fetch(ledger, "SELECT root FROM checkpoints WHERE size = :s", s=end))[0]
    forged = sign_checkpoint(Checkpoint(ORIGIN, end, bytes(root)), OTHER)
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE checkpoints SET note = :n WHERE size = :s", n=forged, s=end)
    message = f"checkpoint after {end} entries does not verify: no signature by {ORIGIN}"
    await audit_fails(ledger, message, None)
    await export_fails(ledger, message, None)


async def test_an_altered_checkpoint_root_column_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    end = scenario.batch[1]
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE checkpoints SET root = :r WHERE size = :s", r=bytes(32), s=end)
    await audit_fails(ledger, f"checkpoint at size {end}: its root column 0{{64}} differs", None)


async def test_a_deleted_checkpoint_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    begin, end = scenario.batch
    await drop_append_only(ledger)
    await sql(ledger, "DELETE FROM checkpoints WHERE size = :s", s=end)
    await audit_fails(
        ledger,
        f"entry {begin}: not covered by a signed checkpoint: its batch ends at size {end}, "
        "whose checkpoint is missing",
        begin,
    )
    # The next checkpoint still covers those entries, so the export alone stays valid.
    assert (await verify_fresh_export(ledger)).entries > end


async def test_an_altered_tree_node_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE tree_nodes SET hash = :h WHERE level = 2 AND idx = 1", h=bytes(32))
    await audit_fails(
        ledger,
        "tree node \\(2, 1\\) over entries \\[4, 8\\) is 0{64} in tree_nodes but the entries give",
        4,
    )


async def test_a_deleted_tree_node_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    await drop_append_only(ledger)
    await sql(ledger, "DELETE FROM tree_nodes WHERE level = 1 AND idx = 3")
    await audit_fails(
        ledger, "tree node \\(1, 3\\) over entries \\[6, 8\\) is missing from tree_nodes", 6
    )


async def test_rows_stored_beyond_the_last_entry_are_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    async with ledger.read() as conn:
        size = (await queries.head(conn)).size
    await sql(ledger, "INSERT INTO tree_nodes (level, idx, hash) VALUES (9, 99, :h)", h=bytes(32))
    await audit_fails(
        ledger, f"tree_nodes holds {size - size.bit_count() + 1} nodes but a tree of {size}", None
    )


async def test_a_corrupted_cached_balance_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    async with ledger.read() as conn:
        marco = (await queries.account(conn, "marco")).posted
        anna = (await queries.account(conn, "anna")).credits_pending
    await sql(ledger, "UPDATE accounts SET posted = :p WHERE id = 'marco'", p=marco + 30)
    await sql(ledger, "UPDATE accounts SET credits_pending = 0 WHERE id = 'anna'")
    await audit_fails(
        ledger,
        f"cached pending credits of 'anna' is 0, replay gives {anna}; "
        f"cached posted balance of 'marco' is {marco + 30}, replay gives {marco}",
        None,
    )
    assert (await verify_fresh_export(ledger)).accounts["marco"].posted == marco


async def test_an_account_that_was_never_opened_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    await sql(
        ledger,
        "INSERT INTO accounts (id, kind, posted, opened_idx, updated_idx) "
        "VALUES ('ghost', 'member', 0, 0, 0)",
    )
    await audit_fails(ledger, "cached account 'ghost' was never opened by an entry", None)


async def test_a_swapped_key_is_caught(ledger: LedgerService, scenario: Scenario) -> None:
    lines = await export_lines(ledger)
    with pytest.raises(VerificationError, match="not the trusted key"):
        verify_export(lines, trusted_vkey=OTHER.verifier().to_string())
    # An export that claims another key fails its own signatures.
    forged = await export_lines(ledger, OTHER)
    with pytest.raises(VerificationError, match="header's checkpoint does not verify"):
        verify_export(forged)
    with pytest.raises(VerificationError, match="does not verify: no signature by"):
        await verify_database(ledger.engine, OTHER.verifier(), ORIGIN)


async def test_a_checkpoint_inside_a_batch_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    begin, end = scenario.batch
    note = sign_checkpoint(Checkpoint(ORIGIN, begin + 2, bytes(32)), SIGNER)
    await sql(
        ledger,
        "INSERT INTO checkpoints (size, root, note, created_at) VALUES (:s, :r, :n, 'now')",
        s=begin + 2,
        r=bytes(32),
        n=note,
    )
    await audit_fails(
        ledger,
        rf"entry {begin}: a checkpoint at size {begin + 2} falls inside the batch of entries "
        rf"\[{begin}, {end}\)",
        begin,
    )


async def test_an_entry_naming_another_batch_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    begin, end = scenario.batch
    await drop_append_only(ledger)
    await sql(ledger, "UPDATE entries SET tree_size = :n WHERE idx = :i", n=end + 1, i=begin + 1)
    await audit_fails(
        ledger,
        f"entry {begin + 1}: its tree_size is {end + 1} but its batch-mates name {end}",
        begin + 1,
    )


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("origin", "elsewhere.example/x", "the ledger head is for origin 'elsewhere.example/x'"),
        ("checkpoint", "garbage", "the ledger head's checkpoint does not verify: malformed note"),
        ("root", bytes(32), "the ledger head's root column 0{64} differs from the root"),
    ],
)
async def test_an_altered_head_is_caught(
    ledger: LedgerService, scenario: Scenario, column: str, value: object, message: str
) -> None:
    await sql(ledger, f"UPDATE ledger_head SET {column} = :v", v=value)
    await audit_fails(ledger, message, None)


async def test_postings_beyond_the_last_entry_are_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    async with ledger.read() as conn:
        size = (await queries.head(conn)).size
    await sql(
        ledger,
        "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, balance_after) "
        "VALUES (:i, 0, 'marco', 5, :p, 5)",
        i=size + 3,
        p=False,
    )
    await audit_fails(
        ledger, f"entry {size + 3}: the postings table has rows for entry {size + 3}", size + 3
    )


async def test_a_checkpoint_beyond_the_last_entry_is_caught(
    ledger: LedgerService, scenario: Scenario
) -> None:
    async with ledger.read() as conn:
        size = (await queries.head(conn)).size
    note = sign_checkpoint(Checkpoint(ORIGIN, size + 5, bytes(32)), SIGNER)
    await sql(
        ledger,
        "INSERT INTO checkpoints (size, root, note, created_at) VALUES (:s, :r, :n, 'now')",
        s=size + 5,
        r=bytes(32),
        n=note,
    )
    await audit_fails(
        ledger, f"a checkpoint at size {size + 5} is stored beyond the last entry", None
    )
