"""Offline verification of exports, and the database audit, on healthy ledgers.

The storage tests build a ledger that uses every entry kind (transfers in shared batches,
holds posted in full and in part, voided and expired holds, a reversal, linked batches),
export it and verify the export, and audit the database. The pure tests build signed
exports straight from the core and edit them by hand: each edit must fail at the first
bad entry with a precise reason. Tampering with a real database is in test_tamper.py.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from scambio.ledger import merkle
from scambio.ledger.entry import AccountSpec, Entry, Posting, encode_entry
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Checkpoint, Signer, sign_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.ledger.verify import (
    CheckpointLine,
    ExportHeader,
    LogReplayer,
    verify_export,
    verify_export_file,
)
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.commands import Appended, Transfer
from scambio.store.export import export_ledger
from scambio.store.ledger import LedgerService, require

from .conftest import ORIGIN, SIGNER, Clock, new_id

VKEY = SIGNER.verifier().to_string()
OTHER = Signer.from_seed(ORIGIN, bytes(range(1, 33)))
T0 = "2026-11-25T09:00:00.000000Z"
T1 = "2026-11-25T10:00:00.000000Z"
T2 = "2026-11-25T11:00:00.000000Z"
_json = msgspec.json.Encoder(order="sorted")


# ---------------------------------------------------------------------------------------
# A ledger that uses every kind of entry


@dataclass
class Scenario:
    """Indexes of notable entries, for tests that tamper with them."""

    transfer: int  # a plain transfer, marco -> giulia, 90 minutes
    batch: tuple[int, int]  # [begin, end) of a batch of several transfers
    reversed: int
    open_hold: str


async def populate(ledger: LedgerService, clock: Clock) -> Scenario:
    for name in ("giulia", "marco", "anna", "luca"):
        require(await ledger.open_account(name, "member"))
    require(await ledger.open_account("comune", "sponsor"))
    require(await ledger.open_account("pool", "pool"))
    first = require(await ledger.transfer(Transfer(new_id(), "marco", "giulia", 90, "homework")))
    assert isinstance(first, Appended)
    # Several transfers queued together share one batch and one checkpoint.
    together = await asyncio.gather(
        *(
            ledger.transfer(Transfer(new_id(), payer, payee, minutes, "help"))
            for payer, payee, minutes in [
                ("comune", "anna", 300),
                ("anna", "luca", 45),
                ("luca", "pool", 30),
                ("giulia", "marco", 15),
                ("comune", "marco", 120),
                ("anna", "giulia", 20),
            ]
        )
    )
    appended = [require(o) for o in together]
    assert all(isinstance(a, Appended) for a in appended)
    indexes = sorted(a.index for a in appended if isinstance(a, Appended))
    tree_sizes = {a.tree_size for a in appended if isinstance(a, Appended)}
    assert len(tree_sizes) == 1, "the gathered transfers should share one batch"
    batch = (indexes[0], tree_sizes.pop())

    # Holds: posted in full, posted in part, voided, expired, left open.
    full, part, voided, expiring, open_hold = (new_id() for _ in range(5))
    for hold_id, minutes, expires_in in [
        (full, 60, None),
        (part, 90, None),
        (voided, 30, None),
        (expiring, 20, 3600),
        (open_hold, 10, None),
    ]:
        require(
            await ledger.transfer(
                Transfer(hold_id, "marco", "anna", minutes, "babysitting", True, expires_in)
            )
        )
    require(await ledger.post(full))
    require(await ledger.post(part, 45))
    require(await ledger.void(voided))
    clock.advance(hours=2)
    expired = await ledger.expire_holds()
    assert len(expired) == 1 and isinstance(expired[0], Appended)

    # A reversal, and linked batches: one that commits, one that fails as a whole.
    mistake = require(await ledger.transfer(Transfer(new_id(), "luca", "anna", 25, "oops")))
    assert isinstance(mistake, Appended)
    require(await ledger.reverse(new_id(), mistake.index, "entered twice"))
    ok = await ledger.linked(
        [Transfer(new_id(), "comune", "luca", 60), Transfer(new_id(), "luca", "giulia", 60)]
    )
    assert ok.ok
    failed = await ledger.linked(
        [Transfer(new_id(), "giulia", "luca", 10), Transfer(new_id(), "luca", "anna", 10_000)]
    )
    assert not failed.ok
    return Scenario(first.index, batch, mistake.index, open_hold)


async def export_lines(ledger: LedgerService, verifier_key: Signer = SIGNER) -> list[bytes]:
    out = io.BytesIO()
    await export_ledger(ledger.engine, out, verifier_key.verifier())
    return out.getvalue().splitlines(keepends=True)


# ---------------------------------------------------------------------------------------
# Round trips on SQLite and PostgreSQL


async def test_export_then_verify_round_trip(ledger: LedgerService, clock: Clock) -> None:
    await populate(ledger, clock)
    out = io.BytesIO()
    count = await export_ledger(ledger.engine, out, SIGNER.verifier())
    report = verify_export(out.getvalue().splitlines(keepends=True), trusted_vkey=VKEY)

    async with ledger.read() as conn:
        head = await queries.head(conn)
        stored_checkpoints = await queries.checkpoint_count(conn)
        balances = {
            name: await queries.account(conn, name)
            for name in ("giulia", "marco", "anna", "luca", "comune", "pool")
        }
    assert count == report.entries == report.size == head.size
    assert report.root == head.root
    assert report.checkpoints == stored_checkpoints
    assert report.origin == ORIGIN and report.vkey == VKEY and report.key_pinned
    assert report.holds_open == 1
    assert set(report.accounts) == set(balances)
    for name, view in balances.items():
        replayed = report.accounts[name]
        assert (replayed.posted, replayed.debits_pending, replayed.credits_pending) == (
            view.posted,
            view.debits_pending,
            view.credits_pending,
        )
    assert report.accounts["marco"].debits_pending == 10  # the hold left open
    assert "pinned key" in report.describe()


async def test_export_file_verifies_without_a_pinned_key(
    ledger: LedgerService, clock: Clock, tmp_path: Path
) -> None:
    await populate(ledger, clock)
    path = tmp_path / "ledger.jsonl"
    with path.open("wb") as out:
        await export_ledger(ledger.engine, out, SIGNER.verifier())
    report = verify_export_file(path)
    assert not report.key_pinned
    assert "NOT pinned" in report.describe()


async def test_empty_ledger_exports_and_verifies(ledger: LedgerService) -> None:
    lines = await export_lines(ledger)
    assert len(lines) == 2  # header and the size-0 checkpoint
    report = verify_export(lines, trusted_vkey=VKEY)
    assert (report.size, report.checkpoints, report.root) == (0, 1, merkle.EMPTY_ROOT)


async def test_export_lines_are_the_stored_bytes(ledger: LedgerService, clock: Clock) -> None:
    await populate(ledger, clock)
    lines = await export_lines(ledger)
    header = msgspec.json.decode(lines[0], type=ExportHeader)
    async with ledger.read() as conn:
        stored = [e.canonical for e in await queries.entry_range(conn, 0, 10_000)]
        head = await queries.head(conn)
    assert header.checkpoint == head.checkpoint and header.size == head.size
    body = [line[:-1] for line in lines[1:] if not line.startswith(b'{"checkpoint":')]
    assert body == stored


async def test_verify_database_passes_and_resumes(ledger: LedgerService, clock: Clock) -> None:
    await populate(ledger, clock)
    report = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN)
    async with ledger.read() as conn:
        head = await queries.head(conn)
    assert report.size == report.entries == head.size and report.root == head.root
    assert report.postings > 0 and report.tree_nodes == head.size - head.size.bit_count()
    assert report.holds_open == 1 and len(report.accounts) == 6
    assert report.describe().startswith("OK: ")

    # A later audit resumes from where this one stopped and reads only the new entries.
    await asyncio.gather(
        *(ledger.transfer(Transfer(new_id(), "comune", "anna", 5)) for _ in range(3))
    )
    again = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN, resume=report.replayer)
    assert again.entries == 3 and again.size == head.size + 3


async def test_verify_database_in_small_pages(ledger: LedgerService, clock: Clock) -> None:
    await populate(ledger, clock)
    report = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN, page=3)
    assert report.entries == report.size


async def test_resume_needs_a_replayer_at_a_checkpoint(ledger: LedgerService) -> None:
    replayer = LogReplayer(ORIGIN, SIGNER.verifier())
    replayer.feed_entry(encode_entry(_account(0, "anna")))
    with pytest.raises(ValueError, match="stopped at a checkpoint"):
        await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN, resume=replayer)


async def test_verify_database_with_another_key_fails(ledger: LedgerService) -> None:
    with pytest.raises(VerificationError, match="checkpoint after 0 entries does not verify"):
        await verify_database(ledger.engine, OTHER.verifier(), ORIGIN)


async def test_verify_database_for_another_origin_fails(ledger: LedgerService) -> None:
    with pytest.raises(VerificationError, match="does not match expected origin"):
        await verify_database(ledger.engine, SIGNER.verifier(), "elsewhere.example/ledger")


# ---------------------------------------------------------------------------------------
# Exports built from the pure core, to edit by hand


def _account(index: int, name: str, low: int | None = -600, kind: str = "member") -> Entry:
    return Entry(
        v=1,
        ledger=ORIGIN,
        index=index,
        id=f"account:{name}",
        kind="account",
        time=T0,
        postings=(),
        memo="",
        refs={},
        account=AccountSpec(id=name, kind=kind, min_balance=low, max_balance=None),
    )


def _entry(
    index: int,
    kind: str,
    legs: Sequence[tuple[str, int]],
    *,
    id: str | None = None,
    refs: dict[str, str | int] | None = None,
    time: str = T0,
    ledger: str = ORIGIN,
) -> Entry:
    return Entry(
        v=1,
        ledger=ledger,
        index=index,
        id=id or f"e{index}",
        kind=kind,
        time=time,
        postings=tuple(Posting(account=a, minutes=m) for a, m in legs),
        memo="",
        refs=refs or {},
    )


def _transfer(index: int, payer: str, payee: str, minutes: int, **kw: object) -> Entry:
    return _entry(index, "transfer", [(payer, -minutes), (payee, minutes)], **kw)  # type: ignore[arg-type]


def build_export(
    entries: Sequence[Entry | bytes],
    batches: Sequence[int] | None = None,
    *,
    signer: Signer = SIGNER,
    size: int | None = None,
) -> list[bytes]:
    """An export of `entries` with a signed checkpoint at 0 and after each batch end."""
    ends = set(batches if batches is not None else [len(entries)])
    ends.add(len(entries))
    tree = merkle.CompactRange()
    body: list[bytes] = []

    def checkpoint() -> str:
        note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), signer)
        body.append(_json.encode(CheckpointLine(note)) + b"\n")
        return note

    last = checkpoint()
    for item in entries:
        data = item if isinstance(item, bytes) else encode_entry(item)
        body.append(data + b"\n")
        tree.append(merkle.leaf_hash(data))
        if tree.size in ends:
            last = checkpoint()
    header = ExportHeader(
        format="scambio-ledger-export",
        version=1,
        origin=ORIGIN,
        vkey=signer.verifier().to_string(),
        size=tree.size if size is None else size,
        checkpoint=last,
    )
    return [_json.encode(header) + b"\n", *body]


def basic_entries() -> list[Entry]:
    """Three accounts (anna may not go below 0), then two batches of four transfers."""
    return [
        _account(0, "anna", 0),
        _account(1, "marco"),
        _account(2, "comune", None, "sponsor"),
        _transfer(3, "comune", "anna", 100),
        _transfer(4, "anna", "marco", 30),
        _transfer(5, "marco", "anna", 10),
        _transfer(6, "comune", "marco", 50),
        _transfer(7, "anna", "marco", 5),
        _transfer(8, "marco", "comune", 15),
        _transfer(9, "anna", "comune", 20),
        _transfer(10, "comune", "anna", 40),
    ]


BATCHES = [3, 7, 11]


def basic_export() -> list[bytes]:
    return build_export(basic_entries(), BATCHES)


def _line_of(lines: list[bytes], index: int) -> int:
    """Position in `lines` of entry `index`."""
    seen = -1
    for position, line in enumerate(lines[1:], 1):
        if not line.startswith(b'{"checkpoint":'):
            seen += 1
            if seen == index:
                return position
    raise AssertionError(f"no entry {index}")


def test_a_built_export_verifies() -> None:
    report = verify_export(basic_export(), trusted_vkey=VKEY)
    assert report.entries == 11 and report.checkpoints == 4
    assert report.accounts["anna"].posted == 100 - 30 + 10 + -5 - 20 + 40
    assert sum(a.posted for a in report.accounts.values()) == 0


def test_lines_without_newlines_verify_too() -> None:
    lines = [line.rstrip(b"\n") for line in basic_export()]
    assert verify_export(lines).entries == 11


def test_both_legs_altered_is_localised_to_the_batch() -> None:
    lines = basic_export()
    at = _line_of(lines, 5)
    lines[at] = (
        lines[at]
        .replace(b'"minutes":-10', b'"minutes":-12')
        .replace(b'"minutes":10', b'"minutes":12')
    )
    with pytest.raises(
        VerificationError,
        match=r"entry 3: checkpoint at size 7 has root [0-9a-f]{64} but the entries give "
        r"[0-9a-f]{64} \(an entry in \[3, 7\) was altered\)",
    ):
        verify_export(lines)


def test_a_rule_broken_by_an_earlier_tamper_is_blamed_on_the_batch() -> None:
    lines = basic_export()
    # Entry 3 now gives anna 10 minutes instead of 100, so entry 4 (anna pays 30) breaks
    # her limit of 0: the symptom is entry 4, the tamper entry 3, and the signed root of
    # the batch is what tells them apart.
    at = _line_of(lines, 3)
    lines[at] = (
        lines[at]
        .replace(b'"minutes":-100', b'"minutes":-10')
        .replace(b'"minutes":100', b'"minutes":10')
    )
    with pytest.raises(
        VerificationError,
        match=r"entry 3: .*an entry in \[3, 7\) was altered; entry 4 then breaks rule "
        r"limit-exceeded",
    ):
        verify_export(lines)


def test_a_bit_flip_that_breaks_the_json_names_the_line() -> None:
    lines = basic_export()
    at = _line_of(lines, 8)
    lines[at] = lines[at].replace(b'{"id"', b'{"id', 1)
    with pytest.raises(VerificationError, match=r"entry 8: not a valid entry: .*\(line 13\)"):
        verify_export(lines)


def test_a_bit_flip_in_a_field_name_is_refused() -> None:
    lines = basic_export()
    at = _line_of(lines, 8)
    lines[at] = lines[at].replace(b'"memo"', b'"meno"')
    with pytest.raises(VerificationError, match=r"entry 8: not a valid entry: Object contains"):
        verify_export(lines)


def test_non_canonical_bytes_are_refused() -> None:
    lines = basic_export()
    at = _line_of(lines, 6)
    lines[at] = lines[at].replace(b'{"id":', b'{ "id":')
    with pytest.raises(VerificationError, match="entry 6: bytes are not the canonical"):
        verify_export(lines)


def test_reordered_lines_are_caught_by_index() -> None:
    lines = basic_export()
    a, b = _line_of(lines, 4), _line_of(lines, 5)
    lines[a], lines[b] = lines[b], lines[a]
    with pytest.raises(VerificationError, match="entry 4: index field is 5, expected 4"):
        verify_export(lines)


def test_a_removed_entry_is_caught_by_index() -> None:
    lines = basic_export()
    del lines[_line_of(lines, 9)]
    with pytest.raises(VerificationError, match="entry 9: index field is 10, expected 9"):
        verify_export(lines)


def test_a_truncated_line_is_reported_as_truncation() -> None:
    data = b"".join(basic_export())
    cut = data[: data.index(b'"id":"e9"') + 12]
    with pytest.raises(
        VerificationError, match=r"entry 9: .*has no newline: the export is truncated"
    ):
        verify_export(io.BytesIO(cut))


def test_a_file_truncated_between_lines_is_reported() -> None:
    lines = basic_export()
    cut = lines[: _line_of(lines, 9)]
    with pytest.raises(
        VerificationError,
        match="entry 9: export ends after 9 entries but its header checkpoint is at size 11",
    ):
        verify_export(cut)


def test_a_missing_header_is_refused() -> None:
    with pytest.raises(VerificationError, match="line 1 is not an export header"):
        verify_export(basic_export()[1:])


def test_an_empty_export_is_refused() -> None:
    with pytest.raises(VerificationError, match="export is empty: no header line"):
        verify_export([])


def test_bad_json_in_the_header_is_refused() -> None:
    lines = basic_export()
    lines[0] = lines[0][:40] + b"\n"
    with pytest.raises(VerificationError, match="line 1 is not an export header: JSON"):
        verify_export(lines)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format", "something-else", "format is 'something-else'"),
        ("version", 2, "export version 2 is not supported"),
        ("vkey", "nonsense", "malformed verifier key"),
        ("origin", "elsewhere.example/x", "the header's checkpoint does not verify: .*origin"),
        ("size", 5, "header says size 5 but the export holds 11 entries"),
    ],
)
def test_header_fields_are_checked(field: str, value: object, message: str) -> None:
    lines = basic_export()
    header = msgspec.json.decode(lines[0])
    header[field] = value
    lines[0] = _json.encode(header) + b"\n"
    with pytest.raises(VerificationError, match=message):
        verify_export(lines)


def test_an_unknown_header_field_is_refused() -> None:
    lines = basic_export()
    header = msgspec.json.decode(lines[0])
    header["extra"] = 1
    lines[0] = _json.encode(header) + b"\n"
    with pytest.raises(VerificationError, match="unknown field `extra`"):
        verify_export(lines)


def test_an_empty_line_is_refused() -> None:
    lines = basic_export()
    lines.insert(_line_of(lines, 5), b"\n")
    with pytest.raises(
        VerificationError, match="entry 5: line 9 is empty, where entry 5 was expected"
    ):
        verify_export(lines)


def test_an_entry_of_another_ledger_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[4] = _transfer(4, "anna", "marco", 30, ledger="elsewhere.example/x")
    with pytest.raises(VerificationError, match=r"entry 4: ledger field is 'elsewhere\.example/x'"):
        verify_export(build_export(entries, BATCHES))


def test_an_entry_of_another_format_version_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    bad = _transfer(4, "anna", "marco", 30)
    entries[4] = encode_entry(msgspec.structs.replace(bad, v=2))
    with pytest.raises(VerificationError, match="entry 4: format version 2 is not 1"):
        verify_export(build_export(entries, BATCHES))


def test_a_checkpoint_line_with_bad_json_is_refused() -> None:
    lines = basic_export()
    checkpoint_at = _line_of(lines, 6) + 1
    lines[checkpoint_at] = b'{"checkpoint": 7}\n'
    with pytest.raises(
        VerificationError, match="line 11 is not a valid checkpoint line: Expected `str`"
    ):
        verify_export(lines)


def test_a_checkpoint_with_a_bad_signature_is_refused() -> None:
    lines = basic_export()
    at = _line_of(lines, 6) + 1
    note = msgspec.json.decode(lines[at], type=CheckpointLine).checkpoint
    forged = note.replace("\n7\n", "\n6\n")
    lines[at] = _json.encode(CheckpointLine(forged)) + b"\n"
    with pytest.raises(
        VerificationError, match="checkpoint after 7 entries does not verify: invalid signature"
    ):
        verify_export(lines)


def test_checkpoints_out_of_order_are_refused() -> None:
    lines = basic_export()
    first_checkpoint = lines[1]  # size 0
    lines.insert(_line_of(lines, 3), first_checkpoint)
    with pytest.raises(VerificationError, match="checkpoint at size 0 follows one at size 3"):
        verify_export(lines)


def test_a_checkpoint_after_too_few_entries_is_refused() -> None:
    lines = basic_export()
    checkpoint = lines[_line_of(lines, 6) + 1]
    lines.insert(_line_of(lines, 5), checkpoint)
    with pytest.raises(
        VerificationError, match=r"entry 5: checkpoint at size 7 follows only 5 entries"
    ):
        verify_export(lines)


def test_a_checkpoint_after_too_many_entries_is_refused() -> None:
    lines = basic_export()
    at = _line_of(lines, 6) + 1
    checkpoint = lines.pop(at)
    lines.insert(_line_of(lines, 7) + 1, checkpoint)
    with pytest.raises(VerificationError, match=r"entry 7: checkpoint at size 7 follows 8 entries"):
        verify_export(lines)


def test_entries_beyond_the_last_checkpoint_are_not_covered() -> None:
    entries = [*basic_entries(), _transfer(11, "anna", "marco", 1)]
    lines = build_export(entries[:11], BATCHES)
    lines.append(encode_entry(entries[11]) + b"\n")
    with pytest.raises(
        VerificationError,
        match="entry 11: not covered by a signed checkpoint: the last one is at size 11",
    ):
        verify_export(lines)


def test_a_stale_header_is_refused() -> None:
    lines = basic_export()
    stale = build_export(basic_entries()[:7], [3, 7])[0]
    lines[0] = stale
    with pytest.raises(
        VerificationError, match="header's checkpoint is at size 7 but checkpoint lines cover 11"
    ):
        verify_export(lines)


def test_a_header_checkpoint_that_contradicts_the_checkpoint_lines_is_refused() -> None:
    lines = basic_export()
    header = msgspec.json.decode(lines[0])
    header["checkpoint"] = sign_checkpoint(Checkpoint(ORIGIN, 11, bytes(32)), SIGNER)
    lines[0] = _json.encode(header) + b"\n"
    with pytest.raises(
        VerificationError,
        match=r"the header's checkpoint at size 11 has root 0{64} but the entries give "
        r"[0-9a-f]{64}, which the last checkpoint line signed",
    ):
        verify_export(lines)


def test_the_header_alone_covers_a_tail_without_checkpoint_lines() -> None:
    header, *body = basic_export()
    lines = [header, *(line for line in body if not line.startswith(b'{"checkpoint":'))]
    report = verify_export(lines)
    assert report.entries == 11 and report.checkpoints == 0


def test_a_tail_altered_under_the_header_checkpoint_is_localised() -> None:
    header, *body = basic_export()
    lines = [header, *(line for line in body if not line.startswith(b'{"checkpoint":'))]
    at = _line_of(lines, 9)
    lines[at] = (
        lines[at]
        .replace(b'"minutes":-20', b'"minutes":-2')
        .replace(b'"minutes":20', b'"minutes":2')
    )
    with pytest.raises(VerificationError, match=r"entry 0: .*an entry in \[0, 11\) was altered"):
        verify_export(lines)


# -- keys ------------------------------------------------------------------------------


def test_a_different_trusted_key_is_refused() -> None:
    with pytest.raises(
        VerificationError,
        match=f"export is signed by key {VKEY.split('+')[0]}.*not the trusted key",
    ):
        verify_export(basic_export(), trusted_vkey=OTHER.verifier().to_string())


def test_a_re_signed_export_passes_only_when_the_key_is_not_pinned() -> None:
    forged = build_export(basic_entries(), BATCHES, signer=OTHER)
    report = verify_export(forged)
    assert not report.key_pinned and report.vkey == OTHER.verifier().to_string()
    with pytest.raises(VerificationError, match="not the trusted key"):
        verify_export(forged, trusted_vkey=VKEY)


def test_a_swapped_key_in_the_header_fails_the_signatures() -> None:
    lines = basic_export()
    header = msgspec.json.decode(lines[0])
    header["vkey"] = OTHER.verifier().to_string()
    lines[0] = _json.encode(header) + b"\n"
    with pytest.raises(
        VerificationError, match="header's checkpoint does not verify: no signature"
    ):
        verify_export(lines)


# -- rules, in logs that are correctly signed ---------------------------------------------


def _signed_log_fails(entries: Sequence[Entry | bytes], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        verify_export(build_export(entries, BATCHES))


def test_unbalanced_postings_are_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[4] = _entry(4, "transfer", [("anna", -30), ("marco", 40)])
    _signed_log_fails(entries, "entry 4: breaks rule unbalanced: postings sum to 10, not zero")


def test_a_limit_breach_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[4] = _transfer(4, "anna", "marco", 800)
    _signed_log_fails(entries, "entry 4: breaks rule limit-exceeded: account 'anna' has 100")


def test_an_unknown_account_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[4] = _transfer(4, "anna", "nobody", 5)
    _signed_log_fails(entries, "entry 4: breaks rule unknown-account")


def test_a_duplicate_id_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[8] = _transfer(8, "marco", "comune", 15, id="e5")
    _signed_log_fails(entries, "entry 8: id 'e5' is already used by an earlier entry")


def _holds(*tail: Entry) -> list[Entry | bytes]:
    return [
        _account(0, "anna"),
        _account(1, "marco"),
        _entry(2, "hold", [("anna", -60), ("marco", 60)], refs={"expires": T1}),
        *tail,
    ]


def test_a_hold_posted_twice_is_refused() -> None:
    entries = _holds(
        _entry(3, "post", [("anna", -60), ("marco", 60)], refs={"hold": 2}),
        _entry(4, "post", [("anna", -60), ("marco", 60)], refs={"hold": 2}),
    )
    with pytest.raises(
        VerificationError,
        match=r"entry 4: breaks rule hold-resolved: .*already resolved by entry 3",
    ):
        verify_export(build_export(entries))


def test_a_hold_posted_after_it_expired_is_refused() -> None:
    entries = _holds(_entry(3, "post", [("anna", -60), ("marco", 60)], refs={"hold": 2}, time=T2))
    with pytest.raises(VerificationError, match="entry 3: breaks rule hold-expired"):
        verify_export(build_export(entries))


def test_a_hold_voided_as_expired_too_early_is_refused() -> None:
    entries = _holds(_entry(3, "void", [], refs={"hold": 2, "reason": "expired"}))
    with pytest.raises(VerificationError, match=r"entry 3: .*hold 2 had not expired"):
        verify_export(build_export(entries))


def test_holds_resolve_and_expire_correctly() -> None:
    entries = _holds(
        _entry(3, "void", [], refs={"hold": 2, "reason": "expired"}, time=T2),
        _entry(4, "hold", [("anna", -30), ("marco", 30)]),
    )
    report = verify_export(build_export(entries))
    assert report.holds_open == 1
    assert report.accounts["anna"].debits_pending == 30
    assert report.accounts["marco"].credits_pending == 30


def test_a_reversal_of_a_missing_entry_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[8] = _entry(8, "reversal", [("marco", 5), ("anna", -5)], refs={"reverses": 0})
    _signed_log_fails(entries, "entry 8: breaks rule not-reversible: entry 0 cannot be reversed")


def test_a_reversal_that_does_not_negate_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[8] = _entry(8, "reversal", [("marco", 6), ("anna", -6)], refs={"reverses": 7})
    _signed_log_fails(entries, "entry 8: .*not the negation of entry 7")


def test_a_second_reversal_is_refused() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[8] = _entry(8, "reversal", [("anna", 5), ("marco", -5)], refs={"reverses": 7})
    entries[9] = _entry(9, "reversal", [("anna", 5), ("marco", -5)], refs={"reverses": 7})
    _signed_log_fails(entries, "entry 9: breaks rule already-reversed")


def test_a_violation_is_reported_even_when_later_lines_are_bad() -> None:
    entries: list[Entry | bytes] = [*basic_entries()]
    entries[4] = _transfer(4, "anna", "nobody", 5)
    lines = build_export(entries, BATCHES)
    lines[_line_of(lines, 5)] = b"not json\n"
    with pytest.raises(VerificationError, match="entry 4: breaks rule unknown-account"):
        verify_export(lines)


# ---------------------------------------------------------------------------------------
# The replayer: fast path against the rules, tree against CompactRange


def _random_log(seed: int, count: int) -> list[Entry]:
    """Random transfers, valid and not, among a few accounts with tight limits."""
    rnd = random.Random(seed)
    names = ["a", "b", "c", "d"]
    log: list[Entry] = [
        _account(0, "a", -50),
        _account(1, "b", 0),
        _account(2, "c", None),
        Entry(
            v=1,
            ledger=ORIGIN,
            index=3,
            id="account:d",
            kind="account",
            time=T0,
            postings=(),
            memo="",
            refs={},
            account=AccountSpec(id="d", kind="member", min_balance=-20, max_balance=40),
        ),
    ]
    while len(log) < count:
        i = len(log)
        payer, payee = rnd.choice([*names, "zz"]), rnd.choice(names)
        minutes = rnd.choice([1, 5, 20, 45, 0, -3, 10**9 + 1])
        choice = rnd.random()
        if choice < 0.6:
            log.append(_transfer(i, payer, payee, minutes))
        elif choice < 0.7:
            # Annotations, valid or not (too long, not a string, a semantic key).
            refs = rnd.choice(
                [
                    {"exchange": "x1", "area": "childcare"},
                    {"rule": "grant", "policy": "p", "period": "2026-11"},
                    {"exchange": "x" * 257},
                    {"exchange": 7},
                    {"area": "housing", "expires": T1},
                ]
            )
            log.append(_transfer(i, payer, payee, minutes, refs=refs))
        elif choice < 0.75:
            log.append(_entry(i, "transfer", [(payer, -minutes), (payee, minutes + 1)]))
        elif choice < 0.8:
            log.append(_transfer(i, payer, payee, minutes, time="2026-11-25 09:00"))
        elif choice < 0.85:
            log.append(_transfer(i, payer, payee, minutes, id="-bad"))
        elif choice < 0.9:
            log.append(_transfer(i, payer, payee, minutes, refs={"hold": 1}))
        elif choice < 0.95:
            log.append(_entry(i, "transfer", [(payer, -minutes), ("c", 1), (payee, minutes - 1)]))
        else:
            log.append(_entry(i, "transfer", [(payee, minutes), (payer, -minutes)]))
    return log


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_path_agrees_with_the_rules(seed: int) -> None:
    log = _random_log(seed, 60)
    state = LedgerState()
    expected: RuleViolation | None = None
    failed_at = -1
    for entry in log:
        try:
            apply_entry(state, entry)
        except RuleViolation as violation:
            expected, failed_at = violation, entry.index
            break
    replayer = LogReplayer(ORIGIN, SIGNER.verifier())
    for entry in log[: failed_at + 1 if expected else len(log)]:
        replayer.feed_entry(encode_entry(entry))
    pending = replayer.pending
    if expected is None:
        assert pending is None
    else:
        assert pending is not None and pending.index == failed_at
        assert pending.reason == f"breaks rule {expected.code}: {expected.detail}"
        # Apply the same prefix without the failing entry to compare states.
        state = LedgerState()
        for entry in log[:failed_at]:
            apply_entry(state, entry)
        replayer = LogReplayer(ORIGIN, SIGNER.verifier())
        for entry in log[:failed_at]:
            replayer.feed_entry(encode_entry(entry))
    assert replayer.state == state


def test_the_replayer_tree_is_the_compact_range() -> None:
    tree = merkle.CompactRange()
    replayer = LogReplayer(ORIGIN, SIGNER.verifier())
    leaves = []
    for entry in basic_entries():
        data = encode_entry(entry)
        expected = tree.append(merkle.leaf_hash(data))
        produced: list[tuple[merkle.NodeId, bytes]] = []
        assert replayer.feed_entry(data, produced) == expected[0][1]
        assert produced == expected
        leaves.append(expected[0][1])
    assert replayer.root() == tree.root() == merkle.root_of(leaves)
    assert replayer.tree.hashes == tree.hashes


def test_feed_entry_refuses_newlines_and_checkpoint_lines() -> None:
    replayer = LogReplayer(ORIGIN, SIGNER.verifier())
    with pytest.raises(VerificationError, match="entry 0: contains a raw newline"):
        replayer.feed_entry(encode_entry(_account(0, "anna")) + b"\n")
    with pytest.raises(VerificationError, match="entry 0: is a checkpoint line"):
        replayer.feed_entry(basic_export()[1].rstrip(b"\n"))


def test_the_hot_loop_codec_is_the_entry_codec() -> None:
    from scambio.ledger import verify

    for entry in basic_entries():
        data = encode_entry(entry)
        assert verify._encoder.encode(verify._decoder.decode(data)) == data


async def test_verify_database_on_an_empty_ledger(ledger: LedgerService) -> None:
    report = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN)
    assert (report.size, report.checkpoints, report.root) == (0, 1, merkle.EMPTY_ROOT)
