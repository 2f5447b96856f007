"""The append path: one writer at a time per ledger, many requests per transaction.

Callers `submit` commands; a single task per process takes whatever is waiting (up to the
batch size), opens one transaction, takes the ledger head lock (`SELECT ... FOR UPDATE` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite), checks each command in order against running
balances with the pure rules (a rejected command does not fail its batch-mates), writes
postings, entries, tree nodes and balances, signs one checkpoint, commits, and only then
answers the callers. Several processes may append to one PostgreSQL ledger: the head lock
serialises them, and each re-reads the head inside the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger import merkle
from scambio.ledger.entry import (
    FORMAT_VERSION,
    KIND_ACCOUNT,
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    KIND_VOID,
    AccountSpec,
    Entry,
    Posting,
    decode_entry,
    encode_entry,
    format_time,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Checkpoint, Signer, sign_checkpoint
from scambio.ledger.rules import (
    AccountState,
    HoldState,
    LedgerState,
    MovedState,
    apply_entry,
    check_account_id,
    check_entry_id,
    check_limits_spec,
    check_minutes,
    legs,
    negate,
)
from scambio.store.commands import (
    Appended,
    Command,
    Linked,
    LinkedOutcome,
    OpenAccount,
    Outcome,
    PostHold,
    Reverse,
    Single,
    Transfer,
    VoidHold,
    idempotency_conflict,
)
from scambio.store.db import WRITER, is_postgres
from scambio.store.tables import accounts, checkpoints, entries, ledger_head, postings, tree_nodes

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class StorageUnavailable(Exception):
    """The database could not be reached or the commit failed; nothing was written."""


class LedgerNotInitialised(Exception):
    """The ledger head row is missing: run `scambio db upgrade` and start the service."""


@dataclass(slots=True)
class _Stored:
    entry: Entry
    leaf_hash: bytes
    tree_size: int


#: What applying one command gives before commit: a new entry, the stored original of a
#: retried request, or the rule it broke.
_Result = Entry | _Stored | RuleViolation


@dataclass(slots=True)
class _Batch:
    """Everything one transaction writes, built before any row is sent."""

    state: LedgerState
    start: int
    time: str
    stored: dict[str, _Stored]
    new_entries: list[tuple[Entry, list[int]]] = field(default_factory=list)
    new_ids: dict[str, Entry] = field(default_factory=dict)
    new_accounts: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)

    @property
    def next_index(self) -> int:
        return self.start + len(self.new_entries)


@dataclass(slots=True)
class _Waiting:
    command: Command
    future: asyncio.Future[Outcome | LinkedOutcome]


class Appender:
    """Batches commands into signed, committed ledger transactions."""

    def __init__(
        self,
        engine: AsyncEngine,
        signer: Signer,
        origin: str,
        *,
        batch_size: int = 1000,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._origin = origin
        self._batch_size = batch_size
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._frontier = merkle.CompactRange()
        self._postgres = is_postgres(engine)
        self.batches = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="scambio-appender")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, command: Single) -> Outcome:
        result = await self._submit(command)
        assert not isinstance(result, LinkedOutcome)
        return result

    async def submit_linked(self, command: Linked) -> LinkedOutcome:
        result = await self._submit(command)
        assert isinstance(result, LinkedOutcome)
        return result

    async def _submit(self, command: Command) -> Outcome | LinkedOutcome:
        if self._task is None:
            raise RuntimeError("the appender is not running")
        future: asyncio.Future[Outcome | LinkedOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(command, future))
        # Shield: a caller that gives up must not cancel a batch other callers share.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = _weight(first.command)
            while size < self._batch_size and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += _weight(item.command)
            try:
                await self._process(batch)
            except asyncio.CancelledError:
                _fail(batch, StorageUnavailable("the service is shutting down"))
                raise
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("append batch of %d failed: %s", len(batch), exc)
                self._frontier = merkle.CompactRange()
                _fail(batch, StorageUnavailable(f"the database is unavailable: {exc}"))
            except Exception as exc:
                log.exception("append batch of %d failed", len(batch))
                self._frontier = merkle.CompactRange()
                _fail(batch, exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    # -- one batch ---------------------------------------------------------------------

    async def _process(self, batch: Sequence[_Waiting]) -> None:
        async with self._engine.connect() as plain:
            conn = await plain.execution_options(**{WRITER: True})
            async with conn.begin():
                outcomes, frontier = await self._build_and_write(conn, batch)
        # Committed: only now may callers hear of success, and the cache move on.
        self._frontier = frontier
        self.batches += 1
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(outcome)

    async def _build_and_write(
        self, conn: AsyncConnection, batch: Sequence[_Waiting]
    ) -> tuple[list[Outcome | LinkedOutcome], merkle.CompactRange]:
        head_query = select(ledger_head.c.size, ledger_head.c.root).where(ledger_head.c.id == 1)
        if self._postgres:
            head_query = head_query.with_for_update()
        head = (await conn.execute(head_query)).one_or_none()
        if head is None:
            raise LedgerNotInitialised("the ledger has no head row; start the service once")
        size, root = int(head.size), bytes(head.root)
        frontier = await self._load_frontier(conn, size, root)

        commands = [c for w in batch for c in _singles(w.command)]
        work = await self._load_state(conn, commands, size)
        results: list[_Result | list[_Result]] = []
        for waiting in batch:
            command = waiting.command
            if isinstance(command, Linked):
                results.append(self._apply_linked(work, command))
            else:
                results.append(self._apply_one(work, command))
        if not work.new_entries:
            return [_finish(r, {}, size) for r in results], frontier

        new_size = work.next_index
        leaves = await self._write(conn, work, frontier, new_size)
        cp = Checkpoint(self._origin, new_size, frontier.root())
        note = sign_checkpoint(cp, self._signer)
        await conn.execute(
            insert(checkpoints),
            {"size": new_size, "root": cp.root, "note": note, "created_at": work.time},
        )
        await conn.execute(
            update(ledger_head)
            .where(ledger_head.c.id == 1)
            .values(size=new_size, root=cp.root, checkpoint=note)
        )
        return [_finish(r, leaves, new_size) for r in results], frontier

    # -- loading -------------------------------------------------------------------------

    async def _load_frontier(
        self, conn: AsyncConnection, size: int, root: bytes
    ) -> merkle.CompactRange:
        cached = self._frontier
        if cached.size == size and cached.root() == root:
            return cached.copy()
        ids = merkle.range_nodes(0, size)
        lookup = await load_nodes(conn, ids)
        frontier = merkle.CompactRange(size, [lookup[i] for i in ids])
        if frontier.root() != root:
            raise RuntimeError(
                f"stored tree nodes do not match the ledger head at size {size}: "
                "run `scambio ledger verify`"
            )
        return frontier

    async def _load_state(
        self, conn: AsyncConnection, commands: Sequence[Single], size: int
    ) -> _Batch:
        ids = {c.entry_id for c in commands}
        hold_ids = {c.hold_id for c in commands if isinstance(c, PostHold | VoidHold)}
        stored = await _entries_by_id(conn, ids | hold_ids)
        state = LedgerState()
        targets = {c.target for c in commands if isinstance(c, Reverse) and 0 <= c.target < size}
        holds = [s.entry for s in stored.values() if s.entry.kind == KIND_HOLD]
        if holds:
            resolved = await _resolutions(conn, entries.c.hold_idx, [h.index for h in holds])
            for h in holds:
                debit, credit = h.postings
                expires = h.refs.get("expires")
                state.holds[h.index] = HoldState(
                    h.index,
                    h.id,
                    debit.account,
                    credit.account,
                    credit.minutes,
                    expires if isinstance(expires, str) else None,
                    resolved.get(h.index),
                )
        if targets:
            rows = await conn.execute(
                select(entries.c.idx, entries.c.canonical).where(entries.c.idx.in_(targets))
            )
            reversed_by = await _resolutions(conn, entries.c.reverses_idx, targets)
            for row in rows:
                target = decode_entry(bytes(row.canonical))
                if target.kind in (KIND_TRANSFER, KIND_POST):
                    state.moved[target.index] = MovedState(
                        target.index, target.postings, reversed_by.get(target.index)
                    )
        account_ids = _accounts_of(commands, state)
        if account_ids:
            rows = await conn.execute(select(accounts).where(accounts.c.id.in_(account_ids)))
            for row in rows:
                state.accounts[row.id] = AccountState(
                    row.id,
                    row.kind,
                    row.min_balance,
                    row.max_balance,
                    int(row.posted),
                    int(row.debits_pending),
                    int(row.credits_pending),
                )
        return _Batch(state, size, format_time(self._clock()), stored)

    # -- applying ------------------------------------------------------------------------

    def _apply_linked(self, work: _Batch, command: Linked) -> list[_Result]:
        saved_state = copy.deepcopy(work.state)
        mark = len(work.new_entries)
        saved_ids, saved_new, saved_touched = (
            dict(work.new_ids),
            set(work.new_accounts),
            set(work.touched),
        )
        results: list[_Result] = []
        for item in command.items:
            result = self._apply_one(work, item)
            results.append(result)
            if isinstance(result, RuleViolation):
                break
        failure = results[-1]
        if not isinstance(failure, RuleViolation):
            return results
        work.state = saved_state
        del work.new_entries[mark:]
        work.new_ids, work.new_accounts, work.touched = saved_ids, saved_new, saved_touched
        failed_at = len(results) - 1
        culprit = command.items[failed_at].id
        return [
            failure
            if i == failed_at
            else RuleViolation(
                "linked-failed",
                f"not applied: linked item {failed_at} ({culprit}) failed: {failure.detail}",
                failed_item=failed_at,
            )
            for i in range(len(command.items))
        ]

    def _apply_one(self, work: _Batch, command: Single) -> _Result:
        entry_id = command.entry_id
        existing = work.stored.get(entry_id)
        if existing is not None:
            differs = command.conflict(existing.entry)
            return idempotency_conflict(entry_id, differs) if differs else existing
        fresh = work.new_ids.get(entry_id)
        if fresh is not None:
            differs = command.conflict(fresh)
            return idempotency_conflict(entry_id, differs) if differs else fresh
        try:
            entry = self._build(work, command)
            opens = entry.account is not None and entry.account.id not in work.state.accounts
            apply_entry(work.state, entry)
        except RuleViolation as violation:
            return violation
        balances = [work.state.accounts[p.account].posted for p in entry.postings]
        work.new_entries.append((entry, balances))
        work.new_ids[entry_id] = entry
        work.touched.update(p.account for p in entry.postings)
        if entry.kind in (KIND_HOLD, KIND_VOID):
            hold = work.state.holds.get(_hold_index(entry))
            if hold is not None:
                work.touched.update((hold.payer, hold.payee))
        if entry.account is not None:
            work.touched.add(entry.account.id)
            if opens:
                work.new_accounts.add(entry.account.id)
        return entry

    def _build(self, work: _Batch, command: Single) -> Entry:
        index = work.next_index
        time = work.time
        origin = self._origin

        def make(
            kind: str,
            postings: tuple[Posting, ...] = (),
            memo: str = "",
            refs: dict[str, str | int] | None = None,
            account: AccountSpec | None = None,
        ) -> Entry:
            return Entry(
                v=FORMAT_VERSION,
                ledger=origin,
                index=index,
                id=command.entry_id,
                time=time,
                kind=kind,
                postings=postings,
                memo=memo,
                refs=refs or {},
                account=account,
            )

        if isinstance(command, OpenAccount):
            bad = check_limits_spec(command.spec)
            if bad:
                raise bad
            if command.spec.id in work.state.accounts:
                raise RuleViolation(
                    "account-exists",
                    f"account {command.spec.id!r} already exists",
                    account=command.spec.id,
                )
            return make(kind=KIND_ACCOUNT, postings=(), memo="", refs={}, account=command.spec)
        bad = check_entry_id(command.entry_id)
        if bad:
            raise bad
        if isinstance(command, Transfer):
            for problem in (
                check_minutes(command.minutes),
                check_account_id(command.payer),
                check_account_id(command.payee),
            ):
                if problem:
                    raise problem
            if command.payer == command.payee:
                raise RuleViolation("same-account", "payer and payee must be different accounts")
            refs: dict[str, str | int] = {}
            expires = command.expires(self._clock())
            if expires is not None:
                refs["expires"] = expires
            return make(
                kind=KIND_HOLD if command.hold else KIND_TRANSFER,
                postings=legs(command.payer, command.payee, command.minutes),
                memo=command.memo,
                refs=refs,
            )
        if isinstance(command, PostHold | VoidHold):
            hold_index = self._find_hold(work, command.hold_id)
            hold = work.state.holds[hold_index]
            if isinstance(command, VoidHold):
                return make(
                    kind=KIND_VOID,
                    postings=(),
                    memo="",
                    refs={"hold": hold_index, "reason": command.reason},
                )
            minutes = hold.minutes if command.minutes is None else command.minutes
            if (bad := check_minutes(minutes)) is not None:
                raise bad
            return make(
                kind=KIND_POST,
                postings=legs(hold.payer, hold.payee, minutes),
                memo="",
                refs={"hold": hold_index},
            )
        moved = work.state.moved.get(command.target)
        if moved is None:
            raise RuleViolation(
                "not-reversible",
                f"entry {command.target} cannot be reversed: only transfers and posted holds can",
                index=command.target,
            )
        return make(
            kind=KIND_REVERSAL,
            postings=negate(moved.postings),
            memo=command.memo,
            refs={"reverses": command.target},
        )

    def _find_hold(self, work: _Batch, hold_id: str) -> int:
        stored = work.stored.get(hold_id)
        entry = stored.entry if stored is not None else work.new_ids.get(hold_id)
        if entry is None or entry.kind != KIND_HOLD:
            raise RuleViolation("hold-not-found", f"no hold with id {hold_id!r}", id=hold_id)
        return entry.index

    # -- writing -------------------------------------------------------------------------

    async def _write(
        self, conn: AsyncConnection, work: _Batch, frontier: merkle.CompactRange, new_size: int
    ) -> dict[int, bytes]:
        posting_rows: list[dict[str, object]] = []
        entry_rows: list[dict[str, object]] = []
        node_rows: list[dict[str, object]] = []
        leaves: dict[int, bytes] = {}
        for entry, balances in work.new_entries:
            data = encode_entry(entry)
            leaf = merkle.leaf_hash(data)
            leaves[entry.index] = leaf
            for (level, idx), value in frontier.append(leaf):
                if level:
                    node_rows.append({"level": level, "idx": idx, "hash": value})
            pending = entry.kind == KIND_HOLD
            for seq, (posting, after) in enumerate(zip(entry.postings, balances, strict=True)):
                posting_rows.append(
                    {
                        "entry_idx": entry.index,
                        "seq": seq,
                        "account_id": posting.account,
                        "minutes": posting.minutes,
                        "pending": pending,
                        "balance_after": after,
                    }
                )
            hold_idx = entry.refs.get("hold") if entry.kind in (KIND_POST, KIND_VOID) else None
            reverses = entry.refs.get("reverses") if entry.kind == KIND_REVERSAL else None
            expires = entry.refs.get("expires") if entry.kind == KIND_HOLD else None
            entry_rows.append(
                {
                    "idx": entry.index,
                    "id": entry.id,
                    "kind": entry.kind,
                    "time": entry.time,
                    "canonical": data,
                    "leaf_hash": leaf,
                    "tree_size": new_size,
                    "hold_idx": hold_idx,
                    "reverses_idx": reverses,
                    "expires": expires,
                }
            )
        await self._write_accounts(conn, work)
        if posting_rows:
            await conn.execute(insert(postings), posting_rows)
        await conn.execute(insert(entries), entry_rows)
        if node_rows:
            await conn.execute(insert(tree_nodes), node_rows)
        return leaves

    async def _write_accounts(self, conn: AsyncConnection, work: _Batch) -> None:
        state = work.state.accounts
        last = work.next_index - 1
        opened = {e.account.id: e.index for e, _ in work.new_entries if e.account is not None}
        new_rows = []
        for account_id in sorted(work.new_accounts):
            a = state[account_id]
            new_rows.append(
                {
                    "id": a.id,
                    "kind": a.kind,
                    "min_balance": a.min_balance,
                    "max_balance": a.max_balance,
                    "posted": a.posted,
                    "debits_pending": a.debits_pending,
                    "credits_pending": a.credits_pending,
                    "opened_idx": opened[account_id],
                    "updated_idx": last,
                }
            )
        if new_rows:
            await conn.execute(insert(accounts), new_rows)
        changed = sorted(work.touched - work.new_accounts)
        if changed:
            stmt = (
                update(accounts)
                .where(accounts.c.id == bindparam("b_id"))
                .values(
                    min_balance=bindparam("b_min"),
                    max_balance=bindparam("b_max"),
                    posted=bindparam("b_posted"),
                    debits_pending=bindparam("b_dp"),
                    credits_pending=bindparam("b_cp"),
                    updated_idx=bindparam("b_upd"),
                )
            )
            await conn.execute(
                stmt,
                [
                    {
                        "b_id": a.id,
                        "b_min": a.min_balance,
                        "b_max": a.max_balance,
                        "b_posted": a.posted,
                        "b_dp": a.debits_pending,
                        "b_cp": a.credits_pending,
                        "b_upd": last,
                    }
                    for a in (state[i] for i in changed)
                ],
            )


def _weight(command: Command) -> int:
    return len(command.items) if isinstance(command, Linked) else 1


def _singles(command: Command) -> Iterable[Single]:
    return command.items if isinstance(command, Linked) else (command,)


def _fail(batch: Iterable[_Waiting], exc: BaseException) -> None:
    for waiting in batch:
        if not waiting.future.done():
            waiting.future.set_exception(exc)


def _hold_index(entry: Entry) -> int:
    if entry.kind == KIND_HOLD:
        return entry.index
    value = entry.refs.get("hold")
    return value if isinstance(value, int) else -1


def _finish(
    result: _Result | list[_Result], leaves: dict[int, bytes], tree_size: int
) -> Outcome | LinkedOutcome:
    if isinstance(result, list):
        return LinkedOutcome([_outcome(r, leaves, tree_size) for r in result])
    return _outcome(result, leaves, tree_size)


def _outcome(result: _Result, leaves: dict[int, bytes], tree_size: int) -> Outcome:
    if isinstance(result, Entry):
        return Appended(result, leaves[result.index], tree_size, created=True)
    if isinstance(result, _Stored):
        return Appended(result.entry, result.leaf_hash, result.tree_size, created=False)
    return result


def _accounts_of(commands: Iterable[Single], state: LedgerState) -> set[str]:
    ids: set[str] = set()
    for c in commands:
        if isinstance(c, OpenAccount):
            ids.add(c.spec.id)
        elif isinstance(c, Transfer):
            ids.update((c.payer, c.payee))
    for hold in state.holds.values():
        ids.update((hold.payer, hold.payee))
    for moved in state.moved.values():
        ids.update(p.account for p in moved.postings)
    return ids


async def _entries_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, _Stored]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await conn.execute(
        select(entries.c.canonical, entries.c.leaf_hash, entries.c.tree_size).where(
            entries.c.id.in_(wanted)
        )
    )
    found: dict[str, _Stored] = {}
    for row in rows:
        entry = decode_entry(bytes(row.canonical))
        found[entry.id] = _Stored(entry, bytes(row.leaf_hash), int(row.tree_size))
    return found


async def _resolutions(
    conn: AsyncConnection, column: Column[Any], targets: Iterable[int]
) -> dict[int, int]:
    rows = await conn.execute(select(column, entries.c.idx).where(column.in_(list(targets))))
    return {int(r[0]): int(r[1]) for r in rows}


async def load_nodes(
    conn: AsyncConnection, ids: Sequence[merkle.NodeId]
) -> dict[merkle.NodeId, bytes]:
    """Fetch tree nodes: leaves from `entries.leaf_hash`, higher levels from `tree_nodes`."""
    found: dict[merkle.NodeId, bytes] = {}
    leaves = [i for level, i in ids if level == 0]
    inner = [(level, i) for level, i in ids if level > 0]
    if leaves:
        rows = await conn.execute(
            select(entries.c.idx, entries.c.leaf_hash).where(entries.c.idx.in_(leaves))
        )
        found.update({(0, int(r.idx)): bytes(r.leaf_hash) for r in rows})
    by_level: dict[int, list[int]] = {}
    for level, i in inner:
        by_level.setdefault(level, []).append(i)
    for level, idxs in by_level.items():
        rows = await conn.execute(
            select(tree_nodes.c.idx, tree_nodes.c.hash).where(
                tree_nodes.c.level == level, tree_nodes.c.idx.in_(idxs)
            )
        )
        found.update({(level, int(r.idx)): bytes(r.hash) for r in rows})
    missing = [i for i in ids if i not in found]
    if missing:
        raise RuntimeError(f"tree nodes missing from the store: {missing[:5]}")
    return found
