"""The pure ledger rules: every RuleViolation code `rules.py` can raise, by its message.

Entries are built by hand here (no appender), the way an offline verifier meets them in an
exported log, so these tests also pin down what a *foreign* log may and may not contain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec
import pytest

from scambio.ledger.entry import MAX_MINUTES, AccountSpec, Entry, Posting
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import (
    LedgerState,
    apply_entry,
    check_account_id,
    check_entry_id,
    check_limits,
    check_limits_spec,
    check_minutes,
    check_post,
    check_postings_shape,
    check_reversal,
    check_transfer_request,
    legs,
    negate,
    open_hold,
)
from scambio.store.commands import Transfer
from scambio.store.ledger import LedgerService

from .conftest import new_id

T0 = "2026-11-25T09:00:00.000000Z"
T1 = "2026-11-25T10:00:00.000000Z"
T2 = "2026-11-25T11:00:00.000000Z"


class Log:
    """A tiny in-memory ledger: appends hand-built entries through `apply_entry`."""

    def __init__(self) -> None:
        self.state = LedgerState()
        self.size = 0

    def entry(
        self,
        kind: str,
        postings: Sequence[Posting] = (),
        *,
        refs: dict[str, str | int] | None = None,
        account: AccountSpec | None = None,
        entry_id: str | None = None,
        time: str = T0,
        index: int | None = None,
    ) -> Entry:
        return Entry(
            v=1,
            ledger="test.scambio.local/ledger",
            index=self.size if index is None else index,
            id=entry_id or f"e{self.size}",
            kind=kind,
            time=time,
            postings=tuple(postings),
            memo="",
            refs=refs or {},
            account=account,
        )

    def apply(self, entry: Entry) -> Entry:
        apply_entry(self.state, entry)
        self.size += 1
        return entry

    def open(self, account_id: str, low: int | None = -600, high: int | None = None,
             kind: str = "member") -> Entry:  # fmt: skip
        spec = AccountSpec(id=account_id, kind=kind, min_balance=low, max_balance=high)
        return self.apply(self.entry("account", account=spec, entry_id=f"account:{account_id}"))

    def transfer(self, payer: str, payee: str, minutes: int) -> Entry:
        return self.apply(self.entry("transfer", legs(payer, payee, minutes)))

    def hold(self, payer: str, payee: str, minutes: int, expires: str | None = None) -> Entry:
        refs: dict[str, str | int] = {} if expires is None else {"expires": expires}
        return self.apply(self.entry("hold", legs(payer, payee, minutes), refs=refs))

    def post(self, hold: Entry, minutes: int, time: str = T0) -> Entry:
        payer, payee = hold.postings[0].account, hold.postings[1].account
        return self.apply(
            self.entry("post", legs(payer, payee, minutes), refs={"hold": hold.index}, time=time)
        )

    def void(self, hold: Entry, reason: str = "voided", time: str = T0) -> Entry:
        return self.apply(
            self.entry("void", refs={"hold": hold.index, "reason": reason}, time=time)
        )

    def reverse(self, target: Entry) -> Entry:
        return self.apply(
            self.entry("reversal", negate(target.postings), refs={"reverses": target.index})
        )

    def balance(self, account_id: str) -> tuple[int, int, int]:
        a = self.state.accounts[account_id]
        return a.posted, a.debits_pending, a.credits_pending


@pytest.fixture
def log() -> Log:
    """Marco (default member limit -600), Giulia (may hold at most 300), a sponsor."""
    log = Log()
    log.open("marco")
    log.open("giulia", 0, 300)
    log.open("sponsor", None, None, kind="sponsor")
    return log


@contextmanager
def raises(code: str, message: str) -> Iterator[pytest.ExceptionInfo[RuleViolation]]:
    """Expect a RuleViolation with this code and a detail matching `message`."""
    with pytest.raises(RuleViolation, match=message) as info:
        yield info
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"


def _violation(code: str, message: str, exc: RuleViolation | object) -> RuleViolation:
    assert isinstance(exc, RuleViolation), f"expected {code}, got {exc!r}"
    assert exc.code == code
    assert re.search(message, exc.detail), exc.detail
    return exc


# ---------------------------------------------------------------------------------------
# Balances: the two-phase model


def test_transfers_hold_post_void_and_reversal_move_the_right_balances(log: Log) -> None:
    log.transfer("marco", "giulia", 60)
    assert log.balance("marco") == (-60, 0, 0)
    assert log.balance("giulia") == (60, 0, 0)
    hold = log.hold("marco", "giulia", 90)
    marco = log.state.accounts["marco"]
    assert (marco.available, marco.pending) == (-150, -90)
    assert log.state.accounts["giulia"].pending == 90
    post = log.post(hold, 75)
    assert log.balance("marco") == (-135, 0, 0)
    assert log.balance("giulia") == (135, 0, 0)
    assert log.state.holds[hold.index].resolved_by == post.index
    second = log.hold("marco", "giulia", 30)
    log.void(second)
    assert log.balance("marco") == (-135, 0, 0)
    log.reverse(post)
    assert log.balance("marco") == (-60, 0, 0)
    assert log.state.moved[post.index].reversed_by == log.size - 1


def test_a_limit_reached_exactly_is_allowed(log: Log) -> None:
    log.transfer("marco", "giulia", 300)  # giulia at her maximum
    log.transfer("sponsor", "marco", 1)  # marco back to -299
    log.transfer("marco", "sponsor", 301)  # marco at exactly -600
    assert log.state.accounts["marco"].available == -600
    assert log.state.accounts["giulia"].posted == 300


# ---------------------------------------------------------------------------------------
# limit-exceeded


def test_a_payer_may_not_go_below_its_minimum(log: Log) -> None:
    log.transfer("marco", "sponsor", 550)
    with raises("limit-exceeded", "account 'marco' has -550 minutes available and a limit of "
                "-600: 51 minutes would leave it 1 short") as info:  # fmt: skip
        log.transfer("marco", "sponsor", 51)
    assert info.value.code == "limit-exceeded"
    assert info.value.fields == {"account": "marco", "available": -550, "shortfall": 1}
    assert log.balance("marco") == (-550, 0, 0)  # nothing applied


def test_a_payee_may_not_go_above_its_maximum(log: Log) -> None:
    with raises("limit-exceeded", "account 'giulia' may hold at most 300 minutes: 301 more "
                "would put it 1 over") as info:  # fmt: skip
        log.transfer("sponsor", "giulia", 301)
    assert info.value.fields == {"account": "giulia", "available": 0, "excess": 1}


def test_open_holds_count_against_the_payers_available_balance(log: Log) -> None:
    log.hold("marco", "sponsor", 500)
    with raises("limit-exceeded", "has -500 minutes available .*: 101 minutes would leave it "
                "1 short"):  # fmt: skip
        log.transfer("marco", "sponsor", 101)
    with raises("limit-exceeded", "would leave it 1 short"):
        log.hold("marco", "sponsor", 101)


def test_incoming_holds_count_against_the_payees_maximum(log: Log) -> None:
    log.hold("sponsor", "giulia", 250)
    with raises("limit-exceeded", "may hold at most 300 minutes: 51 more would put it 1 over"):
        log.transfer("sponsor", "giulia", 51)


def test_a_reversal_is_checked_against_limits_too(log: Log) -> None:
    gift = log.transfer("sponsor", "giulia", 200)
    log.transfer("giulia", "marco", 150)  # giulia spent most of it; her minimum is 0
    with raises("limit-exceeded", "account 'giulia' has 50 minutes available and a limit of 0"):
        log.reverse(gift)


# ---------------------------------------------------------------------------------------
# unknown-account, same-account, invalid-postings, unbalanced, invalid-amount, ids


def test_an_unknown_account_is_named(log: Log) -> None:
    with raises("unknown-account", "account 'ghost' does not exist") as info:
        log.transfer("marco", "ghost", 10)
    assert info.value.fields == {"account": "ghost"}
    problem = check_limits(log.state, legs("ghost", "marco", 10))
    _violation("unknown-account", "account 'ghost' does not exist", problem)


def test_check_transfer_request_catches_every_request_problem(log: Log) -> None:
    assert check_transfer_request(log.state, "marco", "giulia", 10) is None
    cases = [
        (("marco", "marco", 10), "same-account", "payer and payee must be different accounts"),
        (("marco", "giulia", 0), "invalid-amount", "minutes must be between 1 and"),
        (("Marco", "giulia", 5), "invalid-account-id", r"account id 'Marco' must match"),
        (("marco", "ghost", 5), "unknown-account", "account 'ghost' does not exist"),
        (("marco", "giulia", 301), "limit-exceeded", "may hold at most 300"),
    ]
    for (payer, payee, minutes), code, message in cases:
        _violation(code, message, check_transfer_request(log.state, payer, payee, minutes))


async def test_the_store_refuses_a_transfer_to_oneself(ledger: LedgerService) -> None:
    await ledger.open_account("marco", "member")
    outcome = await ledger.transfer(Transfer(new_id(), "marco", "marco", 30))
    _violation("same-account", "payer and payee must be different accounts", outcome)


@pytest.mark.parametrize(
    ("postings", "code", "message"),
    [
        ([("marco", -5)], "invalid-postings", "an entry that moves minutes needs two postings"),
        ([("marco", 0), ("giulia", 0)], "invalid-postings", "posting to 'marco' is zero"),
        ([("marco", -5), ("marco", 5)], "invalid-postings", "account 'marco' appears twice"),
        ([("marco", -5), ("giulia", 4)], "unbalanced", "postings sum to -1, not zero"),
        (
            [("sponsor", -MAX_MINUTES - 1), ("giulia", MAX_MINUTES + 1)],
            "invalid-amount",
            f"posting of {-MAX_MINUTES - 1} minutes exceeds {MAX_MINUTES}",
        ),
    ],
)
def test_postings_must_be_a_balanced_pair_or_more(
    log: Log, postings: list[tuple[str, int]], code: str, message: str
) -> None:
    legs_ = [Posting(account=a, minutes=m) for a, m in postings]
    _violation(code, message, check_postings_shape(legs_))
    with raises(code, message):
        log.apply(log.entry("transfer", legs_))


def test_three_legged_balanced_transfers_are_valid(log: Log) -> None:
    three = [Posting(account="sponsor", minutes=-30), Posting(account="marco", minutes=10),
             Posting(account="giulia", minutes=20)]  # fmt: skip
    log.apply(log.entry("transfer", three))
    assert log.balance("giulia") == (20, 0, 0)


@pytest.mark.parametrize(
    ("minutes", "message"),
    [
        (0, "minutes must be between 1 and 1000000000, got 0"),
        (-3, "got -3"),
        (MAX_MINUTES + 1, "got 1000000001"),
        (True, "minutes must be an integer"),
        (1.0, "minutes must be an integer"),
    ],
)
def test_amounts_are_positive_integers_up_to_the_maximum(minutes: object, message: str) -> None:
    _violation("invalid-amount", message, check_minutes(minutes))  # type: ignore[arg-type]
    assert check_minutes(MAX_MINUTES) is None


@pytest.mark.parametrize("bad", ["", "Giulia", "-x", "a b", "a" * 65, "zé"])
def test_account_ids_are_lower_case_and_short(bad: str) -> None:
    _violation("invalid-account-id", "must match", check_account_id(bad))


@pytest.mark.parametrize("good", ["a", "0", "giulia.rossi", "org:acme-1", "a_b", "a" * 64])
def test_valid_account_ids(good: str) -> None:
    assert check_account_id(good) is None


@pytest.mark.parametrize("bad", ["", ":post", "a b", "x" * 129, "é"])
def test_entry_ids_are_short_and_plain(log: Log, bad: str) -> None:
    _violation("invalid-id", "must be 1-128 characters", check_entry_id(bad))
    entry = msgspec.structs.replace(log.entry("transfer", legs("marco", "giulia", 1)), id=bad)
    with raises("invalid-id", "must be 1-128 characters"):
        log.apply(entry)


# ---------------------------------------------------------------------------------------
# Holds: hold-not-found, hold-resolved, hold-expired, post-exceeds-hold


def test_post_must_reference_a_hold(log: Log) -> None:
    transfer = log.transfer("marco", "giulia", 10)
    with raises("hold-not-found", f"entry {transfer.index} is not a hold"):
        log.post(transfer, 10)
    _violation("hold-not-found", "entry 99 is not a hold", open_hold(log.state, 99))


def test_a_hold_resolves_once(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60)
    post = log.post(hold, 60)
    with raises("hold-resolved", f"hold 'e{hold.index}' was already resolved by entry "
                f"{post.index}") as info:  # fmt: skip
        log.post(hold, 10)
    assert info.value.fields == {"resolved_by": post.index}
    with raises("hold-resolved", "already resolved"):
        log.void(hold)
    voided = log.hold("marco", "giulia", 5)
    log.void(voided)
    with raises("hold-resolved", "already resolved"):
        log.post(voided, 5)


def test_an_expired_hold_cannot_be_posted(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60, expires=T1)
    with raises("hold-expired", f"hold 'e{hold.index}' expired at {T1}"):
        log.post(hold, 60, time=T2)
    log.post(hold, 60, time=T1)  # at the expiry instant it is still valid
    _violation("hold-resolved", "already resolved", check_post(log.state, hold.index, 1, T0))


def test_a_post_may_not_exceed_its_hold(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60)
    with raises("post-exceeds-hold", f"cannot post 61 minutes: hold 'e{hold.index}' reserved 60"):
        log.post(hold, 61)
    _violation("invalid-amount", "got 0", check_post(log.state, hold.index, 0, T0))
    log.post(hold, 1)  # partial: the rest returns to Marco
    assert log.balance("marco") == (-1, 0, 0)


def test_expired_void_only_after_expiry(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60, expires=T1)
    with raises("invalid-entry", f"hold {hold.index} had not expired at {T0}"):
        log.void(hold, "expired", time=T0)
    forever = log.hold("marco", "giulia", 5)
    with raises("invalid-entry", f"hold {forever.index} had not expired"):
        log.void(forever, "expired", time=T2)
    log.void(hold, "expired", time=T1)
    assert log.balance("marco") == (0, 5, 0)


# ---------------------------------------------------------------------------------------
# Reversals: not-reversible, already-reversed


def test_only_transfers_and_posts_can_be_reversed(log: Log) -> None:
    hold = log.hold("marco", "giulia", 10)
    account_entry = 0
    for target in (account_entry, hold.index):
        with raises("not-reversible", f"entry {target} cannot be reversed: only transfers and "
                    "posted holds can"):  # fmt: skip
            log.apply(log.entry("reversal", negate(hold.postings), refs={"reverses": target}))
    transfer = log.transfer("marco", "giulia", 10)
    reversal = log.reverse(transfer)
    with raises("not-reversible", f"entry {reversal.index} cannot be reversed"):
        log.reverse(reversal)


def test_an_entry_is_reversed_once(log: Log) -> None:
    transfer = log.transfer("marco", "giulia", 10)
    first = log.reverse(transfer)
    with raises("already-reversed", f"entry {transfer.index} was already reversed by entry "
                f"{first.index}") as info:  # fmt: skip
        log.reverse(transfer)
    assert info.value.fields == {"reversed_by": first.index}
    _violation("already-reversed", "already reversed", check_reversal(log.state, transfer.index))


def test_a_reversal_must_negate_its_target(log: Log) -> None:
    transfer = log.transfer("marco", "giulia", 10)
    with raises("invalid-entry", f"reversal postings are not the negation of entry "
                f"{transfer.index}"):  # fmt: skip
        log.apply(log.entry("reversal", legs("giulia", "marco", 9),
                            refs={"reverses": transfer.index}))  # fmt: skip
    with raises("invalid-entry", "not the negation"):
        swapped = tuple(reversed(negate(transfer.postings)))
        log.apply(log.entry("reversal", swapped, refs={"reverses": transfer.index}))


# ---------------------------------------------------------------------------------------
# Accounts: account-kind-change, invalid-limits, invalid-account-kind


def test_an_account_entry_can_change_limits_but_never_the_kind(log: Log) -> None:
    spec = AccountSpec(id="marco", kind="organisation", min_balance=-600, max_balance=None)
    with raises("account-kind-change", "account 'marco' is a member; its kind cannot change"):
        log.apply(log.entry("account", account=spec))
    log.open("marco", -1000, 2000)
    assert (log.state.accounts["marco"].min_balance, log.state.accounts["marco"].max_balance) == (
        -1000,
        2000,
    )


def test_new_limits_must_hold_for_the_current_balances(log: Log) -> None:
    log.transfer("marco", "giulia", 100)
    log.hold("marco", "giulia", 50)
    with raises("invalid-limits", "account 'marco' has -150 minutes available, below the new "
                "limit"):  # fmt: skip
        log.open("marco", -149)
    with raises("invalid-limits", "account 'giulia' could reach 150, above the new limit"):
        log.open("giulia", 0, 149)
    log.open("marco", -150)
    log.open("giulia", 0, 150)


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (AccountSpec(id="a", kind="member", min_balance=1, max_balance=None),
         "invalid-limits", "min_balance must be zero or negative"),
        (AccountSpec(id="a", kind="member", min_balance=None, max_balance=-1),
         "invalid-limits", "max_balance must be zero or positive"),
        (AccountSpec(id="a", kind="wizard", min_balance=None, max_balance=None),
         "invalid-account-kind", "account kind 'wizard' is not one of clearing, member"),
        (AccountSpec(id="A", kind="member", min_balance=None, max_balance=None),
         "invalid-account-id", "account id 'A' must match"),
    ],
)  # fmt: skip
def test_account_specs_are_checked(log: Log, spec: AccountSpec, code: str, message: str) -> None:
    _violation(code, message, check_limits_spec(spec))
    with raises(code, message):
        log.apply(log.entry("account", account=spec))


# ---------------------------------------------------------------------------------------
# invalid-entry: shapes a valid log never contains


def _transfer_legs() -> tuple[Posting, Posting]:
    return legs("marco", "giulia", 5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda g: g.entry("gift", _transfer_legs()), "unknown entry kind 'gift'"),
        (lambda g: g.entry("transfer", _transfer_legs(), time="2026-11-25T09:00:00Z"),
         "time '2026-11-25T09:00:00Z' is not RFC 3339 UTC"),
        (lambda g: g.entry("transfer", _transfer_legs(),
                           account=AccountSpec(id="x", kind="member", min_balance=None,
                                               max_balance=None)),
         "a transfer entry must not carry an account"),
        (lambda g: g.entry("account"), "an account entry carries an account and no postings"),
        (lambda g: g.entry("account", _transfer_legs(),
                           account=AccountSpec(id="x", kind="member", min_balance=None,
                                               max_balance=None)),
         "an account entry carries an account and no postings or refs"),
        (lambda g: g.entry("transfer", _transfer_legs(), refs={"hold": 0}),
         "unexpected refs on a transfer: hold"),
        (lambda g: g.entry("transfer", _transfer_legs(), refs={"reverses": 0, "policy": "p"}),
         "unexpected refs on a transfer: reverses"),
        (lambda g: g.entry("transfer", _transfer_legs(), refs={"exchange": 7}),
         "annotation ref 'exchange' must be a string of at most 256 characters"),
        (lambda g: g.entry("hold", _transfer_legs(), refs={"exchange": "x" * 257}),
         "annotation ref 'exchange' must be a string of at most 256 characters"),
        (lambda g: g.entry("hold", _transfer_legs(), refs={"reason": "voided"}),
         "unexpected refs on a hold: reason"),
        (lambda g: g.entry("reversal", _transfer_legs()), "reversal lacks refs: reverses"),
        (lambda g: g.entry("reversal", _transfer_legs(), refs={"reverses": "0"}),
         "ref reverses='0' is not an earlier entry"),
        (lambda g: g.entry("reversal", _transfer_legs(), refs={"reverses": 3}),
         "ref reverses=3 is not an earlier entry"),
        (lambda g: g.entry("reversal", _transfer_legs(), refs={"reverses": -1}),
         "ref reverses=-1 is not an earlier entry"),
        (lambda g: g.entry("hold", _transfer_legs(), refs={"expires": "tomorrow"}),
         "hold expiry is not an RFC 3339 UTC time"),
        (lambda g: g.entry("hold", _transfer_legs(), refs={"expires": 5}),
         "hold expiry is not an RFC 3339 UTC time"),
        (lambda g: g.entry("hold", tuple(reversed(_transfer_legs()))),
         "a hold lists the payer's debit first"),
        (lambda g: g.entry("hold", [Posting(account="sponsor", minutes=-6),
                                    Posting(account="marco", minutes=3),
                                    Posting(account="giulia", minutes=3)]),
         "a hold has exactly two postings"),
        (lambda g: g.entry("post", _transfer_legs()), "post lacks refs: hold"),
        (lambda g: g.entry("void", refs={"hold": 0}), "void lacks refs: reason"),
        (lambda g: g.entry("void", _transfer_legs(), refs={"hold": 0, "reason": "voided"}),
         "a void moves nothing: it has no postings"),
        (lambda g: g.entry("void", refs={"hold": 0, "reason": "changed-mind"}),
         "void reason 'changed-mind' is not voided or expired"),
    ],
)  # fmt: skip
def test_malformed_entries_are_invalid(log: Log, build: object, message: str) -> None:
    entry = build(log)  # type: ignore[operator]
    with raises("invalid-entry", re.escape(message)) as info:
        log.apply(entry)
    assert info.value.code == "invalid-entry"


def test_a_post_must_move_between_the_holds_accounts(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60)
    with raises("invalid-entry", f"post accounts differ from hold {hold.index}'s"):
        log.apply(log.entry("post", legs("sponsor", "giulia", 60), refs={"hold": hold.index}))


def test_a_void_may_not_name_a_missing_hold(log: Log) -> None:
    log.transfer("marco", "giulia", 5)
    with raises("hold-not-found", "entry 3 is not a hold"):
        log.apply(log.entry("void", refs={"hold": 3, "reason": "voided"}))


def test_a_failed_entry_leaves_the_state_untouched(log: Log) -> None:
    hold = log.hold("marco", "giulia", 60)
    before = (log.balance("marco"), log.balance("giulia"), log.state.holds[hold.index].resolved_by)
    for bad in (
        log.entry("post", legs("marco", "giulia", 61), refs={"hold": hold.index}),
        log.entry("transfer", legs("marco", "giulia", 301)),
        log.entry("reversal", legs("giulia", "marco", 60), refs={"reverses": hold.index}),
    ):
        with pytest.raises(RuleViolation):
            apply_entry(log.state, bad)
    after = (log.balance("marco"), log.balance("giulia"), log.state.holds[hold.index].resolved_by)
    assert before == after


def test_a_memo_is_at_most_1000_characters(log: Log) -> None:
    long_memo = "𝄞" * 1000  # characters, not bytes: 4000 bytes of UTF-8 are fine
    entry = msgspec.structs.replace(log.entry("transfer", legs("marco", "giulia", 5)),
                                    memo=long_memo)  # fmt: skip
    log.apply(entry)
    too_long = msgspec.structs.replace(log.entry("transfer", legs("marco", "giulia", 5)),
                                       memo=long_memo + "!")  # fmt: skip
    with raises("invalid-memo", "memo is longer than 1000 characters"):
        log.apply(too_long)


@pytest.mark.parametrize("name", ["min_balance", "max_balance"])
def test_limits_stay_within_the_safe_integer_range(name: str) -> None:
    values = {"min_balance": None, "max_balance": None, name: 2**53 * (-1 if "min" in name else 1)}
    spec = AccountSpec(id="a", kind="member", **values)  # type: ignore[arg-type]
    _violation("invalid-limits", rf"{name} must be within ±\(2\^53 - 1\)", check_limits_spec(spec))


def test_transfers_and_holds_carry_annotations_the_rules_ignore(log: Log) -> None:
    # A policy grant names its policy, version and period; an exchange's hold names the
    # exchange. The rules carry these strings and apply the entry as a plain one.
    grant = {"policy": "acme-childcare", "policy_version": "ab" * 32, "period": "2026-12"}
    log.apply(log.entry("transfer", legs("sponsor", "marco", 240), refs=grant))
    held = log.apply(
        log.entry("hold", legs("marco", "giulia", 90), refs={"exchange": "x1", "expires": T2})
    )
    assert log.balance("marco") == (240, 90, 0)
    assert log.state.holds[held.index].expires == T2
