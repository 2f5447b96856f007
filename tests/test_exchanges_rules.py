"""The exchange state machine, amounts, deadlines, entry ids and group plans: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scambio.ledger.errors import RuleViolation
from scambio.timebank import exchange_rules as rules
from scambio.timebank.exchange_rules import (
    ACCEPT,
    AUTO_CONFIRM,
    CANCEL,
    CONFIRM,
    DECLINE,
    DISPUTE,
    EXPIRE,
    MARK_DONE,
    RESOLVE,
    Leg,
    Policy,
)

EX = "0f8e1c9a-2b7d-4e51-9a3c-5d6f7a8b9c0d"


def who(
    *,
    provider: bool = False,
    receiver: bool = False,
    proposer: str | None = rules.PROVIDER,
    manager: bool = False,
) -> frozenset[str]:
    return rules.roles(
        holds_provider=provider, holds_receiver=receiver, proposer_side=proposer, manager=manager
    )


GIULIA = who(provider=True)  # offered help and proposed
MARCO = who(receiver=True)  # the counterpart, who pays
MANAGER = who(manager=True)
STRANGER = who()
SYSTEM = frozenset({rules.SYSTEM})


def test_roles_name_the_proposer_and_the_counterpart() -> None:
    assert {rules.PROVIDER, rules.PROPOSER} == GIULIA
    assert {rules.RECEIVER, rules.COUNTERPART} == MARCO
    # When the receiver asked, the provider answers.
    assert who(provider=True, proposer=rules.RECEIVER) == {rules.PROVIDER, rules.COUNTERPART}
    # When a manager introduced them, the paying receiver answers.
    assert who(receiver=True, proposer=None) == {rules.RECEIVER, rules.COUNTERPART}
    assert who(provider=True, proposer=None) == {rules.PROVIDER}
    assert frozenset() == STRANGER


@pytest.mark.parametrize(
    ("state", "action", "caller", "target", "effect"),
    [
        (rules.PROPOSED, ACCEPT, MARCO, rules.ACCEPTED, rules.HOLD),
        (rules.PROPOSED, ACCEPT, MANAGER, rules.ACCEPTED, rules.HOLD),
        (rules.PROPOSED, DECLINE, MARCO, rules.DECLINED, rules.VOID),
        (rules.PROPOSED, CANCEL, GIULIA, rules.CANCELLED, rules.VOID),
        (rules.ACCEPTED, CANCEL, MARCO, rules.CANCELLED, rules.VOID),
        (rules.ACCEPTED, CANCEL, GIULIA, rules.CANCELLED, rules.VOID),
        (rules.ACCEPTED, MARK_DONE, GIULIA, rules.DONE, rules.NOTHING),
        (rules.DONE, CONFIRM, MARCO, rules.CONFIRMED, rules.POST),
        (rules.DONE, AUTO_CONFIRM, SYSTEM, rules.CONFIRMED, rules.POST),
        (rules.DONE, DISPUTE, MARCO, rules.DISPUTED, rules.NOTHING),
        (rules.ACCEPTED, DISPUTE, GIULIA, rules.DISPUTED, rules.NOTHING),
        (rules.DISPUTED, RESOLVE, MANAGER, rules.RESOLVED, rules.POST_OR_VOID),
        (rules.ACCEPTED, EXPIRE, SYSTEM, rules.EXPIRED, rules.VOID),
    ],
)
def test_allowed_moves(
    state: str, action: str, caller: frozenset[str], target: str, effect: str
) -> None:
    step = rules.step(EX, state, action, caller)
    assert (step.target, step.effect) == (target, effect)


@pytest.mark.parametrize(
    ("state", "action", "caller", "code"),
    [
        # Nobody accepts their own proposal, or someone else's exchange.
        (rules.PROPOSED, ACCEPT, GIULIA, "forbidden"),
        (rules.PROPOSED, ACCEPT, STRANGER, "forbidden"),
        (rules.PROPOSED, DECLINE, GIULIA, "forbidden"),
        # The counterpart declines rather than cancels a proposal.
        (rules.PROPOSED, CANCEL, MARCO, "invalid-transition"),
        (rules.ACCEPTED, MARK_DONE, MARCO, "forbidden"),
        (rules.DONE, CONFIRM, GIULIA, "forbidden"),
        (rules.DONE, CONFIRM, STRANGER, "forbidden"),
        # Managers resolve disputes, they do not open them; the job only confirms/expires.
        (rules.DONE, DISPUTE, MANAGER, "forbidden"),
        (rules.DONE, CONFIRM, SYSTEM, "forbidden"),
        (rules.DISPUTED, RESOLVE, MARCO, "forbidden"),
        # Right person, wrong moment.
        (rules.CANCELLED, CONFIRM, MARCO, "invalid-transition"),
        (rules.PROPOSED, CONFIRM, MARCO, "invalid-transition"),
        (rules.DONE, CANCEL, GIULIA, "invalid-transition"),
        (rules.CONFIRMED, DISPUTE, MARCO, "invalid-transition"),
        (rules.DECLINED, ACCEPT, MARCO, "invalid-transition"),
        (rules.RESOLVED, RESOLVE, MANAGER, "invalid-transition"),
    ],
)
def test_refused_moves(state: str, action: str, caller: frozenset[str], code: str) -> None:
    with pytest.raises(RuleViolation, match=action) as caught:
        rules.step(EX, state, action, caller)
    assert caught.value.code == code
    if code == "invalid-transition":
        assert caught.value.fields["current_state"] == state


def test_a_manager_who_is_a_party_may_not_resolve_their_own_dispute() -> None:
    party_manager = who(receiver=True, manager=True)
    with pytest.raises(RuleViolation, match="may not resolve") as caught:
        rules.step(EX, rules.DISPUTED, RESOLVE, party_manager)
    assert caught.value.code == "forbidden"


def test_available_actions_are_what_the_caller_may_do_now() -> None:
    assert rules.available(rules.PROPOSED, MARCO) == [ACCEPT, DECLINE]
    assert rules.available(rules.PROPOSED, GIULIA) == [CANCEL]
    assert rules.available(rules.ACCEPTED, GIULIA) == [CANCEL, MARK_DONE, DISPUTE]
    assert rules.available(rules.DONE, MARCO) == [CONFIRM, DISPUTE]
    assert rules.available(rules.DISPUTED, MANAGER) == [RESOLVE]
    assert rules.available(rules.CONFIRMED, MARCO) == []
    assert rules.available(rules.PROPOSED, STRANGER) == []


def test_repeats_are_recognised() -> None:
    assert rules.reached_by(rules.CONFIRMED, CONFIRM)
    assert rules.reached_by(rules.CONFIRMED, AUTO_CONFIRM)
    assert not rules.reached_by(rules.CANCELLED, CONFIRM)
    assert rules.may_repeat(CONFIRM, MARCO)
    assert not rules.may_repeat(CONFIRM, GIULIA)


def test_spending_moves_need_the_transfer_scope() -> None:
    assert rules.needs_transfer_scope(ACCEPT, MARCO)
    assert rules.needs_transfer_scope(CONFIRM, MARCO)
    assert rules.needs_transfer_scope("propose", who(receiver=True, proposer=rules.RECEIVER))
    assert not rules.needs_transfer_scope(MARK_DONE, GIULIA)
    assert not rules.needs_transfer_scope(CONFIRM, MANAGER)
    assert not rules.needs_transfer_scope(ACCEPT, who(provider=True, proposer=rules.RECEIVER))


@pytest.mark.parametrize("minutes", [0, -1, rules.EXCHANGE_MAX_MINUTES + 1, 10**12, True])
def test_agreed_minutes_are_bounded(minutes: int) -> None:
    with pytest.raises(RuleViolation, match="whole number from 1") as caught:
        rules.check_agreed(minutes)
    assert caught.value.code == "invalid-amount"


def test_actual_and_resolved_minutes() -> None:
    assert rules.check_actual(75, 90) == 75
    with pytest.raises(RuleViolation, match="more than the 90 agreed") as caught:
        rules.check_actual(91, 90)
    assert caught.value.code == "exceeds-agreed"
    assert rules.check_resolution(0, 90) == 0
    assert rules.check_resolution(90, 90) == 90
    with pytest.raises(RuleViolation, match="0 or more"):
        rules.check_resolution(-5, 90)
    with pytest.raises(RuleViolation, match="more than the 90 held"):
        rules.check_resolution(95, 90)


def test_the_hold_outlasts_every_window() -> None:
    policy = Policy(confirm_days=7, done_days=90, resolve_days=30)
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    last_done = policy.done_due(accepted)
    last_confirm = policy.confirm_due(last_done)
    hold_end = accepted.timestamp() + policy.hold_seconds
    assert last_confirm.timestamp() < hold_end
    assert hold_end - last_confirm.timestamp() == 30 * 86400
    with pytest.raises(ValueError, match="confirm_days"):
        Policy(confirm_days=0)


def test_policy_from_settings_uses_their_fields_when_present() -> None:
    class Settings:
        exchange_confirm_days = 3

    assert rules.policy_from(object()) == Policy()
    assert rules.policy_from(Settings()).confirm_days == 3


def test_entry_ids_carry_the_exchange_id() -> None:
    assert rules.entry_id(EX) == f"xch-{EX}"
    assert rules.settle_id(EX) == f"xch-{EX}.settle"
    assert rules.group_entry_id(EX, 3) == f"grp-{EX}.3"
    for entry in (f"xch-{EX}", f"xch-{EX}:post", f"xch-{EX}:void", f"xch-{EX}.settle"):
        assert rules.parse_entry_id(entry) == ("exchange", EX)
    assert rules.parse_entry_id(f"grp-{EX}.12") == ("group", EX)
    for other in (EX, "xch-short", f"xch-{EX}x", "account:m-1", f"grp-{EX}"[:-1]):
        assert rules.parse_entry_id(other) is None
    assert rules.memo(EX) == f"exchange {EX}"
    assert "manager" in rules.memo(EX, recorded=True)


def test_a_lab_paid_by_participants_splits_fairly_and_sums_exactly() -> None:
    facilitators = ["f1", "f2"]
    people = [(f"p{n}", rules.SELF) for n in range(8)]
    legs = rules.plan_group(120, facilitators, people, "pool:community")
    assert sum(leg.minutes for leg in legs) == 240
    paid = {p: sum(leg.minutes for leg in legs if leg.payer == p) for p, _ in people}
    assert set(paid.values()) == {30}
    received = {f: sum(leg.minutes for leg in legs if leg.payee == f) for f in facilitators}
    assert received == {"f1": 120, "f2": 120}
    assert len(legs) <= len(people) + len(facilitators) - 1


def test_rounding_never_loses_a_minute_and_the_pool_pays_combined_shares() -> None:
    people = [("a", rules.SELF), ("b", rules.POOL), ("c", rules.POOL)]
    legs = rules.plan_group(100, ["f"], people, "pool:community")
    assert legs == [Leg("a", "f", 34, "a"), Leg("pool:community", "f", 66, None)]
    everyone_pooled = rules.plan_group(
        45, ["f1", "f2"], [("a", rules.POOL), ("b", rules.POOL)], "pool:x"
    )
    assert everyone_pooled == [Leg("pool:x", "f1", 45, None), Leg("pool:x", "f2", 45, None)]
    # More participants than minutes: some pay nothing, none pays a fraction.
    tiny = rules.plan_group(2, ["f"], [("a", rules.SELF), ("b", rules.SELF), ("c", "self")], "p")
    assert [(leg.payer, leg.minutes) for leg in tiny] == [("a", 1), ("b", 1)]
    with pytest.raises(RuleViolation, match="facilitators and participants"):
        rules.plan_group(10, [], [("a", rules.SELF)], "p")
