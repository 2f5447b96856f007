"""Offline verification of a ledger: replay every entry, recompute the tree, check signatures.

Anyone holding an export (see `scambio.store.export` for the format) and the node's public
key can check, with no database and no server, that

- every line is an entry in canonical form, at its position, for this ledger, with a unique id;
- replaying the entries with the same pure rules the appender uses (`rules.apply_entry`)
  never breaks a rule: postings sum to zero, limits hold, holds resolve once and not after
  they expire, reversals negate a real, unreversed entry;
- every signed checkpoint covers exactly the entries before it, with the root they give.

`LogReplayer` is the incremental engine: it is fed canonical entry bytes in index order and
signed checkpoint notes at batch boundaries, and raises `VerificationError` naming the first
bad entry. `verify_export` drives it over export lines; `scambio.store.audit` drives the same
object over the live database and adds the checks only a database has (stored leaf hashes,
posting rows, tree nodes, cached balances).

Localising a tamper: checks that concern one line alone (JSON, canonical form, index,
ledger, version) fail at that line. A rule violation or duplicate id may instead be the
*symptom* of an earlier altered entry, so it is held back until the checkpoint closing its
batch: if that checkpoint's root does not match, the batch was altered and that is reported
(with the range of the batch); if the root matches, the signed log itself breaks the rules
and the violation is reported at its exact index.

Speed: everything per entry happens in one loop (`LogReplayer.feed_lines`) with its
functions bound to locals, and a plain two-leg transfer takes an inlined path that performs
exactly the checks and state changes of `rules.apply_entry` for that case (falling back to
it whenever any condition is not met, so that every error message comes from the rules
themselves); the tests replay random valid and invalid logs through both paths and compare
them. On the 2-vCPU development VM a 10^6-entry export of ~280-byte transfers verifies at
about 160,000-225,000 entries/s of CPU time; the floor set by decoding, re-encoding and the
two SHA-256 calls per entry alone is about 330,000/s there. The replayed state (balances,
every reversible entry's postings, every id) takes about 560 bytes per entry.

`verify_export_file` verifies a large export (see `verify_parallel.PARALLEL_MIN_ENTRIES`)
on two processes instead, with less memory per entry, and falls back to this code for
small exports and for every export that fails, so that errors are always this code's.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from scambio.ledger import merkle
from scambio.ledger.entry import (
    ENTRY_ID_RE,
    FORMAT_VERSION,
    KIND_TRANSFER,
    MAX_MEMO,
    MAX_MINUTES,
    TIME_RE,
    Entry,
)
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Checkpoint, Verifier, open_checkpoint
from scambio.ledger.rules import (
    MAX_ANNOTATION,
    SEMANTIC_REFS,
    AccountState,
    HoldState,
    LedgerState,
    MovedState,
    apply_entry,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "CheckpointLine",
    "ExportHeader",
    "LogReplayer",
    "ReplayerSnapshot",
    "VerifyReport",
    "verify_export",
    "verify_export_file",
]

EXPORT_FORMAT: Final = "scambio-ledger-export"
EXPORT_VERSION: Final = 1

#: Every checkpoint line starts with these bytes; no entry can (entries have no such field,
#: and their first sorted key is "account" or "id"). The header does too, but it is line 1.
CHECKPOINT_PREFIX: Final = b'{"checkpoint":'

_READ_BUFFER: Final = 1 << 20


class ExportHeader(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Line 1 of an export: what it claims to be, and the latest signed checkpoint."""

    format: str
    version: int
    origin: str
    #: The C2SP verifier key (`name+hash+base64`) that signed the checkpoints.
    vkey: str
    size: int
    #: The latest signed checkpoint note, exactly as stored.
    checkpoint: str


class CheckpointLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A signed checkpoint, placed right after the entry that completes its tree size."""

    checkpoint: str


class AccountSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    id: str
    kind: str
    min_balance: int | None
    max_balance: int | None
    posted: int
    debits_pending: int
    credits_pending: int


class HoldSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    index: int
    id: str
    payer: str
    payee: str
    minutes: int
    expires: str | None


class ReplayerSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A `LogReplayer` at a checkpoint, without its history: balances and limits of every
    account, the open holds and the Merkle frontier (`popcount(size)` hashes)."""

    version: int = 1
    origin: str
    size: int
    frontier: list[bytes]
    checkpoints: int
    accounts: list[AccountSnapshot]
    holds: list[HoldSnapshot]

    def encode(self) -> bytes:
        return _snapshot_encoder.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> ReplayerSnapshot:
        snapshot = _snapshot_decoder.decode(data)
        if snapshot.version != 1:
            raise ValueError(f"replayer snapshot version {snapshot.version} is not supported")
        return snapshot


def _only_annotations(refs: dict[str, str | int]) -> bool:
    """Whether a transfer's refs are valid annotations (what `rules._expect_annotated`
    accepts for a transfer): no semantic key, every value a string of at most
    `MAX_ANNOTATION` characters. Anything else goes through the rules for their error."""
    for key, value in refs.items():
        if key in SEMANTIC_REFS or type(value) is not str or len(value) > MAX_ANNOTATION:
            return False
    return True


_snapshot_encoder = msgspec.json.Encoder()
_snapshot_decoder = msgspec.json.Decoder(ReplayerSnapshot)
_header_decoder = msgspec.json.Decoder(ExportHeader)
_checkpoint_decoder = msgspec.json.Decoder(CheckpointLine)
#: The same codec as `entry.encode_entry`/`decode_entry` (a test checks they agree), bound
#: here so that the hot loop skips one call layer per entry.
_decoder = msgspec.json.Decoder(Entry)
_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verification established."""

    origin: str
    vkey: str
    #: True when the signing key was checked against a key the caller trusts; False means
    #: the export only proved itself consistent with the key it carries.
    key_pinned: bool
    size: int
    root: bytes
    entries: int
    checkpoints: int
    accounts: dict[str, AccountState]
    holds_open: int

    def describe(self) -> str:
        """One human line, e.g. for the CLI."""
        pinned = "pinned key" if self.key_pinned else "key NOT pinned (pass the trusted key)"
        return (
            f"OK: {self.origin}: {self.entries} entries, {self.checkpoints} checkpoints, "
            f"root {self.root.hex()}, {len(self.accounts)} accounts, "
            f"{self.holds_open} open holds; signed by {self.vkey} ({pinned})"
        )


class LogReplayer:
    """Replays a ledger log entry by entry, checking everything a log alone can prove.

    Feed it every entry's canonical bytes in index order (`feed_entry`, or `feed_lines`
    for a stream of export lines) and every signed checkpoint right after the entry that
    completes its size (`check_checkpoint`). At the end call `finish` to require that every
    entry is covered by a checkpoint and no rule violation is held back.

    `state` holds the replayed balances, holds and reversible entries; `last_entry` and
    `last_leaf` are what the latest fed entry decoded to and hashed to. The Merkle frontier
    is kept as in `merkle.CompactRange` (the hashes of `range_nodes(0, size)`); `tree`
    returns it as one, and a `nodes` list passed to `feed_entry` receives every node each
    entry completes, leaf first, exactly as `CompactRange.append` returns them.

    Incremental use: a replayer is the whole state of a verification, so a long-lived job
    can keep one and later feed it only the entries appended since it stopped at a
    checkpoint (`covered == size`).

    Bounded memory and restarts: what only earlier entries need (every id, every
    reversible entry's postings, resolved holds) grows with the log. `forget_history`
    drops it at a checkpoint, keeping the balances, the open holds and the frontier, and
    `snapshot` / `from_snapshot` persist exactly that. Entries below `history_start` are
    then no longer in memory: whoever feeds the replayer must first tell it what later
    entries refer to there (`remember_ids`, and the holds and reversed entries in `state`),
    as `store.audit` does from the database.
    """

    __slots__ = (
        "_frontier",
        "_ids",
        "_last_checkpoint",
        "_pending",
        "_size",
        "_time_ok",
        "checkpoints",
        "covered",
        "failed_line",
        "history_start",
        "last_entry",
        "last_leaf",
        "origin",
        "state",
        "verifier",
    )

    def __init__(self, origin: str, verifier: Verifier) -> None:
        self.origin = origin
        self.verifier = verifier
        self.state = LedgerState()
        #: Size of the last verified checkpoint: entries below it are proven unaltered.
        self.covered = 0
        #: Number of checkpoints verified.
        self.checkpoints = 0
        self.last_entry: Entry | None = None
        self.last_leaf = b""
        #: The raw line that failed, for callers that add context to the error.
        self.failed_line: bytes | None = None
        self._size = 0
        self._frontier: list[bytes] = []
        self._ids: set[str] = set()
        self._last_checkpoint = -1
        #: The first rule violation, held back until the checkpoint closing its batch.
        self._pending: VerificationError | None = None
        #: The last entry time that matched TIME_RE (all entries of a batch share one).
        self._time_ok: str | None = None
        #: Entries below this index are not in memory (see `forget_history`).
        self.history_start = 0

    @property
    def size(self) -> int:
        """Entries fed so far."""
        return self._size

    @property
    def tree(self) -> merkle.CompactRange:
        """The Merkle frontier after the entries fed so far (a copy)."""
        return merkle.CompactRange(self._size, self._frontier)

    def root(self) -> bytes:
        """The Merkle root of the entries fed so far."""
        return merkle.fold(self._frontier)

    @property
    def pending(self) -> VerificationError | None:
        """The rule violation held back until the next checkpoint, if any."""
        return self._pending

    def holds_open(self) -> int:
        return sum(1 for h in self.state.holds.values() if h.resolved_by is None)

    # -- history, snapshots ------------------------------------------------------------

    def remember_ids(self, ids: Iterable[str]) -> None:
        """Ids of entries below `history_start`, which later entries must not reuse."""
        self._ids.update(ids)

    def _require_checkpoint(self, what: str) -> None:
        if self.covered != self._size or self._pending is not None:
            raise ValueError(f"{what} needs a replayer stopped at a verified checkpoint")

    def forget_history(self) -> None:
        """Drop what only entries already verified need: ids, reversible postings and
        resolved holds. Balances, open holds and the frontier stay."""
        self._require_checkpoint("forgetting history")
        self._ids.clear()
        self.state.moved.clear()
        self.state.holds = {i: h for i, h in self.state.holds.items() if h.resolved_by is None}
        self.history_start = self._size

    def snapshot(self) -> ReplayerSnapshot:
        """What resuming at this checkpoint needs (see `from_snapshot`)."""
        self._require_checkpoint("a snapshot")
        return ReplayerSnapshot(
            origin=self.origin,
            size=self._size,
            frontier=list(self._frontier),
            checkpoints=self.checkpoints,
            accounts=[
                AccountSnapshot(
                    a.id,
                    a.kind,
                    a.min_balance,
                    a.max_balance,
                    a.posted,
                    a.debits_pending,
                    a.credits_pending,
                )
                for a in self.state.accounts.values()
            ],
            holds=[
                HoldSnapshot(h.index, h.id, h.payer, h.payee, h.minutes, h.expires)
                for h in self.state.holds.values()
                if h.resolved_by is None
            ],
        )

    @classmethod
    def from_snapshot(cls, snapshot: ReplayerSnapshot, verifier: Verifier) -> LogReplayer:
        """A replayer at the snapshot's checkpoint, its history forgotten."""
        size = snapshot.size
        if size < 0 or len(snapshot.frontier) != size.bit_count():
            raise ValueError(f"a snapshot at size {size} needs {size.bit_count()} frontier hashes")
        replayer = cls(snapshot.origin, verifier)
        replayer._size = size
        replayer._frontier = list(snapshot.frontier)
        replayer._last_checkpoint = size
        replayer.covered = size
        replayer.checkpoints = snapshot.checkpoints
        replayer.history_start = size
        for a in snapshot.accounts:
            replayer.state.accounts[a.id] = AccountState(
                a.id, a.kind, a.min_balance, a.max_balance, a.posted, a.debits_pending,
                a.credits_pending,
            )  # fmt: skip
        for h in snapshot.holds:
            replayer.state.holds[h.index] = HoldState(
                h.index, h.id, h.payer, h.payee, h.minutes, h.expires
            )
        return replayer

    # -- entries -----------------------------------------------------------------------

    def feed_entry(
        self, canonical: bytes, nodes: list[tuple[merkle.NodeId, bytes]] | None = None
    ) -> bytes:
        """Check and replay the next entry; return its leaf hash.

        Raises VerificationError at once for a problem with this entry alone; a rule
        violation is held back until the next checkpoint (see the module docstring).
        """
        if b"\n" in canonical:
            self._local_error(
                self._size, "contains a raw newline, which canonical JSON never does", canonical
            )
        if self.feed_lines((canonical,), nodes) is not None:
            self._local_error(self._size, "is a checkpoint line, not an entry", canonical)
        return self.last_leaf

    def feed_lines(
        self, lines: Iterable[bytes], nodes: list[tuple[merkle.NodeId, bytes]] | None = None
    ) -> bytes | None:
        """Feed entry lines (each with or without its newline) until a checkpoint line.

        Returns that checkpoint line without its newline, or None when `lines` is
        exhausted. This is the hot loop of verification: everything is bound to locals and
        a plain two-leg transfer takes an inlined path that performs exactly the checks and
        state changes of `rules.apply_entry` for that case (any other entry, or any failed
        condition, goes through `apply_entry` itself, so every error comes from the rules).
        """
        decode = _decoder.decode
        encode = _encoder.encode
        sha = hashlib.sha256
        time_match = TIME_RE.fullmatch
        id_match = ENTRY_ID_RE.fullmatch
        prefix = CHECKPOINT_PREFIX
        transfer = KIND_TRANSFER
        annotated = _only_annotations
        version = FORMAT_VERSION
        max_minutes = MAX_MINUTES
        max_memo = MAX_MEMO
        origin = self.origin
        ids = self._ids
        ids_add = ids.add
        state = self.state
        accounts = state.accounts
        moved = state.moved
        frontier = self._frontier
        push = frontier.append
        pop = frontier.pop
        time_ok = self._time_ok
        pending = self._pending
        size = self._size
        entry: Entry | None = None
        leaf = b""
        try:
            for line in lines:
                # rstrip, not a slice: cheaper, and canonical JSON never ends in a newline.
                data = line.rstrip(b"\n")
                if data.startswith(prefix):
                    return data
                index = size
                leaf = sha(b"\x00" + data).digest()
                try:
                    entry = decode(data)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    reason = f"not a valid entry: {exc}" if data else "empty line, not an entry"
                    self._local_error(index, reason, line)
                    raise  # unreachable: _local_error raises
                if encode(entry) != data:
                    self._local_error(
                        index,
                        "bytes are not the canonical (RFC 8785) encoding of the entry they hold",
                        line,
                    )
                if entry.index != index:
                    self._local_error(
                        index, f"index field is {entry.index}, expected {index}", line
                    )
                if entry.ledger != origin:
                    self._local_error(
                        index, f"ledger field is {entry.ledger!r}, expected {origin!r}", line
                    )
                if entry.v != version:
                    self._local_error(index, f"format version {entry.v} is not {version}", line)
                if pending is None:
                    entry_id = entry.id
                    if entry_id in ids:
                        pending = self._pending = VerificationError(
                            f"id {entry_id!r} is already used by an earlier entry", index=index
                        )
                    else:
                        ids_add(entry_id)
                        postings = entry.postings
                        # Inlined rules.apply_entry for a valid plain two-leg transfer
                        # (annotated or not: exchanges and policy credits carry refs).
                        if (
                            entry.kind == transfer
                            and len(postings) == 2
                            and (not entry.refs or annotated(entry.refs))
                            and entry.account is None
                        ):
                            debit, credit = postings
                            minutes = credit.minutes
                            payer = accounts.get(debit.account)
                            payee = accounts.get(credit.account)
                            if (
                                debit.minutes == -minutes
                                and 0 < minutes <= max_minutes
                                and payer is not None
                                and payee is not None
                                and payer is not payee
                                and (
                                    payer.min_balance is None
                                    or payer.posted - payer.debits_pending - minutes
                                    >= payer.min_balance
                                )
                                and (
                                    payee.max_balance is None
                                    or payee.posted + payee.credits_pending + minutes
                                    <= payee.max_balance
                                )
                                and (entry.time == time_ok or time_match(entry.time))
                                and id_match(entry_id)
                                and len(entry.memo) <= max_memo
                            ):
                                time_ok = entry.time
                                payer.posted -= minutes
                                payee.posted += minutes
                                moved[index] = MovedState(index, postings)
                            else:
                                pending = self._apply(entry)
                        else:
                            pending = self._apply(entry)
                # Append the leaf to the frontier, merging the subtrees it completes
                # (CompactRange.append, inlined; `nodes` receives what it would return).
                if not index & 1:
                    push(leaf)
                    if nodes is not None:
                        nodes.append(((0, index), leaf))
                elif nodes is None:
                    node = leaf
                    position = index
                    while position & 1:
                        node = sha(b"\x01" + pop() + node).digest()
                        position >>= 1
                    push(node)
                else:
                    nodes.append(((0, index), leaf))
                    node = leaf
                    level = 0
                    position = index
                    while position & 1:
                        node = sha(b"\x01" + pop() + node).digest()
                        level += 1
                        position >>= 1
                        nodes.append(((level, position), node))
                    push(node)
                size = index + 1
            return None
        finally:
            self._size = size
            self._time_ok = time_ok
            if entry is not None:
                self.last_entry = entry
                self.last_leaf = leaf

    def _apply(self, entry: Entry) -> VerificationError | None:
        """Run the rules on one entry; hold back (and return) the violation, if any."""
        try:
            apply_entry(self.state, entry)
        except RuleViolation as violation:
            self._pending = VerificationError(
                f"breaks rule {violation.code}: {violation.detail}", index=entry.index
            )
        return self._pending

    def _local_error(self, index: int, reason: str, line: bytes) -> None:
        """Raise for a bad line, unless an earlier rule violation is still held back."""
        self.failed_line = line
        if self._pending is not None:
            raise self._pending
        raise VerificationError(reason, index=index)

    # -- checkpoints -------------------------------------------------------------------

    def check_checkpoint(self, note: str) -> Checkpoint:
        """Verify a signed checkpoint placed after the entries fed so far.

        Its signature and origin must verify, its size must equal the entries so far and
        its root the root they give; a mismatch names the batch since the last checkpoint.
        """
        size = self._size
        try:
            cp = open_checkpoint(note, self.verifier, self.origin)
        except VerificationError as exc:
            raise VerificationError(
                f"checkpoint after {size} entries does not verify: {exc.reason}"
            ) from None
        if cp.size <= self._last_checkpoint:
            raise VerificationError(
                f"checkpoint at size {cp.size} follows one at size {self._last_checkpoint}: "
                "checkpoints must be in increasing size order"
            )
        if cp.size > size:
            raise self._pending or VerificationError(
                f"checkpoint at size {cp.size} follows only {size} entries "
                f"(entries [{size}, {cp.size}) are missing)",
                index=size,
            )
        if cp.size < size:
            raise self._pending or VerificationError(
                f"checkpoint at size {cp.size} follows {size} entries "
                f"(entries from {cp.size} on are not covered by it)",
                index=cp.size,
            )
        root = self.root()
        if cp.root != root:
            raise self.batch_altered(f"checkpoint at size {cp.size} has root", cp.root, root)
        if self._pending is not None:
            raise self._pending
        self._last_checkpoint = cp.size
        self.covered = cp.size
        self.checkpoints += 1
        return cp

    def batch_altered(self, what: str, signed: bytes, computed: bytes) -> VerificationError:
        """The error for a signed root that the entries since the last checkpoint miss."""
        begin, end = self.covered, self._size
        also = ""
        if self._pending is not None:
            also = f"; entry {self._pending.index} then {self._pending.reason}"
        return VerificationError(
            f"{what} {signed.hex()} but the entries give {computed.hex()} "
            f"(an entry in [{begin}, {end}) was altered{also})",
            index=begin,
        )

    def finish(self) -> None:
        """Require every entry to be covered by a verified checkpoint and no held violation."""
        size = self._size
        if self.covered < size:
            raise VerificationError(
                f"not covered by a signed checkpoint: the last one is at size {self.covered} "
                f"but there are {size} entries",
                index=self.covered,
            )
        if self._pending is not None:
            raise self._pending


# ---------------------------------------------------------------------------------------
# Exports


def _read_header(line: bytes | None, trusted_vkey: str | None) -> tuple[ExportHeader, Verifier]:
    if line is None:
        raise VerificationError("export is empty: no header line")
    try:
        header = _header_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise VerificationError(f"line 1 is not an export header: {exc}") from None
    if header.format != EXPORT_FORMAT:
        raise VerificationError(
            f"line 1 is not an export header: format is {header.format!r}, "
            f"expected {EXPORT_FORMAT!r}"
        )
    if header.version != EXPORT_VERSION:
        raise VerificationError(
            f"export version {header.version} is not supported (only {EXPORT_VERSION})"
        )
    verifier = Verifier.from_string(header.vkey)
    if trusted_vkey is not None:
        trusted = Verifier.from_string(trusted_vkey)
        if trusted != verifier:
            raise VerificationError(
                f"export is signed by key {header.vkey}, not the trusted key {trusted_vkey}"
            )
    return header, verifier


def verify_export(lines: Iterable[bytes], *, trusted_vkey: str | None = None) -> VerifyReport:
    """Verify an export, line by line, in constant memory apart from the replayed state.

    `lines` are the export's lines, each with or without its trailing newline (a file
    opened in binary mode iterates that way). Raises VerificationError naming the first
    bad entry; returns what was proven. The cyclic garbage collector is paused meanwhile:
    the replayed state is millions of long-lived objects without cycles, which it would
    otherwise rescan over and over (a third of the run time).
    """
    it = iter(lines)
    header, verifier = _read_header(next(it, None), trusted_vkey)
    try:
        head_cp = open_checkpoint(header.checkpoint, verifier, header.origin)
    except VerificationError as exc:
        raise VerificationError(f"the header's checkpoint does not verify: {exc.reason}") from None
    replayer = LogReplayer(header.origin, verifier)
    with _gc_paused():
        _replay_lines(replayer, it)
    _check_end(replayer, header, head_cp)
    root = replayer.root()
    return VerifyReport(
        origin=header.origin,
        vkey=verifier.to_string(),
        key_pinned=trusted_vkey is not None,
        size=replayer.size,
        root=root,
        entries=replayer.size,
        checkpoints=replayer.checkpoints,
        accounts=replayer.state.accounts,
        holds_open=replayer.holds_open(),
    )


def _replay_lines(replayer: LogReplayer, lines: Iterator[bytes]) -> None:
    """Feed entry runs and checkpoint lines; add line numbers to line-level errors."""
    checkpoint_lines = 0
    while True:
        try:
            data = replayer.feed_lines(lines)
        except VerificationError as exc:
            line = replayer.failed_line
            if exc.index is None or line is None or exc.index != replayer.size:
                raise
            line_no = 2 + exc.index + checkpoint_lines
            if not line.strip():
                reason = f"line {line_no} is empty, where entry {exc.index} was expected"
            elif not line.endswith(b"\n"):
                reason = f"{exc.reason} (line {line_no} has no newline: the export is truncated)"
            else:
                reason = f"{exc.reason} (line {line_no})"
            raise VerificationError(reason, index=exc.index) from None
        if data is None:
            return
        checkpoint_lines += 1
        try:
            note = _checkpoint_decoder.decode(data).checkpoint
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            line_no = 1 + replayer.size + checkpoint_lines
            raise VerificationError(
                f"line {line_no} is not a valid checkpoint line: {exc}"
            ) from None
        replayer.check_checkpoint(note)


def _check_end(replayer: LogReplayer, header: ExportHeader, head_cp: Checkpoint) -> None:
    """The header's checkpoint must cover exactly the entries read, with their root."""
    size = replayer.size
    if size < head_cp.size:
        raise replayer.pending or VerificationError(
            f"export ends after {size} entries but its header checkpoint is at size "
            f"{head_cp.size} (the file is truncated or entries were removed)",
            index=size,
        )
    if size > head_cp.size:
        replayer.finish()  # names the first entry no checkpoint covers, if any
        raise VerificationError(
            f"the header's checkpoint is at size {head_cp.size} but checkpoint lines cover "
            f"{size} entries: the header is stale"
        )
    root = replayer.root()
    if head_cp.root != root:
        if replayer.covered < size:
            raise replayer.batch_altered(
                f"the header's checkpoint at size {size} has root", head_cp.root, root
            )
        raise VerificationError(
            f"the header's checkpoint at size {size} has root {head_cp.root.hex()} but "
            f"the entries give {root.hex()}, which the last checkpoint line signed"
        )
    # The header's checkpoint also covers any tail that no checkpoint line does.
    replayer.covered = size
    replayer.finish()
    if header.size != size:
        raise VerificationError(
            f"header says size {header.size} but the export holds {size} entries, "
            "as its checkpoint says"
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def verify_export_file(
    path: Path, *, trusted_vkey: str | None = None, parallel: bool | None = None
) -> VerifyReport:
    """`verify_export` over a file, read in binary with a large buffer.

    A regular file whose header claims at least `verify_parallel.PARALLEL_MIN_ENTRIES`
    entries is verified on two processes (see `scambio.ledger.verify_parallel`), with the
    same result and, on failure, the same error. `parallel=True` uses two processes
    whatever the size, `parallel=False` never.
    """
    if parallel is not False and path.is_file():
        from scambio.ledger import verify_parallel

        return verify_parallel.verify_file(
            path,
            trusted_vkey=trusted_vkey,
            min_entries=0 if parallel else verify_parallel.PARALLEL_MIN_ENTRIES,
        )
    with path.open("rb", buffering=_READ_BUFFER) as f:
        return verify_export(f, trusted_vkey=trusted_vkey)
