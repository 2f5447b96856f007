"""Ledger rules as pure functions over an in-memory state.

The same code checks a request in the appender (against balances loaded for the accounts
it touches) and replays an exported log in the offline verifier, so the service and an
independent auditor agree on what a valid ledger is. Check functions return a
`RuleViolation` instead of raising, so callers can report several at once; `apply_entry`
raises the first one.

Balances follow the two-phase model: `posted` moves only through posting entries;
`debits_pending`/`credits_pending` are minutes reserved by open holds. An account's
available balance is `posted - debits_pending`; a debit must leave it at or above
`min_balance`, and a credit must leave `posted + credits_pending` at or below
`max_balance` (None means unbounded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scambio.ledger.canonical import MAX_SAFE_INTEGER
from scambio.ledger.entry import (
    ACCOUNT_ID_RE,
    ACCOUNT_KINDS,
    ENTRY_ID_RE,
    ENTRY_KINDS,
    KIND_ACCOUNT,
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    KIND_VOID,
    MAX_MEMO,
    MAX_MINUTES,
    REVERSIBLE_KINDS,
    TIME_RE,
    AccountSpec,
    Entry,
    Posting,
)
from scambio.ledger.errors import RuleViolation


@dataclass(slots=True)
class AccountState:
    id: str
    kind: str
    min_balance: int | None
    max_balance: int | None
    posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.debits_pending

    @property
    def pending(self) -> int:
        """Net minutes reserved by open holds (incoming minus outgoing)."""
        return self.credits_pending - self.debits_pending


@dataclass(slots=True)
class HoldState:
    index: int
    id: str
    payer: str
    payee: str
    minutes: int
    expires: str | None
    resolved_by: int | None = None


@dataclass(slots=True)
class MovedState:
    """A posting entry that may still be reversed."""

    index: int
    postings: tuple[Posting, ...]
    reversed_by: int | None = None


@dataclass(slots=True)
class LedgerState:
    """What the rules need to know about the log so far (all of it, or a loaded slice)."""

    accounts: dict[str, AccountState] = field(default_factory=dict)
    holds: dict[int, HoldState] = field(default_factory=dict)
    moved: dict[int, MovedState] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Pure checks: each returns the first problem found, or None.


def check_account_id(account_id: str) -> RuleViolation | None:
    if not ACCOUNT_ID_RE.fullmatch(account_id):
        return RuleViolation(
            "invalid-account-id",
            f"account id {account_id!r} must match [a-z0-9][a-z0-9._:-]{{0,63}}",
            account=account_id,
        )
    return None


def check_entry_id(entry_id: str) -> RuleViolation | None:
    if not ENTRY_ID_RE.fullmatch(entry_id):
        return RuleViolation(
            "invalid-id",
            f"id {entry_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ : - "
            "starting with a letter or digit",
        )
    return None


def check_minutes(minutes: int) -> RuleViolation | None:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        return RuleViolation("invalid-amount", "minutes must be an integer")
    if not 0 < minutes <= MAX_MINUTES:
        return RuleViolation(
            "invalid-amount", f"minutes must be between 1 and {MAX_MINUTES}, got {minutes}"
        )
    return None


def check_limits_spec(spec: AccountSpec) -> RuleViolation | None:
    bad = check_account_id(spec.id)
    if bad:
        return bad
    if spec.kind not in ACCOUNT_KINDS:
        return RuleViolation(
            "invalid-account-kind",
            f"account kind {spec.kind!r} is not one of {', '.join(sorted(ACCOUNT_KINDS))}",
        )
    for name in ("min_balance", "max_balance"):
        value = getattr(spec, name)
        if value is not None and abs(value) > MAX_SAFE_INTEGER:
            return RuleViolation("invalid-limits", f"{name} must be within ±(2^53 - 1)")
    if spec.min_balance is not None and spec.min_balance > 0:
        return RuleViolation("invalid-limits", "min_balance must be zero or negative")
    if spec.max_balance is not None and spec.max_balance < 0:
        return RuleViolation("invalid-limits", "max_balance must be zero or positive")
    return None


def _known(state: LedgerState, account_id: str) -> AccountState | RuleViolation:
    account = state.accounts.get(account_id)
    if account is None:
        return RuleViolation(
            "unknown-account", f"account {account_id!r} does not exist", account=account_id
        )
    return account


def check_postings_shape(postings: Sequence[Posting]) -> RuleViolation | None:
    """Zero-sum, at least two legs, no zero legs, no account twice, safe amounts."""
    if len(postings) < 2:
        return RuleViolation("invalid-postings", "an entry that moves minutes needs two postings")
    seen: set[str] = set()
    total = 0
    for posting in postings:
        if posting.minutes == 0:
            return RuleViolation("invalid-postings", f"posting to {posting.account!r} is zero")
        if abs(posting.minutes) > MAX_MINUTES:
            return RuleViolation(
                "invalid-amount", f"posting of {posting.minutes} minutes exceeds {MAX_MINUTES}"
            )
        if posting.account in seen:
            return RuleViolation(
                "invalid-postings", f"account {posting.account!r} appears twice in one entry"
            )
        seen.add(posting.account)
        total += posting.minutes
    if total != 0:
        return RuleViolation("unbalanced", f"postings sum to {total}, not zero")
    return None


def check_limits(state: LedgerState, postings: Iterable[Posting]) -> RuleViolation | None:
    """Would these postings, posted or reserved by a hold, keep every account in its limits?

    Holds and transfers are checked alike: a reservation must fit as if it were posted.
    """
    for posting in postings:
        account = _known(state, posting.account)
        if isinstance(account, RuleViolation):
            return account
        delta = posting.minutes
        if delta < 0 and account.min_balance is not None:
            after = account.available + delta
            if after < account.min_balance:
                return RuleViolation(
                    "limit-exceeded",
                    f"account {account.id!r} has {account.available} minutes available and a "
                    f"limit of {account.min_balance}: {-delta} minutes would leave it "
                    f"{account.min_balance - after} short",
                    account=account.id,
                    available=account.available,
                    shortfall=account.min_balance - after,
                )
        elif delta > 0 and account.max_balance is not None:
            after = account.posted + account.credits_pending + delta
            if after > account.max_balance:
                return RuleViolation(
                    "limit-exceeded",
                    f"account {account.id!r} may hold at most {account.max_balance} minutes: "
                    f"{delta} more would put it {after - account.max_balance} over",
                    account=account.id,
                    available=account.available,
                    excess=after - account.max_balance,
                )
    return None


def check_transfer_request(
    state: LedgerState, payer: str, payee: str, minutes: int
) -> RuleViolation | None:
    for problem in (check_minutes(minutes), check_account_id(payer), check_account_id(payee)):
        if problem:
            return problem
    if payer == payee:
        return RuleViolation("same-account", "payer and payee must be different accounts")
    return check_limits(state, legs(payer, payee, minutes))


def legs(payer: str, payee: str, minutes: int) -> tuple[Posting, Posting]:
    return (Posting(account=payer, minutes=-minutes), Posting(account=payee, minutes=minutes))


def open_hold(state: LedgerState, hold_index: int) -> HoldState | RuleViolation:
    hold = state.holds.get(hold_index)
    if hold is None:
        return RuleViolation("hold-not-found", f"entry {hold_index} is not a hold")
    if hold.resolved_by is not None:
        return RuleViolation(
            "hold-resolved",
            f"hold {hold.id!r} was already resolved by entry {hold.resolved_by}",
            resolved_by=hold.resolved_by,
        )
    return hold


def check_post(
    state: LedgerState, hold_index: int, minutes: int, time: str
) -> HoldState | RuleViolation:
    hold = open_hold(state, hold_index)
    if isinstance(hold, RuleViolation):
        return hold
    if hold.expires is not None and time > hold.expires:
        return RuleViolation("hold-expired", f"hold {hold.id!r} expired at {hold.expires}")
    bad = check_minutes(minutes)
    if bad:
        return bad
    if minutes > hold.minutes:
        return RuleViolation(
            "post-exceeds-hold",
            f"cannot post {minutes} minutes: hold {hold.id!r} reserved {hold.minutes}",
        )
    return hold


def check_reversal(state: LedgerState, target: int) -> MovedState | RuleViolation:
    moved = state.moved.get(target)
    if moved is None:
        return RuleViolation(
            "not-reversible",
            f"entry {target} cannot be reversed: only transfers and posted holds can",
        )
    if moved.reversed_by is not None:
        return RuleViolation(
            "already-reversed",
            f"entry {target} was already reversed by entry {moved.reversed_by}",
            reversed_by=moved.reversed_by,
        )
    return moved


def negate(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    return tuple(Posting(account=p.account, minutes=-p.minutes) for p in postings)


# ---------------------------------------------------------------------------------------
# State transitions: apply a (valid) entry. Used by the appender after its checks and by
# the verifier, which relies on the raised RuleViolation to name the bad entry.


def _post(state: LedgerState, postings: Iterable[Posting]) -> None:
    accounts = state.accounts
    for posting in postings:
        accounts[posting.account].posted += posting.minutes


def _reserve(state: LedgerState, payer: str, payee: str, minutes: int, sign: int) -> None:
    state.accounts[payer].debits_pending += sign * minutes
    state.accounts[payee].credits_pending += sign * minutes


def apply_entry(state: LedgerState, entry: Entry) -> None:
    """Check `entry` against the rules and the state, then apply it; raise RuleViolation."""
    kind = entry.kind
    if kind not in ENTRY_KINDS:
        raise RuleViolation("invalid-entry", f"unknown entry kind {kind!r}")
    bad = check_entry_id(entry.id)
    if bad:
        raise bad
    if not TIME_RE.fullmatch(entry.time):
        raise RuleViolation("invalid-entry", f"time {entry.time!r} is not RFC 3339 UTC")
    if len(entry.memo) > MAX_MEMO:
        raise RuleViolation("invalid-memo", f"memo is longer than {MAX_MEMO} characters")
    if kind == KIND_ACCOUNT:
        _apply_account(state, entry)
        return
    if entry.account is not None:
        raise RuleViolation("invalid-entry", f"a {kind} entry must not carry an account")
    if kind == KIND_VOID:
        _apply_void(state, entry)
        return
    shape = check_postings_shape(entry.postings)
    if shape:
        raise shape
    if kind == KIND_TRANSFER:
        _expect_annotated(entry, set())
        _apply_moving(state, entry)
    elif kind == KIND_REVERSAL:
        _expect_refs(entry, {"reverses"})
        target = _int_ref(entry, "reverses")
        moved = check_reversal(state, target)
        if isinstance(moved, RuleViolation):
            raise moved
        if entry.postings != negate(moved.postings):
            raise RuleViolation(
                "invalid-entry", f"reversal postings are not the negation of entry {target}"
            )
        _apply_moving(state, entry)
        moved.reversed_by = entry.index
    elif kind == KIND_HOLD:
        _apply_hold(state, entry)
    elif kind == KIND_POST:
        _apply_post(state, entry)


#: Refs the rules give a meaning to. Any other ref on a transfer or a hold is an
#: annotation: a string the rules carry but never interpret (which exchange, policy, period
#: or peer transfer the entry belongs to), so that an export describes itself.
SEMANTIC_REFS = frozenset({"hold", "reverses", "expires", "reason"})
#: Longest annotation value, in characters.
MAX_ANNOTATION = 256


def annotations_of(entry: Entry) -> dict[str, str]:
    """The entry's annotation refs (those the rules do not interpret)."""
    return {k: v for k, v in entry.refs.items() if k not in SEMANTIC_REFS and isinstance(v, str)}


def check_annotations(refs: Mapping[str, object]) -> RuleViolation | None:
    for key, value in refs.items():
        if key in SEMANTIC_REFS:
            return RuleViolation("invalid-entry", f"ref {key!r} is not an annotation")
        if not isinstance(value, str) or len(value) > MAX_ANNOTATION:
            return RuleViolation(
                "invalid-entry",
                f"annotation ref {key!r} must be a string of at most {MAX_ANNOTATION} characters",
            )
    return None


def _expect_annotated(entry: Entry, semantic: set[str]) -> None:
    """Refs of a transfer or hold: the semantic ones named, plus any annotations."""
    extra = (set(entry.refs) & SEMANTIC_REFS) - semantic
    if extra:
        raise RuleViolation(
            "invalid-entry", f"unexpected refs on a {entry.kind}: {', '.join(sorted(extra))}"
        )
    bad = check_annotations({k: v for k, v in entry.refs.items() if k not in semantic})
    if bad:
        raise bad


def _expect_refs(entry: Entry, allowed: set[str], required: set[str] | None = None) -> None:
    extra = set(entry.refs) - allowed
    if extra:
        raise RuleViolation(
            "invalid-entry", f"unexpected refs on a {entry.kind}: {', '.join(sorted(extra))}"
        )
    missing = (allowed if required is None else required) - set(entry.refs)
    if missing:
        raise RuleViolation(
            "invalid-entry", f"{entry.kind} lacks refs: {', '.join(sorted(missing))}"
        )


def _int_ref(entry: Entry, name: str) -> int:
    value = entry.refs[name]
    if not isinstance(value, int) or value < 0 or value >= entry.index:
        raise RuleViolation("invalid-entry", f"ref {name}={value!r} is not an earlier entry")
    return value


def _apply_moving(state: LedgerState, entry: Entry) -> None:
    problem = check_limits(state, entry.postings)
    if problem:
        raise problem
    _post(state, entry.postings)
    if entry.kind in REVERSIBLE_KINDS:
        state.moved[entry.index] = MovedState(entry.index, entry.postings)


def _apply_account(state: LedgerState, entry: Entry) -> None:
    spec = entry.account
    if spec is None or entry.postings or entry.refs:
        raise RuleViolation(
            "invalid-entry", "an account entry carries an account and no postings or refs"
        )
    bad = check_limits_spec(spec)
    if bad:
        raise bad
    current = state.accounts.get(spec.id)
    if current is None:
        state.accounts[spec.id] = AccountState(
            spec.id, spec.kind, spec.min_balance, spec.max_balance
        )
        return
    if current.kind != spec.kind:
        raise RuleViolation(
            "account-kind-change",
            f"account {spec.id!r} is a {current.kind}; its kind cannot change",
        )
    low = current.available
    high = current.posted + current.credits_pending
    if spec.min_balance is not None and low < spec.min_balance:
        raise RuleViolation(
            "invalid-limits",
            f"account {spec.id!r} has {low} minutes available, below the new limit",
        )
    if spec.max_balance is not None and high > spec.max_balance:
        raise RuleViolation(
            "invalid-limits", f"account {spec.id!r} could reach {high}, above the new limit"
        )
    current.min_balance = spec.min_balance
    current.max_balance = spec.max_balance


def _hold_legs(entry: Entry) -> tuple[str, str, int]:
    if len(entry.postings) != 2:
        raise RuleViolation("invalid-entry", f"a {entry.kind} has exactly two postings")
    debit, credit = entry.postings
    if debit.minutes >= 0:
        raise RuleViolation("invalid-entry", f"a {entry.kind} lists the payer's debit first")
    return debit.account, credit.account, credit.minutes


def _apply_hold(state: LedgerState, entry: Entry) -> None:
    _expect_annotated(entry, {"expires"})
    expires = entry.refs.get("expires")
    if expires is not None and (not isinstance(expires, str) or not TIME_RE.fullmatch(expires)):
        raise RuleViolation("invalid-entry", "hold expiry is not an RFC 3339 UTC time")
    payer, payee, minutes = _hold_legs(entry)
    problem = check_limits(state, entry.postings)
    if problem:
        raise problem
    _reserve(state, payer, payee, minutes, 1)
    state.holds[entry.index] = HoldState(
        entry.index, entry.id, payer, payee, minutes, expires if isinstance(expires, str) else None
    )


def _apply_post(state: LedgerState, entry: Entry) -> None:
    _expect_refs(entry, {"hold"})
    target = _int_ref(entry, "hold")
    payer, payee, minutes = _hold_legs(entry)
    hold = check_post(state, target, minutes, entry.time)
    if isinstance(hold, RuleViolation):
        raise hold
    if (payer, payee) != (hold.payer, hold.payee):
        raise RuleViolation("invalid-entry", f"post accounts differ from hold {target}'s")
    _reserve(state, hold.payer, hold.payee, hold.minutes, -1)
    _post(state, entry.postings)
    hold.resolved_by = entry.index
    state.moved[entry.index] = MovedState(entry.index, entry.postings)


def _apply_void(state: LedgerState, entry: Entry) -> None:
    if entry.postings:
        raise RuleViolation("invalid-entry", "a void moves nothing: it has no postings")
    _expect_refs(entry, {"hold", "reason"})
    target = _int_ref(entry, "hold")
    reason = entry.refs["reason"]
    if reason not in ("voided", "expired"):
        raise RuleViolation("invalid-entry", f"void reason {reason!r} is not voided or expired")
    hold = open_hold(state, target)
    if isinstance(hold, RuleViolation):
        raise hold
    if reason == "expired" and (hold.expires is None or entry.time < hold.expires):
        raise RuleViolation("invalid-entry", f"hold {target} had not expired at {entry.time}")
    _reserve(state, hold.payer, hold.payee, hold.minutes, -1)
    hold.resolved_by = entry.index
