"""Conformance vectors: a small, fixed ledger that another implementation can test against.

`build_vectors` deterministically builds (fixed key seed, fixed times, fixed ids) a ledger of
every entry kind -- accounts and a limit change, transfers (one with three legs), holds with
and without expiry, whole and partial posts, voids for both reasons, reversals of a transfer
and of a post, an open hold -- grouped into batches with one signed checkpoint each, exactly
as the appender would write them. Every entry is checked with `rules.apply_entry` while it
is built, so the vectors can never describe a ledger Scambio itself would reject.

It returns the files' bytes (nothing here touches the disk):

- ``entries.jsonl``: each entry's canonical bytes, one per line;
- ``vectors.json``: per entry its canonical bytes (text and base64) and leaf hash; the root
  of every tree size; the stored subtree nodes; inclusion and consistency proofs; the
  checkpoints with their signed notes; the test key; the replayed balances; and entries that
  must be *rejected* at the end of the log, each with its rule code.

``python -m scambio.ledger.vectorgen OUTDIR`` (``make vectors``) writes them; the test suite
regenerates them and requires identical bytes, so a format change cannot slip in unnoticed.
See ``ledger/vectors/README.md`` and ``ledger/SPEC.md``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from scambio.ledger import merkle
from scambio.ledger.entry import (
    FORMAT_VERSION,
    MAX_MINUTES,
    AccountSpec,
    Entry,
    Posting,
    encode_entry,
    format_time,
    parse_time,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Checkpoint, Signer, sign_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry, legs, negate

__all__ = ["ORIGIN", "VECTORS_VERSION", "build_vectors", "main", "signer"]

#: Bump when the *layout* of vectors.json changes (not when the ledger format does: that
#: is `entry.FORMAT_VERSION`, recorded in every entry).
VECTORS_VERSION: Final = 1
ORIGIN: Final = "vectors.scambio.example/ledger"
#: The test key's Ed25519 seed. Public on purpose: these are test vectors.
SEED: Final = hashlib.sha256(b"scambio conformance vectors, key 1").digest()
START: Final = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
_IDS: Final = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace

INCLUSION: Final = ((0, 1), (0, 23), (4, 5), (5, 9), (7, 20), (13, 14), (16, 17), (22, 23))
CONSISTENCY: Final = ((1, 23), (3, 7), (5, 9), (9, 14), (14, 20), (20, 23), (7, 23), (16, 16))


def signer() -> Signer:
    """The vectors' signing key (name = origin, as the service does)."""
    return Signer.from_seed(ORIGIN, SEED)


def client_id(n: int) -> str:
    """A fixed stand-in for a client-generated UUID."""
    return str(uuid.uuid5(_IDS, f"https://scambio.example/vectors/{n}"))


@dataclass
class _Builder:
    """Appends entries in batches, as the appender does: one time and one checkpoint each."""

    state: LedgerState = field(default_factory=LedgerState)
    entries: list[Entry] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    time: str = format_time(START)

    def batch(self, minutes_later: int) -> None:
        if self.entries:
            self.batches.append(len(self.entries))
        self.time = format_time(START + timedelta(minutes=minutes_later))

    def next_entry(
        self,
        kind: str,
        entry_id: str,
        postings: Sequence[Posting] = (),
        *,
        memo: str = "",
        refs: dict[str, str | int] | None = None,
        account: AccountSpec | None = None,
    ) -> Entry:
        return Entry(
            v=FORMAT_VERSION,
            ledger=ORIGIN,
            index=len(self.entries),
            id=entry_id,
            kind=kind,
            time=self.time,
            postings=tuple(postings),
            memo=memo,
            refs=refs or {},
            account=account,
        )

    def add(self, entry: Entry) -> Entry:
        # The rules do not see ids; a verifier also requires each to be unique.
        if any(e.id == entry.id for e in self.entries):
            raise ValueError(f"entry id {entry.id!r} is used twice")
        apply_entry(self.state, entry)  # raises if the vectors would break a rule
        self.entries.append(entry)
        return entry

    def open(self, account_id: str, kind: str, low: int | None, high: int | None) -> Entry:
        spec = AccountSpec(id=account_id, kind=kind, min_balance=low, max_balance=high)
        return self.add(self.next_entry("account", f"account:{account_id}", account=spec))

    def change_limits(self, account_id: str, low: int | None, high: int | None) -> Entry:
        """A later account entry: same kind, new limits (see SPEC.md for the id form)."""
        kind = self.state.accounts[account_id].kind
        spec = AccountSpec(id=account_id, kind=kind, min_balance=low, max_balance=high)
        changes = sum(
            1 for e in self.entries if e.account is not None and e.account.id == account_id
        )
        entry_id = f"limits:{changes + 1}:{account_id}"
        return self.add(self.next_entry("account", entry_id, account=spec))

    def transfer(self, n: int, payer: str, payee: str, minutes: int, memo: str = "") -> Entry:
        return self.add(
            self.next_entry("transfer", client_id(n), legs(payer, payee, minutes), memo=memo)
        )

    def hold(
        self, n: int, payer: str, payee: str, minutes: int, memo: str, *, expires_in: int | None
    ) -> Entry:
        refs: dict[str, str | int] = {}
        if expires_in is not None:
            refs["expires"] = format_time(parse_time(self.time) + timedelta(seconds=expires_in))
        return self.add(
            self.next_entry("hold", client_id(n), legs(payer, payee, minutes), memo=memo,
                            refs=refs)
        )  # fmt: skip

    def post(self, hold: Entry, minutes: int) -> Entry:
        payer, payee = hold.postings[0].account, hold.postings[1].account
        return self.add(
            self.next_entry(
                "post", f"{hold.id}:post", legs(payer, payee, minutes), refs={"hold": hold.index}
            )
        )

    def void(self, hold: Entry, reason: str) -> Entry:
        return self.add(
            self.next_entry("void", f"{hold.id}:void", refs={"hold": hold.index, "reason": reason})
        )

    def reverse(self, n: int, target: Entry, memo: str) -> Entry:
        return self.add(
            self.next_entry(
                "reversal", client_id(n), negate(target.postings), memo=memo,
                refs={"reverses": target.index},
            )
        )  # fmt: skip


def _ledger() -> tuple[_Builder, dict[str, Entry]]:
    """The fixed ledger: the builder, and the entries the rejections refer to by name."""
    b = _Builder()
    # Batch 1: the accounts of a Zone 6 timebank.
    b.open("giulia", "member", -600, None)
    b.open("marco", "member", -600, None)
    b.open("acme", "sponsor", None, None)
    b.open("zone6-pool", "pool", 0, None)
    b.open("lucia", "member", -600, 300)
    # Batch 2: a donation, a plain exchange, two holds.
    b.batch(60)
    b.transfer(1, "acme", "zone6-pool", 600, "Donazione di ACME S.p.A.: 10 ore")
    b.transfer(2, "marco", "giulia", 90, "Compiti di matematica — Zona 6 ✏️")
    homework = b.hold(3, "marco", "giulia", 120, "homework help, 2 hours", expires_in=86400)
    moving = b.hold(4, "zone6-pool", "lucia", 60, "aiuto trasloco", expires_in=None)
    # Batch 3: a partial post, a whole post, a short hold, a hold voided at once.
    b.batch(120)
    partial = b.post(homework, 75)
    b.post(moving, 60)
    awkward = 'line\u2028sep, "quotes", \\ and\nnewline'
    short = b.hold(5, "giulia", "marco", 30, awkward, expires_in=3600)
    cancelled = b.hold(6, "lucia", "marco", 20, "", expires_in=None)
    b.void(cancelled, "voided")
    # Batch 4: the short hold has expired; a mistaken transfer and its reversal; a post
    # reversed; a limit change; a three-legged transfer.
    b.batch(240)
    b.void(short, "expired")
    mistaken = b.transfer(7, "giulia", "lucia", 45, "\x07bell, 𝄞 clef, \x00nul, \x7fdel")
    b.reverse(8, mistaken, "wrong payee")
    b.reverse(9, partial, "session cancelled")
    b.change_limits("lucia", -120, 600)
    b.add(
        b.next_entry(
            "transfer", client_id(10),
            (Posting(account="acme", minutes=-60), Posting(account="giulia", minutes=30),
             Posting(account="marco", minutes=30)),
            memo="corporate volunteering split",
        )
    )  # fmt: skip
    # Batch 5: an empty memo, the largest amount, a hold left open.
    b.batch(300)
    plain = b.transfer(11, "marco", "acme", 15)
    b.transfer(12, "acme", "giulia", MAX_MINUTES, "upper bound")
    open_hold = b.hold(13, "acme", "marco", 50, "still open", expires_in=7 * 86400)
    b.batches.append(len(b.entries))
    named = {"mistaken": mistaken, "partial": partial, "homework": homework,
             "open_hold": open_hold, "plain": plain}  # fmt: skip
    return b, named


def _rejections(b: _Builder, named: dict[str, Entry]) -> list[dict[str, Any]]:
    """Entries that must be refused if appended at the end of the log, with their codes."""
    mistaken, partial, homework = named["mistaken"], named["partial"], named["homework"]
    open_hold, plain = named["open_hold"], named["plain"]
    late = format_time(START + timedelta(days=30))

    def candidate(
        kind: str, postings: Sequence[Posting] = (), *, time: str | None = None, **kw: Any
    ) -> Entry:
        entry = b.next_entry(kind, client_id(100 + len(cases)), postings, **kw)
        return entry if time is None else msgspec.structs.replace(entry, time=time)

    cases: list[tuple[str, str, Entry]] = []
    plan: list[tuple[str, str, Any]] = [
        ("limit-exceeded", "lucia may not go below her new minimum of -120",
         lambda: candidate("transfer", legs("lucia", "giulia", 200))),
        ("limit-exceeded", "lucia may hold at most 600 minutes",
         lambda: candidate("transfer", legs("acme", "lucia", 541))),
        ("limit-exceeded", "the pool may not go below zero",
         lambda: candidate("transfer", legs("zone6-pool", "giulia", 541))),
        ("unknown-account", "nobody has no account",
         lambda: candidate("transfer", legs("marco", "nobody", 10))),
        ("unbalanced", "postings must sum to zero",
         lambda: candidate("transfer", (Posting(account="marco", minutes=-5),
                                        Posting(account="giulia", minutes=4)))),
        ("invalid-postings", "an account may appear once per entry",
         lambda: candidate("transfer", legs("marco", "marco", 5))),
        ("already-reversed", "the mistaken transfer was reversed already",
         lambda: candidate("reversal", negate(mistaken.postings),
                           refs={"reverses": mistaken.index})),
        ("not-reversible", "an account entry cannot be reversed",
         lambda: candidate("reversal", legs("giulia", "marco", 1), refs={"reverses": 0})),
        ("hold-resolved", "the homework hold was posted already",
         lambda: candidate("post", legs("marco", "giulia", 10), refs={"hold": homework.index})),
        ("hold-not-found", "a post must reference a hold",
         lambda: candidate("post", legs("marco", "giulia", 10), refs={"hold": partial.index})),
        ("post-exceeds-hold", "a post moves at most what was held",
         lambda: candidate("post", legs("acme", "marco", 51), refs={"hold": open_hold.index})),
        ("hold-expired", "a hold cannot be posted after it expires",
         lambda: candidate("post", legs("acme", "marco", 50), refs={"hold": open_hold.index},
                           time=late)),
        ("invalid-entry", "a void for expiry before the hold expired",
         lambda: candidate("void", refs={"hold": open_hold.index, "reason": "expired"})),
        ("invalid-entry", "a reversal must negate its target exactly",
         lambda: candidate("reversal", legs("acme", "marco", 14),
                           refs={"reverses": plain.index})),
        ("invalid-memo", "a memo has at most 1000 characters",
         lambda: candidate("transfer", legs("marco", "giulia", 1), memo="ore " * 250 + "!")),
        ("account-kind-change", "an account's kind never changes",
         lambda: candidate("account", account=AccountSpec(id="marco", kind="organisation",
                                                          min_balance=-600, max_balance=None))),
    ]  # fmt: skip
    out = []
    for code, why, make in plan:
        entry: Entry = make()
        cases.append((code, why, entry))
        state = copy.deepcopy(b.state)
        try:
            apply_entry(state, entry)
        except RuleViolation as violation:
            if violation.code != code:
                raise AssertionError(f"{why}: got {violation.code}, not {code}") from None
        else:
            raise AssertionError(f"{why}: the entry was accepted")
        data = encode_entry(entry)
        out.append(
            {
                "code": code,
                "description": why,
                "canonical": data.decode("utf-8"),
                "canonical_base64": _b64(data),
            }
        )
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_vectors() -> dict[str, bytes]:
    """The vector files, by name, as bytes (deterministic: same output on every run)."""
    b, named = _ledger()
    key = signer()
    data = [encode_entry(e) for e in b.entries]
    leaves = [merkle.leaf_hash(d) for d in data]
    tree = merkle.CompactRange()
    nodes: dict[merkle.NodeId, bytes] = {}
    roots = [merkle.EMPTY_ROOT]
    for leaf in leaves:
        nodes.update(tree.append(leaf))
        roots.append(tree.root())
    n = len(leaves)

    checkpoints = []
    for size in [0, *b.batches]:
        note = sign_checkpoint(Checkpoint(ORIGIN, size, roots[size]), key)
        checkpoints.append({"size": size, "root": roots[size].hex(), "note": note})

    inclusion = []
    for index, size in INCLUSION:
        ranges = merkle.inclusion_ranges(index, size)
        proof = merkle.assemble(ranges, nodes)
        inclusion.append(
            {
                "index": index,
                "size": size,
                "leaf_hash": leaves[index].hex(),
                "root": roots[size].hex(),
                "proof": [p.hex() for p in proof],
            }
        )
    consistency = []
    for size1, size2 in CONSISTENCY:
        proof = merkle.assemble(merkle.consistency_ranges(size1, size2), nodes)
        consistency.append(
            {
                "size1": size1,
                "size2": size2,
                "root1": roots[size1].hex(),
                "root2": roots[size2].hex(),
                "proof": [p.hex() for p in proof],
            }
        )

    vectors = {
        "vectors_version": VECTORS_VERSION,
        "format_version": FORMAT_VERSION,
        "origin": ORIGIN,
        "verifier_key": key.verifier().to_string(),
        "test_signer_key": key.to_string(),
        "size": n,
        "entries": [
            {
                "index": e.index,
                "id": e.id,
                "kind": e.kind,
                "canonical": d.decode("utf-8"),
                "canonical_base64": _b64(d),
                "leaf_hash": leaf.hex(),
            }
            for e, d, leaf in zip(b.entries, data, leaves, strict=True)
        ],
        "roots": [{"size": size, "root": root.hex()} for size, root in enumerate(roots)],
        "nodes": [
            {"level": level, "index": index, "hash": h.hex()}
            for (level, index), h in sorted(nodes.items())
            if level > 0
        ],
        "inclusion_proofs": inclusion,
        "consistency_proofs": consistency,
        "checkpoints": checkpoints,
        "balances": {
            a.id: {
                "kind": a.kind,
                "min_balance": a.min_balance,
                "max_balance": a.max_balance,
                "posted": a.posted,
                "debits_pending": a.debits_pending,
                "credits_pending": a.credits_pending,
            }
            for a in sorted(b.state.accounts.values(), key=lambda a: a.id)
        },
        "open_holds": sorted(i for i, h in b.state.holds.items() if h.resolved_by is None),
        "rejections": _rejections(b, named),
    }
    text = json.dumps(vectors, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    return {
        "entries.jsonl": b"".join(d + b"\n" for d in data),
        "vectors.json": text.encode("ascii"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the vector files into the directory named by the only argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m scambio.ledger.vectorgen OUTDIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, content in build_vectors().items():
        (out / name).write_bytes(content)
        print(f"wrote {out / name} ({len(content)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
