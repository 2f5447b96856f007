"""Accounts: open one (idempotently), read its balances, page through its statement.

Staff (managers, auditors, admins) read every account; a member reads only the accounts
they hold: their own and those of organisations they administer (403 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from scambio.api.auth import BEARER, READ, WRITE, require_principal
from scambio.api.decode import InvalidRequest, canonical_uuid, strict_body
from scambio.api.problems import NotFoundViolation, not_found, problem_spec
from scambio.api.schemas import (
    AccountIn,
    AccountOpened,
    AccountOut,
    LimitsChanged,
    LimitsIn,
    StatementLineOut,
    StatementOut,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import check_account_id
from scambio.store import queries
from scambio.store.ledger import LedgerService
from scambio.timebank import audit
from scambio.timebank.authz import actor, may_read_account
from scambio.timebank.context import Timebank

STATEMENT_DEFAULT = 100
STATEMENT_MAX = 500
#: Largest entry index the database can hold.
MAX_INDEX = 2**63 - 1


@post(
    "/accounts",
    operation_id="openAccount",
    summary="Open an account",
    description=(
        "Opens an account of a kind with optional limits. An absent limit takes the "
        "default for the kind; an explicit null means unbounded. The response describes "
        "the account as opened and its ledger entry (balances are at GET). Repeating an "
        "identical request returns 200 and the same body; the same id with different "
        "fields is a 409 naming the field."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 409, 413, 422, 503),
    tags=["accounts"],
)
async def open_account(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    data: JSONBody[AccountIn],
) -> Response[AccountOpened]:
    body = await strict_body(request, AccountIn)
    # Checked here as well as by the rules: the appender looks the id up before it checks it.
    bad = check_account_id(body.id)
    if bad is not None:
        raise bad
    limits: dict[str, int | None] = {}
    if not isinstance(body.min_balance, msgspec.UnsetType):
        limits["min_balance"] = body.min_balance
    if not isinstance(body.max_balance, msgspec.UnsetType):
        limits["max_balance"] = body.max_balance
    outcome = await ledger.open_account(body.id, body.kind, **limits)
    if isinstance(outcome, RuleViolation):
        raise outcome
    spec = outcome.entry.account
    assert spec is not None
    return Response(
        AccountOpened(
            id=spec.id,
            kind=spec.kind,
            min_balance=spec.min_balance,
            max_balance=spec.max_balance,
            index=outcome.index,
            leaf_hash=outcome.leaf_hash,
            tree_size=outcome.tree_size,
        ),
        status_code=201 if outcome.created else 200,
        headers={"Location": f"/api/v1/accounts/{spec.id}"},
    )


@get(
    "/accounts/{account_id:str}",
    operation_id="getAccount",
    summary="An account's balances and limits",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=["accounts"],
)
async def get_account(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    account_id: FromPath[str],
) -> AccountOut:
    may_read_account(require_principal(request), account_id)
    async with ledger.read() as conn:
        try:
            view = await queries.account(conn, _known_shape(account_id))
        except RuleViolation as exc:
            raise not_found(exc) from None
        head = await queries.head(conn)
    return AccountOut(
        id=view.id,
        kind=view.kind,
        posted=view.posted,
        pending=view.pending,
        available=view.available,
        min_balance=view.min_balance,
        max_balance=view.max_balance,
        tree_size=head.size,
    )


@post(
    "/accounts/{account_id:str}/limits",
    operation_id="setAccountLimits",
    summary="Change an account's limits (a per-member credit limit, say)",
    description=(
        "Writes an `account` entry with the new limits, so an offline verifier applies "
        "them too. Both limits are given; null means unbounded. Refused with "
        "`invalid-limits` (422) when the account's balances would already break them. The "
        "reason becomes the entry's memo and goes to the audit log. `id` is a client UUID: "
        "an identical retry returns 200 and the same body."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["accounts"],
)
async def set_limits(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    timebank: NamedDependency[Timebank],
    account_id: FromPath[str],
    data: JSONBody[LimitsIn],
) -> Response[LimitsChanged]:
    body = await strict_body(request, LimitsIn)
    request_id = canonical_uuid(body.id)
    outcome = await ledger.set_limits(
        request_id, _known_shape(account_id), body.min_balance, body.max_balance, body.reason
    )
    if isinstance(outcome, RuleViolation):
        if outcome.code == "unknown-account":
            raise not_found(outcome)
        raise outcome
    spec = outcome.entry.account
    assert spec is not None
    if outcome.created:
        async with timebank.engine.begin() as conn:
            await audit.record(
                conn,
                actor(require_principal(request)),
                audit.ACCOUNT_LIMITS_CHANGED,
                "account",
                spec.id,
                at=outcome.entry.time,
                reason=body.reason,
                details={
                    "min_balance": spec.min_balance,
                    "max_balance": spec.max_balance,
                    "entry": outcome.index,
                },
            )
    return Response(
        LimitsChanged(
            id=request_id,
            account=spec.id,
            min_balance=spec.min_balance,
            max_balance=spec.max_balance,
            index=outcome.index,
            leaf_hash=outcome.leaf_hash,
            tree_size=outcome.tree_size,
        ),
        status_code=201 if outcome.created else 200,
    )


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) > MAX_INDEX:
        raise InvalidRequest(f"cursor {cursor!r} is not one returned as next_cursor")
    return int(cursor)


def _known_shape(account_id: str) -> str:
    """Ids that cannot exist are unknown without asking the database (which may refuse
    some bytes, such as NUL, with an error rather than an empty answer)."""
    if check_account_id(account_id) is not None:
        raise NotFoundViolation(
            "unknown-account", f"account {account_id!r} does not exist", account=account_id
        )
    return account_id


@get(
    "/accounts/{account_id:str}/statement",
    operation_id="getStatement",
    summary="An account's postings in ledger order, with running posted balance",
    description=(
        "Pages forward: pass the previous page's `next_cursor` as `cursor`. `balance` is "
        "the posted balance after the line (hold lines are pending and leave it unchanged)."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["accounts"],
)
async def get_statement(
    request: Request[Any, Any, Any],
    ledger: NamedDependency[LedgerService],
    account_id: FromPath[str],
    cursor: Annotated[
        str | None, QueryParameter(description="Opaque cursor from a previous page.")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=STATEMENT_MAX)] = STATEMENT_DEFAULT,
) -> StatementOut:
    may_read_account(require_principal(request), account_id)
    after = _parse_cursor(cursor)
    async with ledger.read() as conn:
        try:
            lines = await queries.statement(
                conn, _known_shape(account_id), after=after, limit=limit
            )
        except RuleViolation as exc:
            raise not_found(exc) from None
    return StatementOut(
        lines=[
            StatementLineOut(
                index=line.index,
                id=line.entry_id,
                kind=line.kind,
                time=line.time,
                minutes=line.minutes,
                pending=line.pending,
                balance=line.balance,
                memo=line.memo,
            )
            for line in lines
        ],
        next_cursor=str(lines[-1].index) if len(lines) == limit else None,
    )


ROUTES = [open_account, get_account, set_limits, get_statement]
