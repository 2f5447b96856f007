"""A stateful property test of the whole append path against a pure model of the rules.

Hypothesis drives a real LedgerService (the async service, run from sync rules on a private
event loop, on a fresh database per example) with random sequences of the operations people
perform: opening accounts (some with tight limits), transfers, holds with expiry, posts
(whole and partial), voids, time passing and expiry sweeps, reversals, linked batches and
retries. A small model written here from the rules' *specification* -- not from `rules.py`
-- predicts every outcome (accepted at which index, or refused with which code) and every
balance. After each step the invariants are checked:

* the posted balances sum to zero and debits pending equal credits pending;
* no account is outside its limits;
* the cached balances (`accounts` table) equal the model, and equal a replay of every stored
  entry through `rules.apply_entry` (which also re-checks each entry's canonical bytes and
  leaf hash, and the head root);
* every newly signed checkpoint verifies, matches the replayed root at its size, and is
  consistent with the previous one (`queries.consistency_proof` + `verify_consistency`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from scambio.ledger import merkle
from scambio.ledger.entry import MAX_MINUTES, decode_entry, encode_entry, format_time
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import open_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.store import queries
from scambio.store.commands import Appended, LinkedOutcome, Outcome, Transfer
from scambio.store.db import make_engine
from scambio.store.ledger import LedgerService
from scambio.store.tables import accounts, checkpoints

from .conftest import ORIGIN, REQUIRE_POSTGRES, SIGNER, Clock, Postgres, make_settings

T = TypeVar("T")

#: Account names the rules may open.
NAMES = ("ada", "bea", "cai", "dan", "eva")
KINDS = ("member", "member", "organisation", "pool", "sponsor", "wizard")
LOWS = (None, -600, -120, -30, 0, 5)
HIGHS = (None, 600, 120, 0, -5)
#: Mostly ordinary amounts; now and then zero, a large one, or one above the maximum.
MINUTES = st.integers(-3, 150).map(lambda m: {-3: MAX_MINUTES + 1, -2: 0, -1: 400}.get(m, m))
#: Who else a payer or payee may be, now and then: an unopened name, or one never opened.
STRANGERS = (*NAMES, "ghost")
MEMOS = st.sampled_from(["", "homework help", "città ☕ 6"])
EXPIRY = st.sampled_from([None, 60, 3600])

# ---------------------------------------------------------------------------------------
# The model


@dataclass
class MAccount:
    kind: str
    low: int | None
    high: int | None
    posted: int = 0
    dp: int = 0
    cp: int = 0

    def balances(self) -> tuple[str, int | None, int | None, int, int, int]:
        return (self.kind, self.low, self.high, self.posted, self.dp, self.cp)


@dataclass
class MEntry:
    """What a retry is compared with (the fields each command's `conflict` looks at)."""

    index: int
    kind: str
    payer: str = ""
    payee: str = ""
    minutes: int = 0
    memo: str = ""
    expires_in: int | None = None
    target: int = -1
    spec: tuple[str, int | None, int | None] | None = None


@dataclass
class MHold:
    id: str
    payer: str
    payee: str
    minutes: int
    expires: str | None
    resolved: bool = False


@dataclass
class MMoved:
    legs: tuple[tuple[str, int], ...]
    reversed: bool = False


#: ("ok", index, created) or ("err", code, {field: value} that must match).
Prediction = tuple[str, Any, Any]


def ok(index: int, created: bool = True) -> Prediction:
    return ("ok", index, created)


def err(code: str, **fields: object) -> Prediction:
    return ("err", code, fields)


@dataclass
class Model:
    clock: Clock
    accounts: dict[str, MAccount] = field(default_factory=dict)
    entries: dict[str, MEntry] = field(default_factory=dict)
    holds: dict[int, MHold] = field(default_factory=dict)
    moved: dict[int, MMoved] = field(default_factory=dict)
    size: int = 0

    @property
    def now(self) -> str:
        return format_time(self.clock.now)

    def _new(self, entry_id: str, entry: MEntry) -> int:
        self.entries[entry_id] = entry
        self.size += 1
        return entry.index

    def _limits(self, legs: tuple[tuple[str, int], ...]) -> Prediction | None:
        for account_id, delta in legs:
            a = self.accounts.get(account_id)
            if a is None:
                return err("unknown-account", account=account_id)
            if delta < 0 and a.low is not None and a.posted - a.dp + delta < a.low:
                return err("limit-exceeded", account=account_id)
            if delta > 0 and a.high is not None and a.posted + a.cp + delta > a.high:
                return err("limit-exceeded", account=account_id)
        return None

    def _post(self, legs: tuple[tuple[str, int], ...]) -> None:
        for account_id, delta in legs:
            self.accounts[account_id].posted += delta

    def _reserve(self, hold: MHold, sign: int) -> None:
        self.accounts[hold.payer].dp += sign * hold.minutes
        self.accounts[hold.payee].cp += sign * hold.minutes

    def open_account(self, name: str, kind: str, low: int | None, high: int | None) -> Prediction:
        stored = self.entries.get(f"account:{name}")
        if stored is not None:
            assert stored.spec is not None
            for field_name, old, new in zip(
                ("kind", "min_balance", "max_balance"), stored.spec, (kind, low, high), strict=True
            ):
                if old != new:
                    return err("idempotency-conflict", field=field_name)
            return ok(stored.index, created=False)
        if kind not in ("member", "organisation", "sponsor", "pool", "clearing", "system"):
            return err("invalid-account-kind")
        if (low is not None and low > 0) or (high is not None and high < 0):
            return err("invalid-limits")
        self.accounts[name] = MAccount(kind, low, high)
        return ok(
            self._new(f"account:{name}", MEntry(self.size, "account", spec=(kind, low, high)))
        )

    def transfer(self, t: Transfer) -> Prediction:
        stored = self.entries.get(t.id)
        if stored is not None:
            differs = _transfer_conflict(stored, t)
            return (
                err("idempotency-conflict", field=differs) if differs else ok(stored.index, False)
            )
        if not 0 < t.minutes <= MAX_MINUTES:
            return err("invalid-amount")
        if t.payer == t.payee:
            return err("same-account")
        legs = ((t.payer, -t.minutes), (t.payee, t.minutes))
        refused = self._limits(legs)
        if refused:
            return refused
        expires_in = t.expires_in if t.hold else None
        entry = MEntry(
            self.size, "hold" if t.hold else "transfer", t.payer, t.payee, t.minutes, t.memo,
            expires_in,
        )  # fmt: skip
        index = self._new(t.id, entry)
        if t.hold:
            expires = None
            if expires_in is not None:
                expires = format_time(self.clock.now + timedelta(seconds=expires_in))
            hold = MHold(t.id, t.payer, t.payee, t.minutes, expires)
            self.holds[index] = hold
            self._reserve(hold, 1)
        else:
            self._post(legs)
            self.moved[index] = MMoved(legs)
        return ok(index)

    def _hold(self, hold_id: str) -> tuple[int, MHold] | None:
        entry = self.entries.get(hold_id)
        if entry is None or entry.kind != "hold":
            return None
        return entry.index, self.holds[entry.index]

    def post(self, hold_id: str, minutes: int | None) -> Prediction:
        stored = self.entries.get(f"{hold_id}:post")
        if stored is not None:
            if stored.kind != "post":
                return err("idempotency-conflict", field="id")
            if minutes is not None and minutes != stored.minutes:
                return err("idempotency-conflict", field="minutes")
            return ok(stored.index, False)
        found = self._hold(hold_id)
        if found is None:
            return err("hold-not-found")
        hold_index, hold = found
        amount = hold.minutes if minutes is None else minutes
        if not 0 < amount <= MAX_MINUTES:
            return err("invalid-amount")
        if hold.resolved:
            return err("hold-resolved")
        if hold.expires is not None and self.now > hold.expires:
            return err("hold-expired")
        if amount > hold.minutes:
            return err("post-exceeds-hold")
        self._reserve(hold, -1)
        legs = ((hold.payer, -amount), (hold.payee, amount))
        self._post(legs)
        hold.resolved = True
        entry = MEntry(self.size, "post", hold.payer, hold.payee, amount, target=hold_index)
        index = self._new(f"{hold_id}:post", entry)
        self.moved[index] = MMoved(legs)
        return ok(index)

    def void(self, hold_id: str) -> Prediction:
        stored = self.entries.get(f"{hold_id}:void")
        if stored is not None:
            return (
                ok(stored.index, False)
                if stored.kind == "void"
                else err("idempotency-conflict", field="id")
            )
        found = self._hold(hold_id)
        if found is None:
            return err("hold-not-found")
        hold_index, hold = found
        if hold.resolved:
            return err("hold-resolved")
        self._reserve(hold, -1)
        hold.resolved = True
        return ok(self._new(f"{hold_id}:void", MEntry(self.size, "void", target=hold_index)))

    def expire_holds(self) -> list[Prediction]:
        due = [
            h.id
            for _, h in sorted(self.holds.items())
            if not h.resolved and h.expires is not None and h.expires <= self.now
        ]
        return [self.void(hold_id) for hold_id in due]

    def reverse(self, entry_id: str, target: int, memo: str) -> Prediction:
        stored = self.entries.get(entry_id)
        if stored is not None:
            if stored.kind != "reversal":
                return err("idempotency-conflict", field="id")
            if stored.target != target:
                return err("idempotency-conflict", field="index")
            if stored.memo != memo:
                return err("idempotency-conflict", field="memo")
            return ok(stored.index, False)
        moved = self.moved.get(target)
        if moved is None:
            return err("not-reversible")
        if moved.reversed:
            return err("already-reversed")
        legs = tuple((account_id, -delta) for account_id, delta in moved.legs)
        refused = self._limits(legs)
        if refused:
            return refused
        self._post(legs)
        moved.reversed = True
        return ok(self._new(entry_id, MEntry(self.size, "reversal", memo=memo, target=target)))

    def linked(self, items: list[Transfer]) -> list[Prediction]:
        saved = copy.deepcopy((self.accounts, self.entries, self.holds, self.moved, self.size))
        results: list[Prediction] = []
        for item in items:
            results.append(self.transfer(item))
            if results[-1][0] == "err":
                break
        if results[-1][0] == "ok":
            return results
        self.accounts, self.entries, self.holds, self.moved, self.size = saved
        failed = len(results) - 1
        return [
            results[-1] if i == failed else err("linked-failed", failed_item=failed)
            for i in range(len(items))
        ]


def _transfer_conflict(stored: MEntry, t: Transfer) -> str | None:
    if stored.kind not in ("transfer", "hold"):
        return "id"
    checks = (
        ("hold", stored.kind == "hold", t.hold),
        ("payer", stored.payer, t.payer),
        ("payee", stored.payee, t.payee),
        ("minutes", stored.minutes, t.minutes),
        ("memo", stored.memo, t.memo),
    )
    for name, old, new in checks:
        if old != new:
            return name
    if t.hold and stored.expires_in != t.expires_in:
        return "hold_expires_in"
    return None


def observed(outcome: Outcome) -> Prediction:
    if isinstance(outcome, Appended):
        return ok(outcome.index, outcome.created)
    assert isinstance(outcome, RuleViolation), outcome
    return ("err", outcome.code, outcome.fields)


def assert_matches(predicted: Prediction, outcome: Outcome, what: str) -> None:
    actual = observed(outcome)
    if predicted[0] == "ok" or actual[0] == "ok":
        assert actual == predicted, f"{what}: predicted {predicted}, got {outcome!r}"
        return
    assert actual[1] == predicted[1], f"{what}: predicted {predicted}, got {outcome!r}"
    for name, value in predicted[2].items():
        assert actual[2].get(name) == value, f"{what}: {name} differs in {outcome!r}"


# ---------------------------------------------------------------------------------------
# Fresh databases per example, from the same templates as the `db_url` fixture


@dataclass
class Backend:
    name: str
    tmp_path: Path
    sqlite_template: Path
    postgres: Postgres | None
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def create(self) -> str:
        if self.postgres is not None:
            return self.postgres.create()
        path = self.tmp_path / f"machine-{next(self.counter)}.db"
        shutil.copyfile(self.sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"

    def drop(self, url: str) -> None:
        if self.postgres is not None:
            self.postgres.drop(url)
            return
        path = Path(url.split(":///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# The machine


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.url = backend.create()
        self.clock = Clock()
        # A pooled engine, unlike the fixtures' NullPool: the machine owns its event loop and
        # disposes of the pool on it, and reconnecting at every step would double the run time.
        self.engine = make_engine(self.url, pool_size=2)
        self.service = LedgerService(
            self.engine, SIGNER, make_settings(self.url, backend.tmp_path), clock=self.clock
        )
        self.run(self.service.start())
        self.model = Model(self.clock)
        self.ids = itertools.count()
        self.transfer_ids: list[str] = []
        self.hold_ids: list[str] = []
        self.reversal_ids: list[str] = []
        self.checked = (0, merkle.EMPTY_ROOT)  # the last checkpoint verified
        # An independent replay of the log, fed each new entry once, from index 0 on.
        self.replay = LedgerState()
        self.frontier = merkle.CompactRange()
        self.roots = [merkle.EMPTY_ROOT]  # the replayed root at every size

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await awaitable

        return self.loop.run_until_complete(wrap())

    def teardown(self) -> None:
        try:
            self.run(self.service.stop())
            self.run(self.engine.dispose())
        finally:
            self.loop.close()
            self.backend.drop(self.url)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def expect(self, predicted: Prediction, outcome: Outcome, what: str) -> None:
        assert_matches(predicted, outcome, what)

    # -- rules -------------------------------------------------------------------------

    @initialize()
    def open_two_ordinary_members_and_a_tight_one(self) -> None:
        for name, low, high in (("ada", -600, None), ("bea", -600, 600), ("cai", -30, 60)):
            predicted = self.model.open_account(name, "member", low, high)
            self.expect(predicted, self.run(self.service.open_account(name, "member", low, high)),
                        f"open {name}")  # fmt: skip

    @rule(
        data=st.data(),
        kind=st.sampled_from(KINDS),
        low=st.sampled_from(LOWS),
        high=st.sampled_from(HIGHS),
    )
    def open_account(
        self, data: st.DataObject, kind: str, low: int | None, high: int | None
    ) -> None:
        """Open a new account, or now and then ask again for an existing one."""
        unopened = [n for n in NAMES if n not in self.model.accounts]
        if unopened and data.draw(st.integers(0, 3), label="new") > 0:
            name = data.draw(st.sampled_from(unopened), label="name")
        else:
            name = data.draw(st.sampled_from(NAMES), label="existing name")
            existing = self.model.accounts.get(name)
            if existing is not None and data.draw(st.booleans(), label="same spec"):
                kind, low, high = existing.kind, existing.low, existing.high
        predicted = self.model.open_account(name, kind, low, high)
        outcome = self.run(self.service.open_account(name, kind, low, high))
        self.expect(predicted, outcome, f"open {name} {kind} [{low}, {high}]")

    def _transfer(self, t: Transfer) -> None:
        predicted = self.model.transfer(t)
        outcome = self.run(self.service.transfer(t))
        self.expect(predicted, outcome, repr(t))
        if isinstance(outcome, Appended) and outcome.created:
            (self.hold_ids if t.hold else self.transfer_ids).append(t.id)

    def _parties(self, data: st.DataObject) -> tuple[str, str]:
        """Mostly two different open accounts; sometimes anyone, even the same one twice."""
        opened = sorted(self.model.accounts)
        if len(opened) >= 2 and data.draw(st.integers(0, 7), label="ordinary") > 0:
            payer = data.draw(st.sampled_from(opened), label="payer")
            payee = data.draw(st.sampled_from([n for n in opened if n != payer]), label="payee")
            return payer, payee
        return (
            data.draw(st.sampled_from(STRANGERS), label="any payer"),
            data.draw(st.sampled_from(STRANGERS), label="any payee"),
        )

    @rule(data=st.data(), minutes=MINUTES, memo=MEMOS)
    def transfer(self, data: st.DataObject, minutes: int, memo: str) -> None:
        payer, payee = self._parties(data)
        self._transfer(Transfer(self.fresh("t"), payer, payee, minutes, memo))

    @rule(data=st.data(), minutes=MINUTES, expires_in=EXPIRY)
    def hold(self, data: st.DataObject, minutes: int, expires_in: int | None) -> None:
        payer, payee = self._parties(data)
        self._transfer(Transfer(self.fresh("h"), payer, payee, minutes, "", True, expires_in))

    @precondition(lambda self: self.transfer_ids or self.hold_ids)
    @rule(data=st.data(), change=st.sampled_from(["none", "none", "minutes", "memo", "hold"]))
    def retry(self, data: st.DataObject, change: str) -> None:
        """Send an earlier request again, unchanged (a retry) or changed (a conflict)."""
        t_id = data.draw(st.sampled_from(self.transfer_ids + self.hold_ids), label="id")
        stored = self.model.entries[t_id]
        hold = stored.kind == "hold"
        t = Transfer(t_id, stored.payer, stored.payee, stored.minutes, stored.memo, hold,
                     stored.expires_in)  # fmt: skip
        if change == "minutes":
            t = Transfer(t.id, t.payer, t.payee, t.minutes + 1, t.memo, t.hold, t.expires_in)
        elif change == "memo":
            t = Transfer(t.id, t.payer, t.payee, t.minutes, t.memo + "!", t.hold, t.expires_in)
        elif change == "hold":
            t = Transfer(t.id, t.payer, t.payee, t.minutes, t.memo, not t.hold, None)
        self._transfer(t)

    @precondition(lambda self: self.hold_ids)
    @rule(
        data=st.data(),
        how=st.sampled_from(["post", "post", "void"]),
        minutes=st.one_of(st.none(), st.integers(0, 160)),
    )
    def resolve_hold(self, data: st.DataObject, how: str, minutes: int | None) -> None:
        """Post a hold (whole, part, or too much) or void it; now and then name a non-hold."""
        if data.draw(st.integers(0, 5), label="odd hold id") > 0:
            hold_id = data.draw(st.sampled_from(self.hold_ids), label="hold")
        else:
            hold_id = data.draw(st.sampled_from([*self.transfer_ids, "h-none"]), label="not a hold")
        if how == "void":
            predicted = self.model.void(hold_id)
            outcome = self.run(self.service.void(hold_id))
        else:
            predicted = self.model.post(hold_id, minutes)
            outcome = self.run(self.service.post(hold_id, minutes))
            if isinstance(outcome, Appended) and outcome.created:
                self.transfer_ids.append(f"{hold_id}:post")  # reversible, like a transfer
        self.expect(predicted, outcome, f"{how} {hold_id} {minutes}")

    @rule(seconds=st.sampled_from([0, 30, 600, 3600, 7200]), sweep=st.booleans())
    def time_passes(self, seconds: int, sweep: bool) -> None:
        """The clock moves on; the expiry sweep (as the service runs it) voids due holds."""
        self.clock.advance(seconds=seconds)
        if not sweep:
            return
        predicted = self.model.expire_holds()
        outcomes = self.run(self.service.expire_holds())
        assert len(outcomes) == len(predicted), f"expired {outcomes!r}, predicted {predicted}"
        for p, o in zip(predicted, outcomes, strict=True):
            self.expect(p, o, "expiry sweep")
            assert isinstance(o, Appended)
            assert o.entry.refs["reason"] == "expired"

    @precondition(lambda self: self.model.moved)
    @rule(data=st.data(), memo=st.sampled_from(["", "mistake"]))
    def reverse(self, data: st.DataObject, memo: str) -> None:
        target = data.draw(st.sampled_from(sorted(self.model.moved)), label="target")
        if data.draw(st.integers(0, 5), label="odd target") == 0:
            target = data.draw(st.integers(-1, self.model.size + 1), label="any target")
        entry_id = self.fresh("r")
        if self.reversal_ids and data.draw(st.booleans(), label="retry reversal"):
            entry_id = data.draw(st.sampled_from(self.reversal_ids), label="reversal id")
        predicted = self.model.reverse(entry_id, target, memo)
        outcome = self.run(self.service.reverse(entry_id, target, memo))
        self.expect(predicted, outcome, f"reverse {target} as {entry_id}")
        if isinstance(outcome, Appended) and outcome.created:
            self.reversal_ids.append(entry_id)

    @rule(amounts=st.lists(st.integers(1, 60) | MINUTES, min_size=2, max_size=4), data=st.data())
    def linked(self, amounts: list[int], data: st.DataObject) -> None:
        items = [
            Transfer(self.fresh("l"), *self._parties(data), minutes, "linked")
            for minutes in amounts
        ]
        if self.transfer_ids and data.draw(st.booleans(), label="include a retry"):
            t_id = data.draw(st.sampled_from(self.transfer_ids), label="retried id")
            s = self.model.entries[t_id]
            if s.kind == "transfer":
                items.insert(0, Transfer(t_id, s.payer, s.payee, s.minutes, s.memo))
        predicted = self.model.linked(items)
        outcome: LinkedOutcome = self.run(self.service.linked(items))
        assert len(outcome.items) == len(items)
        for i, (p, o) in enumerate(zip(predicted, outcome.items, strict=True)):
            self.expect(p, o, f"linked item {i} of {items}")
        if outcome.ok:
            self.transfer_ids.extend(
                t.id for t, o in zip(items, outcome.items, strict=True)
                if isinstance(o, Appended) and o.created
            )  # fmt: skip

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def the_store_agrees_with_the_model_and_with_a_replay(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        async with self.service.read() as conn:
            rows = {r.id: r for r in await conn.execute(select(accounts))}
            head = await queries.head(conn)
            stored = [e async for e in queries.stream_entries(conn, self.frontier.size)]
            new_checkpoints = list(
                await conn.execute(
                    select(checkpoints)
                    .where(checkpoints.c.size > self.checked[0])
                    .order_by(checkpoints.c.size)
                )
            )
            proofs = {}
            previous = self.checked[0]
            for cp in new_checkpoints:
                if previous > 0:
                    proofs[cp.size] = await queries.consistency_proof(conn, previous, cp.size)
                previous = cp.size

        # Zero sum, pending balanced, limits, cache = model.
        assert sum(r.posted for r in rows.values()) == 0
        assert sum(r.debits_pending for r in rows.values()) == sum(
            r.credits_pending for r in rows.values()
        )
        for r in rows.values():
            assert r.min_balance is None or r.posted - r.debits_pending >= r.min_balance, r
            assert r.max_balance is None or r.posted + r.credits_pending <= r.max_balance, r
        cached = {
            r.id: (r.kind, r.min_balance, r.max_balance, r.posted, r.debits_pending,
                   r.credits_pending)
            for r in rows.values()
        }  # fmt: skip
        modelled = {k: a.balances() for k, a in self.model.accounts.items()}
        assert cached == modelled

        # Replay every stored entry (the new ones: the older were replayed already).
        assert [e.index for e in stored] == list(range(self.frontier.size, head.size))
        assert head.size == self.model.size
        state, frontier, roots = self.replay, self.frontier, self.roots
        for item in stored:
            entry = decode_entry(item.canonical)
            assert encode_entry(entry) == item.canonical
            assert merkle.leaf_hash(item.canonical) == item.leaf_hash
            assert (entry.index, entry.ledger, entry.v) == (item.index, ORIGIN, 1)
            apply_entry(state, entry)
            frontier.append(item.leaf_hash)
            roots.append(frontier.root())
        assert frontier.root() == head.root
        replayed = {
            k: (a.kind, a.min_balance, a.max_balance, a.posted, a.debits_pending,
                a.credits_pending)
            for k, a in state.accounts.items()
        }  # fmt: skip
        assert replayed == modelled

        # Every new checkpoint is signed, matches the log, and extends the previous one.
        size, root = self.checked
        for cp_row in new_checkpoints:
            cp = open_checkpoint(cp_row.note, SIGNER.verifier(), ORIGIN)
            assert (cp.size, cp.root) == (cp_row.size, bytes(cp_row.root))
            assert cp.root == roots[cp.size]
            if size > 0:
                merkle.verify_consistency(size, cp.size, proofs[cp.size], root, cp.root)
            size, root = cp.size, cp.root
        self.checked = (size, root)
        assert size == head.size
        assert open_checkpoint(head.checkpoint, SIGNER.verifier(), ORIGIN).root == head.root


MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_ledger_behaves_like_its_model(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> None:
    pg: Postgres | None = None
    if backend == "postgres":
        pg = request.getfixturevalue("postgres")
        assert pg is not None
        if pg.error:
            if REQUIRE_POSTGRES:
                pytest.fail(pg.error + " (SCAMBIO_REQUIRE_POSTGRES=1)")
            pytest.skip(pg.error)
    machine_backend = Backend(backend, tmp_path, sqlite_template, pg)
    factory: Callable[[], LedgerMachine] = lambda: LedgerMachine(machine_backend)  # noqa: E731
    run_state_machine_as_test(factory, settings=MACHINE_SETTINGS)
