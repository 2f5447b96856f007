"""The append path: one writer at a time per ledger, many requests per transaction.

Callers `submit` commands; a single task per process takes whatever is waiting (up to the
batch size), opens one transaction, takes the ledger head lock (`SELECT ... FOR UPDATE` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite), checks each command in order against running
balances with the pure rules (a rejected command does not fail its batch-mates), writes
postings, entries, tree nodes and balances, signs one checkpoint, commits, and only then
answers the callers. Several processes may append to one PostgreSQL ledger: the head lock
serialises them, and each re-reads the head inside the lock.

While one batch commits, the next is built ahead on the state the first will leave (its
reads without the lock, on a second connection); its write then checks, under the lock
and in the same round trip, that the head is the one it was built on, and is built again
under the lock if not. See `Appender._run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import msgspec
import psycopg
from sqlalchemy import Column, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from scambio.ledger import merkle
from scambio.ledger.entry import (
    ACCOUNT_ID_RE,
    ENTRY_ID_RE,
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
    check_annotations,
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
    SetLimits,
    Single,
    Transfer,
    VoidHold,
    idempotency_conflict,
)
from scambio.store.db import WRITER, is_postgres
from scambio.store.tables import accounts, checkpoints, entries, ledger_head, postings, tree_nodes

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Commands (and entries) between two yields to the event loop while a batch is built:
#: the batch in flight sends its rows and request handlers run in between.
_YIELD_EVERY = 64

#: Longest a hold may be set to live: ten years.
MAX_HOLD_SECONDS = 10 * 366 * 86_400


class StorageUnavailable(Exception):
    """The database could not be reached or the commit failed; nothing was written."""


class LedgerNotInitialised(Exception):
    """The ledger head row is missing: run `scambio db upgrade` and start the service."""


@dataclass(slots=True)
class _Stored:
    entry: Entry
    leaf_hash: bytes
    tree_size: int


@dataclass(slots=True)
class _Repeat:
    """A request identical to one made earlier in the same batch: answered as a retry."""

    entry: Entry


#: What applying one command gives before commit: a new entry, the stored original of a
#: retried request, a repeat of a request earlier in the batch, or the rule it broke.
_Result = Entry | _Stored | RuleViolation | _Repeat


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
    #: Answered and counted off the queue (`task_done`), exactly once.
    finished: bool = False


class _HeadMoved(Exception):
    """A batch built ahead found another head than the one it was built on."""


@dataclass(slots=True)
class _Prepared:
    """A built batch: its answers, the state it leaves and the rows it writes."""

    batch: list[_Waiting]
    results: list[_Result | list[_Result]]
    work: _Batch
    frontier: merkle.CompactRange
    #: None when the batch writes nothing (every request refused or a retry).
    rows: _Rows | None
    #: The ledger head after this batch.
    head: tuple[int, bytes]
    #: Built ahead, without the lock: the head its write must find. None: built under the
    #: head lock, in `transaction`, still open.
    expect: tuple[int, bytes] | None
    leaves: dict[int, bytes]
    transaction: AsyncTransaction | None = None

    def outcomes(self) -> list[Outcome | LinkedOutcome]:
        return [_finish(r, self.leaves, self.head[0]) for r in self.results]

    def find(self, entry_id: str) -> _Stored | None:
        """An entry this batch wrote or read, as a retry would find it once committed."""
        fresh = self.work.new_ids.get(entry_id)
        if fresh is not None:
            return _Stored(fresh, self.leaves[fresh.index], self.head[0])
        return self.work.stored.get(entry_id)


@dataclass(slots=True)
class _Flight:
    """A prepared batch whose write and commit are running."""

    prepared: _Prepared
    task: asyncio.Task[None]


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
        self._arrived = asyncio.Event()
        self._writer: AsyncConnection | None = None
        self._reader: AsyncConnection | None = None
        #: Committed batches; of them, those built ahead of the previous commit; and
        #: batches built ahead that had to be built again (another process appended).
        self.batches = 0
        self.built_ahead = 0
        self.rebuilt = 0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the append task is alive (what /health reports)."""
        return self._task is not None and not self._task.done()

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
        self._arrived.set()
        # Shield: a caller that gives up must not cancel a batch other callers share.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        """Take batches off the queue and commit them, one in flight while the next builds.

        Batch n+1 is built (rules, canonical bytes, hashes, rows, signature) on the state
        batch n will leave while batch n's write and commit run in the database, so that
        the Python work and the database's work overlap instead of alternating. Batch n+1
        then reads without the head lock, on a second connection, and its write must find
        the head batch n left: checked under the lock in the same round trip as the write.
        Anything else (another process appended, batch n failed) builds it again under the
        lock, as when nothing is in flight. Callers hear only of committed batches.
        """
        flight: _Flight | None = None
        current: list[_Waiting] = []
        try:
            while True:
                if flight is None:
                    current = self._take(await self._queue.get())
                    prepared = await self._guarded(current)
                elif self._queue.empty():
                    # Wait for the commit or for new work, whichever comes first: the
                    # callers just answered usually send more while a batch commits.
                    if await self._work_arrives(flight.task):
                        continue
                    current, landing, flight = flight.prepared.batch, flight, None
                    await self._land(landing, more=False)
                    continue
                else:
                    current = self._take(self._queue.get_nowait())
                    ahead = await self._prepare_ahead(flight, current)
                    landing, flight = flight, None
                    current = landing.prepared.batch + current
                    landed = await self._land(landing, more=True)
                    current = current[len(landing.prepared.batch) :]
                    if ahead is None or not landed:
                        prepared = await self._guarded(current)
                    elif ahead.rows is None:
                        # Nothing to write: its answers hold now that batch n committed.
                        await self._answer(ahead, more=False)
                        continue
                    else:
                        prepared = ahead
                if prepared is not None:
                    flight = _Flight(prepared, self._start_commit(prepared))
        except asyncio.CancelledError:
            if flight is not None:
                flight.task.cancel()
                with contextlib.suppress(BaseException):
                    await flight.task
                current = current + flight.prepared.batch
            _fail(current, StorageUnavailable("the service is shutting down"))
            await self._idle(discard=True)
            self._done(current)
            raise

    async def _work_arrives(self, commit: asyncio.Task[None]) -> bool:
        """Wait until `commit` ends (False) or a request is queued (True)."""
        self._arrived.clear()
        waiter = asyncio.create_task(self._arrived.wait())
        try:
            await asyncio.wait({commit, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return not self._queue.empty()

    def _take(self, first: _Waiting) -> list[_Waiting]:
        batch = [first]
        size = _weight(first.command)
        while size < self._batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            batch.append(item)
            size += _weight(item.command)
        return batch

    def _done(self, batch: Sequence[_Waiting]) -> None:
        for waiting in batch:
            if not waiting.finished:
                waiting.finished = True
                self._queue.task_done()

    # -- connections -------------------------------------------------------------------

    async def _writer_conn(self) -> AsyncConnection:
        if self._writer is None:
            conn = await self._engine.connect()
            self._writer = await conn.execution_options(**{WRITER: True})
        return self._writer

    async def _reader_conn(self) -> AsyncConnection:
        if self._reader is None:
            conn = await self._engine.connect()
            if self._postgres:
                # Reads ahead need no snapshot across statements (entries never change, and
                # the write checks the head): autocommit keeps no transaction open.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._reader = conn
        return self._reader

    async def _idle(self, *, discard: bool = False) -> None:
        """Give both connections back to the pool (closed for good after a failure).

        They are kept from one batch to the next while work is waiting, which saves a pool
        checkout (with its liveness ping) and a reset per batch. Called before the last
        `task_done`, so that `stop` finds them back in the pool.
        """
        for name in ("_writer", "_reader"):
            conn: AsyncConnection | None = getattr(self, name)
            if conn is not None:
                setattr(self, name, None)
                await _release(conn, discard=discard)

    # -- preparing a batch ---------------------------------------------------------------

    async def _guarded(self, batch: list[_Waiting]) -> _Prepared | None:
        """Prepare `batch` under the head lock. None when it needs no commit: it wrote
        nothing and was answered, or it failed and its callers were told."""
        try:
            return await self._prepare_locked(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._abandon(batch, exc)
            return None

    async def _prepare_locked(self, batch: list[_Waiting]) -> _Prepared | None:
        """Build a batch in a transaction that holds the head lock, left open for its commit."""
        conn = await self._writer_conn()
        transaction = await conn.begin()
        try:
            commands = [c for w in batch for c in _singles(w.command)]
            io = await _batch_io(conn, self._postgres)
            ids = _lookup_ids(commands)
            # One round trip (PostgreSQL: one pipeline) takes the head lock and reads what
            # nearly every batch needs: the head, the stored entries its ids name (retries
            # and holds) and the accounts its commands name.
            head, stored_rows, account_rows = await io.start(
                sorted(ids), sorted(_command_accounts(commands))
            )
            if head is None:
                raise LedgerNotInitialised("the ledger has no head row; start the service once")
            size, root = head
            frontier = await self._load_frontier(conn, size, root)
            work = await self._load_state(
                conn, io, commands, size, stored_rows=stored_rows, account_rows=account_rows
            )
            prepared = await self._assemble(batch, work, frontier, head, expect=None)
        except BaseException:
            with contextlib.suppress(Exception):
                await transaction.rollback()
            raise
        if prepared.rows is not None:
            prepared.transaction = transaction
            return prepared
        await transaction.commit()
        await self._answer(prepared, more=False)
        return None

    async def _prepare_ahead(self, flight: _Flight, batch: list[_Waiting]) -> _Prepared | None:
        """Build `batch` on the state the batch in flight will leave, without the lock.

        None when a read fails: the batch is then built under the lock, after the batch in
        flight has landed.
        """
        base = flight.prepared
        try:
            reader = await self._reader_conn()
            io = await _batch_io(reader, self._postgres)
            commands = [c for w in batch for c in _singles(w.command)]
            state = base.work.state
            unknown_ids = [i for i in sorted(_lookup_ids(commands)) if base.find(i) is None]
            unknown_accounts = sorted(_command_accounts(commands) - state.accounts.keys())
            stored_rows, account_rows = await io.read(unknown_ids, unknown_accounts)
            work = await self._load_state(
                reader,
                io,
                commands,
                base.head[0],
                stored_rows=stored_rows,
                account_rows=account_rows,
                base=base,
            )
            if reader.in_transaction():
                await reader.rollback()
            return await self._assemble(batch, work, base.frontier.copy(), base.head, base.head)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("building a batch ahead failed (%s); it is built under the lock", exc)
            if self._reader is not None:
                conn, self._reader = self._reader, None
                await _release(conn, discard=True)
            return None

    async def _assemble(
        self,
        batch: list[_Waiting],
        work: _Batch,
        frontier: merkle.CompactRange,
        head: tuple[int, bytes],
        expect: tuple[int, bytes] | None,
    ) -> _Prepared:
        results: list[_Result | list[_Result]] = []
        for n, waiting in enumerate(batch, 1):
            command = waiting.command
            if isinstance(command, Linked):
                results.append(self._apply_linked(work, command))
            else:
                results.append(self._apply_one(work, command))
            if n % _YIELD_EVERY == 0:
                # Let the batch in flight send its rows and the event loop serve requests.
                await asyncio.sleep(0)
        if not work.new_entries:
            return _Prepared(batch, results, work, frontier, None, head, expect, {})
        new_size = work.next_index
        rows, leaves = await self._rows(work, frontier, new_size)
        cp = Checkpoint(self._origin, new_size, frontier.root())
        note = sign_checkpoint(cp, self._signer)
        rows.checkpoint = (new_size, cp.root, note, work.time)
        rows.head = (new_size, cp.root, note)
        return _Prepared(batch, results, work, frontier, rows, (new_size, cp.root), expect, leaves)

    # -- committing and answering --------------------------------------------------------

    def _start_commit(self, prepared: _Prepared) -> asyncio.Task[None]:
        return asyncio.create_task(self._commit(prepared), name="scambio-appender-commit")

    async def _commit(self, prepared: _Prepared) -> None:
        assert prepared.rows is not None
        conn = await self._writer_conn()
        transaction = prepared.transaction or await conn.begin()
        try:
            io = await _batch_io(conn, self._postgres)
            await io.write(prepared.rows, expect=prepared.expect)
            await transaction.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await transaction.rollback()
            raise

    async def _land(self, flight: _Flight, *, more: bool) -> bool:
        """Wait for the batch in flight and answer its callers. False if it did not commit
        as built (it is then built again under the lock, or its callers told why)."""
        prepared = flight.prepared
        try:
            await flight.task
        except asyncio.CancelledError:
            raise
        except _HeadMoved:
            log.info("another process appended under a batch built ahead; building it again")
            self.rebuilt += 1
            again = await self._guarded(prepared.batch)
            if again is not None:
                await self._land(_Flight(again, self._start_commit(again)), more=more)
            return False
        except Exception as exc:
            await self._abandon(prepared.batch, exc)
            return False
        await self._answer(prepared, more=more)
        return True

    async def _answer(self, prepared: _Prepared, *, more: bool) -> None:
        """The batch committed (or wrote nothing): only now may its callers hear of it."""
        self._frontier = prepared.frontier
        if prepared.rows is not None:
            self.batches += 1
            self.built_ahead += prepared.expect is not None
        if not more and self._queue.empty():
            await self._idle()
        for waiting, outcome in zip(prepared.batch, prepared.outcomes(), strict=True):
            if not waiting.future.done():
                waiting.future.set_result(outcome)
        self._done(prepared.batch)

    async def _abandon(self, batch: list[_Waiting], exc: Exception) -> None:
        """A batch failed and wrote nothing: answer its callers.

        An unreachable database fails the whole batch (503: retry). Any other error is one
        request's fault or a bug: the batch's requests are then committed one at a time,
        so that one bad request cannot fail the others with it.
        """
        self._frontier = merkle.CompactRange()
        await self._idle(discard=True)
        if _transient(exc):
            log.warning("append batch of %d failed: %s", len(batch), exc)
            _fail(batch, StorageUnavailable(f"the database is unavailable: {exc}"))
            self._done(batch)
            return
        if len(batch) == 1:
            log.error("append failed", exc_info=exc)
            _fail(batch, _refusal(exc))
            self._done(batch)
            return
        log.warning("append batch of %d failed (%s): committing it one request at a time",
                    len(batch), exc)  # fmt: skip
        for waiting in batch:
            alone = await self._guarded([waiting])
            if alone is not None:
                await self._land(_Flight(alone, self._start_commit(alone)), more=True)

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
        self,
        conn: AsyncConnection,
        io: _BatchIO,
        commands: Sequence[Single],
        size: int,
        *,
        stored_rows: Iterable[_EntryRow],
        account_rows: Iterable[_AccountRow],
        base: _Prepared | None = None,
    ) -> _Batch:
        """The state a batch is checked against: what its commands name, as of `size`.

        With `base` (a batch built ahead of its commit), what `base` read or wrote comes
        from `base`, the rest from the database: entries never change, and anything the
        batch in flight does not touch is as the database has it.
        """
        prior = base.work.state if base is not None else LedgerState()
        stored: dict[str, _Stored] = {}
        if base is not None:
            for entry_id in _lookup_ids(commands):
                found_entry = base.find(entry_id)
                if found_entry is not None:
                    stored[entry_id] = found_entry
        for canonical, leaf_hash, tree_size in stored_rows:
            entry = decode_entry(bytes(canonical))
            stored[entry.id] = _Stored(entry, bytes(leaf_hash), int(tree_size))
        state = LedgerState()
        holds = []
        for s in stored.values():
            if s.entry.kind != KIND_HOLD:
                continue
            known = prior.holds.get(s.entry.index)
            if known is not None:
                state.holds[known.index] = known
            else:
                holds.append(s.entry)
        targets = set()
        for c in commands:
            if isinstance(c, Reverse) and 0 <= c.target < size:
                moved = prior.moved.get(c.target)
                if moved is not None:
                    state.moved[c.target] = moved
                else:
                    targets.add(c.target)
        # Holds and reversals are rarer than transfers: what they need is read afterwards,
        # through SQLAlchemy, only when the batch has some.
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
        found = list(account_rows)
        loaded = {row[0] for row in found}
        needed = _accounts_of(commands, state)
        for account_id in needed - loaded:
            account = prior.accounts.get(account_id)
            if account is not None:
                state.accounts[account_id] = account
        missing = needed - loaded - state.accounts.keys()
        if missing:
            found.extend(await io.accounts(sorted(missing)))
        for account_id, kind, low, high, posted, debits, credits in found:
            if account_id in state.accounts:
                continue
            state.accounts[account_id] = AccountState(
                account_id,
                kind,
                None if low is None else int(low),
                None if high is None else int(high),
                int(posted),
                int(debits),
                int(credits),
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
        culprit = command.items[failed_at].entry_id
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
            return idempotency_conflict(entry_id, differs) if differs else _Repeat(fresh)
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
        if isinstance(command, SetLimits):
            spec = self._limits_spec(work, command)
            return make(kind=KIND_ACCOUNT, memo=command.memo, account=spec)
        if isinstance(command, Transfer | Reverse) and ":" in command.entry_id:
            # ':' is reserved for ids the ledger derives (`<hold id>:post`, `account:<id>`),
            # so a caller can never take one of them in advance.
            raise RuleViolation(
                "invalid-id", f"id {command.entry_id!r} must not contain ':' (reserved)"
            )
        if (
            isinstance(command, Transfer)
            and command.expires_in is not None
            and not (0 < command.expires_in <= MAX_HOLD_SECONDS)
        ):
            raise RuleViolation(
                "invalid-hold",
                f"hold_expires_in must be between 1 and {MAX_HOLD_SECONDS} seconds",
            )
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
            bad = check_annotations(command.refs)
            if bad:
                raise bad
            refs: dict[str, str | int] = dict(command.refs)
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

    @staticmethod
    def _limits_spec(work: _Batch, command: SetLimits) -> AccountSpec:
        """The new limits as an account spec; `apply_entry` checks them against balances."""
        if ":" in command.id:
            raise RuleViolation("invalid-id", f"id {command.id!r} must not contain ':' (reserved)")
        if (bad := check_account_id(command.account)) is not None:
            raise bad
        current = work.state.accounts.get(command.account)
        if current is None:
            raise RuleViolation(
                "unknown-account",
                f"account {command.account!r} does not exist",
                account=command.account,
            )
        spec = AccountSpec(
            id=command.account,
            kind=current.kind,
            min_balance=command.min_balance,
            max_balance=command.max_balance,
        )
        if (bad := check_limits_spec(spec)) is not None:
            raise bad
        return spec

    def _find_hold(self, work: _Batch, hold_id: str) -> int:
        stored = work.stored.get(hold_id)
        entry = stored.entry if stored is not None else work.new_ids.get(hold_id)
        if entry is None or entry.kind != KIND_HOLD:
            raise RuleViolation("hold-not-found", f"no hold with id {hold_id!r}", id=hold_id)
        return entry.index

    # -- writing -------------------------------------------------------------------------

    async def _rows(
        self, work: _Batch, frontier: merkle.CompactRange, new_size: int
    ) -> tuple[_Rows, dict[int, bytes]]:
        """Every row the batch writes, as plain tuples in the tables' column order."""
        rows = _Rows()
        posting_rows = rows.postings
        entry_rows = rows.entries
        node_rows = rows.nodes
        leaves: dict[int, bytes] = {}
        leaf_hash = merkle.leaf_hash
        append = frontier.append
        for n, (entry, balances) in enumerate(work.new_entries, 1):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            data = encode_entry(entry)
            leaf = leaf_hash(data)
            index = entry.index
            kind = entry.kind
            leaves[index] = leaf
            for (level, idx), value in append(leaf):
                if level:
                    node_rows.append((level, idx, value))
            pending = kind == KIND_HOLD
            for seq, (posting, after) in enumerate(zip(entry.postings, balances, strict=True)):
                posting_rows.append((index, seq, posting.account, posting.minutes, pending, after))
            refs = entry.refs
            hold_idx = refs.get("hold") if kind in (KIND_POST, KIND_VOID) else None
            reverses = refs.get("reverses") if kind == KIND_REVERSAL else None
            expires = refs.get("expires") if kind == KIND_HOLD else None
            entry_rows.append(
                (
                    index,
                    entry.id,
                    kind,
                    entry.time,
                    data,
                    leaf,
                    new_size,
                    hold_idx,
                    reverses,
                    expires,
                )
            )
        state = work.state.accounts
        last = work.next_index - 1
        opened = {e.account.id: e.index for e, _ in work.new_entries if e.account is not None}
        for account_id in sorted(work.new_accounts):
            a = state[account_id]
            rows.new_accounts.append(
                (
                    a.id,
                    a.kind,
                    a.min_balance,
                    a.max_balance,
                    a.posted,
                    a.debits_pending,
                    a.credits_pending,
                    opened[account_id],
                    last,
                )
            )
        for account_id in sorted(work.touched - work.new_accounts):
            a = state[account_id]
            rows.changed_accounts.append(
                (
                    a.id,
                    a.min_balance,
                    a.max_balance,
                    a.posted,
                    a.debits_pending,
                    a.credits_pending,
                    last,
                )
            )
        return rows, leaves


async def _release(conn: AsyncConnection, *, discard: bool) -> None:
    """Give the connection back to the pool, or close it for good after a failure."""
    try:
        if discard:
            await conn.invalidate()
        await conn.close()
    except Exception as exc:  # the batch's own outcome is already decided
        log.warning("closing the appender's connection failed: %s", exc)


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
    if isinstance(result, _Repeat):
        return Appended(result.entry, leaves[result.entry.index], tree_size, created=False)
    return result


def _lookup_ids(commands: Iterable[Single]) -> set[str]:
    """Ids of stored entries a batch needs: its own (retries) and the holds it resolves.

    Malformed ids (a NUL byte, say) would fail the whole batch's query on PostgreSQL; they
    cannot name anything stored, and `_build` refuses them item by item.
    """
    ids = {c.entry_id for c in commands}
    ids.update(c.hold_id for c in commands if isinstance(c, PostHold | VoidHold))
    return {i for i in ids if ENTRY_ID_RE.fullmatch(i)}


def _transient(exc: BaseException) -> bool:
    """Is this the database being unreachable or busy (retry later), not the request?"""
    if isinstance(exc, OperationalError | InterfaceError | SATimeoutError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return isinstance(
        exc,
        psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError,
    )


def _refusal(exc: Exception) -> Exception:
    """What the caller of a request the database refused on its own hears."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg.DataError | sqlite3.DataError):
        return RuleViolation(
            "unstorable", "the database refused a value of this request; nothing was written"
        )
    return exc


def _command_accounts(commands: Iterable[Single]) -> set[str]:
    """The accounts that commands name themselves (holds and reversals name theirs later)."""
    ids: set[str] = set()
    for c in commands:
        if isinstance(c, OpenAccount):
            ids.add(c.spec.id)
        elif isinstance(c, SetLimits):
            ids.add(c.account)
        elif isinstance(c, Transfer):
            ids.update((c.payer, c.payee))
    return {i for i in ids if ACCOUNT_ID_RE.fullmatch(i)}


def _accounts_of(commands: Iterable[Single], state: LedgerState) -> set[str]:
    ids = _command_accounts(commands)
    for hold in state.holds.values():
        ids.update((hold.payer, hold.payee))
    for moved in state.moved.values():
        ids.update(p.account for p in moved.postings)
    return ids


# -- the batch's reads and writes, on the driver connection ---------------------------------
#
# A batch of a thousand transfers writes some four thousand rows. Through SQLAlchemy Core
# each row's parameters pass through per-column bind processors, and every statement is a
# separate round trip (on SQLite, several hops to aiosqlite's thread), which cost more than
# the database's own work. So the hot statements go to the driver connection under the
# same transaction that SQLAlchemy began (and will commit): on PostgreSQL as one pipeline
# of `INSERT ... SELECT FROM unnest(arrays)` statements, on SQLite as one `executemany`
# per table. The statements are fixed strings, so both drivers prepare them once.

#: canonical, leaf_hash, tree_size of a stored entry.
_EntryRow = tuple[bytes, bytes, int]
#: id, kind, min_balance, max_balance, posted, debits_pending, credits_pending.
_AccountRow = tuple[str, str, int | None, int | None, int, int, int]

_PG_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
_PG_HEAD_LOCK = "SELECT size, root FROM ledger_head WHERE id = 1 FOR UPDATE"
_PG_ENTRIES_BY_ID = "SELECT canonical, leaf_hash, tree_size FROM entries WHERE id = ANY(%s)"
_PG_ACCOUNTS_BY_ID = (
    "SELECT id, kind, min_balance, max_balance, posted, debits_pending, credits_pending "
    "FROM accounts WHERE id = ANY(%s)"
)
# A batch built ahead takes the head lock and checks the head in the same pipeline as its
# write: no row (the head moved) divides by zero, which aborts the pipeline, COMMIT
# included. The condition is in the WHERE clause so that, should the lock be waited for,
# PostgreSQL re-checks it against the row as the lock holder left it (READ COMMITTED).
_PG_EXPECT_HEAD = (
    "SELECT 1 / count(*) FROM (SELECT 1 FROM ledger_head "
    "WHERE id = 1 AND size = %s AND root = %b FOR UPDATE) AS head"
)
# The writes go in two statements, each a chain of data-modifying CTEs over
# `unnest(arrays)`: new accounts and postings; then balances, tree nodes, checkpoint, head
# and entries. Two, not one: the seal trigger fires at the end of the postings' statement
# and requires their entries not to exist yet, and the zero-sum trigger fires at the end of
# the entries' statement and needs their postings. Foreign keys are checked at the end of
# the postings' statement, when the accounts it opens exist. Balances change after the
# postings are in: updating a row and then key-share locking it for a foreign key check in
# the same statement costs PostgreSQL a walk of its update chain per posting, which a batch
# on a few hot accounts pays a thousand times. Empty arrays write no rows, so every batch
# uses the same two prepared statements.
# %b: bytea arrays go in binary, not hex-escaped element by element.
# The rows go as parameters of two statements, in one of two forms by batch size. Small
# batches: one array per column, `unnest(arrays)`. Large ones: the inserted rows as one JSON
# array of arrays per table (`jsonb_array_elements`), encoded by msgspec in C, because
# psycopg dumps array parameters element by element in Python, which cost a batch of a
# thousand transfers some 40 ms of client CPU (a fifth of the append path); bytes go as
# base64 (what msgspec writes for bytes) and the server decodes them. JSON costs the
# server more planning per statement, which a one-transfer batch feels (measured 20%
# slower), hence arrays for small batches. The balances' UPDATE always takes arrays:
# joined with `accounts`, it needs the row count the planner reads off array parameters
# (a set-returning function is guessed at 100 rows, and the join then scanned `accounts`).
_JSON_FROM = 64

_PG_INSERT_ACCOUNTS_ARRAYS = (
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[], "
    "%s::int8[], %s::int8[], %s::int8[], %s::int8[])"
)
_PG_INSERT_ACCOUNTS_JSON = (
    "SELECT r->>0, r->>1, (r->>2)::int8, (r->>3)::int8, (r->>4)::int8, (r->>5)::int8, "
    "(r->>6)::int8, (r->>7)::int8, (r->>8)::int8 FROM jsonb_array_elements(%s::jsonb) AS r"
)
_PG_INSERT_POSTINGS_ARRAYS = (
    "SELECT * FROM unnest(%s::int8[], %s::int2[], %s::text[], %s::int8[], %s::bool[], %s::int8[])"
)
_PG_INSERT_POSTINGS_JSON = (
    "SELECT (r->>0)::int8, (r->>1)::int2, r->>2, (r->>3)::int8, (r->>4)::bool, "
    "(r->>5)::int8 FROM jsonb_array_elements(%s::jsonb) AS r"
)
_PG_INSERT_NODES_ARRAYS = "SELECT * FROM unnest(%s::int2[], %s::int8[], %b::bytea[])"
_PG_INSERT_NODES_JSON = (
    "SELECT (r->>0)::int2, (r->>1)::int8, decode(r->>2, 'base64') "
    "FROM jsonb_array_elements(%s::jsonb) AS r"
)
_PG_INSERT_ENTRIES_ARRAYS = (
    "SELECT * FROM unnest(%s::int8[], %s::text[], %s::text[], %s::text[], %b::bytea[], "
    "%b::bytea[], %s::int8[], %s::int8[], %s::int8[], %s::text[])"
)
_PG_INSERT_ENTRIES_JSON = (
    "SELECT (r->>0)::int8, r->>1, r->>2, r->>3, decode(r->>4, 'base64'), "
    "decode(r->>5, 'base64'), (r->>6)::int8, (r->>7)::int8, (r->>8)::int8, r->>9 "
    "FROM jsonb_array_elements(%s::jsonb) AS r"
)


def _write_postings(accounts_rows: str, postings_rows: str) -> str:
    return (
        "WITH opened AS (INSERT INTO accounts (id, kind, min_balance, max_balance, posted, "
        f"debits_pending, credits_pending, opened_idx, updated_idx) {accounts_rows}) "
        "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, balance_after) "
        f"{postings_rows}"
    )


def _write_entries(nodes_rows: str, entries_rows: str) -> str:
    # Only the constant fragments above are formatted in: no value is.
    return (
        "WITH changed AS (UPDATE accounts AS a "  # noqa: S608
        "SET min_balance = u.min_balance, "
        "max_balance = u.max_balance, posted = u.posted, debits_pending = u.debits_pending, "
        "credits_pending = u.credits_pending, updated_idx = u.updated_idx "
        "FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], "
        "%s::int8[], %s::int8[]) AS u(id, min_balance, max_balance, posted, debits_pending, "
        "credits_pending, updated_idx) WHERE a.id = u.id), "
        f"nodes AS (INSERT INTO tree_nodes (level, idx, hash) {nodes_rows}), "
        "checkpoint AS (INSERT INTO checkpoints (size, root, note, created_at) "
        "VALUES (%s, %b, %s, %s)), "
        "head AS (UPDATE ledger_head SET size = %s, root = %b, checkpoint = %s WHERE id = 1) "
        "INSERT INTO entries (idx, id, kind, time, canonical, leaf_hash, tree_size, "
        f"hold_idx, reverses_idx, expires) {entries_rows}"
    )


_PG_WRITE_POSTINGS_ARRAYS = _write_postings(_PG_INSERT_ACCOUNTS_ARRAYS, _PG_INSERT_POSTINGS_ARRAYS)
_PG_WRITE_POSTINGS_JSON = _write_postings(_PG_INSERT_ACCOUNTS_JSON, _PG_INSERT_POSTINGS_JSON)
_PG_WRITE_ENTRIES_ARRAYS = _write_entries(_PG_INSERT_NODES_ARRAYS, _PG_INSERT_ENTRIES_ARRAYS)
_PG_WRITE_ENTRIES_JSON = _write_entries(_PG_INSERT_NODES_JSON, _PG_INSERT_ENTRIES_JSON)

_SQLITE_HEAD = "SELECT size, root FROM ledger_head WHERE id = 1"
_SQLITE_ENTRIES_BY_ID = "SELECT canonical, leaf_hash, tree_size FROM entries WHERE id IN"
_SQLITE_ACCOUNTS_BY_ID = (
    "SELECT id, kind, min_balance, max_balance, posted, debits_pending, credits_pending "
    "FROM accounts WHERE id IN"
)
#: Ids per `IN (...)` list: well under SQLite's limit on bound parameters.
_SQLITE_CHUNK = 500
_SQLITE_INSERT_ACCOUNTS = (
    "INSERT INTO accounts (id, kind, min_balance, max_balance, posted, debits_pending, "
    "credits_pending, opened_idx, updated_idx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_UPDATE_ACCOUNTS = (
    "UPDATE accounts SET min_balance = ?, max_balance = ?, posted = ?, debits_pending = ?, "
    "credits_pending = ?, updated_idx = ? WHERE id = ?"
)
_SQLITE_INSERT_POSTINGS = (
    "INSERT INTO postings (entry_idx, seq, account_id, minutes, pending, balance_after) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_ENTRIES = (
    "INSERT INTO entries (idx, id, kind, time, canonical, leaf_hash, tree_size, hold_idx, "
    "reverses_idx, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_INSERT_NODES = "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)"
_SQLITE_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)"
)
_SQLITE_UPDATE_HEAD = "UPDATE ledger_head SET size = ?, root = ?, checkpoint = ? WHERE id = 1"

#: Every column of the tables the statements above write, checked against `tables` at
#: import, so that a schema change cannot leave the append path silently behind.
_WRITTEN = {
    ledger_head: ("id", "origin", "size", "root", "checkpoint"),
    accounts: (
        "id",
        "kind",
        "min_balance",
        "max_balance",
        "posted",
        "debits_pending",
        "credits_pending",
        "opened_idx",
        "updated_idx",
    ),
    postings: ("entry_idx", "seq", "account_id", "minutes", "pending", "balance_after"),
    entries: (
        "idx",
        "id",
        "kind",
        "time",
        "canonical",
        "leaf_hash",
        "tree_size",
        "hold_idx",
        "reverses_idx",
        "expires",
    ),
    tree_nodes: ("level", "idx", "hash"),
    checkpoints: ("size", "root", "note", "created_at"),
}
for _table, _names in _WRITTEN.items():
    if set(_table.c.keys()) != set(_names):
        raise RuntimeError(f"the append path's statements do not match table {_table.name}")


@dataclass(slots=True)
class _Rows:
    """Every row one batch writes, as tuples in the column order of the statements above."""

    new_accounts: list[tuple[Any, ...]] = field(default_factory=list)
    changed_accounts: list[tuple[Any, ...]] = field(default_factory=list)
    postings: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    checkpoint: tuple[int, bytes, str, str] = (0, b"", "", "")
    head: tuple[int, bytes, str] = (0, b"", "")


_Head = tuple[int, bytes]


class _BatchIO(Protocol):
    async def start(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[_Head | None, list[_EntryRow], list[_AccountRow]]:
        """Take the head lock; read the head, the entries and the accounts named."""

    async def read(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[list[_EntryRow], list[_AccountRow]]:
        """Read the entries and accounts named, without the lock (a batch built ahead)."""

    async def accounts(self, ids: list[str]) -> list[_AccountRow]:
        """Read more accounts (those of the holds and reversals in the batch)."""

    async def write(self, rows: _Rows, *, expect: _Head | None) -> None:
        """Write the batch, in the order foreign keys and the seal trigger need.

        With `expect`, first take the head lock and raise `_HeadMoved` unless the head is
        `expect`. Nothing else is written in the transaction after this: it may commit.
        """


async def _batch_io(conn: AsyncConnection, postgres: bool) -> _BatchIO:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if postgres:
        return _PostgresIO(cast("psycopg.AsyncConnection[Any]", driver))
    return _SqliteIO(driver)


def _arrays(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to columns: one array parameter per column for `unnest` (empty when no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


_json_encode = msgspec.json.Encoder().encode


def _json(rows: Sequence[tuple[Any, ...]]) -> str:
    """Rows as one JSON array of arrays (bytes as base64), for `jsonb_array_elements`."""
    return _json_encode(rows).decode()


class _PostgresIO:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def start(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[_Head | None, list[_EntryRow], list[_AccountRow]]:
        conn = self._conn
        # In one pipeline the statements still run in order: both reads see the database
        # as it is once the head lock is held.
        async with conn.pipeline():
            head_cur, entry_cur, account_cur = conn.cursor(), conn.cursor(), conn.cursor()
            # Plan every statement of the batch (triggers' too) for the tables as they are
            # now. A prepared statement's generic plan is kept until the next ANALYZE, and
            # one made while `entries` was small looks every id up by a sequential scan.
            await conn.execute(_PG_CUSTOM_PLANS)
            await head_cur.execute(_PG_HEAD_LOCK)
            await entry_cur.execute(_PG_ENTRIES_BY_ID, [entry_ids])
            await account_cur.execute(_PG_ACCOUNTS_BY_ID, [account_ids])
        head = await head_cur.fetchone()
        found = await entry_cur.fetchall()
        loaded = await account_cur.fetchall()
        return (
            None if head is None else (int(head[0]), bytes(head[1])),
            [cast(_EntryRow, tuple(r)) for r in found],
            [cast(_AccountRow, tuple(r)) for r in loaded],
        )

    async def read(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[list[_EntryRow], list[_AccountRow]]:
        if not entry_ids and not account_ids:
            return [], []
        conn = self._conn
        # The reader is in autocommit mode: an explicit transaction, for the custom plans.
        async with conn.pipeline():
            entry_cur, account_cur = conn.cursor(), conn.cursor()
            await conn.execute("BEGIN")
            await conn.execute(_PG_CUSTOM_PLANS)
            await entry_cur.execute(_PG_ENTRIES_BY_ID, [entry_ids])
            await account_cur.execute(_PG_ACCOUNTS_BY_ID, [account_ids])
            await conn.execute("COMMIT")
        found = await entry_cur.fetchall()
        loaded = await account_cur.fetchall()
        return (
            [cast(_EntryRow, tuple(r)) for r in found],
            [cast(_AccountRow, tuple(r)) for r in loaded],
        )

    async def accounts(self, ids: list[str]) -> list[_AccountRow]:
        cur = await self._conn.execute(_PG_ACCOUNTS_BY_ID, [ids])
        return [cast(_AccountRow, tuple(r)) for r in await cur.fetchall()]

    async def write(self, rows: _Rows, *, expect: _Head | None) -> None:
        conn = self._conn
        try:
            async with conn.pipeline():
                if expect is not None:
                    await conn.execute(_PG_CUSTOM_PLANS)
                    await conn.execute(_PG_EXPECT_HEAD, expect)
                await self._write(rows)
        except psycopg.errors.DivisionByZero:
            raise _HeadMoved from None

    async def _write(self, rows: _Rows) -> None:
        conn = self._conn
        if len(rows.entries) >= _JSON_FROM:
            await conn.execute(
                _PG_WRITE_POSTINGS_JSON, [_json(rows.new_accounts), _json(rows.postings)]
            )
            await conn.execute(
                _PG_WRITE_ENTRIES_JSON,
                [
                    *_arrays(rows.changed_accounts, 7),
                    _json(rows.nodes),
                    *rows.checkpoint,
                    *rows.head,
                    _json(rows.entries),
                ],
            )
        else:
            await conn.execute(
                _PG_WRITE_POSTINGS_ARRAYS,
                [*_arrays(rows.new_accounts, 9), *_arrays(rows.postings, 6)],
            )
            await conn.execute(
                _PG_WRITE_ENTRIES_ARRAYS,
                [
                    *_arrays(rows.changed_accounts, 7),
                    *_arrays(rows.nodes, 3),
                    *rows.checkpoint,
                    *rows.head,
                    *_arrays(rows.entries, 10),
                ],
            )
        # COMMIT rides in the same pipeline, sent as a statement rather than through
        # conn.commit() (which would add a sync of its own): one round trip from the
        # first row to the durable commit. If any statement fails the server skips the
        # rest, COMMIT included, and the error surfaces when the pipeline closes.
        # SQLAlchemy's commit that follows finds no transaction and does nothing.
        await conn.execute("COMMIT")


class _SqliteIO:
    """aiosqlite runs each call on its own thread: one call per statement, not per row."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def start(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[_Head | None, list[_EntryRow], list[_AccountRow]]:
        # BEGIN IMMEDIATE (issued when SQLAlchemy began the transaction) holds the lock.
        heads = list(await self._conn.execute_fetchall(_SQLITE_HEAD))
        head = (int(heads[0][0]), bytes(heads[0][1])) if heads else None
        found = await self._select_in(_SQLITE_ENTRIES_BY_ID, entry_ids)
        return head, found, await self.accounts(account_ids)

    async def read(
        self, entry_ids: list[str], account_ids: list[str]
    ) -> tuple[list[_EntryRow], list[_AccountRow]]:
        found = await self._select_in(_SQLITE_ENTRIES_BY_ID, entry_ids)
        return found, await self.accounts(account_ids)

    async def accounts(self, ids: list[str]) -> list[_AccountRow]:
        return await self._select_in(_SQLITE_ACCOUNTS_BY_ID, ids)

    async def _select_in(self, query: str, ids: list[str]) -> list[Any]:
        found: list[Any] = []
        for start in range(0, len(ids), _SQLITE_CHUNK):
            chunk = ids[start : start + _SQLITE_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            # Only placeholders are added to the fixed query text.
            found.extend(await self._conn.execute_fetchall(f"{query} ({marks})", chunk))
        return found

    async def write(self, rows: _Rows, *, expect: _Head | None) -> None:
        conn = self._conn
        if expect is not None:
            # BEGIN IMMEDIATE (issued when the transaction began) holds the write lock.
            heads = list(await conn.execute_fetchall(_SQLITE_HEAD))
            if not heads or (int(heads[0][0]), bytes(heads[0][1])) != expect:
                raise _HeadMoved
        if rows.new_accounts:
            await conn.executemany(_SQLITE_INSERT_ACCOUNTS, rows.new_accounts)
        if rows.changed_accounts:
            await conn.executemany(
                _SQLITE_UPDATE_ACCOUNTS, [(*r[1:], r[0]) for r in rows.changed_accounts]
            )
        if rows.postings:
            await conn.executemany(_SQLITE_INSERT_POSTINGS, rows.postings)
        await conn.executemany(_SQLITE_INSERT_ENTRIES, rows.entries)
        if rows.nodes:
            await conn.executemany(_SQLITE_INSERT_NODES, rows.nodes)
        await conn.execute(_SQLITE_INSERT_CHECKPOINT, rows.checkpoint)
        await conn.execute(_SQLITE_UPDATE_HEAD, rows.head)


async def _resolutions(
    conn: AsyncConnection, column: Column[Any], targets: Iterable[int]
) -> dict[int, int]:
    rows = await conn.execute(select(column, entries.c.idx).where(column.in_(list(targets))))
    return {int(r[0]): int(r[1]) for r in rows}


async def load_nodes(
    conn: AsyncConnection, ids: Sequence[merkle.NodeId]
) -> dict[merkle.NodeId, bytes]:
    """Fetch tree nodes: leaves from `entries.leaf_hash`, higher levels from `tree_nodes`.

    One statement for all of them (a proof needs up to about 2 log2 n), since each round
    trip costs more than the index lookups it carries. The node ids are integers written
    into the SQL text: building the same query as a SQLAlchemy expression of 2 log2 n
    comparisons cost more than the database's work, and literal values let both databases
    plan the lookups for the tables as they are (primary-key lookups; SQLite scans the
    table for a row-value `IN (VALUES ...)`, so it gets an OR of pairs instead).
    """
    leaves = sorted({int(i) for level, i in ids if level == 0})
    inner = sorted({(int(level), int(i)) for level, i in ids if level > 0})
    parts = []
    if leaves:
        listed = ", ".join(str(i) for i in leaves)
        parts.append(f"SELECT 0, idx, leaf_hash FROM entries WHERE idx IN ({listed})")  # noqa: S608
    if inner and conn.dialect.name == "postgresql":
        # PostgreSQL plans a join with the listed pairs as one primary-key probe per pair,
        # about twice as fast as the same pairs as an OR of conditions.
        pairs = ", ".join(f"({lv}::int2, {i}::int8)" for lv, i in inner)
        parts.append(
            "SELECT t.level, t.idx, t.hash FROM (VALUES " + pairs + ") AS w(level, idx) "  # noqa: S608
            "JOIN tree_nodes AS t ON t.level = w.level AND t.idx = w.idx"
        )
    elif inner:
        pairs = " OR ".join(f"(level = {lv} AND idx = {i})" for lv, i in inner)
        parts.append(f"SELECT level, idx, hash FROM tree_nodes WHERE {pairs}")  # noqa: S608
    found: dict[merkle.NodeId, bytes] = {}
    if parts:
        # Only integers are formatted into the text (see above).
        result = await conn.exec_driver_sql(" UNION ALL ".join(parts))
        for level, idx, value in cast("Iterable[tuple[int, int, bytes]]", result):
            found[(int(level), int(idx))] = bytes(value)
    missing = [i for i in ids if i not in found]
    if missing:
        raise RuntimeError(f"tree nodes missing from the store: {missing[:5]}")
    return found
