"""Worked examples: what the ledger does for the people of Milano Sei l'Altro.

Each test reads as a short story and runs on SQLite and PostgreSQL through the `ledger`
fixture (a started LedgerService with a controllable clock). They double as executable
documentation of `ledger/SPEC.md`: holds, expiry, limits, reversals, linked batches,
idempotent retries, and the proofs an outside auditor uses.
"""

from __future__ import annotations

import asyncio

import pytest

from scambio.ledger import merkle
from scambio.ledger.entry import encode_entry
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Checkpoint, open_checkpoint
from scambio.store import queries
from scambio.store.commands import Appended, Outcome, Transfer
from scambio.store.ledger import LedgerService

from .conftest import ORIGIN, SIGNER, Clock, new_id


def appended(outcome: Outcome) -> Appended:
    assert isinstance(outcome, Appended), f"expected success, got {outcome!r}"
    return outcome


def refused(outcome: Outcome, code: str) -> RuleViolation:
    assert isinstance(outcome, RuleViolation), f"expected {code}, got {outcome!r}"
    assert outcome.code == code, f"expected {code}, got {outcome.code}: {outcome.detail}"
    return outcome


async def balances(ledger: LedgerService, *ids: str) -> dict[str, tuple[int, int]]:
    """(posted, net pending) of each account."""
    async with ledger.read() as conn:
        views = [await queries.account(conn, i) for i in ids]
    return {v.id: (v.posted, v.pending) for v in views}


async def signed_checkpoint(ledger: LedgerService, size: int) -> Checkpoint:
    async with ledger.read() as conn:
        note = await queries.checkpoint_at(conn, size)
    assert note is not None, f"no checkpoint was signed at size {size}"
    return open_checkpoint(note, SIGNER.verifier(), ORIGIN)


async def test_homework_help_in_zone_6_is_held_then_posted_and_provably_logged(
    ledger: LedgerService,
) -> None:
    # Giulia offers homework help in Zone 6; Marco asks for it for his son.
    await ledger.open_account("giulia", "member")
    await ledger.open_account("marco", "member")
    # The community manager matches them; they agree on 90 minutes, and a hold reserves
    # Marco's minutes so that he cannot promise them to someone else meanwhile.
    hold_id = new_id()
    hold = appended(
        await ledger.transfer(
            Transfer(hold_id, "marco", "giulia", 90, "homework help, Zone 6", hold=True)
        )
    )
    assert hold.entry.kind == "hold"
    async with ledger.read() as conn:
        marco = await queries.account(conn, "marco")
        giulia = await queries.account(conn, "giulia")
    assert (marco.posted, marco.debits_pending, marco.available) == (0, 90, -90)
    assert (giulia.posted, giulia.credits_pending, giulia.available) == (0, 90, 0)

    # Giulia reports that the session took 75 minutes; the hold is posted for 75.
    post = appended(await ledger.post(hold_id, 75))
    assert post.entry.kind == "post"
    assert post.entry.id == f"{hold_id}:post"
    assert post.entry.refs == {"hold": hold.index}
    assert await balances(ledger, "marco", "giulia") == {"marco": (-75, 0), "giulia": (75, 0)}

    # An auditor who trusts only the node's public key checks that the post is in the log:
    # the checkpoint signed with its batch covers it, and the inclusion proof verifies.
    checkpoint = await signed_checkpoint(ledger, post.tree_size)
    assert checkpoint.size > post.index
    async with ledger.read() as conn:
        leaf, proof = await queries.inclusion_proof(conn, post.index, checkpoint.size)
    assert leaf == merkle.leaf_hash(encode_entry(post.entry)) == post.leaf_hash
    merkle.verify_inclusion(leaf, post.index, checkpoint.size, proof, checkpoint.root)


async def test_a_newcomer_can_receive_600_minutes_of_help_and_no_more(
    ledger: LedgerService,
) -> None:
    # Amina has just joined: as in most timebanks she may receive help before giving any,
    # up to the default credit limit of 600 minutes.
    await ledger.open_account("amina", "member")
    await ledger.open_account("lucia", "member")
    appended(await ledger.transfer(Transfer(new_id(), "amina", "lucia", 480, "childcare")))
    appended(await ledger.transfer(Transfer(new_id(), "amina", "lucia", 120, "childcare")))
    violation = refused(
        await ledger.transfer(Transfer(new_id(), "amina", "lucia", 30, "one more hour")),
        "limit-exceeded",
    )
    assert violation.fields == {"account": "amina", "available": -600, "shortfall": 30}
    assert "leave it 30 short" in violation.detail
    assert await balances(ledger, "amina", "lucia") == {"amina": (-600, 0), "lucia": (600, 0)}
    # Once Amina gives an hour of Italian conversation, she can receive again.
    appended(await ledger.transfer(Transfer(new_id(), "lucia", "amina", 60, "conversation")))
    appended(await ledger.transfer(Transfer(new_id(), "amina", "lucia", 30, "one more hour")))


async def test_an_unclaimed_hold_expires_and_the_minutes_return(
    ledger: LedgerService, clock: Clock
) -> None:
    await ledger.open_account("paolo", "member")
    await ledger.open_account("rosa", "member")
    # Paolo books two hours of help moving house, to be confirmed within a day.
    hold_id = new_id()
    hold = appended(
        await ledger.transfer(
            Transfer(hold_id, "paolo", "rosa", 120, "moving boxes", hold=True, expires_in=86400)
        )
    )
    assert hold.entry.refs == {"expires": "2026-11-26T09:00:00.000000Z"}
    clock.advance(hours=23)
    assert await ledger.expire_holds() == []  # not yet
    assert await balances(ledger, "paolo") == {"paolo": (0, -120)}

    # Nobody confirms. A day and an hour later the sweep voids the hold.
    clock.advance(hours=2)
    refused(await ledger.post(hold_id), "hold-expired")  # too late to post it
    (void,) = await ledger.expire_holds()
    void = appended(void)
    assert (void.entry.kind, void.entry.id) == ("void", f"{hold_id}:void")
    assert void.entry.refs == {"hold": hold.index, "reason": "expired"}
    assert void.entry.postings == ()
    assert await balances(ledger, "paolo", "rosa") == {"paolo": (0, 0), "rosa": (0, 0)}
    async with ledger.read() as conn:
        assert (await queries.account(conn, "paolo")).available == 0
    # The hold is resolved once and for all.
    refused(await ledger.post(hold_id), "hold-resolved")
    assert await ledger.expire_holds() == []
    retry = appended(await ledger.void(hold_id))  # asking again returns the same void
    assert (retry.created, retry.index) == (False, void.index)


async def test_a_manager_reverses_a_mistaken_transfer_once(ledger: LedgerService) -> None:
    for member in ("anna", "bruno", "bianca"):
        await ledger.open_account(member, "member")
    # The manager records Anna's payment for garden work to Bruno instead of Bianca.
    wrong = appended(await ledger.transfer(Transfer(new_id(), "anna", "bianca", 120, "garden")))
    correction_id = new_id()
    reversal = appended(await ledger.reverse(correction_id, wrong.index, "wrong payee"))
    assert reversal.entry.kind == "reversal"
    assert reversal.entry.refs == {"reverses": wrong.index}
    assert [(p.account, p.minutes) for p in reversal.entry.postings] == [
        ("anna", 120),
        ("bianca", -120),
    ]
    appended(await ledger.transfer(Transfer(new_id(), "anna", "bruno", 120, "garden")))
    assert await balances(ledger, "anna", "bruno", "bianca") == {
        "anna": (-120, 0),
        "bruno": (120, 0),
        "bianca": (0, 0),
    }
    # Pressing the button twice is harmless; a second correction is refused.
    again = appended(await ledger.reverse(correction_id, wrong.index, "wrong payee"))
    assert (again.created, again.index) == (False, reversal.index)
    twice = refused(await ledger.reverse(new_id(), wrong.index), "already-reversed")
    assert twice.fields == {"reversed_by": reversal.index}
    refused(await ledger.reverse(new_id(), reversal.index), "not-reversible")
    refused(await ledger.reverse(new_id(), 0), "not-reversible")  # an account entry
    refused(await ledger.reverse(new_id(), 999), "not-reversible")  # beyond the log
    conflict = refused(
        await ledger.reverse(correction_id, wrong.index, "typo"), "idempotency-conflict"
    )
    assert conflict.fields == {"field": "memo"}


async def test_a_linked_batch_commits_nothing_when_its_third_transfer_fails(
    ledger: LedgerService,
) -> None:
    # A company grant is split between three volunteers, all or nothing; the pool behind it
    # only holds 200 minutes.
    await ledger.open_account("grant-pool", "pool")
    await ledger.open_account("acme", "sponsor")
    for member in ("elena", "franco", "gina"):
        await ledger.open_account(member, "member")
    appended(await ledger.transfer(Transfer(new_id(), "acme", "grant-pool", 200, "grant")))
    async with ledger.read() as conn:
        size_before = (await queries.head(conn)).size
    items = [Transfer(new_id(), "grant-pool", m, 80, "grant share") for m in ("elena", "franco")]
    items.append(Transfer(new_id(), "grant-pool", "gina", 80, "grant share"))
    outcome = await ledger.linked(items)
    assert not outcome.ok
    first, second, third = outcome.items
    culprit = refused(third, "limit-exceeded")
    assert culprit.fields["account"] == "grant-pool"
    assert culprit.fields["shortfall"] == 40
    for item in (first, second):
        failed = refused(item, "linked-failed")
        assert failed.fields == {"failed_item": 2}
        assert f"linked item 2 ({items[2].id}) failed" in failed.detail
    async with ledger.read() as conn:
        assert (await queries.head(conn)).size == size_before
    assert await balances(ledger, "grant-pool", "elena", "gina") == {
        "grant-pool": (200, 0),
        "elena": (0, 0),
        "gina": (0, 0),
    }
    # Two shares fit: the same ids, now linked without the third, commit together.
    ok = await ledger.linked(items[:2])
    assert ok.ok
    first_ok, second_ok = (appended(o) for o in ok.items)
    assert second_ok.index == first_ok.index + 1
    assert first_ok.tree_size == second_ok.tree_size  # one batch, one checkpoint


async def test_retrying_a_transfer_returns_the_original_and_changing_it_is_a_conflict(
    ledger: LedgerService,
) -> None:
    await ledger.open_account("carla", "member")
    await ledger.open_account("dario", "member")
    transfer = Transfer(new_id(), "carla", "dario", 60, "computer lessons")
    original = appended(await ledger.transfer(transfer))
    assert original.created
    # The phone lost the response; the app retries with the same id.
    retry = appended(await ledger.transfer(transfer))
    assert (retry.created, retry.index, retry.leaf_hash) == (
        False,
        original.index,
        original.leaf_hash,
    )
    assert retry.entry == original.entry
    # The same id with other minutes is someone's mistake, not a retry.
    changed = Transfer(transfer.id, "carla", "dario", 45, "computer lessons")
    conflict = refused(await ledger.transfer(changed), "idempotency-conflict")
    assert conflict.fields == {"field": "minutes"}
    assert "minutes differs" in conflict.detail
    held = Transfer(transfer.id, "carla", "dario", 60, "computer lessons", hold=True)
    assert refused(await ledger.transfer(held), "idempotency-conflict").fields == {"field": "hold"}
    assert await balances(ledger, "carla", "dario") == {"carla": (-60, 0), "dario": (60, 0)}
    # Opening an account twice with the same settings is a retry too.
    again = appended(await ledger.open_account("carla", "member"))
    assert not again.created
    other = refused(await ledger.open_account("carla", "member", -100), "idempotency-conflict")
    assert other.fields == {"field": "min_balance"}


async def test_two_checkpoints_are_provably_consistent(ledger: LedgerService) -> None:
    await ledger.open_account("ivo", "member")
    await ledger.open_account("lia", "member")
    first = appended(await ledger.transfer(Transfer(new_id(), "ivo", "lia", 15)))
    for minutes in (30, 45, 60, 10):
        last = appended(await ledger.transfer(Transfer(new_id(), "lia", "ivo", minutes)))
    older = await signed_checkpoint(ledger, first.tree_size)
    newer = await signed_checkpoint(ledger, last.tree_size)
    assert older.size < newer.size
    async with ledger.read() as conn:
        proof = await queries.consistency_proof(conn, older.size, newer.size)
        head = await queries.head(conn)
    merkle.verify_consistency(older.size, newer.size, proof, older.root, newer.root)
    assert open_checkpoint(head.checkpoint, SIGNER.verifier(), ORIGIN) == newer
    # The proof is bound to those roots: it does not vouch for any other history.
    forged = merkle.leaf_hash(b"another history")
    with pytest.raises(VerificationError, match="does not match expected root1"):
        merkle.verify_consistency(older.size, newer.size, proof, forged, newer.root)


async def test_a_client_cannot_take_the_id_of_a_future_post(ledger: LedgerService) -> None:
    await ledger.open_account("nora", "member")
    await ledger.open_account("oscar", "member")
    hold_id = new_id()
    appended(await ledger.transfer(Transfer(hold_id, "nora", "oscar", 60, hold=True)))
    # Someone submits a one-minute transfer under the id the post of that hold will use:
    # ':' is reserved for derived ids, so it is refused ...
    squat = await ledger.transfer(Transfer(f"{hold_id}:post", "nora", "oscar", 1))
    assert isinstance(squat, RuleViolation)
    assert squat.code == "invalid-id"
    assert "must not contain ':'" in squat.detail
    # ... and the real post goes through.
    appended(await ledger.post(hold_id))


async def test_a_double_click_creates_one_entry_and_says_so(ledger: LedgerService) -> None:
    await ledger.open_account("pia", "member")
    await ledger.open_account("ugo", "member")
    click = Transfer(new_id(), "pia", "ugo", 30, "babysitting")
    # Two separate calls (one coroutine awaited twice would be one call).
    outcomes = await asyncio.gather(ledger.transfer(click), ledger.transfer(click))
    first, second = (appended(o) for o in outcomes)
    assert first.index == second.index  # one entry, answered once as created
    assert sorted([first.created, second.created]) == [False, True]
