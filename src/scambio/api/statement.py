"""A member's statement over HTTP: their exchanges in ledger order with running balance,
as JSON pages or as one CSV download, each line linked to its Merkle inclusion proof.

The member and staff may read it (others: 403). The ledger-level statement of any
account stays at `/api/v1/accounts/{id}/statement`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from scambio.api.auth import BEARER, READ, require_principal
from scambio.api.people import Cursor, checked_member_id, index_cursor
from scambio.api.problems import problem_spec
from scambio.timebank import authz, people, statement
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.people import Member

STATEMENT_DEFAULT: Final = 100
STATEMENT_MAX: Final = 500
CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8; header=present"


class MemberStatementLineOut(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    entry_id: str
    #: hold (pending), post, transfer, reversal...
    kind: str
    time: str
    #: Positive: received; negative: paid.
    minutes: int
    pending: bool
    #: Posted balance after this line.
    balance: int
    memo: str
    #: The other account of the entry and its holder's name.
    counterpart: str | None
    counterpart_name: str | None
    exchange_id: str | None
    group_id: str | None
    title: str | None
    #: The exchange's (or group's) state now.
    state: str | None
    recorded_by: str | None
    #: The entry's Merkle inclusion proof (in the current tree).
    proof: str


class MemberStatementOut(msgspec.Struct, frozen=True, kw_only=True):
    member: str
    account: str | None
    lines: list[MemberStatementLineOut]
    #: Pass as `cursor` for the next page; null when this page is the last.
    next_cursor: str | None


async def _readable(tb: Timebank, request: Request[Any, Any, Any], member_id: str) -> Member:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(tb.engine) as conn:
        member = await people.require(conn, member_id)
    if not authz.sees_private(principal, member_id):
        raise authz.forbidden("only the member and staff may read a member's statement")
    return member


@get(
    "/members/{member_id:str}/statement",
    operation_id="getMemberStatement",
    summary="A member's exchanges in ledger order, with running balance and proof links",
    description=(
        "One line per posting to the member's account: the exchange or group exchange it "
        "belongs to (title, state, counterpart), the minutes, the posted balance after it, "
        "and `proof`, the URL of its inclusion proof. Hold lines are pending. Pages "
        "forward with `next_cursor`. The member and staff only."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["exchanges"],
)
async def get_member_statement(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=STATEMENT_MAX)] = STATEMENT_DEFAULT,
) -> MemberStatementOut:
    member = await _readable(timebank, request, member_id)
    after = index_cursor(cursor)
    found: list[statement.Line] = []
    if member.account_id is not None:
        async with timebank.ledger.read() as conn:
            found = await statement.lines(conn, member.account_id, after=after, limit=limit)
    return MemberStatementOut(
        member=member.id,
        account=member.account_id,
        lines=[
            MemberStatementLineOut(**{name: getattr(line, name) for name in statement.COLUMNS})
            for line in found
        ],
        next_cursor=str(found[-1].index) if len(found) == limit else None,
    )


@get(
    "/members/{member_id:str}/statement.csv",
    operation_id="getMemberStatementCsv",
    summary="A member's whole statement as CSV (every column)",
    description=(
        "RFC 4180 CSV with a header row, the same columns as the JSON statement. Cells "
        "that a spreadsheet would read as a formula (starting with = + - @) are prefixed "
        "with a quote; integers are left as numbers."
    ),
    opt={"access": READ},
    security=BEARER,
    media_type=CSV_MEDIA_TYPE,
    responses=problem_spec(401, 403, 404, 503),
    tags=["exchanges"],
)
async def get_member_statement_csv(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    member_id: FromPath[str],
) -> Response[str]:
    member = await _readable(timebank, request, member_id)
    found: list[statement.Line] = []
    if member.account_id is not None:
        async with timebank.ledger.read() as conn:
            found = await statement.all_lines(conn, member.account_id)
    return Response(
        statement.to_csv(found),
        media_type=CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="scambio-statement-{member.id}.csv"'
        },
    )


ROUTES = [get_member_statement, get_member_statement_csv]
