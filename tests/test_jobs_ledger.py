"""The jobs that keep the ledger honest, on SQLite and PostgreSQL: verify-ledger (incremental
across restarts, the daily full run, tampering caught at the exact entry and shown as
compromised), reconcile-balances (a corrupted cache reported, repaired only on request and
audited) and expire-holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from scambio.cli import main
from scambio.jobs.periods import Every, Period
from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner, RunOutcome
from scambio.ledger import merkle
from scambio.ledger.entry import AccountSpec, Entry, Posting, encode_entry
from scambio.ledger.verify import LogReplayer, ReplayerSnapshot
from scambio.store import queries
from scambio.store import verification as stored
from scambio.store.audit import verify_database
from scambio.store.commands import Appended, Transfer
from scambio.store.ledger import LedgerService, require
from scambio.store.people_tables import audit_log
from scambio.store.reconcile import differences
from scambio.store.tables import entries
from scambio.timebank.audit import CLI
from scambio.timebank.cache_repair import repair_cache
from scambio.timebank.context import Timebank

from .api_helpers import running_api
from .conftest import ORIGIN, SIGNER, Clock, new_id
from .test_tamper import canonical, drop_append_only, sql
from .test_verify import Scenario, populate


@pytest.fixture
async def tb(ledger: LedgerService) -> AsyncIterator[Timebank]:
    timebank = Timebank.create(ledger, ledger.settings)
    try:
        yield timebank
    finally:
        await timebank.mailer.aclose()


@pytest.fixture
async def scenario(ledger: LedgerService, clock: Clock) -> Scenario:
    return await populate(ledger, clock)


async def run(tb: Timebank, name: str, *, force: bool = False) -> RunOutcome:
    """A fresh runner (as after a restart) runs the job's latest complete period."""
    runner = JobRunner(tb, ALL_JOBS)
    job = runner.job(name)
    period = Period.containing(job.every, runner.now()).shift(-1)
    return await runner.run_period(job, period, force=force)


async def head_size(ledger: LedgerService) -> int:
    async with ledger.read() as conn:
        return (await queries.head(conn)).size


async def more_entries(ledger: LedgerService, scenario: Scenario) -> int:
    """Append entries that refer back below the verified size: the post of a hold left
    open, the reversal of an early transfer; return the new head size."""
    require(await ledger.transfer(Transfer(new_id(), "giulia", "luca", 5, "later")))
    require(await ledger.post(scenario.open_hold))
    require(await ledger.reverse(new_id(), scenario.transfer, "undo the first"))
    return await head_size(ledger)


def _more(entry: Entry, extra: int) -> bytes:
    legs = tuple(
        Posting(account=p.account, minutes=p.minutes + (extra if p.minutes > 0 else -extra))
        for p in entry.postings
    )
    return encode_entry(msgspec.structs.replace(entry, postings=legs))


# -- verify-ledger -----------------------------------------------------------------------------


async def test_verify_ledger_resumes_from_its_stored_state_across_restarts(
    tb: Timebank, ledger: LedgerService, scenario: Scenario, clock: Clock
) -> None:
    size = await head_size(ledger)
    first = await run(tb, "verify-ledger")
    assert first.status == "succeeded", first.error
    assert first.summary | {"root": "-"} == {
        "full": True,
        "from": 0,
        "size": size,
        "entries": size,
        "checkpoints": first.summary["checkpoints"],
        "root": "-",
    }
    async with ledger.read() as conn:
        state = await stored.load(conn)
        head = await queries.head(conn)
    assert state is not None and state.status == "verified"
    assert (state.verified_size, state.verified_root) == (size, head.root)
    assert state.verified_checkpoint == head.checkpoint
    snapshot = ReplayerSnapshot.decode(state.state or b"")
    assert snapshot.size == size and len(snapshot.frontier) == size.bit_count()
    assert [h.id for h in snapshot.holds] == [scenario.open_hold]

    # New entries refer to history the stored state does not hold: a hold, a reversal.
    new_size = await more_entries(ledger, scenario)
    clock.advance(hours=1)
    second = await run(tb, "verify-ledger")  # a new runner: only the stored state is kept
    assert second.status == "succeeded", second.error
    assert (second.summary["full"], second.summary["from"]) == (False, size)
    assert (second.summary["size"], second.summary["entries"]) == (new_size, new_size - size)
    async with ledger.read() as conn:
        state = await stored.load(conn)
    assert state is not None and state.verified_size == new_size
    assert ReplayerSnapshot.decode(state.state or b"").holds == []


async def test_a_history_forgetting_audit_agrees_with_a_full_one(
    ledger: LedgerService, scenario: Scenario
) -> None:
    await more_entries(ledger, scenario)
    full = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN)
    # Forgetting at (almost) every checkpoint makes every hold, reversal and id check
    # go through the history loaded from the database.
    small = await verify_database(ledger.engine, SIGNER.verifier(), ORIGIN, forget_every=1)
    assert (small.size, small.root, small.checkpoints) == (full.size, full.root, full.checkpoints)
    assert {k: (a.posted, a.debits_pending) for k, a in small.accounts.items()} == {
        k: (a.posted, a.debits_pending) for k, a in full.accounts.items()
    }


def test_a_resumed_replayer_refuses_ids_used_before_its_history() -> None:
    snapshot = LogReplayer(ORIGIN, SIGNER.verifier()).snapshot()
    with pytest.raises(ValueError, match="needs 1 frontier hashes"):
        LogReplayer.from_snapshot(msgspec.structs.replace(snapshot, size=1), SIGNER.verifier())
    resumed = LogReplayer.from_snapshot(snapshot, SIGNER.verifier())
    assert resumed.root() == merkle.EMPTY_ROOT
    resumed.remember_ids(["account:anna"])  # as if an earlier entry had used it
    opening = Entry(
        v=1,
        ledger=ORIGIN,
        index=0,
        id="account:anna",
        kind="account",
        time="2026-11-25T09:00:00.000000Z",
        postings=(),
        memo="",
        refs={},
        account=AccountSpec(id="anna", kind="member", min_balance=-600, max_balance=None),
    )
    resumed.feed_entry(encode_entry(opening))
    assert resumed.pending is not None
    assert resumed.pending.reason == "id 'account:anna' is already used by an earlier entry"
    assert resumed.pending.index == 0


async def test_a_tampered_new_entry_is_caught_at_its_index_and_shown_as_compromised(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        await api.open("marco")
        await api.open("giulia")
        assert (await api.transfer("marco", "giulia", 30)).status_code == 201
        ok = api.client.blocking_portal.call(run, api.app.state.timebank, "verify-ledger")
        assert ok.status == "succeeded"
        health = (await api.client.get("/health")).json()
        assert (health["ledger"], health["ledger_verified_size"]) == ("verified", 3)

        for minutes in (10, 20, 40):
            assert (await api.transfer("marco", "giulia", minutes)).status_code == 201
        target = 4  # the 20-minute transfer, after the verified checkpoint
        ledger = api.ledger
        await drop_append_only(ledger)
        original = await canonical(ledger, target)
        await sql(
            ledger,
            "UPDATE entries SET canonical = :c WHERE idx = :i",
            c=_more(original, 5),
            i=target,
        )
        clock.advance(hours=1)
        failed = api.client.blocking_portal.call(run, api.app.state.timebank, "verify-ledger")
        assert failed.status == "failed"
        assert failed.error == (
            f"ledger verification failed: entry {target}: leaf hash differs from the stored "
            f"one: the entry's bytes hash to {merkle.leaf_hash(_more(original, 5)).hex()}, the "
            f"stored leaf hash is {merkle.leaf_hash(encode_entry(original)).hex()} (the entry "
            "or its leaf hash was altered)"
        )
        assert (failed.summary["index"], failed.summary["from"]) == (target, 3)

        health = (await api.client.get("/health")).json()
        assert (health["status"], health["ledger"], health["ledger_verified_size"]) == (
            "ok",
            "compromised",
            3,
        )
        seen = (await api.get("/api/v1/ledger/verification", role="manager")).json()
        assert seen["status"] == "compromised" and seen["verified_size"] == 3
        assert seen["failure"]["index"] == target
        assert seen["failure"]["reason"].startswith("leaf hash differs from the stored one")
        runs = (await api.get("/api/v1/jobs/runs", role="auditor", job="verify-ledger")).json()
        assert [(r["status"], r["summary"].get("index")) for r in runs["items"]] == [
            ("failed", target),
            ("succeeded", None),
        ]

        # The next hour starts again from the last good state and fails again.
        clock.advance(hours=1)
        again = api.client.blocking_portal.call(run, api.app.state.timebank, "verify-ledger")
        assert (again.status, again.summary["index"]) == ("failed", target)


async def test_the_daily_full_run_catches_rows_altered_below_the_verified_checkpoint(
    tb: Timebank, ledger: LedgerService, scenario: Scenario, clock: Clock
) -> None:
    assert (await run(tb, "verify-ledger")).status == "succeeded"
    target = scenario.transfer
    original = await canonical(ledger, target)
    await drop_append_only(ledger)
    await sql(
        ledger, "UPDATE entries SET canonical = :c WHERE idx = :i", c=_more(original, 1), i=target
    )
    # An incremental run reads only entries after the verified size: nothing new, it passes.
    clock.advance(hours=1)
    incremental = await run(tb, "verify-ledger")
    assert (incremental.status, incremental.summary["full"]) == ("succeeded", False)
    # The run for 03:00 UTC re-verifies the whole log.
    clock.now = clock.now.replace(day=clock.now.day + 1, hour=4, minute=0)
    full = await run(tb, "verify-ledger")
    assert full.status == "failed" and full.summary["full"] is True
    assert full.summary["index"] == target
    assert "leaf hash differs from the stored one" in full.summary["reason"]


async def test_a_rewritten_history_is_caught_by_the_full_run(
    tb: Timebank, ledger: LedgerService, scenario: Scenario
) -> None:
    assert (await run(tb, "verify-ledger")).status == "succeeded"
    async with ledger.read() as conn:
        verified = await stored.load(conn)
    assert verified is not None and verified.verified_size is not None
    # Someone replaces the recorded root with another one (as if the log had been rebuilt).
    await sql(ledger, "UPDATE ledger_verification SET verified_root = :r", r=bytes(32))
    forced = await run(tb, "verify-ledger", force=True)
    assert forced.status == "failed"
    assert forced.summary["reason"].startswith(
        f"history was rewritten: at size {verified.verified_size} the ledger now has root "
    )


async def test_a_ledger_that_lost_entries_is_caught(
    tb: Timebank, ledger: LedgerService, scenario: Scenario
) -> None:
    assert (await run(tb, "verify-ledger")).status == "succeeded"
    size = await head_size(ledger)
    await sql(ledger, "UPDATE ledger_verification SET verified_size = :s", s=size + 5)
    forced = await run(tb, "verify-ledger", force=True)
    assert forced.status == "failed"
    assert forced.summary["reason"].startswith(
        f"the ledger has {size} entries but {size + 5} were verified on "
    )


# -- reconcile-balances and repair-cache -------------------------------------------------------


async def test_a_corrupted_cache_is_reported_not_fixed_then_repaired_on_request(
    tb: Timebank, ledger: LedgerService, scenario: Scenario, clock: Clock
) -> None:
    assert (await run(tb, "reconcile-balances")).status == "succeeded"
    async with ledger.read() as conn:
        marco = await queries.account(conn, "marco")
        anna = await queries.account(conn, "anna")
    await sql(ledger, "UPDATE accounts SET posted = posted + 30 WHERE id = 'marco'")
    await sql(ledger, "UPDATE accounts SET credits_pending = 0 WHERE id = 'anna'")

    clock.advance(days=1)
    failed = await run(tb, "reconcile-balances")
    assert failed.status == "failed"
    assert failed.summary["differences"] == 2
    assert [tuple(d.values()) for d in failed.summary["listed"]] == [
        ("anna", "credits_pending", 0, anna.credits_pending),
        ("marco", "posted", marco.posted + 30, marco.posted),
    ]
    assert failed.error == (
        "2 cached balance(s) differ from the postings: credits_pending of 'anna' is 0 in the "
        f"cache, {anna.credits_pending} from the postings; posted of 'marco' is "
        f"{marco.posted + 30} in the cache, {marco.posted} from the postings. Run `scambio "
        "ledger repair-cache` to repair them (audited)."
    )
    async with ledger.read() as conn:  # nothing was fixed
        assert (await queries.account(conn, "marco")).posted == marco.posted + 30

    dry = await repair_cache(tb, CLI, reason="check", dry_run=True)
    assert [d.account for d in dry.repaired] == ["anna", "marco"]
    async with ledger.read() as conn:
        assert (await queries.account(conn, "marco")).posted == marco.posted + 30
        assert len(list(await conn.execute(select(audit_log)))) == 0

    done = await repair_cache(tb, CLI, reason="cache corrupted by a restore")
    assert (done.checked, len(done.repaired), done.left) == (6, 2, [])
    async with ledger.read() as conn:
        assert (await queries.account(conn, "marco")).posted == marco.posted
        assert (await queries.account(conn, "anna")).credits_pending == anna.credits_pending
        (row,) = list(await conn.execute(select(audit_log)))
        assert await differences(conn) == (6, [])
    assert (row.action, row.subject_type, row.subject_id, row.reason, row.actor) == (
        "ledger.cache-repaired",
        "ledger",
        ORIGIN,
        "cache corrupted by a restore",
        "cli",
    )
    assert msgspec.json.decode(row.details)["changes"] == [
        {"account": "anna", "field": "credits_pending", "from": 0, "to": anna.credits_pending},
        {"account": "marco", "field": "posted", "from": marco.posted + 30, "to": marco.posted},
    ]
    clock.advance(days=1)
    assert (await run(tb, "reconcile-balances")).status == "succeeded"


async def test_repair_cache_from_the_command_line(
    ledger: LedgerService, scenario: Scenario, db_url: str, tmp_path: Path
) -> None:
    await sql(ledger, "UPDATE accounts SET posted = posted - 7 WHERE id = 'luca'")
    key_file = tmp_path / "node.key"
    key_file.write_text(SIGNER.to_string() + "\n")
    key_file.chmod(0o600)
    env = {
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_DATA_DIR": str(tmp_path),
        "SCAMBIO_KEY_FILE": str(key_file),
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
    }
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, main, list(args), env=env)

    missing = await invoke("ledger", "repair-cache")
    assert missing.exit_code == 2 and "Missing option '--reason'" in missing.output
    dry = await invoke("ledger", "repair-cache", "--reason", "x", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would repair: posted of 'luca' is" in dry.output
    done = await invoke("ledger", "repair-cache", "--reason", "restore")
    assert done.exit_code == 0, done.output
    assert "6 accounts checked, 1 cached figure(s) repaired" in done.output
    async with ledger.read() as conn:
        assert await differences(conn) == (6, [])
        assert [r.action for r in await conn.execute(select(audit_log))] == [
            "ledger.cache-repaired"
        ]


# -- expire-holds ------------------------------------------------------------------------------


async def test_expire_holds_voids_holds_due_by_now(
    tb: Timebank, ledger: LedgerService, clock: Clock
) -> None:
    for name in ("marco", "anna"):
        require(await ledger.open_account(name, "member"))
    expiring = [new_id() for _ in range(3)]
    for hold_id in expiring:
        require(await ledger.transfer(Transfer(hold_id, "marco", "anna", 10, "", True, 60)))
    lasting = require(await ledger.transfer(Transfer(new_id(), "marco", "anna", 5, "", True)))
    assert isinstance(lasting, Appended)
    clock.advance(minutes=2)
    outcome = await run(tb, "expire-holds")
    assert (outcome.status, outcome.summary) == ("succeeded", {"voided": 3})
    async with ledger.read() as conn:
        assert (await queries.account(conn, "marco")).debits_pending == 5
        voids = [
            r.id for r in await conn.execute(select(entries.c.id).where(entries.c.kind == "void"))
        ]
    assert sorted(voids) == sorted(f"{h}:void" for h in expiring)
    assert (await run(tb, "expire-holds")).status == "already-done"


def test_the_registry_names_each_job_once_and_uses_every_period_kind() -> None:
    names = [job.name for job in ALL_JOBS]
    assert len(names) == len(set(names))
    assert {job.every for job in ALL_JOBS} == set(Every)
