"""What callers ask the appender to do, and what they get back.

Each command knows the id of the entry it would write, so that a retry with the same id
finds the original entry, and how to tell whether a stored entry is the same request
(`conflict` returns the first differing field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scambio.ledger.entry import (
    KIND_ACCOUNT,
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    KIND_VOID,
    AccountSpec,
    Entry,
    format_time,
    parse_time,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import annotations_of


@dataclass(frozen=True, slots=True)
class OpenAccount:
    spec: AccountSpec

    @property
    def entry_id(self) -> str:
        return f"account:{self.spec.id}"

    def conflict(self, entry: Entry) -> str | None:
        stored = entry.account
        if stored is None or entry.kind != KIND_ACCOUNT:
            return "id"
        for name in ("kind", "min_balance", "max_balance"):
            if getattr(stored, name) != getattr(self.spec, name):
                return name
        return None


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer, or with `hold` a hold; `refs` are annotations the entry carries (which
    exchange, policy, period or peer transfer it belongs to: see `rules.SEMANTIC_REFS`)."""

    id: str
    payer: str
    payee: str
    minutes: int
    memo: str = ""
    hold: bool = False
    expires_in: int | None = None
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def entry_id(self) -> str:
        return self.id

    def conflict(self, entry: Entry) -> str | None:
        if entry.kind not in (KIND_TRANSFER, KIND_HOLD):
            return "id"
        if (entry.kind == KIND_HOLD) != self.hold:
            return "hold"
        debit, credit = entry.postings[0], entry.postings[-1]
        if debit.account != self.payer:
            return "payer"
        if credit.account != self.payee:
            return "payee"
        if credit.minutes != self.minutes:
            return "minutes"
        if entry.memo != self.memo:
            return "memo"
        if self.hold and stored_expires_in(entry) != self.expires_in:
            return "hold_expires_in"
        if annotations_of(entry) != dict(self.refs):
            return "refs"
        return None

    def expires(self, now: datetime) -> str | None:
        if not self.hold or self.expires_in is None:
            return None
        return format_time(now + timedelta(seconds=self.expires_in))


def stored_expires_in(entry: Entry) -> int | None:
    expires = entry.refs.get("expires")
    if not isinstance(expires, str):
        return None
    return round((parse_time(expires) - parse_time(entry.time)).total_seconds())


@dataclass(frozen=True, slots=True)
class PostHold:
    hold_id: str
    minutes: int | None = None

    @property
    def entry_id(self) -> str:
        return f"{self.hold_id}:post"

    def conflict(self, entry: Entry) -> str | None:
        if entry.kind != KIND_POST:
            return "id"
        if self.minutes is not None and entry.postings[-1].minutes != self.minutes:
            return "minutes"
        return None


@dataclass(frozen=True, slots=True)
class VoidHold:
    hold_id: str
    reason: str = "voided"

    @property
    def entry_id(self) -> str:
        return f"{self.hold_id}:void"

    def conflict(self, entry: Entry) -> str | None:
        return None if entry.kind == KIND_VOID else "id"


@dataclass(frozen=True, slots=True)
class Reverse:
    id: str
    target: int
    memo: str = ""

    @property
    def entry_id(self) -> str:
        return self.id

    def conflict(self, entry: Entry) -> str | None:
        if entry.kind != KIND_REVERSAL:
            return "id"
        if entry.refs.get("reverses") != self.target:
            return "index"
        if entry.memo != self.memo:
            return "memo"
        return None


@dataclass(frozen=True, slots=True)
class SetLimits:
    """Change an existing account's limits: an `account` entry with the new limits.

    `id` is the caller's request id (a UUID over HTTP); the entry's id is `limits:<id>`,
    which no caller-chosen transfer id can take (':' is reserved for derived ids).
    """

    id: str
    account: str
    min_balance: int | None
    max_balance: int | None
    memo: str = ""

    @property
    def entry_id(self) -> str:
        return f"limits:{self.id}"

    def conflict(self, entry: Entry) -> str | None:
        stored = entry.account
        if stored is None or entry.kind != KIND_ACCOUNT:
            return "id"
        if stored.id != self.account:
            return "account"
        for name in ("min_balance", "max_balance"):
            if getattr(stored, name) != getattr(self, name):
                return name
        if entry.memo != self.memo:
            return "memo"
        return None


Single = OpenAccount | SetLimits | Transfer | PostHold | VoidHold | Reverse


@dataclass(frozen=True, slots=True)
class Linked:
    """Commands that commit all together or not at all: usually transfers; federation also
    links a hold's void with the transfer that replaces it (see ledger/SPEC.md section 13)."""

    items: tuple[Single, ...]


Command = Single | Linked


@dataclass(frozen=True, slots=True)
class Appended:
    """A committed entry (or, with `created=False`, the original one a retry found)."""

    entry: Entry
    leaf_hash: bytes
    tree_size: int
    created: bool = True

    @property
    def index(self) -> int:
        return self.entry.index


Outcome = Appended | RuleViolation


@dataclass(slots=True)
class LinkedOutcome:
    """One outcome per item; when one fails, the others fail with `linked-failed`."""

    items: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(isinstance(item, Appended) for item in self.items)


def idempotency_conflict(entry_id: str, field_name: str) -> RuleViolation:
    return RuleViolation(
        "idempotency-conflict",
        f"id {entry_id!r} was already used for a different request: {field_name} differs",
        field=field_name,
    )
