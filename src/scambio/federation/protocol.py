"""The federation protocol's pure parts: addresses, the transfer statement both nodes sign,
the signatures over it, exchange rates, and the messages nodes send each other.

A **statement** describes one cross-timebank transfer completely: its global id, the
payer (account and ledger origin), the payee (account and ledger origin), the minutes in
each ledger's units and the memo. Its canonical bytes (RFC 8785) are what nodes sign,
with a step that says what the signer agrees to:

- `prepare`: the payer's node holds the minutes and asks the payee's node to hold its side;
- `accept`: the payee's node holds its side and will follow the payer node's decision;
- `commit` / `abort`: the payer's node decided (an abort may name no statement, when the
  payer's node has no record of the transfer at all).

Each side's committed entry carries the other side's signature (`peer_sig`): the payer's
ledger holds the payee node's `accept`, the payee's ledger the payer node's `commit`, so
either ledger proves the other agreed. See docs/federation.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

import msgspec

from scambio.ledger.canonical import canonical_json
from scambio.ledger.entry import MAX_MEMO
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer, Verifier
from scambio.ledger.rules import check_account_id

#: Signatures are over this prefix and the canonical payload: never confusable with a note.
DOMAIN: Final = b"scambio-federation-v1\n"
STEPS: Final = ("prepare", "accept", "commit", "abort")
PEER_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: Entry ids on both ledgers: the hold, and the transfer that replaces it on commit.
HOLD_PREFIX: Final = "fed."


def hold_id(transfer_id: str) -> str:
    return f"{HOLD_PREFIX}{transfer_id}"


def commit_id(transfer_id: str) -> str:
    return f"{HOLD_PREFIX}{transfer_id}.commit"


def clearing_account(peer: str) -> str:
    return f"clearing.{peer}"


def key_id(verifier: Verifier) -> str:
    """How a node names its key in request signatures: `<origin>+<key hash hex>`."""
    return f"{verifier.name}+{verifier.key_hash.hex()}"


# -- addresses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    account: str
    peer: str

    def __str__(self) -> str:
        return f"{self.account}@{self.peer}"


def parse_address(text: str) -> Address:
    """`member@peer`: an account id on the peer's ledger, `@`, our name for the peer."""
    account, sep, peer = text.rpartition("@")
    if not sep or not account or not PEER_NAME_RE.fullmatch(peer):
        raise RuleViolation(
            "invalid-address",
            f"{text!r} is not an address of the form account@peer (peer: lower-case letters, "
            "digits and '-', at most 32 characters)",
            field="payee",
        )
    bad = check_account_id(account)
    if bad is not None:
        raise RuleViolation("invalid-address", f"{text!r}: {bad.detail}", field="payee")
    return Address(account, peer)


# -- exchange rates ----------------------------------------------------------------------


def to_theirs(minutes: int, rate_ours: int, rate_theirs: int) -> int:
    """Our minutes in the peer's units; refused unless exact (no minute is rounded away)."""
    scaled = minutes * rate_theirs
    if scaled % rate_ours:
        raise RuleViolation(
            "inexact-amount",
            f"{minutes} minutes do not convert exactly at {rate_ours}:{rate_theirs}; use a "
            f"multiple of {rate_ours // _gcd(rate_ours, rate_theirs)} minutes",
            field="minutes",
        )
    return scaled // rate_ours


def rate_matches(ours: int, theirs: int, rate_ours: int, rate_theirs: int) -> bool:
    """Do `ours` of our minutes equal `theirs` of the peer's at our configured rate?"""
    return ours * rate_theirs == theirs * rate_ours


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


# -- statements and signatures -----------------------------------------------------------


class Statement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    payer_ledger: str
    payer: str
    payee_ledger: str
    payee: str
    #: In the payer ledger's units and in the payee ledger's.
    minutes: int
    payee_minutes: int
    memo: str = ""

    def canonical(self) -> bytes:
        return canonical_json(msgspec.to_builtins(self))

    def check(self) -> None:
        for account in (self.payer, self.payee):
            bad = check_account_id(account)
            if bad is not None:
                raise bad
        for value in (self.minutes, self.payee_minutes):
            if not 0 < value <= 10**9:
                raise RuleViolation("invalid-amount", "minutes must be between 1 and 10^9")
        if len(self.memo) > MAX_MEMO:
            raise RuleViolation("invalid-memo", f"memo longer than {MAX_MEMO} characters")


def parse_statement(text: str) -> Statement:
    return msgspec.json.decode(text, type=Statement)


def signing_payload(step: str, transfer_id: str, statement: Statement | None) -> bytes:
    body = {
        "step": step,
        "id": transfer_id,
        "transfer": None if statement is None else msgspec.to_builtins(statement),
    }
    return DOMAIN + canonical_json(body)


def sign_step(signer: Signer, step: str, statement: Statement) -> str:
    return b64(signer.sign(signing_payload(step, statement.id, statement)))


def sign_unknown_abort(signer: Signer, transfer_id: str) -> str:
    return b64(signer.sign(signing_payload("abort", transfer_id, None)))


def check_step(verifier: Verifier, step: str, statement: Statement, signature: str | None) -> bool:
    """Is `signature` the node's signature of `step` over this statement? An abort may
    also be signed over no statement (the payer's node never had the transfer)."""
    raw = unb64(signature)
    if raw is None:
        return False
    if verifier.verify(signing_payload(step, statement.id, statement), raw):
        return True
    return step == "abort" and verifier.verify(signing_payload(step, statement.id, None), raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    if not text or len(text) > 200:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- messages between nodes --------------------------------------------------------------


class PrepareIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    transfer: Statement
    #: The payer node's signature of `prepare` over the statement.
    signature: str


class DecisionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A commit or an abort, with the payer node's signature of that step."""

    transfer: Statement
    signature: str


class StatusIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ids: list[str]


class TransferState(msgspec.Struct, frozen=True, kw_only=True):
    """One node's view of one transfer, as sent to the other node."""

    id: str
    #: `unknown`, or the row's state (see docs/federation.md).
    state: str
    #: The payee node's accept signature, when it has accepted.
    accept: str | None = None
    #: The payer node's decision (commit or abort) and its signature, once decided.
    decision: str | None = None
    decision_sig: str | None = None
    reason_code: str | None = None
    reason: str | None = None


class StatusOut(msgspec.Struct, frozen=True, kw_only=True):
    transfers: list[TransferState]


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    """A cross transfer in a clearing statement, as the sending node sees it."""

    id: str
    #: `out`: paid by a member of the sending node; `in`: paid to one.
    direction: str
    state: str
    minutes: int
    peer_minutes: int
    commit_index: int | None = None


class ClearingStatement(msgspec.Struct, frozen=True, kw_only=True):
    """What a node tells a peer about their relationship, signed by the node's key."""

    origin: str
    peer_origin: str
    at: str
    checkpoint: str
    #: Posted balance of the clearing account for this peer, in the sender's units.
    position: int
    pending: int
    lines: list[StatementLine]


class SignedStatement(msgspec.Struct, frozen=True, kw_only=True):
    statement: ClearingStatement
    signature: str


def statement_payload(statement: ClearingStatement) -> bytes:
    return DOMAIN + b"clearing-statement\n" + canonical_json(msgspec.to_builtins(statement))
