"""The JSON shapes of the HTTP API: msgspec Structs in and out.

Inputs forbid unknown fields and are decoded strictly (see `decode.py`): a float, even
``90.0``, or a numeric string is never an integer number of minutes. Hashes and canonical
bytes travel as standard base64 (msgspec's encoding of `bytes`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from scambio.ledger.canonical import MAX_SAFE_INTEGER

#: Longest memo accepted on a transfer or reversal.
MEMO_MAX: Final = 1000
#: Longest hold expiry accepted: ten years, in seconds.
HOLD_EXPIRY_MAX: Final = 10 * 366 * 24 * 3600
#: Most transfers in one batch request.
BATCH_MAX: Final = 500

Limit = Annotated[
    int,
    msgspec.Meta(
        ge=-MAX_SAFE_INTEGER,
        le=MAX_SAFE_INTEGER,
        description="Minutes; null means unbounded.",
    ),
]
Memo = Annotated[str, msgspec.Meta(max_length=MEMO_MAX)]
Minutes = Annotated[
    int,
    msgspec.Meta(description="A positive whole number of minutes, at most 1,000,000,000."),
]
Uuid = Annotated[
    str,
    msgspec.Meta(
        description="A client-generated UUID (8-4-4-4-12 hex); the idempotency key.",
        examples=["0f8e1c9a-2b7d-4e51-9a3c-5d6f7a8b9c0d"],
    ),
]
B64 = Annotated[bytes, msgspec.Meta(description="Standard base64.")]


class Input(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, not silently ignored."""


class AccountIn(Input, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(description="Lower-case account id, [a-z0-9][a-z0-9._:-]*")]
    kind: Annotated[
        str,
        msgspec.Meta(
            description="member, organisation, sponsor, pool, clearing or system",
        ),
    ]
    #: Absent: the default for the kind; null: unbounded.
    min_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET
    max_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET


class TransferIn(Input, frozen=True, kw_only=True):
    id: Uuid
    payer: str
    payee: str
    minutes: Minutes
    memo: Memo = ""
    #: Reserve the minutes (two-phase): resolve later with /post or /void.
    hold: bool = False
    hold_expires_in: (
        Annotated[int, msgspec.Meta(ge=1, le=HOLD_EXPIRY_MAX, description="Seconds.")] | None
    ) = None


class PostIn(Input, frozen=True, kw_only=True):
    #: Post part of the hold; absent posts all of it.
    minutes: Minutes | None = None


class VoidIn(Input, frozen=True, kw_only=True):
    """A void carries no fields; an empty body is accepted too."""


class BatchIn(Input, frozen=True, kw_only=True):
    linked: bool = False
    transfers: Annotated[list[TransferIn], msgspec.Meta(min_length=1, max_length=BATCH_MAX)]


class ReverseIn(Input, frozen=True, kw_only=True):
    id: Uuid
    memo: Memo = ""


# -- outputs -----------------------------------------------------------------------------


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """A committed entry: its id, index, leaf hash and the size of the tree that signs it.

    A retry of the same request returns the same receipt.
    """

    id: str
    index: int
    leaf_hash: B64
    tree_size: int


class AccountOpened(msgspec.Struct, frozen=True, kw_only=True):
    """The account as opened (stable, so retries get the same body) and its entry."""

    id: str
    kind: str
    min_balance: int | None
    max_balance: int | None
    index: int
    leaf_hash: B64
    tree_size: int


class AccountOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    posted: int
    #: Net minutes reserved by open holds (incoming minus outgoing).
    pending: int
    #: Posted minus outgoing holds: what the account may still spend (down to min_balance).
    available: int
    min_balance: int | None
    max_balance: int | None


class StatementLineOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    id: str
    kind: str
    time: str
    minutes: int
    pending: bool
    #: Posted balance after this line.
    balance: int
    memo: str


class StatementOut(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[StatementLineOut]
    #: Pass as `cursor` for the next page; null when this page is the last.
    next_cursor: str | None


class BatchItemOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    #: The HTTP status this item would have had alone (201, 200 or a 4xx).
    status: int
    receipt: Receipt | None = None
    problem: dict[str, Any] | None = None


class BatchOut(msgspec.Struct, frozen=True, kw_only=True):
    #: True when every item was committed (or was an identical retry).
    ok: bool
    linked: bool
    results: list[BatchItemOut]


class KeyOut(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    #: The C2SP note verifier key: name+hash+base64(0x01 || Ed25519 public key).
    vkey: str


class EntryOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    leaf_hash: B64
    #: The exact RFC 8785 bytes the leaf hash covers.
    canonical: B64
    #: The same entry, decoded, for reading.
    entry: dict[str, Any]


class InclusionOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    size: int
    leaf_hash: B64
    proof: list[B64]


class ConsistencyOut(msgspec.Struct, frozen=True, kw_only=True, rename={"from_": "from"}):
    from_: int
    to: int
    proof: list[B64]


class HealthOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    #: "ok" or "unavailable".
    status: str
    #: "ok" or "unreachable".
    database: str
    origin: str
    tree_size: int | None = None
    appender: str | None = None
    detail: str | None = None
