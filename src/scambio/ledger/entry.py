"""The entry: one atomic, signed-over, append-only ledger transaction.

An entry is serialised exactly once, by `encode_entry`, into RFC 8785 canonical JSON; the
Merkle leaf is the SHA-256 of those bytes (see `merkle.leaf_hash`). Every field is
documented in `ledger/SPEC.md`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from scambio.ledger.canonical import MAX_SAFE_INTEGER

FORMAT_VERSION: Final = 1

#: Account ids: lower-case, start with a letter or digit, at most 64 characters.
ACCOUNT_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
#: Entry ids (client transfer ids and derived ids such as "<hold id>:post").
ENTRY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: Entry times: RFC 3339 UTC with exactly six fractional digits, so that string order is
#: time order.
TIME_RE: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

ACCOUNT_KINDS: Final = frozenset(
    {"member", "organisation", "sponsor", "pool", "clearing", "system"}
)

#: Largest amount a single transfer may move (10^9 minutes, about 1,900 years).
MAX_MINUTES: Final = 10**9
#: Longest memo, in characters: a note for people, not a document store.
MAX_MEMO: Final = 1000

KIND_ACCOUNT: Final = "account"
KIND_TRANSFER: Final = "transfer"
KIND_HOLD: Final = "hold"
KIND_POST: Final = "post"
KIND_VOID: Final = "void"
KIND_REVERSAL: Final = "reversal"

ENTRY_KINDS: Final = frozenset(
    {KIND_ACCOUNT, KIND_TRANSFER, KIND_HOLD, KIND_POST, KIND_VOID, KIND_REVERSAL}
)
#: Kinds whose postings move posted balances and can later be reversed.
REVERSIBLE_KINDS: Final = frozenset({KIND_TRANSFER, KIND_POST})

SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
RefValue = str | SafeInt


class Posting(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One leg of an entry: minutes added to (positive) or taken from (negative) an account."""

    account: str
    minutes: SafeInt


class AccountSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An account's kind and limits, as opened or changed by an `account` entry."""

    id: str
    kind: str
    min_balance: SafeInt | None
    max_balance: SafeInt | None


class Entry(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A ledger entry. `account` appears only on entries of kind `account`."""

    v: int
    ledger: str
    index: SafeInt
    id: str
    kind: str
    time: str
    postings: tuple[Posting, ...]
    memo: str
    refs: dict[str, RefValue]
    account: AccountSpec | None = None


_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Entry)


REF_KEY_RE: Final = re.compile(r"[a-z][a-z_]{0,31}")


def _safe_int(value: object, what: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"{what}: floats are not allowed in canonical JSON")
    if isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"{what}: integer {value} is outside the I-JSON safe range")
        return
    raise ValueError(f"{what}: expected an integer, got {type(value).__name__}")


def check_encodable(entry: Entry) -> None:
    """Refuse what msgspec would encode but RFC 8785 forbids or orders differently.

    msgspec checks `Meta` bounds only when decoding, so an entry built in code could carry
    an unsafe integer or a float; and it sorts keys by code point where RFC 8785 sorts by
    UTF-16 unit, so refs keys are restricted to lower-case ASCII names.
    """
    _safe_int(entry.index, "index")
    for posting in entry.postings:
        _safe_int(posting.minutes, f"posting to {posting.account!r}")
    for key, value in entry.refs.items():
        if not REF_KEY_RE.fullmatch(key):
            raise ValueError(f"refs key {key!r} must match [a-z][a-z_]{{0,31}}")
        if not isinstance(value, str):
            _safe_int(value, f"refs.{key}")
    if entry.account is not None:
        for limit in (entry.account.min_balance, entry.account.max_balance):
            if limit is not None:
                _safe_int(limit, "account limit")


def encode_entry(entry: Entry) -> bytes:
    """The canonical (RFC 8785) bytes of an entry: the only bytes ever hashed."""
    check_encodable(entry)
    return _encoder.encode(entry)


def decode_entry(data: bytes) -> Entry:
    """Parse canonical bytes; raises msgspec.ValidationError/DecodeError on bad shape."""
    return _decoder.decode(data)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: fixed width, so string order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not TIME_RE.fullmatch(text):
        raise ValueError(f"time {text!r} is not RFC 3339 UTC with microseconds")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def now_time() -> str:
    return format_time(datetime.now(UTC))
