"""Checking a co-production report against an export of the ledger, with no database.

`check_report` needs three files: the signed report, an export of the ledger (`scambio
ledger export`, taken at or after the report's checkpoint) and the directory the report
was computed with (`GET /api/v1/reports/coproduction/{month}/directory`, or
`scambio report coproduction --directory-out`). It

1. verifies the export completely (`ledger.verify.verify_export_file`: every entry,
   checkpoint and signature), against the pinned verifier key if given;
2. checks the report's signature with the same key, and that the report is for this
   ledger;
3. reads the export's first N entries, N being the report's checkpoint size, and requires
   their Merkle root to be the report's root and the report's checkpoint note to be a
   valid signed checkpoint of that size and root;
4. recomputes the report from those entries and the directory with the same pure code as
   the service (`reports.coproduction`), including the range's partition points, and
   compares it, figure by figure, with the signed one.

It reads the export three times (verify, index, compute) and keeps in memory one time
string per entry, the open holds and the pairs met before the range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scambio.ledger import merkle
from scambio.ledger.canonical import canonical_json
from scambio.ledger.entry import (
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    KIND_VOID,
    Entry,
    decode_entry,
)
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Verifier, open_checkpoint
from scambio.ledger.verify import CHECKPOINT_PREFIX, _read_header, verify_export_file
from scambio.reports.coproduction import (
    Builder,
    Directory,
    Event,
    Pair,
    Scope,
    boundary,
    classify,
    opened_account,
    pair_of,
    partition_point,
    report_body,
    reversal_of,
    reversal_ref,
)
from scambio.reports.signing import open_document


@dataclass(frozen=True, slots=True)
class ReportCheck:
    """The outcome of `check_report`: `problems` is empty when the report is correct."""

    report: dict[str, Any]
    recomputed: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.ok:
            report = self.report
            return (
                f"OK: the report for {report['from']} to {report['to']} is signed by the "
                f"ledger's key and recomputes exactly from the export at size "
                f"{report['checkpoint']['size']} ({len(report['rows'])} rows)"
            )
        return "MISMATCH: " + "; ".join(self.problems)


def _entry_lines(path: Path, size: int) -> Iterator[bytes]:
    """The export's first `size` entry lines (without their newline), in index order."""
    with path.open("rb", buffering=1 << 20) as f:
        f.readline()  # header
        index = 0
        for line in f:
            if index >= size:
                return
            data = line.rstrip(b"\n")
            if data.startswith(CHECKPOINT_PREFIX):
                continue
            yield data
            index += 1


def recompute(
    path: Path,
    directory: Directory,
    *,
    origin: str,
    size: int,
    date_from: str,
    date_to: str,
    checkpoint: str,
    generated_at: str,
) -> dict[str, Any]:
    """The report for [date_from, date_to) from the first `size` entries of an export."""
    times: list[str] = []
    kinds: dict[str, str] = {}
    reversed_targets: set[int] = set()
    tree = merkle.CompactRange()
    for data in _entry_lines(path, size):
        entry = decode_entry(data)
        times.append(entry.time)
        tree.append(merkle.leaf_hash(data))
        opened = opened_account(entry)
        if opened is not None:
            kinds[opened[0]] = opened[1]
        target = reversal_ref(entry)
        if target is not None:
            reversed_targets.add(target)
    if len(times) != size:
        raise VerificationError(f"the export holds {len(times)} entries, fewer than {size}")
    first = partition_point(size, boundary(date_from), times.__getitem__)
    end = max(first, partition_point(size, boundary(date_to), times.__getitem__))
    del times

    builder = Builder(directory, kinds)
    holds: dict[int, Entry] = {}
    target_events: dict[int, Event | None] = {}
    seen_before: set[Pair] = set()
    for data in _entry_lines(path, end):
        entry = decode_entry(data)
        index = entry.index
        hold: Entry | None = None
        if entry.kind == KIND_HOLD:
            holds[index] = entry
        elif entry.kind in (KIND_POST, KIND_VOID):
            ref = entry.refs.get("hold")
            hold = holds.pop(ref, None) if isinstance(ref, int) else None
        event: Event | None = None
        if entry.kind in (KIND_TRANSFER, KIND_POST):
            event = classify(entry, hold)
            if index in reversed_targets:
                target_events[index] = event
        elif entry.kind == KIND_REVERSAL:
            event = reversal_of(entry, target_events.get(reversal_ref(entry) or -1))
        if index < first:
            if event is not None and event.kind == "exchange" and not event.reversal:
                seen_before.add(pair_of(event))
            continue
        opened = opened_account(entry)
        if opened is not None:
            builder.add_new_account(opened[0], opened[1], entry.time[:7])
        elif event is not None:
            builder.add_event(event)
    scope = Scope(
        origin=origin,
        date_from=date_from,
        date_to=date_to,
        size=size,
        root=tree.root(),
        checkpoint=checkpoint,
        first=first,
        end=end,
    )
    rows = builder.finish(builder.pairs - seen_before)
    return report_body(scope, directory, rows, generated_at)


def check_report(
    document: bytes,
    export: Path,
    directory: Directory,
    *,
    trusted_vkey: str | None = None,
) -> ReportCheck:
    """Verify the export and the report's signature, then recompute the report and compare.

    Raises VerificationError when the export or the signature does not verify; returns a
    `ReportCheck` listing every difference otherwise.
    """
    verified = verify_export_file(export, trusted_vkey=trusted_vkey)
    with export.open("rb") as f:
        _header, verifier = _read_header(f.readline() or None, trusted_vkey)
    report = open_document(document, verifier)
    checkpoint = report.get("checkpoint") or {}
    size = checkpoint.get("size")
    if report.get("ledger") != verified.origin:
        raise VerificationError(
            f"the report is for ledger {report.get('ledger')!r}, the export for {verified.origin!r}"
        )
    if not isinstance(size, int) or not 0 <= size <= verified.size:
        raise VerificationError(
            f"the report's checkpoint size {size!r} is beyond the export ({verified.size} entries)"
        )
    note = str(checkpoint.get("note", ""))
    cp = open_checkpoint(note, verifier, verified.origin)
    recomputed = recompute(
        export,
        directory,
        origin=verified.origin,
        size=size,
        date_from=str(report.get("from")),
        date_to=str(report.get("to")),
        checkpoint=note,
        generated_at=str(report.get("generated_at")),
    )
    problems: list[str] = []
    root = recomputed["checkpoint"]["root"]
    if cp.size != size or cp.root.hex() != root:
        problems.append(
            f"the report's checkpoint note is for size {cp.size} and root {cp.root.hex()}, "
            f"but the export's first {size} entries have root {root}"
        )
    problems.extend(differences(report, recomputed))
    return ReportCheck(report, recomputed, problems)


def differences(signed: dict[str, Any], recomputed: dict[str, Any]) -> list[str]:
    """What differs between two report bodies, row by row and figure by figure."""
    if canonical_json(signed) == canonical_json(recomputed):
        return []
    found: list[str] = []
    for key in sorted(set(signed) | set(recomputed)):
        if key == "rows":
            continue
        if signed.get(key) != recomputed.get(key):
            found.append(
                f"{key}: report says {signed.get(key)!r}, recomputed {recomputed.get(key)!r}"
            )
    mine = {(r["dimension"], r["key"]): r for r in signed.get("rows", [])}
    theirs = {(r["dimension"], r["key"]): r for r in recomputed.get("rows", [])}
    for name in sorted(set(mine) | set(theirs)):
        a, b = mine.get(name), theirs.get(name)
        label = f"{name[0]}={name[1]}" if name[1] else name[0]
        if a is None or b is None:
            found.append(f"row {label} is {'missing from' if a is None else 'extra in'} the report")
            continue
        for figure in sorted(set(a) | set(b)):
            if a.get(figure) != b.get(figure):
                found.append(
                    f"row {label}: {figure} is {a.get(figure)!r}, recomputed {b.get(figure)!r}"
                )
    return found or ["the documents differ (field order or types)"]


__all__ = ["ReportCheck", "Verifier", "check_report", "differences", "recompute"]
