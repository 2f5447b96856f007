"""Per-account limit changes: a manager raises or lowers one member's credit limit.

A limit change is an `account` entry in the log (id `limits:<request id>`), so the offline
verifier applies it exactly as the service did. These run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scambio.ledger.errors import RuleViolation
from scambio.ledger.verify import verify_export
from scambio.store import queries
from scambio.store.commands import Appended, Transfer
from scambio.store.ledger import LedgerService

from .api_helpers import Api, assert_problem, new_uuid, running_api
from .conftest import new_id
from .test_verify import VKEY, export_lines


async def _open(ledger: LedgerService, *ids: str) -> None:
    for account_id in ids:
        assert isinstance(await ledger.open_account(account_id, "member"), Appended)


async def test_a_lower_credit_limit_applies_to_the_next_transfer(ledger: LedgerService) -> None:
    # Giulia is new: by default she may go 600 minutes below zero. Her manager agrees with
    # her on a gentler start of 120 minutes.
    await _open(ledger, "giulia", "marco")
    changed = await ledger.set_limits(new_id(), "giulia", -120, None, "agreed at intake")
    assert isinstance(changed, Appended)
    assert changed.entry.kind == "account"
    assert changed.entry.memo == "agreed at intake"
    assert changed.entry.account is not None
    assert (changed.entry.account.kind, changed.entry.account.min_balance) == ("member", -120)

    refused = await ledger.transfer(Transfer(new_id(), "giulia", "marco", 121))
    assert isinstance(refused, RuleViolation)
    assert refused.code == "limit-exceeded"
    assert refused.fields["shortfall"] == 1
    assert isinstance(await ledger.transfer(Transfer(new_id(), "giulia", "marco", 120)), Appended)


async def test_limits_the_balance_already_breaks_are_refused(ledger: LedgerService) -> None:
    await _open(ledger, "giulia", "marco")
    assert isinstance(await ledger.transfer(Transfer(new_id(), "giulia", "marco", 300)), Appended)
    refused = await ledger.set_limits(new_id(), "giulia", -200, None)
    assert isinstance(refused, RuleViolation)
    assert refused.code == "invalid-limits"
    refused = await ledger.set_limits(new_id(), "marco", -600, 299)
    assert isinstance(refused, RuleViolation)
    assert refused.code == "invalid-limits"


async def test_limit_changes_are_idempotent_and_conflicts_name_the_field(
    ledger: LedgerService,
) -> None:
    await _open(ledger, "giulia")
    request = new_id()
    first = await ledger.set_limits(request, "giulia", -300, None, "why")
    again = await ledger.set_limits(request, "giulia", -300, None, "why")
    assert isinstance(first, Appended) and isinstance(again, Appended)
    assert (again.created, again.index) == (False, first.index)
    clash = await ledger.set_limits(request, "giulia", -301, None, "why")
    assert isinstance(clash, RuleViolation)
    assert (clash.code, clash.fields["field"]) == ("idempotency-conflict", "min_balance")


@pytest.mark.parametrize(
    ("account", "low", "high", "code"),
    [
        ("nobody", -10, None, "unknown-account"),
        ("NOT VALID", -10, None, "invalid-account-id"),
        ("giulia", 10, None, "invalid-limits"),
        ("giulia", None, -1, "invalid-limits"),
    ],
)
async def test_bad_limit_changes_write_nothing(
    ledger: LedgerService, account: str, low: int | None, high: int | None, code: str
) -> None:
    await _open(ledger, "giulia")
    outcome = await ledger.set_limits(new_id(), account, low, high)
    assert isinstance(outcome, RuleViolation)
    assert outcome.code == code
    async with ledger.read() as conn:
        assert (await queries.head(conn)).size == 1


async def test_the_offline_verifier_replays_limit_changes(ledger: LedgerService) -> None:
    await _open(ledger, "giulia", "marco")
    assert isinstance(await ledger.set_limits(new_id(), "giulia", -60, None), Appended)
    assert isinstance(await ledger.transfer(Transfer(new_id(), "giulia", "marco", 60)), Appended)
    report = verify_export(await export_lines(ledger), trusted_vkey=VKEY)
    assert report.entries == 4
    giulia = report.accounts["giulia"]
    assert (giulia.min_balance, giulia.posted) == (-60, -60)


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


async def test_a_manager_changes_limits_over_http_and_it_is_audited(api: Api) -> None:
    await api.open("giulia")
    body = {"id": new_uuid(), "min_balance": -1200, "max_balance": None, "reason": "carer"}
    first = await api.post("/api/v1/accounts/giulia/limits", body, role="manager")
    assert first.status_code == 201, first.text
    assert first.json()["min_balance"] == -1200
    again = await api.post("/api/v1/accounts/giulia/limits", body, role="manager")
    assert again.status_code == 200
    assert again.json() == first.json()
    view = (await api.get("/api/v1/accounts/giulia")).json()
    assert (view["min_balance"], view["max_balance"]) == (-1200, None)
    audit = (await api.get("/api/v1/audit", role="auditor", subject_id="giulia")).json()
    changes = [r for r in audit["items"] if r["action"] == "account.limits-changed"]
    assert len(changes) == 1
    assert changes[0]["reason"] == "carer"
    assert changes[0]["details"]["min_balance"] == -1200


async def test_limit_change_errors_over_http(api: Api) -> None:
    await api.open("giulia")
    good = {"id": new_uuid(), "min_balance": -10, "max_balance": None, "reason": "x"}
    assert_problem(await api.post("/api/v1/accounts/nobody/limits", good), 404, "unknown-account")
    assert_problem(
        await api.post("/api/v1/accounts/giulia/limits", good, role="auditor"), 403, "forbidden"
    )
    assert_problem(
        await api.post("/api/v1/accounts/giulia/limits", {**good, "min_balance": 5}),
        422,
        "invalid-limits",
    )
    assert_problem(
        await api.post("/api/v1/accounts/giulia/limits", {**good, "id": "not-a-uuid"}),
        422,
        "invalid-id",
    )
    assert_problem(
        await api.post("/api/v1/accounts/giulia/limits", {**good, "reason": ""}),
        400,
        "invalid-request",
    )
    assert_problem(
        await api.post("/api/v1/accounts/giulia/limits", {**good, "extra": 1}),
        400,
        "invalid-request",
    )
    assert await api.tree_size() == 1


# -- annotation refs (exchange, policy, period...) on transfers and holds -------------------


async def test_annotated_transfers_are_retried_and_verified(ledger: LedgerService) -> None:
    await _open(ledger, "giulia", "marco")
    refs = {"policy": "acme-childcare", "period": "2026-12"}
    transfer = Transfer(new_id(), "marco", "giulia", 30, "grant", refs=refs)
    first = await ledger.transfer(transfer)
    assert isinstance(first, Appended)
    assert first.entry.refs == refs
    again = await ledger.transfer(transfer)
    assert isinstance(again, Appended) and not again.created
    clash = await ledger.transfer(
        Transfer(transfer.id, "marco", "giulia", 30, "grant", refs={"policy": "other"})
    )
    assert isinstance(clash, RuleViolation)
    assert clash.fields["field"] == "refs"
    report = verify_export(await export_lines(ledger), trusted_vkey=VKEY)
    assert report.accounts["giulia"].posted == 30


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ({"hold": "3"}, "ref 'hold' is not an annotation"),
        ({"expires": "2026-12-01T00:00:00.000000Z"}, "ref 'expires' is not an annotation"),
        ({"exchange": "x" * 257}, "must be a string of at most 256 characters"),
    ],
)
async def test_bad_annotations_are_refused(
    ledger: LedgerService, refs: dict[str, str], message: str
) -> None:
    await _open(ledger, "giulia", "marco")
    outcome = await ledger.transfer(Transfer(new_id(), "marco", "giulia", 30, refs=refs))
    assert isinstance(outcome, RuleViolation)
    assert outcome.code == "invalid-entry"
    assert message in outcome.detail
