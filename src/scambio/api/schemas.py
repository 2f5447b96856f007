"""The JSON shapes of the HTTP API: msgspec Structs in and out.

Inputs forbid unknown fields and are decoded strictly (see `decode.py`): a float, even
``90.0``, or a numeric string is never an integer number of minutes. Hashes and canonical
bytes travel as standard base64 (msgspec's encoding of `bytes`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from scambio.ledger.canonical import MAX_SAFE_INTEGER
from scambio.timebank.people import Contact, Slot

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


class LimitsIn(Input, frozen=True, kw_only=True):
    """New limits for an account; both are given (null means unbounded)."""

    id: Uuid
    min_balance: Limit | None
    max_balance: Limit | None
    #: Why: kept as the ledger entry's memo and in the audit log.
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MEMO_MAX)]


class LimitsChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The account's new limits and the ledger entry that set them."""

    id: str
    account: str
    min_balance: int | None
    max_balance: int | None
    index: int
    leaf_hash: B64
    tree_size: int


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
    #: The ledger size these balances are as of (one snapshot): they are the replay of
    #: entries 0 .. tree_size - 1, checkable against any checkpoint of that size or later.
    tree_size: int


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


class PolicyFileError(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    error: str


class PoliciesHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The last load of the policies directory: files applied, and files refused (the
    last valid version of their policy stays in force)."""

    loaded: int
    errors: list[PolicyFileError]


class HealthOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    #: "ok" or "unavailable".
    status: str
    #: "ok" or "unreachable".
    database: str
    origin: str
    tree_size: int | None = None
    appender: str | None = None
    detail: str | None = None
    #: Present once policy files were loaded (or refused).
    policies: PoliciesHealth | None = None


# -- people, organisations, sessions -------------------------------------------------------
#
# Length bounds here are generous decode-time limits (a 400 beyond them); the exact rules
# (a name of 1 to 200 characters, a password of 10 to 200...) are checked by the timebank
# and answered as 422 problems naming the field.

Text = Annotated[str, msgspec.Meta(max_length=10_000)]
ShortText = Annotated[str, msgspec.Meta(max_length=1_000)]
Strings = Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=50)]
TokenScopes = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=20)]],
    msgspec.Meta(max_length=10, description="Any of read, write, transfer, manage."),
]
Slots = Annotated[list[Slot], msgspec.Meta(max_length=100)]


class ProfileIn(Input, frozen=True, kw_only=True):
    """Profile fields; in a PATCH, only the fields present change (null clears `zone`)."""

    name: ShortText | msgspec.UnsetType = msgspec.UNSET
    zone: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    areas: Strings | msgspec.UnsetType = msgspec.UNSET
    tags: Strings | msgspec.UnsetType = msgspec.UNSET
    languages: Strings | msgspec.UnsetType = msgspec.UNSET
    about: Text | msgspec.UnsetType = msgspec.UNSET
    availability: Text | msgspec.UnsetType = msgspec.UNSET
    availability_slots: Slots | msgspec.UnsetType = msgspec.UNSET
    contact: Contact | msgspec.UnsetType = msgspec.UNSET


class RegisterIn(ProfileIn, frozen=True, kw_only=True):
    email: ShortText
    password: ShortText
    name: ShortText


class MemberCreateIn(ProfileIn, frozen=True, kw_only=True):
    """A manager registers a member directly (say, someone without a computer)."""

    name: ShortText
    email: ShortText | None = None
    password: ShortText | None = None
    role: ShortText = "member"
    reason: Text = ""
    min_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET
    max_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET


class ApproveIn(Input, frozen=True, kw_only=True):
    reason: Text = ""
    #: Absent: the community's default limits; null: unbounded.
    min_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET
    max_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET


class ReasonIn(Input, frozen=True, kw_only=True):
    reason: Text = ""


class RoleIn(Input, frozen=True, kw_only=True):
    role: Annotated[
        str, msgspec.Meta(max_length=20, description="member, manager, auditor or admin")
    ]
    reason: Text


class LoginIn(Input, frozen=True, kw_only=True):
    email: ShortText
    password: ShortText
    #: A label for the token, e.g. the device ("Giulia's phone").
    token_name: ShortText = "login"  # noqa: S105 - a label, not a secret
    #: Absent: every scope.
    scopes: TokenScopes | None = None


class TokenIn(Input, frozen=True, kw_only=True):
    name: ShortText
    scopes: TokenScopes
    #: Seconds; capped by the community's token lifetime.
    expires_in: Annotated[int, msgspec.Meta(ge=60, le=HOLD_EXPIRY_MAX)] | None = None


class PasswordChangeIn(Input, frozen=True, kw_only=True):
    current_password: ShortText
    new_password: ShortText


class ResetRequestIn(Input, frozen=True, kw_only=True):
    email: ShortText


class ResetConfirmIn(Input, frozen=True, kw_only=True):
    #: The code from the reset email.
    token: ShortText
    password: ShortText


class OrgIn(Input, frozen=True, kw_only=True):
    name: ShortText
    kind: Annotated[str, msgspec.Meta(max_length=20, description="company, nonprofit, public_body")]
    zone: ShortText | None = None
    description: Text = ""
    #: An active member to appoint as the organisation's first admin.
    admin_member_id: ShortText | None = None
    min_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET
    max_balance: Limit | msgspec.UnsetType | None = msgspec.UNSET


class OrgPatchIn(Input, frozen=True, kw_only=True):
    name: ShortText | msgspec.UnsetType = msgspec.UNSET
    zone: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET


class LinkIn(Input, frozen=True, kw_only=True):
    member_id: ShortText
    #: The worker's job title or team, shown on the link.
    title: ShortText = ""


class MemberOut(msgspec.Struct, frozen=True, kw_only=True):
    """A member. The private fields appear only to the member and to staff (absent for
    others; null means there is no value)."""

    id: str
    name: str
    zone: str | None
    areas: list[str]
    tags: list[str]
    languages: list[str]
    about: str
    availability: str
    availability_slots: list[Slot]
    #: How the member prefers to be contacted (in_app, email, phone).
    preferred_contact: str
    #: Organisations the member works for (active employee links).
    employers: list[str]
    # -- private --
    email: str | msgspec.UnsetType | None = msgspec.UNSET
    role: str | msgspec.UnsetType = msgspec.UNSET
    status: str | msgspec.UnsetType = msgspec.UNSET
    account_id: str | msgspec.UnsetType | None = msgspec.UNSET
    contact: Contact | msgspec.UnsetType = msgspec.UNSET
    created_at: str | msgspec.UnsetType = msgspec.UNSET
    updated_at: str | msgspec.UnsetType = msgspec.UNSET
    approved_at: str | msgspec.UnsetType | None = msgspec.UNSET
    approved_by: str | msgspec.UnsetType | None = msgspec.UNSET
    #: Organisations the member administers.
    admin_of: list[str] | msgspec.UnsetType = msgspec.UNSET


class MemberPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[MemberOut]
    next_cursor: str | None


class AcceptedOut(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    detail: str


class TokenOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    expires_at: str | None


class TokenCreatedOut(msgspec.Struct, frozen=True, kw_only=True):
    """The bearer token, shown this once: store it; Scambio keeps only its hash."""

    token: str
    id: str
    name: str
    scopes: list[str]
    expires_at: str | None


class LoginOut(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    token_id: str
    scopes: list[str]
    expires_at: str | None
    member: MemberOut


class AuditOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    at: str
    actor: str
    actor_member_id: str | None
    actor_token_id: str | None
    action: str
    subject_type: str
    subject_id: str
    reason: str | None
    details: dict[str, Any]


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditOut]
    next_cursor: str | None


class ZoneOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    #: A pilot area of the community's project.
    pilot: bool


class AreaOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    name_it: str


class OrgOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    status: str
    zone: str | None
    description: str
    account_id: str | None
    created_at: str
    updated_at: str
    #: Member ids of the organisation's admins (to its admins and staff only).
    admins: list[str] | msgspec.UnsetType = msgspec.UNSET


class OrgPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[OrgOut]
    next_cursor: str | None


class LinkOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    organisation: str
    member: str
    #: proposed, active, declined, withdrawn or ended.
    status: str
    title: str
    proposed_at: str
    updated_at: str


class LinkPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[LinkOut]
    next_cursor: str | None
